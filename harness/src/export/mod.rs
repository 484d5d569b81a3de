//! Everything a run writes: the per-trial CSV (appended and flushed per trial) and the per-profile
//! summary (CSV and the terminal table).

pub mod junit;
pub mod summary;
pub mod trials_csv;

pub use summary::Summary;
pub use trials_csv::TrialsCsv;
