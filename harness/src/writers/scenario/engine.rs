//! The machinery every scenario shares: shared-memory counters, forking children that never unwind
//! into the slot, waiting for acknowledgements, killing and reaping, writer loops, and turning what a
//! trial saw into the core's CSV row (verdict, evidence).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use rusqlite::Connection;
use torture_workloads::{Profile, Workload};

use crate::faults::CrashAt;
use crate::lab::seed;
use crate::options::RunOptions;
use crate::trial::ack::{AckBoard, AckSender, SharedWords, TrialEvents};
use crate::trial::evidence::{self, Snapshot};
use crate::trial::kill_point::KillPoint;
use crate::trial::outcome::{Outcome, TrialRecord, Verdict};
use crate::trial::SlotFiles;
use crate::verify::oracle::Verification;
use crate::verify::sqlite_error;
use crate::verify::verdict::{self, Fault};
use crate::writers::workload::{die_with_parent, exit_now};

use super::Variant;

/// Named numbers a trial measured, beyond its row: summed over trials for the README tables.
pub(crate) type Metrics = BTreeMap<String, u64>;

/// Exit status of a child whose body panicked (caught, so it never unwinds into the slot's code).
const PANIC_EXIT: i32 = 101;

/// Words of a [`Tally`]. Scenarios use the named slots below; the first 64 count failed
/// transactions by primary result code.
pub(crate) mod word {
    /// `FAIL + primary code`: transactions (or steps) that failed with that code.
    pub const FAIL: usize = 0;
    /// Initialisation phases of the WAL-init scenario: `PHASE + phase * 32 + primary code`.
    pub const PHASE: usize = 64;
    /// 1 while a child is inside a checkpoint.
    pub const IN_CKPT: usize = 202;
    /// Checkpoints completed.
    pub const CKPTS: usize = 203;
    /// Checkpoints that could not finish: PASSIVE answered busy (a writer or reader was in the way),
    /// or an error.
    pub const CKPT_INCOMPLETE: usize = 204;
    /// Children that shut down cleanly (checkpoint and close done).
    pub const CLEAN: usize = 205;
    /// A `PRAGMA journal_mode=WAL` that answered another mode without an error.
    pub const FALLBACK: usize = 206;
    /// Pid of a grandchild the slot must kill too.
    pub const AUX_PID: usize = 207;
    /// Set once the fork-carried connection has been forked.
    pub const FORKED: usize = 208;
    /// Backups: done flag, and the acknowledged `seq` of writer 0 when the backup started / ended.
    pub const BACKUP_DONE: usize = 209;
    pub const BACKUP_ACK_START: usize = 210;
    pub const BACKUP_ACK_END: usize = 211;
    /// Backup duration in microseconds.
    pub const BACKUP_US: usize = 212;
    /// Backup retries on busy.
    pub const BACKUP_RETRIES: usize = 213;
    /// Lock-dropping closes made by the corruptor thread.
    pub const CLOSES: usize = 214;
    /// Requests (WAL-init scenario) that went through every phase.
    pub const REQUESTS_OK: usize = 215;
    /// Workers waiting at the start line (WAL-init scenario).
    pub const AT_START: usize = 216;
    pub const LEN: usize = 256;
}

/// Counters in memory shared between the slot and every child it forks (like [`AckBoard`]): they
/// survive a child's SIGKILL, and a store costs no syscall.
pub(crate) struct Tally {
    words: SharedWords,
}

impl Tally {
    pub fn new() -> std::io::Result<Tally> {
        Ok(Tally {
            words: SharedWords::new(word::LEN)?,
        })
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        self.words.word(i)
    }

    pub fn add(&self, i: usize, n: u64) {
        self.word(i).fetch_add(n, Ordering::AcqRel);
    }

    pub fn get(&self, i: usize) -> u64 {
        self.word(i).load(Ordering::Acquire)
    }

    pub fn set(&self, i: usize, v: u64) {
        self.word(i).store(v, Ordering::Release);
    }

    /// Counts a failure by its primary result code.
    pub fn fail(&self, e: &rusqlite::Error) {
        self.add(word::FAIL + primary(e), 1);
    }

    /// `SQLITE_BUSY=12 SQLITE_IOERR=1` for every code counted from `base`, or `""`.
    pub fn codes(&self, base: usize) -> Vec<(&'static str, u64)> {
        (0..32)
            .filter_map(|c| {
                let n = self.get(base + c);
                (n > 0).then(|| (sqlite_error::primary_name(c as i32), n))
            })
            .collect()
    }
}

/// The primary result code of an error (0..31); rusqlite's own errors count as SQLITE_ERROR.
pub(crate) fn primary(e: &rusqlite::Error) -> usize {
    match e {
        rusqlite::Error::SqliteFailure(err, _) => (err.extended_code & 0x1f) as usize,
        _ => 1,
    }
}

