//! The results folder OUT as a whole: an exclusive lock for the life of a run, `run.json` written
//! whole or not at all, and the time a `--duration` run has used (so `--resume` runs what is left).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// An exclusive `flock` on the OUT folder itself, held until dropped or the process dies: a second
/// run, resume or merge into OUT is refused. Forked slots close their copy of the descriptor
/// ([`close_in_child`]), so a SIGKILLed parent's lock goes with it, not with its last slot.
pub struct OutLock {
    dir: File,
}

/// The descriptor of the lock this process holds, or -1.
static LOCK_FD: AtomicI32 = AtomicI32::new(-1);

impl Drop for OutLock {
    fn drop(&mut self) {
        let _ =
            LOCK_FD.compare_exchange(self.dir.as_raw_fd(), -1, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// In a child just forked from the process holding the lock: closes the child's copy (the lock
/// itself stays with the parent).
pub fn close_in_child() {
    let fd = LOCK_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: closing this process's copy of a descriptor nothing else in the child uses.
        unsafe { libc::close(fd) };
    }
}

/// Why OUT could not be locked.
pub enum LockError {
    /// Another process holds it.
    InUse,
    Io(io::Error),
}

pub fn lock(out: &Path) -> Result<OutLock, LockError> {
    let dir = File::open(out).map_err(LockError::Io)?;
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        LOCK_FD.store(dir.as_raw_fd(), Ordering::SeqCst);
        return Ok(OutLock { dir });
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Err(LockError::InUse)
    } else {
        Err(LockError::Io(e))
    }
}

/// The message for a locked OUT.
pub fn in_use(out: &Path) -> String {
    format!(
        "{} is in use by another torture run (or resume, or merge); wait for it to end, or give another --out",
        out.display()
    )
}

/// Writes `path` whole or not at all: a temporary file beside it, then a rename. The temporary
/// file is removed when anything fails.
pub fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp-write");
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

const ELAPSED: &str = "elapsed.json";

/// Time a `--duration` run in OUT has used so far (0 when none is recorded).
pub fn elapsed(out: &Path) -> Duration {
    std::fs::read_to_string(out.join(ELAPSED))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["elapsed_secs"].as_f64())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e12)
        .map_or(Duration::ZERO, Duration::from_secs_f64)
}

/// Records the time used (best effort: a lost update costs at most the time since the last one).
pub fn save_elapsed(out: &Path, used: Duration) {
    let json = serde_json::json!({ "elapsed_secs": used.as_secs_f64() }).to_string();
    let _ = write_whole(&out.join(ELAPSED), json.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_folder_is_refused_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let first = lock(d.path()).ok().unwrap();
        assert!(matches!(lock(d.path()), Err(LockError::InUse)));
        drop(first);
        assert!(lock(d.path()).is_ok());
    }

    #[test]
    fn elapsed_time_round_trips_and_defaults_to_zero() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(elapsed(d.path()), Duration::ZERO);
        save_elapsed(d.path(), Duration::from_millis(2500));
        assert_eq!(elapsed(d.path()), Duration::from_millis(2500));
    }
}
