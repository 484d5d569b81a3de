//! CSV: one row per group with every number at full precision, for spreadsheets and scripts.
//! Comparisons are a second shape of data and live in the JSON export instead; with runs side by
//! side each row names its run and carries Fisher's p against the same group in the first run.

use serde::Serialize;

use super::Exporter;
use crate::output::model::{GroupStats, Report};
use crate::stats::Rate;

/// One row per (profile, workload, fault) group.
#[derive(Clone, Copy, Debug, Default)]
pub struct Csv;

/// The flat row. Outcome columns are spelled out (rather than generated from [`Outcome::ALL`])
/// so the header is a stable, greppable contract.
///
/// [`Outcome::ALL`]: crate::verify::outcome::Outcome::ALL
#[derive(Serialize)]
struct Row<'a> {
    profile: &'a str,
    journal_mode: &'a str,
    synchronous: &'a str,
    workload: &'a str,
    fault: &'a str,
    trials: u64,
    judged: u64,
    intact: u64,
    lost_commit: u64,
    atomicity: u64,
    corrupt: u64,
    open_failed: u64,
    wrong_key: u64,
    worker_error: u64,
    expected: u64,
    violations: u64,
    damage_rate: f64,
    damage_low95: f64,
    damage_high95: f64,
    survival_rate: f64,
    survival_low95: f64,
    survival_high95: f64,
    busy_errors: u64,
    busy_errors_per_trial: f64,
    mean_acked_commits: f64,
    trial_seconds: f64,
    trials_per_trial_second: Option<f64>,
    kills_not_reached: u64,
    /// The run, when runs are side by side; empty otherwise.
    run: &'a str,
    /// Fisher's p between this group and the same profile × workload × fault in the first run
    /// that has it; empty for that first run and for one run.
    p_vs_first_run: Option<f64>,
}

impl<'a> Row<'a> {
    fn new(g: &'a GroupStats, p_vs_first_run: Option<f64>) -> Row<'a> {
        use crate::verify::outcome::Outcome::*;
        let Rate {
            rate: damage_rate,
            low95: damage_low95,
            high95: damage_high95,
            ..
        } = g.damage;
        Row {
            profile: &g.profile,
            journal_mode: &g.journal_mode,
            synchronous: &g.synchronous,
            workload: &g.workload,
            fault: &g.fault,
            trials: g.trials,
            judged: g.judged,
            intact: g.count(Intact),
            lost_commit: g.count(LostCommit),
            atomicity: g.count(Atomicity),
            corrupt: g.count(Corrupt),
            open_failed: g.count(OpenFailed),
            wrong_key: g.count(WrongKey),
            worker_error: g.count(WorkerError),
            expected: g.expected,
            violations: g.violations,
            damage_rate,
            damage_low95,
            damage_high95,
            survival_rate: g.survival.rate,
            survival_low95: g.survival.low95,
            survival_high95: g.survival.high95,
            busy_errors: g.busy_errors,
            busy_errors_per_trial: g.busy_errors_per_trial,
            mean_acked_commits: g.mean_acked_commits,
            trial_seconds: g.trial_seconds,
            trials_per_trial_second: g.trials_per_trial_second,
            kills_not_reached: g.kills.not_reached,
            run: &g.run,
            p_vs_first_run,
        }
    }
}

/// The column names, in [`Row`]'s field order; written by hand so an empty report still has a
/// header (serde only writes one with the first row).
const HEADER: [&str; 30] = [
    "profile",
    "journal_mode",
    "synchronous",
    "workload",
    "fault",
    "trials",
    "judged",
    "intact",
    "lost_commit",
    "atomicity",
    "corrupt",
    "open_failed",
    "wrong_key",
    "worker_error",
    "expected",
    "violations",
    "damage_rate",
    "damage_low95",
    "damage_high95",
    "survival_rate",
    "survival_low95",
    "survival_high95",
    "busy_errors",
    "busy_errors_per_trial",
    "mean_acked_commits",
    "trial_seconds",
    "trials_per_trial_second",
    "kills_not_reached",
    "run",
    "p_vs_first_run",
];

/// The p-value of `g` against the same profile × workload × fault in the first run that has it.
fn p_vs_first_run(report: &Report, g: &GroupStats) -> Option<f64> {
    let first = report
        .groups
        .iter()
        .find(|h| h.profile == g.profile && h.workload == g.workload && h.fault == g.fault)?;
    if first.run == g.run {
        return None;
    }
    let pair = |a: &str, b: &str| (a == first.run && b == g.run) || (a == g.run && b == first.run);
    // Neither with damage: no comparison made, and nothing to tell them apart (p = 1).
    Some(
        report
            .comparisons
            .iter()
            .find(|c| {
                c.across_runs()
                    && c.better == g.profile
                    && c.workload == g.workload
                    && c.fault == g.fault
                    && pair(&c.better_run, &c.worse_run)
            })
            .map_or(1.0, |c| c.p_value),
    )
}

/// How this export begins, so `torture report` can tell its own CSV from a trials.csv.
pub const HEADER_START: &str = "profile,journal_mode,synchronous,workload,fault,trials,judged,";

impl Exporter for Csv {
    fn render(&self, report: &Report) -> String {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        w.write_record(HEADER).expect("write to memory");
        for g in &report.groups {
            // Writing plain numbers and strings into memory cannot fail.
            let p = p_vs_first_run(report, g);
            w.serialize(Row::new(g, p)).expect("serialize a CSV row");
        }
        let bytes = w.into_inner().expect("flush to memory");
        String::from_utf8(bytes).expect("CSV of UTF-8 strings is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::report::tests::rec;
    use crate::verify::outcome::{Outcome, Verdict};

    #[test]
    fn header_matches_the_row_fields() {
        let report = Report::build(&[rec(0, "wal", Outcome::Intact, Verdict::Ok)]);
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(Row::new(&report.groups[0], None)).unwrap();
        let serde = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(serde.lines().next(), Some(HEADER.join(",").as_str()));
        assert!(HEADER.join(",").starts_with(HEADER_START));
        assert_eq!(
            Csv.render(&Report::build(&[])),
            format!("{}\n", HEADER.join(","))
        );
    }
}