/// The extended result code's name where it tells more than the primary one (`SQLITE_BUSY_RECOVERY`,
/// `SQLITE_IOERR_SHMSIZE`), else the primary name; `RUST_*` for errors rusqlite raised itself.
pub(crate) fn code_name(e: &rusqlite::Error) -> String {
    use rusqlite::ffi;
    let rusqlite::Error::SqliteFailure(err, _) = e else {
        return sqlite_error::code_name(e);
    };
    let name = match err.extended_code {
        ffi::SQLITE_BUSY_RECOVERY => "SQLITE_BUSY_RECOVERY",
        ffi::SQLITE_BUSY_SNAPSHOT => "SQLITE_BUSY_SNAPSHOT",
        ffi::SQLITE_BUSY_TIMEOUT => "SQLITE_BUSY_TIMEOUT",
        ffi::SQLITE_LOCKED_SHAREDCACHE => "SQLITE_LOCKED_SHAREDCACHE",
        ffi::SQLITE_IOERR_READ => "SQLITE_IOERR_READ",
        ffi::SQLITE_IOERR_SHORT_READ => "SQLITE_IOERR_SHORT_READ",
        ffi::SQLITE_IOERR_WRITE => "SQLITE_IOERR_WRITE",
        ffi::SQLITE_IOERR_FSYNC => "SQLITE_IOERR_FSYNC",
        ffi::SQLITE_IOERR_TRUNCATE => "SQLITE_IOERR_TRUNCATE",
        ffi::SQLITE_IOERR_FSTAT => "SQLITE_IOERR_FSTAT",
        ffi::SQLITE_IOERR_LOCK => "SQLITE_IOERR_LOCK",
        ffi::SQLITE_IOERR_UNLOCK => "SQLITE_IOERR_UNLOCK",
        ffi::SQLITE_IOERR_DELETE => "SQLITE_IOERR_DELETE",
        ffi::SQLITE_IOERR_SHMOPEN => "SQLITE_IOERR_SHMOPEN",
        ffi::SQLITE_IOERR_SHMSIZE => "SQLITE_IOERR_SHMSIZE",
        ffi::SQLITE_IOERR_SHMLOCK => "SQLITE_IOERR_SHMLOCK",
        ffi::SQLITE_IOERR_SHMMAP => "SQLITE_IOERR_SHMMAP",
        ffi::SQLITE_IOERR_RDLOCK => "SQLITE_IOERR_RDLOCK",
        ffi::SQLITE_IOERR_DELETE_NOENT => "SQLITE_IOERR_DELETE_NOENT",
        ffi::SQLITE_IOERR_CHECKRESERVEDLOCK => "SQLITE_IOERR_CHECKRESERVEDLOCK",
        ffi::SQLITE_IOERR_ACCESS => "SQLITE_IOERR_ACCESS",
        ffi::SQLITE_IOERR_CLOSE => "SQLITE_IOERR_CLOSE",
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "SQLITE_CONSTRAINT_PRIMARYKEY",
        ffi::SQLITE_CONSTRAINT_UNIQUE => "SQLITE_CONSTRAINT_UNIQUE",
        ffi::SQLITE_CORRUPT_VTAB => "SQLITE_CORRUPT_VTAB",
        ffi::SQLITE_READONLY_RECOVERY => "SQLITE_READONLY_RECOVERY",
        ffi::SQLITE_READONLY_DBMOVED => "SQLITE_READONLY_DBMOVED",
        ffi::SQLITE_CANTOPEN_NOTEMPDIR => "SQLITE_CANTOPEN_NOTEMPDIR",
        _ => {
            let p = sqlite_error::primary_name(err.extended_code);
            return if err.extended_code > 0xff {
                format!("{p}({})", err.extended_code)
            } else {
                p.to_string()
            };
        }
    };
    name.to_string()
}

/// What a forked child gets: the acknowledgement pipe and the shared memory of its trial.
pub(crate) struct Env<'a> {
    pub ack: BorrowedFd<'a>,
    pub board: &'a AckBoard,
    pub tally: &'a Tally,
}

impl Env<'_> {
    pub fn sender(&self) -> AckSender<'_> {
        AckSender::new(self.ack)
    }
}

/// Forks a child that runs `body` and exits with its code, never unwinding back into the caller:
/// the child asks to die with `parent` (the forking process) and closes `close` first.
///
/// # Safety contract
/// The caller is single-threaded (a slot, or a writer child that has not started threads) and holds
/// no SQLite connection it expects the child not to use.
pub(crate) fn fork_child(close: &[RawFd], body: impl FnOnce() -> i32) -> Result<Pid, String> {
    let parent = nix::unistd::getpid();
    // SAFETY: see the contract above; the child only runs `body` and `_exit`s.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            die_with_parent(parent);
            for &fd in close {
                // SAFETY: descriptors of the forking process that this child must not hold.
                unsafe { libc::close(fd) };
            }
            let code = std::panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or(PANIC_EXIT);
            exit_now(code)
        }
        Ok(ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// One trial's children, as the slot sees them: the ack board and tally they share, the pipe they
/// report on, their pids, and what went wrong with them.
pub(crate) struct Run<'a> {
    files: &'a SlotFiles,
    pub board: AckBoard,
    pub tally: Tally,
    pub events: TrialEvents,
    ack_read: OwnedFd,
    ack_write: Option<OwnedFd>,
    open: bool,
    pub pids: Vec<Pid>,
    /// Problems of the lab (a child panicked, exited with an error status, …).
    pub lab: Vec<String>,
    /// Children that died of a signal nobody sent (SIGSEGV, SIGBUS): a lab problem, unless the
    /// scenario provokes them (a corruptor truncating shared memory under a writer).
    pub deaths: Vec<String>,
    pub timed_out: bool,
    pub started: Instant,
    pub deadline: Instant,
    writers: u32,
    /// Children expected to report `done` when they finish on their own.
    pub done_reporters: u32,
}

