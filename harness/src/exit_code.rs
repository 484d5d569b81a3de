//! The process exit codes `torture` documents (README "Exit codes"), in one place.

/// No trial broke a promise SQLite makes for its profile.
pub const CLEAN: i32 = 0;
/// At least one trial broke a promise its engine documents for its profile (a *violation*).
pub const VIOLATION: i32 = 1;
/// Bad command line, profile, profile file, or unusable directory: nothing was run.
pub const USAGE: i32 = 2;
/// The lab itself failed: a worker died of its own error, a slot process was lost, or the lab's own
/// scratch (`--dir`) or results disk ran full. The trials it could not vouch for are in the CSV as
/// `worker-error`, or not recorded at all (a full disk's trial runs again on `--resume`).
pub const LAB_ERROR: i32 = 3;
/// Stopped by Ctrl-C or SIGTERM; the trials that finished are in the CSV and the summary.
pub const INTERRUPTED: i32 = 130;
