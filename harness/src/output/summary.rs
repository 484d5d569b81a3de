//! Per-profile survival statistics of a run: `OUT/summary.csv` and the table printed at the end,
//! both rendered from the run's [`Groups`] (the one statistics model, `output/model.rs`).

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::output::model::{Groups, Tally};
use crate::verify::outcome::{Outcome, TrialRecord};

/// One row of `summary.csv`.
#[derive(Serialize)]
struct SummaryRow<'a> {
    profile: &'a str,
    journal_mode: String,
    synchronous: String,
    workload: &'a str,
    fault: &'a str,
    trials: u64,
    intact: u64,
    lost_commit: u64,
    atomicity: u64,
    corrupt: u64,
    open_failed: u64,
    wrong_key: u64,
    worker_error: u64,
    expected: u64,
    violations: u64,
    survival_rate: String,
    survival_low95: String,
    survival_high95: String,
    busy_errors: u64,
    mean_acked_commits: String,
    mean_trial_us: u64,
}

impl<'a> SummaryRow<'a> {
    fn new(t: &'a Tally) -> SummaryRow<'a> {
        let survival = t.survival();
        SummaryRow {
            profile: &t.profile,
            journal_mode: t.journal_mode(),
            synchronous: t.synchronous(),
            workload: &t.workload,
            fault: &t.fault,
            trials: t.trials,
            intact: t.count(Outcome::Intact),
            lost_commit: t.count(Outcome::LostCommit),
            atomicity: t.count(Outcome::Atomicity),
            corrupt: t.count(Outcome::Corrupt),
            open_failed: t.count(Outcome::OpenFailed),
            wrong_key: t.count(Outcome::WrongKey),
            worker_error: t.count(Outcome::WorkerError),
            expected: t.expected,
            violations: t.violations,
            survival_rate: format!("{:.6}", survival.rate),
            survival_low95: format!("{:.6}", survival.low95),
            survival_high95: format!("{:.6}", survival.high95),
            busy_errors: t.busy_errors,
            mean_acked_commits: format!("{:.1}", t.mean_acked_commits()),
            mean_trial_us: t.mean_trial_us(),
        }
    }
}

/// Statistics of a whole run, per profile (× workload × fault), in the order profiles were asked
/// for: the run's [`Groups`], added to as trials finish.
#[derive(Debug, Default)]
pub struct Summary {
    groups: Groups,
    /// Power loss: crash states checked, damaged, cut inside a WAL checkpoint (the row's last
    /// columns, summed).
    states: [u64; 3],
}

impl Summary {
    /// A summary whose rows come in this order (the order profiles were asked for), whatever order
    /// trials finish in.
    pub fn with_profile_order(names: impl IntoIterator<Item = String>) -> Summary {
        Summary {
            groups: Groups::with_profile_order(names),
            states: [0; 3],
        }
    }

    pub fn add(&mut self, r: &TrialRecord) {
        self.groups.add(r);
        self.states[0] += r.crash_states;
        self.states[1] += r.damaged_states;
        self.states[2] += r.cuts_in_checkpoint;
    }

    /// `N crash states checked (R/s), D not intact, C cut inside a WAL checkpoint`, when the run
    /// checked any.
    pub fn crash_states_line(&self, elapsed: std::time::Duration) -> Option<String> {
        let [n, damaged, inside] = self.states;
        (n > 0).then(|| {
            format!(
                "{n} crash states checked ({:.0}/s), {damaged} not intact, {inside} cut inside a WAL checkpoint",
                n as f64 / elapsed.as_secs_f64().max(1e-9)
            )
        })
    }

    /// The groups, one per row.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    pub fn trials(&self) -> u64 {
        self.groups.trials()
    }

    pub fn violations(&self) -> u64 {
        self.groups.violations()
    }

    pub fn count(&self, o: Outcome) -> u64 {
        self.groups.count(o)
    }

    pub fn write_csv(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("csv.tmp");
        let mut w = csv::Writer::from_path(&tmp)?;
        for t in self.groups.tallies() {
            w.serialize(SummaryRow::new(t))?;
        }
        w.flush()?;
        drop(w);
        // Written whole, then renamed: a reader never sees half a summary.
        std::fs::rename(&tmp, path)
    }

