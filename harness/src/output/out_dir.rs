//! The results folder OUT as a whole: an exclusive lock for the life of a run, `run.json` written
//! whole or not at all, and the time a `--duration` run has used (so `--resume` runs what is left).
//! OUT and evidence folders travel (CI artifacts, bug reports), so their files are data: read as
//! regular files with a size cap, never through a symlink, and written without following one.

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
/// file is removed when anything fails. A symlink planted at either name is replaced, never
/// followed.
pub fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp-write");
    let _ = std::fs::remove_file(&tmp);
    let result = write_no_follow(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates (or truncates) `path` and writes `bytes`, refusing to follow a symlink at `path`
/// (`O_NOFOLLOW`: the open fails with `ELOOP`).
pub fn write_no_follow(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .write_all(bytes)
}

/// Copies the regular file `from` to `to`, following a symlink at neither end.
pub fn copy_no_follow(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut source = open_data(from)?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)?;
    io::copy(&mut source, &mut target).map(drop)
}

/// Opens a file of an OUT or evidence folder for reading: a regular file, not through a symlink.
fn open_data(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::other(
                    "a symlink; torture reads no file of a results folder through a symlink",
                )
            } else {
                e
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The largest `trial.json`, `run.json` or `elapsed.json` read (a real one is a few KiB).
pub const MAX_NOTE_BYTES: u64 = 16 << 20;

/// Reads a file of an OUT or evidence folder as data: a regular file only (a FIFO, a device or
/// `/dev/urandom` would never end), not through a symlink, at most `cap` bytes (else an error
/// that says so).
pub fn read_data(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_data(path)?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::other(format!(
            "larger than {} KiB, more than torture ever writes there",
            cap / 1024
        )));
    }
    Ok(bytes)
}

/// [`read_data`] as UTF-8 text.
pub fn read_data_text(path: &Path, cap: u64) -> io::Result<String> {
    String::from_utf8(read_data(path, cap)?).map_err(|_| io::Error::other("not UTF-8 text"))
}

/// The parts of OUT that are symlinks: OUT's own entries and those of its evidence folders
/// (`failures/`, `evidence/`, `calibration/`). A run, resume or merge refuses them, so a planted
/// link never sends a write, an append or a delete outside OUT.
pub fn symlinked_parts(out: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![out.to_path_buf()];
    for sub in ["failures", "evidence", "calibration"] {
        let p = out.join(sub);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            folders.push(p.clone());
            for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    folders.push(e.path());
                }
            }
        }
    }
    for dir in folders {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_symlink()) {
                found.push(e.path());
            }
        }
    }
    found.sort();
    found
}

/// The one line for a symlinked part of OUT.
pub fn symlink_refused(out: &Path, part: &Path) -> String {
    format!(
        "{} is a symlink inside the results folder {}; torture never follows one there (it could send writes or deletes outside it): remove it, or copy the folder without links",
        part.display(),
        out.display()
    )
}

const ELAPSED: &str = "elapsed.json";

/// Time a `--duration` run in OUT has used so far (0 when none is recorded).
pub fn elapsed(out: &Path) -> Duration {
    read_data_text(&out.join(ELAPSED), MAX_NOTE_BYTES)
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
