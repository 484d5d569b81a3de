//! A crash during recovery: after a trial's fault, the first process to open the database is itself
//! killed in the middle of recovering it (rolling back a hot journal, or checkpointing after WAL
//! recovery), and only then does the oracle recover it again. SQLite promises recovery is crash-safe:
//! the hot journal stays until the rollback is complete.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rusqlite::OpenFlags;

use super::{configure, ops_so_far, CrashAt, FaultConfig, OpFilter, VFS_NAME};
use crate::engine::{with_suffix, SIDECARS};
use crate::process;

/// Crashes the first opener of `db` at an operation drawn over the operations an uncrashed recovery
/// of a copy makes. Returns a note for the row's detail.
pub fn crash_first_opener(
    db: &Path,
    scratch: &Path,
    rng: &mut ChaCha8Rng,
) -> Result<String, String> {
    // Count on a copy: recovery changes the files, and the real ones must stay crashed.
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).map_err(|e| format!("recovery crash: {e}"))?;
    let copy = scratch.join("trial.db");
    for suffix in SIDECARS {
        let from = with_suffix(db, suffix);
        if from.exists() {
            std::fs::copy(&from, with_suffix(&copy, suffix))
                .map_err(|e| format!("recovery crash: {e}"))?;
        }
    }
    let total = open_in_child(&copy, None)?;
    let _ = std::fs::remove_dir_all(scratch);
    if total == 0 {
        return Ok("recovery crash: recovery wrote nothing to crash in".into());
    }
    let op = rng.random_range(1..=total);
    open_in_child(db, Some(op))?;
    Ok(format!("recovery crashed at op {op}/{total}"))
}

/// Opens `db` through the shim in a child and reads it (which runs recovery). With `crash_at`, the
/// child kills itself at that operation. Returns the operations the child made.
fn open_in_child(db: &Path, crash_at: Option<u64>) -> Result<u64, String> {
    let (mut read, write): (std::fs::File, OwnedFd) = nix::unistd::pipe()
        .map(|(r, w)| (std::fs::File::from(r), w))
        .map_err(|e| format!("recovery crash: pipe: {e}"))?;
    // Called from a single-threaded slot holding no SQLite connection.
    let child = process::fork_child(&[read.as_raw_fd()], || {
        let cfg = FaultConfig {
            crash_at: crash_at.map(|op| CrashAt {
                op,
                filter: OpFilter::ANY,
            }),
            ..FaultConfig::default()
        };
        if configure(cfg).is_err() {
            return 2;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE;
        if let Ok(conn) = crate::engine::open(db, flags, Some(VFS_NAME)) {
            let _ = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            });
            drop(conn);
        }
        let _ = nix::unistd::write(&write, &ops_so_far().to_le_bytes());
        0
    })
    .map_err(|e| format!("recovery crash: {e}"))?;
    drop(write);
    let mut buf = [0u8; 8];
    let got = read.read_exact(&mut buf).is_ok();
    let _ = process::reap(child);
    Ok(if got { u64::from_le_bytes(buf) } else { 0 })
}
