//! `torture report`: reads result folders and prints per-profile statistics and pairwise comparisons in several formats.
//!
//! [`load`] reads one or more result folders (or `trials.csv` files) and merges them;
//! [`Report::build`] (in `output/model.rs`, the statistics model `summary.csv` and JUnit use too)
//! groups the trials by (profile, workload, fault), puts a 95% Wilson interval on every rate and
//! compares the damage rates of profiles with Fisher's exact test; an [`Exporter`] per [`Format`]
//! turns the one [`Report`] into text, so every format shows the same numbers.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

mod csv_export;
mod html;
mod json;
mod load;
mod markdown;
mod runs;
mod table;
mod text;

pub use crate::output::kills::{parse_kill_point, KillAt, KillAxis, KillBin, KillHistogram};
pub use crate::output::model::{Comparison, GroupStats, OutcomeRate, Report, RunInfo, ALPHA};
pub use crate::stats::{fisher_exact_two_sided, Rate};
pub use csv_export::Csv;
pub use html::Html;
pub use json::Json;
pub use load::{load, load_runs, Loaded, ReportError, Source};
pub use markdown::Markdown;
pub use runs::Run;
pub use table::Table;

use crate::verify::outcome::TrialRecord;

/// Turns a [`Report`] into one output format (after hyperfine's `Exporter`).
pub trait Exporter {
    fn render(&self, report: &Report) -> String;
}

