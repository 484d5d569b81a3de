//! The old path of [`crate::process`], kept only for the inline `at_normal_priority` calls of
//! `faults/recorded.rs` and `writers/program/recorded.rs` while those two files are edited
//! elsewhere; their next edit names `crate::process` and this file goes (`scripts/layers` counts
//! `faults::recorded -> trial::process` until then).

pub use crate::process::at_normal_priority;
