//! How writers tell their slot what happened.
//!
//! Acknowledgements go through an [`AckBoard`]: memory shared between the slot and its writers,
//! where each writer stores the `seq` of its latest commit after COMMIT returned. A store costs no
//! syscall and wakes nobody, and the memory outlives a SIGKILLed writer, so the slot reads exactly
//! what was acknowledged. Only the ack that reaches the trial's kill threshold wakes the slot.
//!
//! Everything else is a line on one pipe shared by every writer of a trial. Each message is one
//! `write(2)` of less than PIPE_BUF bytes, so lines from different processes and threads never
//! interleave.
//!
//! ```text
//! ready <writer> <journal_mode> <synchronous> <locking_mode> <mmap_size>
//! reached <writer>              this writer's ack brought the total to the kill threshold (scenarios)
//! due <writer>                  the core trial's kill point: the threshold ack, then the kill delay
//!                               of this writer's CPU time (see `kill_timer`)
//! error <writer> <code> <text>  the writer gave up for a reason of its own
//! ops <writer> <n>              operations the fault layer counted (bounded workloads, at the end)
//! done <writer>                 the writer reached its commit cap without being killed
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::num::NonZeroUsize;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};

use torture_workloads::InForce;

/// The writer side: formats a message and writes it with a single syscall.
pub struct AckSender<'a> {
    fd: BorrowedFd<'a>,
    buf: Vec<u8>,
}

impl<'a> AckSender<'a> {
    pub fn new(fd: BorrowedFd<'a>) -> Self {
        AckSender {
            fd,
            buf: Vec::with_capacity(128),
        }
    }

    pub fn ready(&mut self, writer: u32, f: &InForce) {
        self.send(format_args!(
            "ready {writer} {} {} {} {}\n",
            f.journal_mode, f.synchronous, f.locking_mode, f.mmap_size
        ));
    }

    pub fn reached(&mut self, writer: u32) {
        self.send(format_args!("reached {writer}\n"));
    }

    pub fn done(&mut self, writer: u32) {
        self.send(format_args!("done {writer}\n"));
    }

    pub fn error(&mut self, writer: u32, code: &str, text: &str) {
        let mut text: String = text
            .chars()
            .map(|c| if c == '\n' { ' ' } else { c })
            .collect();
        if text.len() > 400 {
            let mut cut = 400;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        self.send(format_args!("error {writer} {code} {text}\n"));
    }

    fn send(&mut self, msg: std::fmt::Arguments<'_>) {
        self.buf.clear();
        let _ = self.buf.write_fmt(msg);
        // A failed write means the slot is gone; the writer will be killed anyway.
        let _ = nix::unistd::write(self.fd, &self.buf);
    }
}

/// Words before the per-writer slots: total acks, kill threshold, busy count, spare.
const HEADER_WORDS: usize = 5;
const TOTAL: usize = 0;
const WAKE_AT: usize = 1;
const BUSY: usize = 2;
const IO_ERRORS: usize = 3;
const KILL_DELAY_NS: usize = 4;

/// A process that made the K-th ack and then stopped running (a scenario's parent that sleeps while
/// its forked child writes) never uses up a CPU-time delay: after this much wall time the kill
/// point is due anyway. Far above any delay drawn (at most a few hundred µs of CPU time), so a busy
/// machine does not reach it.
const KILL_DELAY_WALL_CAP: std::time::Duration = std::time::Duration::from_millis(50);

/// An array of `AtomicU64` in an anonymous `MAP_SHARED` mapping: a process and the children it
/// forks see the same words, a store costs no syscall, and the words outlive a SIGKILLed child.
pub struct SharedWords {
    words: NonNull<AtomicU64>,
    len: usize,
}

// SAFETY: every access goes through atomics in a mapping that lives as long as the value.
unsafe impl Send for SharedWords {}
unsafe impl Sync for SharedWords {}

impl SharedWords {
    pub fn new(len: usize) -> std::io::Result<SharedWords> {
        let bytes = NonZeroUsize::new(len.max(1) * 8).expect("non-empty mapping");
        // SAFETY: a fresh anonymous mapping, not aliased by anything else; zero-initialised.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                bytes,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }?;
        Ok(SharedWords {
            words: ptr.cast(),
            len: len.max(1),
        })
    }

