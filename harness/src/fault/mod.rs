//! Fault layer: a VFS shim over the unix VFS that counts I/O operations, crashes at the N-th, fails I/O on request, and logs writes so a power loss can be reconstructed.
//!
//! How a trial uses it:
//! 1. the slot (or the writer) calls [`register`] once; the name it returns opens connections on the
//!    shim (`Connection::open_with_flags_and_vfs(path, flags, name)`);
//! 2. each writer child calls [`configure`] right after the fork, before opening any connection:
//!    a [`CrashAt`] makes it SIGKILL itself just before the N-th matching operation, an
//!    [`IoErrorAt`] fails one (or every later) operation, a `log_path` records every operation with
//!    what is needed to undo it;
//! 3. after the writers are dead, the slot may [`read_log`] and [`simulate_power_loss`] to rewind
//!    the files to what a disk could hold after a power cut at that instant, then verify as usual.
//!
//! [`ops_so_far`] measures how many operations a workload makes in an uncrashed run, which bounds
//! the useful crash points.

pub mod config;
pub mod log;
pub mod power_loss;
pub mod recovery;
pub mod vfs;

#[cfg(test)]
pub(crate) mod testkit;

pub use config::{
    CrashAt, FaultConfig, FileFilter, FileKind, IoErrorAt, IoErrorCode, OpFilter, OpKind,
    OpKindFilter,
};
pub use log::{parse_log, read_log, LogError, LogEvent, LogRecord};
pub use power_loss::{simulate_power_loss, PowerLossModel, PowerLossReport};
pub use vfs::{configure, ops_matching_so_far, ops_so_far, register, VFS_NAME};