impl<'a> Run<'a> {
    /// A trial of `writers` acknowledging writers; the writer whose ack brings the total to `wake_at`
    /// wakes the slot.
    pub fn new(
        files: &'a SlotFiles,
        writers: u32,
        wake_at: u64,
        timeout: Duration,
    ) -> Result<Run<'a>, String> {
        let board = AckBoard::new(writers.max(1) as usize).map_err(|e| format!("mmap: {e}"))?;
        board.reset(writers.max(1) as usize, wake_at);
        let tally = Tally::new().map_err(|e| format!("mmap: {e}"))?;
        let (ack_read, ack_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| format!("pipe: {e}"))?;
        // Writers block on a full pipe rather than lose a message.
        set_blocking(&ack_write);
        let started = Instant::now();
        Ok(Run {
            files,
            board,
            tally,
            events: TrialEvents::default(),
            ack_read,
            ack_write: Some(ack_write),
            open: true,
            pids: Vec::new(),
            lab: Vec::new(),
            deaths: Vec::new(),
            timed_out: false,
            started,
            deadline: started + timeout,
            writers,
            done_reporters: writers,
        })
    }

    /// Forks a child of this trial; `body` gets the shared memory and the ack pipe. `close` names more
    /// of the slot's descriptors the child must not hold.
    pub fn spawn(
        &mut self,
        close: &[RawFd],
        body: impl FnOnce(&Env<'_>) -> i32,
    ) -> Result<Pid, String> {
        let ack_write = self.ack_write.as_ref().ok_or("the trial stopped forking")?;
        let mut to_close: Vec<RawFd> = self.files.close_in_writers.clone();
        to_close.push(self.ack_read.as_raw_fd());
        to_close.extend_from_slice(close);
        let env = Env {
            ack: ack_write.as_fd(),
            board: &self.board,
            tally: &self.tally,
        };
        let pid = fork_child(&to_close, || body(&env))?;
        self.pids.push(pid);
        Ok(pid)
    }

    /// Reads what the children reported so far.
    pub fn pump(&mut self) {
        if self.open {
            self.open = self.events.read_from(self.ack_read.as_fd());
        }
    }

    /// Waits until `cond` holds (true) or `until` passes (false), waking on every report.
    pub fn wait_until(&mut self, until: Instant, mut cond: impl FnMut(&Run<'a>) -> bool) -> bool {
        let until = until.min(self.deadline);
        loop {
            self.pump();
            if cond(self) {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                if now >= self.deadline {
                    self.timed_out = true;
                }
                return false;
            }
            if !self.open {
                std::thread::sleep((until - now).min(Duration::from_micros(200)));
            } else {
                wait_readable(
                    self.ack_read.as_fd(),
                    (until - now).min(Duration::from_millis(1)),
                );
            }
        }
    }

    /// Sleeps for `d` exactly (to the microsecond the kernel gives), still reading reports.
    pub fn pause(&mut self, d: Duration) {
        let until = Instant::now() + d;
        self.wait_until(until, |_| false);
    }

    /// Every acknowledging writer said `done` (finished on its own, before any kill).
    pub fn writers_done(&self) -> bool {
        self.events.done >= self.done_reporters
    }

    /// Waits for the kill point drawn for this trial; says where it landed, for the CSV.
    pub fn wait_kill_point(&mut self, kp: KillPoint) -> String {
        match kp {
            KillPoint::AfterAcks { acks, delay } => {
                let reached = self.wait_until(self.deadline, |r| {
                    r.events.reached || r.board.total() >= acks || r.writers_done()
                });
                if !reached {
                    return format!("{kp} (not reached: timeout)");
                }
                if self.board.total() < acks {
                    return format!("{kp} (not reached: writers finished)");
                }
                self.pause(delay);
                kp.to_string()
            }
            KillPoint::AfterTime { after } => {
                let at = self.started + after;
                if self.wait_until(at, |r| r.writers_done()) {
                    format!("{kp} (not reached: writers finished)")
                } else if self.timed_out {
                    format!("{kp} (not reached: timeout)")
                } else {
                    kp.to_string()
                }
            }
        }
    }

    pub fn signal(&self, pid: Pid, sig: Signal) {
        // ESRCH: already gone, which is fine.
        let _ = kill(pid, sig);
    }

    pub fn kill_all(&self) {
        for &pid in &self.pids {
            self.signal(pid, Signal::SIGKILL);
        }
        let aux = self.tally.get(word::AUX_PID);
        if aux > 0 {
            self.signal(Pid::from_raw(aux as i32), Signal::SIGKILL);
        }
    }

    /// Waits up to `until` for `pid` to end; its status, or None if it is still running.
    pub fn wait_exit(&mut self, pid: Pid, until: Instant) -> Option<WaitStatus> {
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(s) => {
                    self.note_status(pid, s);
                    self.pids.retain(|&p| p != pid);
                    return Some(s);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    self.pids.retain(|&p| p != pid);
                    return None;
                }
            }
            if Instant::now() >= until {
                return None;
            }
            self.pause(Duration::from_micros(100));
        }
    }

    /// Reaps every child (after a kill).
    pub fn reap_all(&mut self) {
        for pid in std::mem::take(&mut self.pids) {
            loop {
                match waitpid(pid, None) {
                    Ok(WaitStatus::StillAlive) | Ok(WaitStatus::Stopped(..)) => continue,
                    Ok(s) => {
                        self.note_status(pid, s);
                        break;
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break,
                }
            }
        }
    }

    fn note_status(&mut self, pid: Pid, s: WaitStatus) {
        match s {
            WaitStatus::Exited(_, 0)
            | WaitStatus::Signaled(_, Signal::SIGKILL, _)
            | WaitStatus::Signaled(_, Signal::SIGTERM, _) => {}
            WaitStatus::Exited(_, PANIC_EXIT) => self.lab.push(format!("child {pid} panicked")),
            WaitStatus::Exited(_, code) => self
                .lab
                .push(format!("child {pid} exited with status {code}")),
            WaitStatus::Signaled(_, sig, _) => {
                self.deaths.push(format!("child {pid} died of {sig}"))
            }
            _ => {}
        }
    }

    /// Kills and reaps every child, waits until every holder of the ack pipe is gone (grandchildren
    /// included: their end closes when they die), and takes the acknowledgements.
    pub fn stop_all(&mut self) {
        self.kill_all();
        self.reap_all();
        self.finish();
    }

    /// Drops the slot's end of the ack pipe: from now on the pipe reaches end-of-file when every child
    /// has died, which `wait_until(.., |r| r.all_gone())` waits for.
    pub fn seal(&mut self) {
        self.ack_write = None;
    }

    /// Every child (and grandchild) holding the ack pipe has died; only after [`Run::seal`].
    pub fn all_gone(&self) -> bool {
        !self.open
    }

    /// Stops forking, reads the pipe to its end, and takes the acknowledgements from the board.
    pub fn finish(&mut self) {
        self.ack_write = None;
        let until = Instant::now() + Duration::from_secs(3);
        while self.open {
            self.pump();
            if !self.open {
                break;
            }
            if Instant::now() >= until {
                self.lab
                    .push("a child outlived the trial (the ack pipe stayed open)".into());
                break;
            }
            wait_readable(self.ack_read.as_fd(), Duration::from_millis(5));
        }
        self.events.absorb(&self.board, self.writers);
    }

    /// SQLite errors the children reported (findings), and other errors (lab problems).
    pub fn reported_errors(&self) -> (Vec<String>, Vec<String>) {
        let mut sqlite = Vec::new();
        let mut lab = Vec::new();
        for (w, code, text) in &self.events.errors {
            let who = if *w == super::backup::BACKUP_ID {
                "backup".to_string()
            } else {
                format!("writer {w}")
            };
            let line = format!("{who}: {code}: {text}");
            if code.starts_with("SQLITE_") {
                sqlite.push(line);
            } else {
                lab.push(line);
            }
        }
        (sqlite, lab)
    }
}