    pub fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.len, "index beyond the shared words");
        // SAFETY: in bounds (checked above); the mapping is page-aligned and zero-initialised.
        unsafe { &*self.words.as_ptr().add(i) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length.
        unsafe {
            let _ = munmap(self.words.cast(), self.len * 8);
        }
    }
}

/// Shared memory of one slot, inherited by every writer it forks: per-writer latest acknowledged
/// `seq`, the total of acknowledgements, and the busy-error count.
pub struct AckBoard {
    words: SharedWords,
    max_writers: usize,
}

impl AckBoard {
    pub fn new(max_writers: usize) -> std::io::Result<AckBoard> {
        Ok(AckBoard {
            words: SharedWords::new(HEADER_WORDS + max_writers)?,
            max_writers,
        })
    }

    /// How many writers the board has room for.
    pub fn capacity(&self) -> usize {
        self.max_writers
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        self.words.word(i)
    }

    /// Clears the board for a trial of `writers` writers whose kill waits for `wake_at` acks, then
    /// `kill_delay` of the CPU time of the process that made the `wake_at`-th ack.
    pub fn reset(&self, writers: usize, wake_at: u64, kill_delay: std::time::Duration) {
        for i in 0..HEADER_WORDS + writers.min(self.max_writers) {
            self.word(i).store(0, Ordering::Relaxed);
        }
        let delay_ns = kill_delay.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.word(KILL_DELAY_NS).store(delay_ns, Ordering::Release);
        self.word(WAKE_AT).store(wake_at, Ordering::Release);
    }

    /// Acknowledges commit `seq` of `writer` (after COMMIT returned). The ack that reaches the kill
    /// threshold starts counting the kill delay in this process's CPU time; when it is used up,
    /// `due` goes to the slot on `pipe` (see `kill_timer`). One path for every writer of every
    /// trial: the built-in workload and the scenarios' writers alike.
    pub fn acknowledge(&self, writer: u32, seq: u64, pipe: std::os::fd::RawFd) {
        if self.record_ack(writer, seq) {
            let delay = self.word(KILL_DELAY_NS).load(Ordering::Acquire);
            crate::trial::kill_timer::arm(
                std::time::Duration::from_nanos(delay),
                pipe,
                writer,
                KILL_DELAY_WALL_CAP,
            );
        }
    }

    /// Called by a writer after COMMIT returned. True when this ack reached the kill threshold.
    pub fn record_ack(&self, writer: u32, seq: u64) -> bool {
        self.word(HEADER_WORDS + writer as usize)
            .store(seq, Ordering::Release);
        let total = self.word(TOTAL).fetch_add(1, Ordering::AcqRel) + 1;
        total == self.word(WAKE_AT).load(Ordering::Acquire)
    }

