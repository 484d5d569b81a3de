//! Everything a run writes and shows: the per-trial CSV (appended and flushed per trial), the
//! per-profile summary (CSV and the terminal table), JUnit, the progress bar, `merge` of shards and
//! `report` over finished runs.

pub mod junit;
pub mod kills;
pub mod merge;
pub mod model;
pub mod out_dir;
pub mod progress;
pub mod report;
pub mod reproduce;
pub mod stats;
pub mod summary;
pub mod trials_csv;

pub use summary::Summary;
pub use trials_csv::TrialsCsv;