fn set_blocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
        let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
    }
}

/// Waits until the pipe is readable or `wait` has passed, with microsecond resolution.
fn wait_readable(fd: BorrowedFd<'_>, wait: Duration) {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let ts = TimeSpec::from_duration(wait);
    let _ = nix::poll::ppoll(&mut fds, Some(ts), None);
}

/// One acknowledging writer's settings (a connection of a writer process).
#[derive(Clone, Copy)]
pub(crate) struct WriterSpec<'a> {
    pub db: &'a Path,
    pub profile: &'a Profile,
    pub workload: Workload,
    pub trial_seed: u64,
    pub id: u32,
    pub max_commits: u64,
    /// Open through the fault shim and SIGKILL this process just before this operation (one writer
    /// per process: the shim's configuration is per process).
    pub crash_at: Option<CrashAt>,
    /// Open through the fault shim as the process configured it already (several connections of one
    /// process sharing one operation count and log: the pool under power loss).
    pub on_shim: bool,
    /// Report the shim's operation count with each acknowledgement (`ackop`), for a power cut placed
    /// on the log afterwards.
    pub report_ack_ops: bool,
}

/// Opens the database, applies the profile (retrying while another connection holds the lock), reads
/// the pragmas back and reports them. None (after reporting the error) when that failed.
pub(crate) fn open_writer(env: &Env<'_>, w: &WriterSpec<'_>) -> Option<Connection> {
    let mut tx = env.sender();
    let opened = match w.crash_at {
        Some(c) => {
            let cfg = crate::faults::FaultConfig {
                crash_at: Some(c),
                ..Default::default()
            };
            if let Err(e) = crate::faults::configure(cfg) {
                tx.error(w.id, "FAULT_SETUP", &e.to_string());
                return None;
            }
            Connection::open_with_flags_and_vfs(
                w.db,
                rusqlite::OpenFlags::default(),
                crate::faults::VFS_NAME,
            )
        }
        None if w.on_shim => Connection::open_with_flags_and_vfs(
            w.db,
            rusqlite::OpenFlags::default(),
            crate::faults::VFS_NAME,
        ),
        None => Connection::open(w.db),
    };
    let conn = match opened {
        Ok(c) => c,
        Err(e) => {
            tx.error(w.id, &code_name(&e), &e.to_string());
            return None;
        }
    };
    let mut tries = 0u32;
    let in_force = loop {
        match w.profile.apply(&conn) {
            Ok(f) => break f,
            // Several connections switching modes at once: the losers are told BUSY.
            Err(e) if sqlite_error::is_busy(&e) && tries < 100_000 => {
                tries += 1;
                env.board.record_busy();
                std::thread::yield_now();
            }
            Err(e) => {
                tx.error(w.id, &code_name(&e), &e.to_string());
                return None;
            }
        }
    };
    tx.ready(w.id, &in_force);
    Some(conn)
}

