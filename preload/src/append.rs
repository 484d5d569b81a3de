//! Appending to a trial's log from outside the recorder, in the same total order: for acks the
//! lab reads from the program's stdout when the recorder cannot see them (a Go program's
//! `fmt.Println`, C stdio's `printf`: neither goes through an interposable `write`).
//!
//! Such an ack is logged when the lab reads it, which is at or after the moment the program wrote
//! it: it counts for fewer cuts than it should. That can hide a lost acknowledged commit at the
//! cuts in between, never invent one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::format::{Enc, Tag, PAGE_SIZE, SLOT_LOG_END, SLOT_SEQ};

/// An open log, for appending records the way the recorder does.
pub struct LogAppender {
    log: File,
    lock: File,
}

fn slot(lock: &File, i: usize) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    lock.read_exact_at(&mut b, (i * 8) as u64)?;
    Ok(u64::from_le_bytes(b))
}

fn set_slot(lock: &File, i: usize, v: u64) -> std::io::Result<()> {
    lock.write_all_at(&v.to_le_bytes(), (i * 8) as u64)
}

impl LogAppender {
    /// Opens (creating if needed) the log at `log_path` and its `<log>.lock`.
    pub fn open(log_path: &Path) -> std::io::Result<LogAppender> {
        let mut lock_path = PathBuf::from(log_path).into_os_string();
        lock_path.push(".lock");
        let log = OpenOptions::new()
            .append(true)
            .create(true)
            .open(log_path)?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path)?;
        Ok(LogAppender { log, lock })
    }

    /// Appends an `ack` record (fd -1: read by the lab, not seen by the recorder) with the bytes
    /// the program printed; returns its sequence number. Waits for the log's lock.
    pub fn append_ack(&mut self, pid: u32, data: &[u8]) -> std::io::Result<u64> {
        self.append_with_lock(libc::LOCK_EX, pid, data)
            .map(|seq| seq.expect("a blocking lock is taken"))
    }

    /// [`append_ack`](Self::append_ack) without waiting: `Ok(None)` when the recorder holds the
    /// log's lock now (a program inside a hooked call), so the caller can come back later rather
    /// than stall behind the program it is watching.
    pub fn try_append_ack(&mut self, pid: u32, data: &[u8]) -> std::io::Result<Option<u64>> {
        self.append_with_lock(libc::LOCK_EX | libc::LOCK_NB, pid, data)
    }

    /// Takes the log's lock with `flock(how)` (None: it would block), appends, releases.
    fn append_with_lock(
        &mut self,
        how: i32,
        pid: u32,
        data: &[u8],
    ) -> std::io::Result<Option<u64>> {
        let fd = self.lock.as_raw_fd();
        // SAFETY: flock on our own descriptor.
        while unsafe { libc::flock(fd, how) } != 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(e),
            }
        }
        let result = self.append_locked(pid, data);
        // SAFETY: as above.
        unsafe { libc::flock(fd, libc::LOCK_UN) };
        result.map(Some)
    }

    fn append_locked(&mut self, pid: u32, data: &[u8]) -> std::io::Result<u64> {
        let size = self.log.metadata()?.len();
        if self.lock.metadata()?.len() < PAGE_SIZE {
            self.lock.set_len(PAGE_SIZE)?;
            set_slot(&self.lock, SLOT_LOG_END, size)?;
        }
        let end = slot(&self.lock, SLOT_LOG_END)?;
        if size > end {
            // A record torn by a SIGKILLed appender.
            self.log.set_len(end)?;
        }
        let seq = slot(&self.lock, SLOT_SEQ)? + 1;
        let mut e = Enc::new(Tag::Ack, seq, pid, 0, 0, false);
        e.i32(crate::acks::LAB_READ_FD).bytes(data);
        let rec = e.finish();
        self.log.write_all(rec)?;
        set_slot(&self.lock, SLOT_SEQ, seq)?;
        set_slot(&self.lock, SLOT_LOG_END, end.min(size) + rec.len() as u64)?;
        Ok(seq)
    }
}
