//! torture: a crash-torture lab for SQLite. The parent forks slot processes; each slot forks writer
//! processes per trial, kills them at a seeded point, recovers and verifies the database, and reports
//! one row per trial back to the parent, which writes the CSVs. See DESIGN.md for the map.

pub mod ack;
pub mod app;
pub mod cli;
pub mod engine;
pub mod evidence;
pub mod exec;
pub mod exit_code;
pub mod export;
pub mod fault;
pub mod kill_point;
pub mod kill_timer;
pub mod merge;
pub mod options;
pub mod oracle;
pub mod outcome;
pub mod plan;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod scheduler;
pub mod seed;
pub mod slot;
pub mod sqlite_error;
pub mod stats;
pub mod trial;
pub mod verdict;
pub mod writer;