/// Commits transactions `first..` until `stop()` says so, the cap, or 100 non-busy failures in a row.
/// Each commit is acknowledged after COMMIT returned. Busy failures are counted and retried (the
/// same `seq`, as an application retries a request); other failures are counted, the first three
/// reported. Returns the next `seq`.
pub(crate) fn commit_loop(
    env: &Env<'_>,
    w: &WriterSpec<'_>,
    conn: &mut Connection,
    first: u64,
    stop: &dyn Fn() -> bool,
) -> u64 {
    let mut tx = env.sender();
    let mut rng = seed::rng_for(w.trial_seed, seed::WRITER_STREAM_BASE + u64::from(w.id));
    let mut seq = first;
    let mut failures_in_a_row = 0;
    let mut reported = 0;
    while seq <= w.max_commits && !stop() {
        match w.workload.run_transaction(conn, w.id, seq, &mut rng) {
            Ok(()) => {
                ack(env, w.id, seq);
                if w.report_ack_ops {
                    // Read after COMMIT returned: every operation of this commit is counted.
                    tx.ack_op(w.id, seq, crate::faults::ops_so_far());
                }
                seq += 1;
                failures_in_a_row = 0;
            }
            Err(e) => {
                env.tally.fail(&e);
                if sqlite_error::is_busy(&e) {
                    env.board.record_busy();
                    std::thread::yield_now();
                    continue;
                }
                if reported < 3 {
                    reported += 1;
                    tx.error(w.id, &code_name(&e), &e.to_string());
                }
                if primary(&e) == rusqlite::ffi::SQLITE_CONSTRAINT as usize {
                    // Only our own `(writer, seq)` row can collide: an earlier attempt whose COMMIT
                    // reported an error did land. Not acknowledged (the application was told it
                    // failed), but present, so the next transaction takes the next number.
                    seq += 1;
                }
                failures_in_a_row += 1;
                if failures_in_a_row >= 100 {
                    break;
                }
            }
        }
    }
    seq
}

/// Acknowledges commit `seq` of `writer`; wakes the slot if it reached the kill threshold.
pub(crate) fn ack(env: &Env<'_>, writer: u32, seq: u64) {
    if env.board.record_ack(writer, seq) {
        env.sender().reached(writer);
    }
}

/// A writer process: `threads` connections (writers `first..first+threads`), each committing until
/// killed or `stop()`. Returns when every connection has finished.
pub(crate) fn writer_process(
    env: &Env<'_>,
    spec: &WriterSpec<'_>,
    threads: u32,
    stop: &(dyn Fn() -> bool + Sync),
) {
    let one = |id: u32| {
        let w = WriterSpec { id, ..*spec };
        if let Some(mut conn) = open_writer(env, &w) {
            commit_loop(env, &w, &mut conn, 1, stop);
        }
        env.sender().done(id);
    };
    if threads == 1 {
        one(spec.id);
    } else {
        std::thread::scope(|s| {
            for t in 0..threads {
                let one = &one;
                s.spawn(move || one(spec.id + t));
            }
        });
    }
}

/// Copies the starting database and forks `processes` writer processes of `threads` connections each
/// (writers `p * threads + t`), committing until killed. The writer whose ack makes the total
/// `wake_at` wakes the slot.
pub(crate) fn start_writers<'a>(
    ctx: &Ctx<'a>,
    processes: u32,
    threads: u32,
    wake_at: u64,
) -> Result<Run<'a>, String> {
    ctx.fresh_database()?;
    let mut run = Run::new(
        ctx.files,
        processes * threads,
        wake_at,
        ctx.opts.trial_timeout,
    )?;
    for p in 0..processes {
        let spec = WriterSpec {
            id: p * threads,
            ..ctx.writer_spec()
        };
        if let Err(e) = run.spawn(&[], |env| {
            writer_process(env, &spec, threads, &never);
            0
        }) {
            run.stop_all();
            return Err(e);
        }
    }
    Ok(run)
}

/// The kill point's acknowledgement threshold (0 for a time-based kill point).
pub(crate) fn wake_at(kp: KillPoint) -> u64 {
    match kp {
        KillPoint::AfterAcks { acks, .. } => acks,
        KillPoint::AfterTime { .. } => 0,
    }
}

/// Never stop: the writer runs until it is killed.
pub(crate) fn never() -> bool {
    false
}

/// Everything a scenario's trial needs from the run.
pub(crate) struct Ctx<'a> {
    pub opts: &'a RunOptions,
    pub files: &'a SlotFiles,
    pub index: u64,
    pub seed: u64,
    pub variant: &'a Variant,
    pub workload: Workload,
    pub sqlite_version: &'a str,
    pub started: Instant,
}