    pub fn record_busy(&self) {
        self.word(BUSY).fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_io_error(&self) {
        self.word(IO_ERRORS).fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.word(TOTAL).load(Ordering::Acquire)
    }

    pub fn busy(&self) -> u64 {
        self.word(BUSY).load(Ordering::Acquire)
    }

    pub fn acked(&self, writer: u32) -> u64 {
        self.word(HEADER_WORDS + writer as usize)
            .load(Ordering::Acquire)
    }
}

/// The slot side: everything the writers of one trial reported.
#[derive(Debug, Default)]
pub struct TrialEvents {
    /// Highest acknowledged `seq` per writer.
    pub acked: BTreeMap<u32, u64>,
    pub acks_total: u64,
    pub busy: u64,
    /// The first `ready` report: the pragmas in force.
    pub in_force: Option<InForce>,
    /// Writers whose pragmas in force differ from the first report.
    pub disagreeing_writers: Vec<u32>,
    /// `(writer, code, text)` of every `error`.
    pub errors: Vec<(u32, String, String)>,
    pub done: u32,
    /// Injected I/O errors the writers met and carried on after.
    pub io_errors: u64,
    /// A writer said the kill threshold was reached.
    pub reached: bool,
    /// A writer said the kill point is due (threshold, then the delay in its CPU time).
    pub due: bool,
    partial: Vec<u8>,
}

impl TrialEvents {
    /// Feeds bytes read from the pipe; complete lines are parsed, a partial one is kept.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(nl) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            let line = String::from_utf8_lossy(&self.partial[start..end]).into_owned();
            self.parse_line(&line);
            start = end + 1;
        }
        self.partial.drain(..start);
    }

    fn parse_line(&mut self, line: &str) {
        let mut parts = line.splitn(4, ' ');
        let kind = parts.next().unwrap_or("");
        let writer: u32 = parts
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or(u32::MAX);
        match kind {
            "reached" => self.reached = true,
            "due" => self.due = true,
            "done" => self.done += 1,
            "ready" => {
                let fields: Vec<&str> = line.split(' ').skip(2).collect();
                if let [journal_mode, synchronous, locking_mode, mmap_size] = fields[..] {
                    let f = InForce {
                        journal_mode: journal_mode.to_string(),
                        synchronous: synchronous.to_string(),
                        locking_mode: locking_mode.to_string(),
                        mmap_size: mmap_size.parse().unwrap_or(0),
                    };
                    match &self.in_force {
                        None => self.in_force = Some(f),
                        Some(first) if *first != f => self.disagreeing_writers.push(writer),
                        Some(_) => {}
                    }
                }
            }
            "error" => {
                let code = parts.next().unwrap_or("").to_string();
                let text = parts.next().unwrap_or("").to_string();
                self.errors.push((writer, code, text));
            }
            _ => {}
        }
    }

    /// Takes the acknowledgements and busy count from the board, once every writer is dead.
    pub fn absorb(&mut self, board: &AckBoard, writers: u32) {
        for w in 0..writers {
            let seq = board.acked(w);
            if seq > 0 {
                self.acked.insert(w, seq);
            }
        }
        self.acks_total = board.total();
        self.busy = board.busy();
        self.io_errors = board.word(IO_ERRORS).load(Ordering::Acquire);
    }

    /// Reads what is available on a non-blocking pipe. Returns false at end of file.
    pub fn read_from(&mut self, fd: BorrowedFd<'_>) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.feed(&buf[..n]);
                    if n < buf.len() {
                        return true;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads_are_parsed_once() {
        let mut ev = TrialEvents::default();
        ev.feed(b"ready 0 wal full normal 0\nreac");
        ev.feed(b"hed 0\ndone 1\nerror 1 SQLITE_IOERR disk I/O error\n");
        assert!(ev.reached);
        assert_eq!(ev.done, 1);
        assert_eq!(ev.in_force.as_ref().unwrap().journal_mode, "wal");
        assert_eq!(ev.errors[0].1, "SQLITE_IOERR");
        assert_eq!(ev.errors[0].2, "disk I/O error");
    }

    #[test]
    fn the_board_counts_acks_across_a_fork() {
        let board = AckBoard::new(4).unwrap();
        board.reset(4, 3, std::time::Duration::ZERO);
        assert!(!board.record_ack(0, 1));
        // SAFETY: the child only touches the shared board and exits at once.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                board.record_ack(2, 7);
                board.record_busy();
                let reached = board.record_ack(2, 8);
                unsafe { libc::_exit(if reached { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
        let mut ev = TrialEvents::default();
        ev.absorb(&board, 4);
        assert_eq!(ev.acked, BTreeMap::from([(0, 1), (2, 8)]));
        assert_eq!((ev.acks_total, ev.busy), (3, 1));
        board.reset(4, 1, std::time::Duration::ZERO);
        assert_eq!(board.total(), 0);
        assert_eq!(board.acked(2), 0);
    }

    #[test]
    fn a_writer_reporting_other_pragmas_is_noted() {
        let mut ev = TrialEvents::default();
        ev.feed(b"ready 0 wal full normal 0\nready 1 delete full normal 0\n");
        assert_eq!(ev.disagreeing_writers, vec![1]);
    }
}