    /// The table printed at the end of a run.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        // As wide as the longest name (26 at least, so short names keep one layout): never cut.
        let w = self
            .groups
            .tallies()
            .iter()
            .map(|t| t.profile.chars().count())
            .max()
            .unwrap_or(0)
            .max(26);
        let _ = writeln!(
            out,
            "{:<w$} {:>7} {:>7} {:>6} {:>6} {:>7} {:>6} {:>6}  {:>8}  {:<17}  verdict",
            "profile",
            "trials",
            "intact",
            "lost",
            "atom",
            "corrupt",
            "open",
            "w-err",
            "survival",
            "95% interval"
        );
        for p in self.groups.tallies() {
            let s = p.survival();
            let verdict = if p.violations > 0 {
                format!("VIOLATION x{}", p.violations)
            } else if p.expected > 0 {
                format!("ok (expected losses: {})", p.expected)
            } else if p.count(Outcome::WorkerError) > 0 {
                format!("worker errors: {}", p.count(Outcome::WorkerError))
            } else {
                "ok".to_string()
            };
            let _ = writeln!(
                out,
                "{:<w$} {:>7} {:>7} {:>6} {:>6} {:>7} {:>6} {:>6}  {:>7.2}%  [{:>6.2}%, {:>6.2}%]  {}",
                p.profile,
                p.trials,
                p.count(Outcome::Intact),
                p.count(Outcome::LostCommit),
                p.count(Outcome::Atomicity),
                p.count(Outcome::Corrupt),
                p.count(Outcome::OpenFailed),
                p.count(Outcome::WorkerError),
                s.rate * 100.0,
                s.low95 * 100.0,
                s.high95 * 100.0,
                verdict
            );
        }
        // SQLCipher only: its own outcome, kept out of the table every plain run prints.
        for p in self
            .groups
            .tallies()
            .iter()
            .filter(|p| p.count(Outcome::WrongKey) > 0)
        {
            let _ = writeln!(
                out,
                "{}: {} trial(s) wrong-key (the key did not open the file; counted in survival, not in the columns)",
                p.profile,
                p.count(Outcome::WrongKey)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::outcome::Verdict;

    fn rec(profile: &str, outcome: Outcome, verdict: Verdict) -> TrialRecord {
        TrialRecord::for_test(profile, outcome, verdict)
    }

    #[test]
    fn counts_and_survival_exclude_worker_errors() {
        let mut s = Summary::default();
        s.add(&rec("off-full", Outcome::Intact, Verdict::Ok));
        s.add(&rec("off-full", Outcome::Corrupt, Verdict::Expected));
        s.add(&rec("off-full", Outcome::WorkerError, Verdict::LabError));
        s.add(&rec("wal-full", Outcome::LostCommit, Verdict::Violation));
        assert_eq!(s.groups().tallies().len(), 2);
        let off = &s.groups().tallies()[0];
        assert_eq!((off.trials, off.judged(), off.expected), (3, 2, 1));
        assert_eq!(off.survival().rate, 0.5);
        assert_eq!(s.violations(), 1);
        let table = s.render_table();
        assert!(table.contains("VIOLATION x1"), "{table}");
        assert!(table.contains("expected losses: 1"), "{table}");
    }

    #[test]
    fn long_names_are_never_cut_and_the_columns_stay_aligned() {
        let mut s = Summary::default();
        let long = "pool/delete-p10-nobusy-power";
        s.add(&rec(long, Outcome::Intact, Verdict::Ok));
        s.add(&rec("wal-full", Outcome::Intact, Verdict::Ok));
        let table = s.render_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].starts_with(&format!("{long} ")), "{table}");
        // Every row's `trials` column ends where the header's does.
        let end = lines[0].find("trials").unwrap() + "trials".len();
        for line in &lines[1..] {
            assert_eq!(&line[end - 1..end], "1", "{table}");
        }
    }

    #[test]
    fn rows_follow_the_requested_order_not_the_finishing_order() {
        let mut s = Summary::with_profile_order(["a", "b", "c"].map(String::from));
        for name in ["c", "x", "a", "b", "c"] {
            s.add(&rec(name, Outcome::Intact, Verdict::Ok));
        }
        let rows = s.groups().tallies();
        let names: Vec<_> = rows.iter().map(|p| p.profile.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "x"]);
        assert_eq!(rows[2].trials, 2);
    }

    #[test]
    fn summary_csv_has_one_row_per_profile() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Summary::default();
        s.add(&rec("a", Outcome::Intact, Verdict::Ok));
        s.add(&rec("b", Outcome::Intact, Verdict::Ok));
        let path = d.path().join("summary.csv");
        s.write_csv(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with("profile,journal_mode,synchronous,workload,fault,trials,intact,"));
    }
}
