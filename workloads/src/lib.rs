//! Workloads and pragma profiles for the torture crash lab, as a library the harness uses.
//!
//! A [`Profile`] says how every connection is configured; a [`Workload`] says what each writer does.
//! Both are deterministic data: the same seed writes the same transactions.

pub mod profile;
pub mod workload;

pub use profile::{InForce, JournalMode, LockingMode, Profile, ProfileError, Synchronous};
pub use workload::{digest, recovered_commits, Workload, WriterCommits};
