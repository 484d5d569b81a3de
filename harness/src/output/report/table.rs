//! The terminal format: aligned plain-text tables, readable in 120 columns.

use std::fmt::Write as _;

use super::text::{self, Align, TextTable};
use super::Exporter;
use crate::output::model::{GroupStats, Report};
use crate::verify::outcome::Outcome;

/// Aligned plain text for a terminal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Table;

/// The three columns that name a group, shared by every table.
const KEY: [(&str, Align); 3] = [
    ("profile", Align::Left),
    ("workload", Align::Left),
    ("fault", Align::Left),
];

/// A group's key cells: its run first when runs are set side by side.
fn key(report: &Report, g: &GroupStats) -> Vec<String> {
    let run = (!report.runs.is_empty()).then(|| g.run.clone());
    run.into_iter()
        .chain([g.profile.clone(), g.workload.clone(), g.fault.clone()])
        .collect()
}

fn columns(report: &Report, extra: &[(&'static str, Align)]) -> Vec<(&'static str, Align)> {
    let run = (!report.runs.is_empty()).then_some(("run", Align::Left));
    run.into_iter()
        .chain(KEY.iter().copied())
        .chain(extra.iter().copied())
        .collect()
}

impl Exporter for Table {
    fn render(&self, report: &Report) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "torture report: {}", text::headline(report));
        if report.groups.is_empty() {
            return out;
        }
        if !report.runs.is_empty() {
            let _ = writeln!(out, "\nRuns side by side (labelled by what differs)");
            for r in &report.runs {
                let _ = writeln!(out, "  {}", text::run_line(r));
            }
        }

        let _ = writeln!(
            out,
            "\nDamage (any outcome but intact, among judged trials; worker errors are not judged)"
        );
        let mut t = TextTable::new(&columns(
            report,
            &[
                ("trials", Align::Right),
                ("judged", Align::Right),
                ("expected", Align::Right),
                ("violations", Align::Right),
                ("damage", Align::Left),
            ],
        ));
        for g in &report.groups {
            let mut row = key(report, g);
            row.extend([
                text::thousands(g.trials),
                text::thousands(g.judged),
                text::thousands(g.expected),
                text::thousands(g.violations),
                text::rate_phrase(&g.damage),
            ]);
            t.row(row);
        }
        out.push_str(&t.render());

        let _ = writeln!(out, "\nOutcomes (share of all trials, 95% Wilson interval)");
        let mut t = TextTable::new(&columns(
            report,
            &[
                ("outcome", Align::Left),
                ("count", Align::Right),
                ("rate", Align::Right),
                ("95% interval", Align::Left),
            ],
        ));
        for g in &report.groups {
            for o in &g.outcomes {
                let mut row = key(report, g);
                row.extend([
                    o.outcome.to_string(),
                    text::thousands(o.rate.count),
                    text::pct(o.rate.rate),
                    text::interval(&o.rate),
                ]);
                t.row(row);
            }
        }
        out.push_str(&t.render());

        let _ = writeln!(out, "\nSpeed and contention");
        let mut t = TextTable::new(&columns(
            report,
            &[
                ("journal", Align::Left),
                ("sync", Align::Left),
                ("busy/trial", Align::Right),
                ("acked/trial", Align::Right),
                ("trial-s", Align::Right),
                ("trials/trial-s", Align::Right),
            ],
        ));
        for g in &report.groups {
            let mut row = key(report, g);
            row.extend([
                g.journal_mode.clone(),
                g.synchronous.clone(),
                format!("{:.2}", g.busy_errors_per_trial),
                format!("{:.1}", g.mean_acked_commits),
                format!("{:.2}", g.trial_seconds),
                text::opt(g.trials_per_trial_second, 1),
            ]);
            t.row(row);
        }
        out.push_str(&t.render());
        let _ = writeln!(out, "{}", text::TRIAL_SECONDS_NOTE);

        let _ = writeln!(
            out,
            "\n\"A survives better than B\" (damage rate, Fisher's exact test, two-sided)"
        );
        for (title, across) in text::comparison_parts(report) {
            if let Some(title) = title {
                let _ = writeln!(out, "  {title}:");
            }
            for c in report
                .comparisons
                .iter()
                .filter(|c| c.across_runs() == across)
            {
                let _ = writeln!(out, "  {}", text::comparison_sentence(c));
            }
        }
        let _ = writeln!(out, "  {}", text::indistinguishable_line(report));

        // A run with worker errors says less than its trial count suggests; say so last.
        let errors: u64 = report
            .groups
            .iter()
            .map(|g| g.count(Outcome::WorkerError))
            .sum();
        if errors > 0 {
            let were = if errors == 1 {
                "trial was"
            } else {
                "trials were"
            };
            let _ = writeln!(
                out,
                "\n{} worker-error {were} not judged: the lab failed, not SQLite.",
                text::thousands(errors)
            );
        }
        out
    }
}
