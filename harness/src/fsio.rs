//! Files and disks, below every layer: a results or evidence folder's files written whole or not
//! at all and never through a symlink, read as data (a regular file, with a size cap); the
//! exclusive lock on OUT, closed in forked children; the free space of a disk, sizes as people
//! write them, and scratch folders owner-only.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

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

/// The longest row torture reads from a CSV file (`trials.csv`): a real row is a few KiB.
pub const MAX_ROW_BYTES: usize = 1 << 20;

/// A CSV file read with every row at most [`MAX_ROW_BYTES`] (issue 20 R8): a file of one endless
/// row (a sparse file of zeros, garbage with no newline) is an error that says so, never a buffer
/// grown to the file's size. A newline inside a quoted field does not end a row.
pub struct RowCapped<R> {
    inner: R,
    in_quotes: bool,
    since_row: usize,
}

impl<R> RowCapped<R> {
    pub fn new(inner: R) -> RowCapped<R> {
        RowCapped {
            inner,
            in_quotes: false,
            since_row: 0,
        }
    }
}

impl<R: io::Read> io::Read for RowCapped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            match b {
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => {
                    self.since_row = 0;
                    continue;
                }
                _ => {}
            }
            self.since_row += 1;
            if self.since_row > MAX_ROW_BYTES {
                // InvalidData: a reader can tell the cap (a torn or planted row) from a disk error.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a row longer than {} KiB, more than torture ever writes in one",
                        MAX_ROW_BYTES / 1024
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// [`read_data`] as UTF-8 text.
pub fn read_data_text(path: &Path, cap: u64) -> io::Result<String> {
    String::from_utf8(read_data(path, cap)?).map_err(|_| io::Error::other("not UTF-8 text"))
}

/// Below this much free space a disk counts as full: SQLite needs room for a journal, a WAL and
/// its `-shm` (32 KiB), the lab for a copy of the starting database.
pub const LOW_SPACE: u64 = 4 << 20;

/// A run does not start on a scratch disk with less than this free.
pub const START_SPACE: u64 = 1 << 20;

/// Bytes an unprivileged process may still write under `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// `1.2 MiB`, `300 KiB`, `12 B`.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A size as people write it: `1G`, `512M`, `300k`, `2GiB`, `1000000` (bytes); binary units.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => u32::MAX,
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|_| shift != u32::MAX)
        .and_then(|n| n.checked_mul(1u64.checked_shl(shift)?))
        .ok_or_else(|| {
            format!(
                "`{s}` is not a size; give bytes or a number with K, M, G or T, e.g. 500M or 2G"
            )
        })
}

/// True for an I/O error that means "no space": ENOSPC, EDQUOT, EFBIG.
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
    ) || e.to_string().contains("No space left")
}

/// What to say of a program that failed with an empty stderr while the scratch disk under `dir` is
/// full: its stderr file is on that disk too, so its own words ("database or disk is full") were
/// lost, and the failure is the lab's full disk. `None` when the disk has room.
pub fn silent_failure_note(dir: &Path) -> Option<String> {
    let free = free_bytes(dir)?;
    (free < LOW_SPACE).then(|| {
        format!(
            "(its stderr is empty: No space left on the scratch disk, {} free)",
            human(free)
        )
    })
}

/// Scratch folders hold copies of databases, which may hold a user's data: owner only.
pub fn private_dir() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o700)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_past_the_cap_is_an_error_and_quoted_newlines_do_not_end_a_row() {
        use std::io::Read;
        let mut ok = Vec::new();
        for _ in 0..3 {
            ok.extend(std::iter::repeat_n(b'x', MAX_ROW_BYTES - 1));
            ok.push(b'\n');
        }
        let mut sink = Vec::new();
        RowCapped::new(&ok[..]).read_to_end(&mut sink).unwrap();
        assert_eq!(sink, ok);
        let endless = vec![0u8; MAX_ROW_BYTES + 1];
        let e = RowCapped::new(&endless[..])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("a row longer than"), "{e}");
        let mut quoted = b"\"".to_vec();
        for _ in 0..2 {
            quoted.extend(std::iter::repeat_n(b'y', MAX_ROW_BYTES / 2 + 1));
            quoted.push(b'\n');
        }
        assert!(RowCapped::new(&quoted[..])
            .read_to_end(&mut Vec::new())
            .is_err());
    }

    #[test]
    fn a_second_lock_on_one_folder_is_refused_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let first = lock(d.path()).ok().unwrap();
        assert!(matches!(lock(d.path()), Err(LockError::InUse)));
        drop(first);
        assert!(lock(d.path()).is_ok());
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(300 << 10), "300 KiB");
        assert_eq!(human(3 << 19), "1.5 MiB");
        assert!(free_bytes(Path::new("/")).is_some());
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("300k"), Ok(300 << 10));
        assert_eq!(parse_bytes("2MiB"), Ok(2 << 20));
        assert_eq!(parse_bytes("0"), Ok(0));
        for bad in ["", "-1", "1.5G", "12X", "99999999999T", "G"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert!(is_no_space(&std::io::Error::from_raw_os_error(
            libc::ENOSPC
        )));
    }
}