impl Ctx<'_> {
    /// An RNG for a scenario's own draws (streams 40.. stay clear of the core's).
    pub fn rng(&self, stream: u64) -> rand_chacha::ChaCha8Rng {
        seed::rng_for(self.seed, 40 + stream)
    }

    pub fn kill_point(&self) -> KillPoint {
        self.opts
            .kill
            .draw(&mut seed::rng_for(self.seed, seed::KILL_STREAM))
    }

    pub fn db(&self) -> &Path {
        &self.files.db
    }

    /// Writer 0 of this trial: the variant's pragmas, the run's workload and commit cap.
    pub fn writer_spec(&self) -> WriterSpec<'_> {
        WriterSpec {
            db: self.db(),
            profile: &self.variant.profile,
            workload: self.workload,
            trial_seed: self.seed,
            id: 0,
            max_commits: self.opts.max_commits,
            crash_at: None,
            on_shim: false,
            report_ack_ops: false,
        }
    }

    /// The row of a trial whose setup failed before any child ran.
    pub fn setup_failed(&self, fault: &'static str, e: String) -> (TrialRecord, Metrics) {
        let mut end = Ending::new(fault);
        end.setup_error = Some(e);
        record(self, None, end)
    }

    /// A scratch path of this trial next to the database (`trial.db` → `trial.<name>`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.files.dir.join(format!("trial.{name}"))
    }

    /// Removes the database, its sidecars and every scratch file of the previous trial.
    pub fn clear(&self) {
        for suffix in evidence::SIDECARS {
            let _ = std::fs::remove_file(evidence::with_suffix(self.db(), suffix));
        }
        for name in ["backup.db", "deleted", "start.tmp", "ops.log"] {
            let base = self.path(name);
            for suffix in evidence::SIDECARS {
                let _ = std::fs::remove_file(evidence::with_suffix(&base, suffix));
            }
        }
        let _ = std::fs::remove_dir_all(self.path("deleted"));
    }

    /// Copies this variant's starting database (made once per slot: schema, page size, WAL
    /// persisted) to the trial's path.
    pub fn fresh_database(&self) -> Result<(), String> {
        self.clear();
        let template = self.template()?;
        std::fs::copy(&template, self.db())
            .map(drop)
            .map_err(|e| format!("copying the starting database: {e}"))
    }

    /// The starting database of this variant and workload, made on first use. Built under a temporary
    /// name and renamed, so a slot killed half-way never leaves a broken one behind.
    pub fn template(&self) -> Result<PathBuf, String> {
        let name = self.variant.profile.name.replace('/', "-");
        let path = self
            .files
            .dir
            .join(format!("start-{name}-{}.db", self.workload.name()));
        if path.is_file() {
            return Ok(path);
        }
        let tmp = self.path("start.tmp");
        crate::lab::slot::make_starting_database(&tmp, &self.variant.profile, self.workload)
            .map_err(|e| format!("making the starting database: {e}"))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("making the starting database: {e}"))?;
        Ok(path)
    }
}

/// What a scenario's trial found, handed to [`record`].
pub(crate) struct Ending {
    pub verification: Verification,
    /// The `fault` column: `sigkill`, `sigterm`, `none`, …; fixed per variant.
    pub fault: &'static str,
    pub kill_point: String,
    /// The scenario documents damage here (an operator deleting a hot journal, a known corruptor).
    pub expected_damage: bool,
    /// Measurements, appended to `detail` after the variant's parameters.
    pub measures: Vec<String>,
    pub metrics: Metrics,
    /// Files to save as evidence if the trial is not intact: the database the oracle checked, read
    /// before recovery, and extra files (name in the evidence folder, path now).
    pub evidence: Option<(Snapshot, PathBuf)>,
    pub extra_evidence: Vec<(String, PathBuf)>,
    /// Setup failed before anything ran: a lab error.
    pub setup_error: Option<String>,
    /// Children dying of SIGBUS/SIGSEGV are part of what the scenario provokes, not lab errors.
    pub deaths_are_findings: bool,
    /// The fault the verdict table judges: a process crash unless the scenario simulated a power
    /// cut.
    pub judged_as: Fault,
}

impl Ending {
    pub fn new(fault: &'static str) -> Ending {
        Ending {
            verification: Verification::not_run(),
            fault,
            kill_point: String::new(),
            expected_damage: false,
            measures: Vec::new(),
            metrics: Metrics::new(),
            evidence: None,
            extra_evidence: Vec::new(),
            setup_error: None,
            deaths_are_findings: false,
            judged_as: Fault::Sigkill,
        }
    }

    pub fn measure(&mut self, key: &str, value: u64) {
        *self.metrics.entry(key.to_string()).or_default() += value;
    }

    /// Runs the oracle on `db` against `acked`, snapshotting the files recovery may change first.
    pub fn verify(
        &mut self,
        db: &Path,
        workload: Workload,
        acked: &BTreeMap<u32, u64>,
    ) -> Verification {
        let snapshot = Snapshot::before_recovery(db);
        let v = crate::verify::oracle::recover_and_verify(db, workload, acked);
        self.evidence = Some((snapshot, db.to_path_buf()));
        v
    }
}

