//! torture: a crash-torture lab for SQLite. The parent forks slot processes; each slot runs trials:
//! it starts the trial's writers (the built-in workload, a scenario's processes, or a user's program),
//! ends them with a fault, recovers and verifies the database, and reports one row per trial back to
//! the parent, which writes the CSVs. The folders follow the data: `lab/` (plan, scheduler, slots) →
//! `trial/` (the trial engine: processes, acks, evidence, the row) → `writers/` (what runs, and each
//! kind's trial) → `faults/` (how it ends) → `verify/` (oracle and verdict) → `output/` (CSV,
//! summary, JUnit, reports). See DESIGN.md for the map.

pub mod app;
pub mod cli;
pub mod config;
pub mod engine;
pub mod exit_code;
pub mod faults;
pub mod fsio;
pub mod lab;
pub mod options;
pub mod output;
pub mod process;
pub mod reproduce;
pub mod run;
pub mod seed;
pub mod stats;
pub mod trial;
pub mod verify;
pub mod writers;
