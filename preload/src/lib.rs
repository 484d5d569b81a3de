//! The lab's file-operation fault layer (issue 13).
//!
//! - the recorder (Linux, module `recorder`): `libtorture_preload.so`, preloaded into every process
//!   of a trial (or started in a forked child with [`start_recording`]), logs each operation on the
//!   files of the trial's folder, with its data and pre-image, in one total order with the
//!   program's acknowledgements. See `docs/fault-layer.md`.
//! - [`log`]: reads the log back into typed [`Op`]s.
//! - [`snapshot`]: the folder's contents before the program starts.
//! - [`model`]: the persistence model and the crash-state builder.
//! - [`crash`]: record once, crash everywhere — cut points, variants, distinct states, acks.
//! - [`faults`]: the fault settings' parsers and `OpFilter`; [`sqlite`]: WAL checkpoints in a log;
//!   [`wal`]: what SQLite's recovery reads of a `-wal` file (a crash state's effective key);
//!   [`append`]: acks the lab appends itself.

pub mod acks;
pub mod append;
pub mod crash;
pub mod faults;
pub mod format;
pub mod log;
pub mod model;
pub mod snapshot;
pub mod sqlite;
pub mod wal;

#[cfg(test)]
mod tests;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod recorder;

/// Starts the recorder inside this process (a child the lab forked without exec, e.g. a built-in
/// writer), with settings by environment-variable name (see [`env`]). It works because a binary
/// that links this crate carries the hooks: its own libc calls, and those of a SQLite linked into
/// it, go through them. Call it right after the fork, single-threaded, before opening the database.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub use recorder::start_recording;

pub use acks::{acks_before, parse_before, AckParser, AckedCommits, Writer, LAB_READ_FD};
pub use append::LogAppender;
pub use crash::{enumerate, CrashPlan, CrashState, CutPoints, Enumeration, KeyedState};
pub use faults::{parse_crash_at, parse_seed, FailAt, FailKind, FileFilter, OpFilter};
pub use log::{parse_log, read_log, Coverage, Data, Log, LogError, Op, OpKind, SyncHow};
pub use model::{build_state, write_files, Cut, Model, Variant};
pub use snapshot::{snapshot, Snapshot};
pub use sqlite::{wal_checkpoints, Checkpoint};

/// The environment variables the recorder reads in each process it is preloaded into.
pub mod env {
    /// The trial's database folder: only operations on files under it are recorded. Required.
    pub const DIR: &str = "TORTURE_FAULTFS_DIR";
    /// The log file, outside the folder (a `<log>.lock` is created beside it). Required.
    pub const LOG: &str = "TORTURE_FAULTFS_LOG";
    /// The fd the program prints `ack N` on (normally 1): its writes are logged as acks.
    pub const ACKFD: &str = "TORTURE_FAULTFS_ACKFD";
    /// Seeds `getrandom`, `getentropy` and reads of `/dev/urandom`/`/dev/random`.
    pub const SEED: &str = "TORTURE_FAULTFS_SEED";
    /// `<kind>:<n>[:eio|:enospc][:persist]`: the n-th matching operation fails.
    pub const FAIL_AT: &str = "TORTURE_FAULTFS_FAIL_AT";
    /// `<n>`: the process group SIGKILLs itself instead of performing op n.
    pub const CRASH_AT: &str = "TORTURE_FAULTFS_CRASH_AT";
}

/// Where `libtorture_preload.so` is for a binary of this workspace: beside it, or one level up
/// (test and bench binaries live in `target/<profile>/deps/`).
pub fn find_library(exe: &std::path::Path) -> Option<std::path::PathBuf> {
    let dir = exe.parent()?;
    [
        dir.join("libtorture_preload.so"),
        dir.parent()?.join("libtorture_preload.so"),
        // `cargo test` builds the cdylib into `deps/` without copying it beside the binaries.
        dir.join("deps").join("libtorture_preload.so"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}