/// Builds the trial's CSV row from what the scenario found, judges it, and saves evidence for a
/// trial that is not intact. Also returns the metrics, with the outcome counted.
pub(crate) fn record(
    ctx: &Ctx<'_>,
    run: Option<&Run<'_>>,
    mut end: Ending,
) -> (TrialRecord, Metrics) {
    let profile = &ctx.variant.profile;
    let (sqlite_errors, mut lab) = match run {
        Some(r) => r.reported_errors(),
        None => (Vec::new(), Vec::new()),
    };
    if let Some(r) = run {
        lab.extend(r.lab.iter().cloned());
        if end.deaths_are_findings {
            end.measures.extend(r.deaths.iter().cloned());
            if !r.deaths.is_empty() {
                end.measure("writer_died_of_a_signal", 1);
            }
        } else {
            lab.extend(r.deaths.iter().cloned());
        }
        if r.timed_out {
            lab.push("trial timeout".into());
        }
    }
    if let Some(e) = &end.setup_error {
        lab.insert(0, e.clone());
    }
    let in_force = run.and_then(|r| r.events.in_force.clone());
    let (journal_mode, synchronous, fallback) = match &in_force {
        Some(f) => {
            let mut fb = profile.fallbacks(f).join("; ");
            if let Some(r) = run {
                if !r.events.disagreeing_writers.is_empty() {
                    fb.push_str(&format!(
                        "{}writers {:?} reported other pragmas",
                        if fb.is_empty() { "" } else { "; " },
                        r.events.disagreeing_writers
                    ));
                }
            }
            (f.journal_mode.clone(), f.synchronous.clone(), fb)
        }
        None => (
            profile.journal_mode.as_str().to_string(),
            profile.synchronous.as_str().to_string(),
            "unknown: no writer read its pragmas back".to_string(),
        ),
    };
    let v = end.verification.clone();
    let setup_failed = end.setup_error.is_some();
    let outcome = if (v.outcome == Outcome::Intact || setup_failed) && !lab.is_empty() {
        Outcome::WorkerError
    } else {
        v.outcome
    };
    let verdict = match outcome {
        Outcome::Intact => Verdict::Ok,
        Outcome::WorkerError => Verdict::LabError,
        _ if end.expected_damage => Verdict::Expected,
        // Most scenarios are a process crash (SIGKILL, or a shutdown cut short): "durable across
        // application crashes regardless of the synchronous setting or journal mode", except OFF and
        // MEMORY, which the core table already treats as expected. A power cut follows the
        // synchronous matrix instead (the pool's `-power` variants: the run's power-loss model).
        o => verdict::judge(
            o,
            &journal_mode,
            &synchronous,
            end.judged_as,
            end.judged_as != Fault::PowerLoss || ctx.opts.faults.hardware_as_documented(),
        ),
    };
    let mut parts = vec![ctx.variant.params.clone()];
    parts.extend(end.measures.iter().cloned());
    if !sqlite_errors.is_empty() {
        parts.push(format!("app saw: {}", sqlite_errors.join(" | ")));
    }
    if !v.detail.is_empty() {
        parts.push(v.detail.clone());
    }
    if !lab.is_empty() {
        parts.push(format!("lab: {}", lab.join("; ")));
    }
    let (acked, busy) = match run {
        Some(r) => (r.events.acks_total, r.events.busy),
        None => (0, 0),
    };
    let mut rec = TrialRecord {
        iteration: ctx.index,
        seed: ctx.seed,
        profile: profile.name.clone(),
        journal_mode,
        synchronous,
        connections: profile.connections,
        processes: profile.processes,
        workload: ctx.workload.name().to_string(),
        fault: end.fault.to_string(),
        kill_point: end.kill_point.clone(),
        acked_commits: acked,
        recovered_commits: v.recovered_commits,
        outcome,
        verdict,
        detail: parts.join("; "),
        busy_errors: busy,
        pragma_fallback: fallback,
        duration_us: 0,
        sqlite_version: ctx.sqlite_version.to_string(),
    };
    rec.duration_us = ctx.started.elapsed().as_micros() as u64;
    if outcome != Outcome::Intact {
        if let Some((mut snapshot, db)) = end.evidence.take() {
            match evidence::save(
                &ctx.opts.out_dir.join("failures"),
                &mut snapshot,
                &db,
                &rec,
                profile,
                &ctx.opts.spec,
                None,
            ) {
                Ok(dir) => {
                    for (name, path) in &end.extra_evidence {
                        let _ = std::fs::copy(path, dir.join(name));
                    }
                }
                Err(e) => rec.detail.push_str(&format!("; evidence not saved: {e}")),
            }
        }
    }
    end.measure("acked", acked);
    end.measure("recovered", v.recovered_commits);
    end.measure("busy", busy);
    end.measure(&format!("outcome:{}", outcome.as_str()), 1);
    end.measure(&format!("verdict:{}", verdict.as_str()), 1);
    (rec, end.metrics)
}

/// The size of `path` in bytes, 0 if it does not exist.
pub(crate) fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A rollback journal that recovery would play back: non-empty and starting with the journal magic.
pub(crate) fn hot_journal(db: &Path) -> bool {
    const MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
    std::fs::read(evidence::with_suffix(db, "-journal"))
        .map(|b| b.len() >= 8 && b[..8] == MAGIC)
        .unwrap_or(false)
}

/// Whether the file's header says WAL (file format versions 2/2 at bytes 18-19).
pub(crate) fn header_says_wal(db: &Path) -> Option<bool> {
    let bytes = std::fs::read(db).ok()?;
    (bytes.len() >= 20).then(|| bytes[18] == 2 && bytes[19] == 2)
}

