//! Everything a run writes and shows: the per-trial CSV (appended and flushed per trial), the
//! per-profile summary (CSV and the terminal table), JUnit, the progress bar, `merge` of shards and
//! `report` over finished runs.

pub mod after_run;
pub mod junit;
pub mod kills;
pub mod manual;
pub mod merge;
pub mod model;
pub mod out_dir;
pub mod progress;
pub mod report;
pub mod summary;
pub mod trials_csv;

pub use summary::Summary;

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--quiet`: a run prints only warnings, errors and its verdict line. Set once, before the run.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// A line on stderr that `--quiet` silences (what a run is about to do).
pub fn chatter(line: std::fmt::Arguments) {
    if !quiet() {
        eprintln!("{line}");
    }
}

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}
pub use trials_csv::TrialsCsv;
