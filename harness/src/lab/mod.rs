//! The lab: which trials run (plan, seeds), and the processes that run them — the parent
//! (scheduler) hands trial indices to slot processes.

pub mod plan;
pub mod scheduler;
pub mod slot;
pub mod space;