/// A fixed-size window of acknowledgements for scenarios whose effect needs a longer run than the
/// run's `--kill-after` gives (checkpoints, backups): K uniform in `lo..=hi`, then `delay`.
pub(crate) fn draw_acks(
    rng: &mut rand_chacha::ChaCha8Rng,
    lo: u64,
    hi: u64,
    delay_us: u64,
) -> KillPoint {
    use rand::RngExt;
    KillPoint::AfterAcks {
        acks: rng.random_range(lo..=hi),
        delay: Duration::from_micros(rng.random_range(0..=delay_us)),
    }
}

/// Words for `detail`: `failed_txns SQLITE_BUSY=12 SQLITE_IOERR=1`, or nothing.
pub(crate) fn failed_codes(run: &Run<'_>, end: &mut Ending, label: &str) {
    let codes = run.tally.codes(word::FAIL);
    for (name, n) in &codes {
        end.measure(&format!("{label}:{name}"), *n);
        end.measure(&format!("trials_with:{name}"), 1);
    }
    if !codes.is_empty() {
        end.measures.push(format!(
            "{label} {}",
            codes
                .iter()
                .map(|(c, n)| format!("{c}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Test helpers: run options for a scenario run in a scratch folder, and a slot's files.

    use super::*;
    use clap::Parser;

    /// One scratch run: options as `torture` would validate them, and a slot's files.
    pub struct Lab {
        pub opts: RunOptions,
        pub files: SlotFiles,
        _dir: tempfile::TempDir,
    }

    /// Scenario tests fork; running them one at a time keeps their timing apart.
    pub fn serial() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn lab(extra: &[&str]) -> Lab {
        let base = std::path::Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::Builder::new()
                .prefix("torture-scenario-")
                .tempdir_in(base)
                .unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let out = dir.path().join("out");
        let mut args: Vec<String> = vec!["torture".into()];
        if !extra.contains(&"--seed") {
            args.extend(["--seed".into(), "7".into()]);
        }
        args.extend([
            "--out".into(),
            out.display().to_string(),
            "--trial-timeout".into(),
            "8s".into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let cli = crate::cli::Cli::try_parse_from(&args).unwrap();
        let opts = RunOptions::validate(cli.run, args.join(" ")).unwrap();
        let slot = dir.path().join("slot");
        std::fs::create_dir_all(&slot).unwrap();
        let files = SlotFiles {
            board: AckBoard::new(1).unwrap(),
            db: slot.join("trial.db"),
            close_in_writers: Vec::new(),
            dir: slot,
        };
        Lab {
            opts,
            files,
            _dir: dir,
        }
    }

    impl Lab {
        /// Runs `n` trials of variant `variant` of `scenario` (indices chosen so the variant is the
        /// one named), returning their rows and metrics.
        pub fn run(&self, scenario: &str, variant: &str, n: u64) -> Vec<(TrialRecord, Metrics)> {
            let sc = super::super::find(scenario).expect("scenario");
            let v = sc
                .variants
                .iter()
                .position(|x| x.name == variant)
                .unwrap_or_else(|| panic!("no variant {variant} in {scenario}"))
                as u64;
            let k = sc.variants.len() as u64;
            (0..n)
                .map(|i| {
                    super::super::run_measured(
                        &self.opts,
                        scenario,
                        v + i * k,
                        &self.files,
                        rusqlite::version(),
                    )
                })
                .collect()
        }
    }

    /// Rows that are neither intact nor lab errors.
    pub fn damaged(rows: &[(TrialRecord, Metrics)]) -> usize {
        rows.iter().filter(|(r, _)| r.outcome.is_damage()).count()
    }

    /// Fails the test with every row's detail when a row is a worker error.
    pub fn no_lab_errors(rows: &[(TrialRecord, Metrics)]) {
        for (r, _) in rows {
            assert_ne!(
                r.outcome,
                Outcome::WorkerError,
                "{}: {}",
                r.profile,
                r.detail
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named_by_their_extended_code_when_it_tells_more() {
        let e = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        assert_eq!(code_name(&e(rusqlite::ffi::SQLITE_BUSY)), "SQLITE_BUSY");
        assert_eq!(
            code_name(&e(rusqlite::ffi::SQLITE_IOERR_DELETE_NOENT)),
            "SQLITE_IOERR_DELETE_NOENT"
        );
        assert_eq!(
            code_name(&e(rusqlite::ffi::SQLITE_READONLY_DBMOVED)),
            "SQLITE_READONLY_DBMOVED"
        );
        // An extended code without a name here keeps its number.
        assert_eq!(
            code_name(&e(rusqlite::ffi::SQLITE_IOERR_SEEK)),
            "SQLITE_IOERR(5642)"
        );
        assert_eq!(primary(&e(rusqlite::ffi::SQLITE_IOERR_SEEK)), 10);
    }

    #[test]
    fn the_tally_is_shared_with_a_forked_child() {
        let t = Tally::new().unwrap();
        let pid = fork_child(&[], || {
            t.add(word::CKPTS, 2);
            t.set(word::AUX_PID, 7);
            0
        })
        .unwrap();
        nix::sys::wait::waitpid(pid, None).unwrap();
        assert_eq!((t.get(word::CKPTS), t.get(word::AUX_PID)), (2, 7));
        t.add(word::FAIL + 5, 3);
        assert_eq!(t.codes(word::FAIL), vec![("SQLITE_BUSY", 3)]);
    }
}