/// The output formats of `torture report --format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// Aligned plain text for a terminal.
    #[default]
    Table,
    /// GitHub-flavoured Markdown tables.
    Markdown,
    /// One row per group.
    Csv,
    /// The whole report.
    Json,
    /// One self-contained page with charts.
    Html,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Table,
        Format::Markdown,
        Format::Csv,
        Format::Json,
        Format::Html,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Markdown => "markdown",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Html => "html",
        }
    }

    /// The exporter that writes this format.
    pub fn exporter(self) -> &'static dyn Exporter {
        match self {
            Format::Table => &Table,
            Format::Markdown => &Markdown,
            Format::Csv => &Csv,
            Format::Json => &Json,
            Format::Html => &Html,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown `--format`; the message lists the choices.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{0}`; choose one of: table, markdown, csv, json, html")]
pub struct ParseFormatError(pub String);

impl FromStr for Format {
    type Err = ParseFormatError;

    fn from_str(s: &str) -> Result<Format, ParseFormatError> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseFormatError(s.to_string()))
    }
}

/// Builds the report of `records` and renders it in `format`.
pub fn render(records: &[TrialRecord], format: Format) -> String {
    format.exporter().render(&Report::build(records))
}

/// The report of runs: shards of one run joined, separate runs side by side (see [`runs`]).
pub fn build(runs: Vec<Run>) -> Report {
    let infos = runs::describe(&runs);
    let runs: Vec<(RunInfo, Vec<TrialRecord>)> = infos
        .into_iter()
        .zip(runs)
        .map(|(info, run)| (info, run.records))
        .collect();
    Report::build_runs(&runs)
}

/// `torture report RESULTS... --format F` in one call: load, join, render. Also returns the lines
/// to print on stderr: `note: ` an input skipped, `warning: ` a run that lacks trials.
pub fn report(inputs: &[PathBuf], format: Format) -> Result<(String, Vec<String>), ReportError> {
    let Loaded {
        runs,
        notes,
        warnings,
    } = load_runs(inputs)?;
    let lines = notes
        .into_iter()
        .map(|n| format!("note: {n}"))
        .chain(warnings.into_iter().map(|w| format!("warning: {w}")))
        .collect();
    Ok((format.exporter().render(&build(runs)), lines))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;
    use crate::verify::outcome::{Outcome, Verdict};

    /// A trial record with plausible values; tests change what they need.
    pub fn rec(iteration: u64, profile: &str, outcome: Outcome, verdict: Verdict) -> TrialRecord {
        TrialRecord {
            iteration,
            seed: 1000 + iteration,
            profile: profile.into(),
            journal_mode: "wal".into(),
            synchronous: "full".into(),
            connections: 1,
            processes: 2,
            workload: "inserts".into(),
            fault: "sigkill".into(),
            kill_point: "acks=3+10us".into(),
            acked_commits: 3,
            recovered_commits: 3,
            outcome,
            verdict,
            detail: String::new(),
            busy_errors: 0,
            pragma_fallback: String::new(),
            duration_us: 2000,
            sqlite_version: "3.54.1".into(),
            crash_states: 0,
            damaged_states: 0,
            cuts_in_checkpoint: 0,
        }
    }

    /// The fixed records every snapshot renders: a clean profile, a lossy one with expected
    /// damage and a worker error, one with a violation, and a second workload killed by time.
    fn fixture() -> Vec<TrialRecord> {
        let mut records = Vec::new();
        let mut next = 0u64;
        let mut push = |profile: &str, outcome: Outcome, verdict: Verdict| {
            let mut r = rec(next, profile, outcome, verdict);
            r.acked_commits = 1 + next % 7 + next % 3;
            r.kill_point = format!("acks={}+{}us", 1 + next % 7, next * 13 % 100);
            r.busy_errors = next % 3 / 2;
            r.duration_us = 2000 + next * 10;
            next += 1;
            records.push(r);
        };
        for _ in 0..40 {
            push("wal-full", Outcome::Intact, Verdict::Ok);
        }
        for (n, outcome, verdict) in [
            (12, Outcome::Intact, Verdict::Ok),
            (4, Outcome::Corrupt, Verdict::Expected),
            (2, Outcome::LostCommit, Verdict::Expected),
            (1, Outcome::Atomicity, Verdict::Expected),
            (1, Outcome::WorkerError, Verdict::LabError),
        ] {
            for _ in 0..n {
                push("off-full", outcome, verdict);
            }
        }
        for i in 0..20 {
            let (outcome, verdict) = if i == 7 {
                (Outcome::LostCommit, Verdict::Violation)
            } else {
                (Outcome::Intact, Verdict::Ok)
            };
            push("wal-normal", outcome, verdict);
        }
        for r in &mut records {
            if r.profile == "off-full" {
                r.journal_mode = "off".into();
            } else if r.profile == "wal-normal" {
                r.synchronous = "normal".into();
            }
        }
        for (i, profile) in ["wal-full", "delete-full"]
            .iter()
            .cycle()
            .take(20)
            .enumerate()
        {
            let mut r = rec(100 + i as u64, profile, Outcome::Intact, Verdict::Ok);
            r.workload = "bank".into();
            r.kill_point = format!("t={}us", 2000 + i * 150);
            if i == 3 {
                r.kill_point.push_str(" (not reached: writers finished)");
            }
            r.journal_mode = if *profile == "wal-full" {
                "wal"
            } else {
                "delete"
            }
            .into();
            records.push(r);
        }
        records
    }

    /// Compares `actual` with the committed snapshot `snapshots/<name>`. `UPDATE_SNAPSHOTS=1`
    /// (re)writes them all after an intended change (review and commit them); without it a
    /// missing snapshot fails like any other difference, so a lost file cannot pass silently.
    fn check_snapshot(name: &str, actual: &str) {
        check_snapshot_in(&snapshot_dir(), name, actual, updating());
    }

    fn snapshot_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/output/report/snapshots")
    }

    /// `UPDATE_SNAPSHOTS=1` (any value but empty or `0`).
    fn updating() -> bool {
        std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| !v.is_empty() && v != "0")
    }

    fn check_snapshot_in(dir: &Path, name: &str, actual: &str, update: bool) {
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let Ok(expected) = std::fs::read_to_string(&path) else {
            panic!(
                "snapshot {} is missing; to create it: UPDATE_SNAPSHOTS=1 cargo test -p torture --lib report, then review and commit it",
                path.display()
            );
        };
        if expected != actual {
            let line = expected
                .lines()
                .zip(actual.lines())
                .position(|(e, a)| e != a)
                .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            panic!(
                "{name} differs from {} at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
                 If the change is intended: UPDATE_SNAPSHOTS=1 cargo test -p torture --lib report",
                path.display(),
                line + 1,
                expected.lines().nth(line).unwrap_or("<end>"),
                actual.lines().nth(line).unwrap_or("<end>"),
            );
        }
    }

    #[test]
    fn snapshots_of_every_format() {
        let records = fixture();
        for format in Format::ALL {
            check_snapshot(&snapshot_name(format), &render(&records, format));
        }
    }

    #[test]
    fn a_missing_snapshot_fails_unless_updating() {
        let d = tempfile::tempdir().unwrap();
        let missing =
            std::panic::catch_unwind(|| check_snapshot_in(d.path(), "x.txt", "x\n", false));
        assert!(missing.is_err(), "a missing snapshot must fail");
        assert!(!d.path().join("x.txt").exists(), "and must not be written");
        check_snapshot_in(d.path(), "x.txt", "x\n", true);
        check_snapshot_in(d.path(), "x.txt", "x\n", false);
        let changed =
            std::panic::catch_unwind(|| check_snapshot_in(d.path(), "x.txt", "y\n", false));
        assert!(changed.is_err(), "a different output must fail");
        for format in Format::ALL {
            assert!(
                snapshot_dir().join(snapshot_name(format)).is_file(),
                "{format} has a committed snapshot"
            );
        }
    }

    fn snapshot_name(format: Format) -> String {
        let ext = match format {
            Format::Table => "txt",
            Format::Markdown => "md",
            f => f.as_str(),
        };
        format!("report.{ext}")
    }

    #[test]
    fn fixture_reads_as_intended() {
        let report = Report::build(&fixture());
        assert_eq!(report.groups.len(), 5);
        let off = &report.groups[1];
        assert_eq!((off.trials, off.judged, off.expected), (20, 19, 7));
        // wal-full beats off-full; wal-full vs wal-normal is too close to call.
        assert!(report
            .comparisons
            .iter()
            .any(|c| c.better == "wal-full" && c.worse == "off-full" && c.supported));
        assert!(report
            .comparisons
            .iter()
            .any(|c| c.better == "wal-full" && c.worse == "wal-normal" && !c.supported));
        assert_eq!(report.indistinguishable_pairs, 1);
        assert_eq!(report.groups[3].kills.axis, KillAxis::TimeUs);
        assert_eq!(report.groups[3].kills.not_reached, 0);
        assert_eq!(report.groups[4].kills.not_reached, 1);
    }

    #[test]
    fn html_is_one_offline_page() {
        let html = render(&fixture(), Format::Html);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        assert!(html.contains("<svg"));
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script"));
        // Hostile profile names are escaped, not interpreted.
        let mut records = fixture();
        records[0].profile = "<b>&".into();
        let html = render(&records, Format::Html);
        assert!(html.contains("&lt;b&gt;&amp;") && !html.contains("<b>&"));
    }

    #[test]
    fn json_round_trips_through_serde() {
        let json = render(&fixture(), Format::Json);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["trials"], 100);
        assert_eq!(v["groups"][0]["outcomes"][0]["outcome"], "intact");
    }

    #[test]
    fn formats_parse_and_list_the_choices() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!("HTML".parse::<Format>(), Ok(Format::Html));
        let err = "yaml".parse::<Format>().unwrap_err().to_string();
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
        assert!(err.ends_with(&names.join(", ")), "{err}");
        assert!(err.contains("`yaml`"));
    }

    #[test]
    fn empty_input_renders_without_panicking() {
        for f in Format::ALL {
            assert!(!render(&[], f).is_empty());
        }
    }
}
