//! Fault layer. The file-operation recorder (`recorded`, `preload`; crate `torture-preload`) runs
//! every op-indexed fault of the built-in writers, the scenarios' power cuts and `torture exec
//! --fault`. What remains of the SQLite VFS shim (`vfs`) counts SQLite's VFS calls and crashes at
//! the N-th, for what only it does (`docs/power-loss.md`: `--crash-recovery`, the `checkpoint`
//! scenario's crash-in-checkpoint variants, the `recovery` scenario).
//!
//! How a trial uses the shim:
//! 1. the slot (or the writer) calls [`register`] once; the name it returns opens connections on the
//!    shim (`Connection::open_with_flags_and_vfs(path, flags, name)`);
//! 2. each writer child calls [`configure`] right after the fork, before opening any connection:
//!    a [`CrashAt`] makes it SIGKILL itself just before the N-th matching operation.
//!
//! [`ops_so_far`] measures how many operations a workload makes in an uncrashed run, which bounds
//! the useful crash points. Several connections on threads of one process share one configuration
//! and one count: the shim counts and performs each operation under one process-wide lock.

pub mod config;
pub mod kill_point;
pub mod preload;
pub mod recorded;
pub mod recovery;
pub mod vfs;

#[cfg(test)]
mod recorded_tests;
#[cfg(test)]
pub(crate) mod testkit;

pub use config::{CrashAt, FaultConfig, FileFilter, FileKind, OpFilter, OpKind, OpKindFilter};
pub use vfs::{configure, ops_matching_so_far, ops_so_far, register, VFS_NAME};
