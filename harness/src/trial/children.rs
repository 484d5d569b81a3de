//! One trial's processes as the slot sees them: they are started only through [`Children::spawn`]
//! (which forks through `process`), share an ack board and a tally of counters with the slot, and
//! report on one pipe; the slot waits for the kill point, stops them all, reaps them, and takes
//! their acknowledgements. The built-in workload's writers and every scenario's choreography run on
//! this one type; a user's program runs through `process::spawn_program`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::Signal;
use nix::sys::time::TimeSpec;
use nix::unistd::Pid;

use crate::faults::kill_point::KillPoint;
use crate::process::{self, Exit};
use crate::trial::ack::{AckBoard, AckSender, SharedWords, TrialEvents};
use crate::verify::sqlite_error;

/// The files a slot reuses trial after trial.
pub struct SlotFiles {
    pub dir: PathBuf,
    pub db: PathBuf,
    /// Descriptors the slot holds that writers must not inherit (closed in the child after fork).
    pub close_in_writers: Vec<RawFd>,
    /// Shared memory the writers acknowledge commits on.
    pub board: AckBoard,
    /// Shared counters a scenario's children keep (checkpoints done, failures by code, …).
    pub tally: Tally,
}

impl SlotFiles {
    /// A slot's files in `dir`: the trial database's path, an ack board with room for
    /// `max_writers` writers (64 at least: scenarios start more acknowledging children than their
    /// variant's profile names), and the shared tally. `close_in_writers`: the slot's descriptors
    /// its children must not inherit.
    pub fn new(
        dir: PathBuf,
        max_writers: u32,
        close_in_writers: Vec<RawFd>,
    ) -> std::io::Result<SlotFiles> {
        Ok(SlotFiles {
            db: dir.join("trial.db"),
            dir,
            close_in_writers,
            board: AckBoard::new(max_writers.max(64) as usize)?,
            tally: Tally::new()?,
        })
    }

    /// Removes the previous trial's database and sidecars.
    pub(crate) fn clear(&self) {
        for suffix in crate::engine::SIDECARS {
            let _ = std::fs::remove_file(crate::engine::with_suffix(&self.db, suffix));
        }
        let _ = std::fs::remove_file(self.dir.join("ops.log"));
    }
}

/// Words of a [`Tally`]. Scenarios use the named slots below; the first 64 count failed
/// transactions by primary result code.
pub mod word {
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
pub struct Tally {
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

    /// Zeroes every counter, for the next trial.
    pub fn reset(&self) {
        for i in 0..word::LEN {
            self.word(i).store(0, Ordering::Relaxed);
        }
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
        self.add(word::FAIL + sqlite_error::primary(e), 1);
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

/// What a forked child gets: the acknowledgement pipe and the shared memory of its trial.
pub struct Env<'a> {
    pub ack: BorrowedFd<'a>,
    pub board: &'a AckBoard,
    pub tally: &'a Tally,
}

impl Env<'_> {
    pub fn sender(&self) -> AckSender<'_> {
        AckSender::new(self.ack)
    }

    /// Acknowledges commit `seq` of `writer`; the ack that reaches the kill threshold starts the
    /// kill delay ([`AckBoard::acknowledge`]).
    pub fn ack(&self, writer: u32, seq: u64) {
        self.board.acknowledge(writer, seq, self.ack.as_raw_fd());
    }
}

/// Where a trial's kill point landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// The kill point came: K acks and the delay in the writer's CPU time, or the time since start.
    Reached,
    /// Every writer finished (or the pipe closed) before it.
    WritersFinished,
    /// The trial timeout came first.
    TimedOut,
}

impl Landing {
    /// The `kill_point` column: the kill point, and why it was not reached.
    pub fn describe(self, kp: KillPoint) -> String {
        match self {
            Landing::Reached => kp.to_string(),
            Landing::WritersFinished => format!("{kp} (not reached: writers finished)"),
            Landing::TimedOut => format!("{kp} (not reached: timeout)"),
        }
    }
}

/// One trial's children, as the slot sees them: the ack board and tally they share (the slot's,
/// reset for this trial), the pipe they report on, their pids, and what went wrong with them.
pub struct Children<'a> {
    files: &'a SlotFiles,
    pub board: &'a AckBoard,
    pub tally: &'a Tally,
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
    /// Signals the trial itself sends to end a child (SIGKILL; a scenario that shuts down
    /// gracefully adds SIGTERM): a child ended by one of them is not a lab problem.
    pub own_signals: Vec<Signal>,
}

impl<'a> Children<'a> {
    /// A trial of `writers` acknowledging writers. The writer whose ack brings the total to
    /// `kill_point`'s K counts the kill point's delay in its own CPU time and then says `due`.
    pub fn new(
        files: &'a SlotFiles,
        writers: u32,
        kill_point: Option<KillPoint>,
        timeout: Duration,
    ) -> Result<Children<'a>, String> {
        if writers as usize > files.board.capacity() {
            return Err(format!(
                "a trial of {writers} writers does not fit the slot's ack board ({})",
                files.board.capacity()
            ));
        }
        let (wake_at, delay) = match kill_point {
            Some(KillPoint::AfterAcks { acks, delay }) => (acks, delay),
            _ => (0, Duration::ZERO),
        };
        files.board.reset(writers.max(1) as usize, wake_at, delay);
        files.tally.reset();
        let (ack_read, ack_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| format!("pipe: {e}"))?;
        // Writers block on a full pipe rather than lose a message.
        set_blocking(&ack_write);
        let started = Instant::now();
        Ok(Children {
            files,
            board: &files.board,
            tally: &files.tally,
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
            own_signals: vec![Signal::SIGKILL],
        })
    }

    /// Restarts the trial's clock (a kill point at a time since the start, the timeout) now that
    /// its children have been started: forking several writers takes time the kill point must
    /// not include.
    pub fn started_now(&mut self) {
        let timeout = self.deadline - self.started;
        self.started = Instant::now();
        self.deadline = self.started + timeout;
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
            board: self.board,
            tally: self.tally,
        };
        let pid = process::fork_child(&to_close, || body(&env))?;
        self.pids.push(pid);
        Ok(pid)
    }

    /// Reads what the children reported so far.
    pub fn pump(&mut self) {
        if self.open {
            self.open = self.events.read_from(self.ack_read.as_fd());
        }
    }

    /// Waits until `cond` holds (true) or `until` passes (false), waking on every report and at
    /// least every millisecond (conditions may read shared memory that no report announces).
    pub fn wait_until(&mut self, until: Instant, cond: impl FnMut(&Children<'a>) -> bool) -> bool {
        self.wait(until, cond, true)
    }

    /// [`Children::wait_until`] for a condition that only reports on the pipe change: sleeps until
    /// a report or `until`, so the slot does not preempt its writer every millisecond.
    pub fn wait_for_report(
        &mut self,
        until: Instant,
        cond: impl FnMut(&Children<'a>) -> bool,
    ) -> bool {
        self.wait(until, cond, false)
    }

    fn wait(
        &mut self,
        until: Instant,
        mut cond: impl FnMut(&Children<'a>) -> bool,
        poll: bool,
    ) -> bool {
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
                let wait = if poll {
                    (until - now).min(Duration::from_millis(1))
                } else {
                    until - now
                };
                wait_readable(self.ack_read.as_fd(), wait);
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

    /// Every writer said `done`, or (once [`Children::seal`]ed) every holder of the pipe is gone.
    fn finished(&self) -> bool {
        self.writers_done() || !self.open
    }

    /// Waits for the kill point drawn for this trial. After K acknowledgements the writer that made
    /// the K-th counts the delay in its own CPU time and says `due`; a kill point at a time since the
    /// start (or K = 0) is waited for on the wall clock.
    pub fn wait_kill_point(&mut self, kp: KillPoint) -> Landing {
        let at = match kp {
            KillPoint::AfterAcks { acks: 0, delay } => Some(self.started + delay),
            KillPoint::AfterTime { after } => Some(self.started + after),
            KillPoint::AfterAcks { .. } => None,
        };
        let reached = match at {
            Some(at) => !self.wait_until(at, |c| c.writers_done()) && !self.timed_out,
            None => {
                self.wait_until(self.deadline, |c| c.events.due || c.writers_done())
                    && self.events.due
            }
        };
        if reached {
            Landing::Reached
        } else if self.timed_out {
            Landing::TimedOut
        } else {
            Landing::WritersFinished
        }
    }

    /// Waits until every writer finished its bounded work by itself, or (once sealed) died
    /// (false: the timeout came).
    pub fn wait_writers_done(&mut self) -> bool {
        self.wait_for_report(self.deadline, |c| c.finished())
    }

    pub fn signal(&self, pid: Pid, sig: Signal) {
        process::signal(pid, sig);
    }

    /// SIGKILLs every child, and the grandchild a child named in [`word::AUX_PID`].
    pub fn kill_all(&self) {
        process::kill_all(&self.pids);
        let aux = self.tally.get(word::AUX_PID);
        if aux > 0 {
            process::signal(Pid::from_raw(aux as i32), Signal::SIGKILL);
        }
    }

    /// Waits up to `until` for `pid` to end, still reading reports (a child blocked on a full
    /// pipe must be able to finish); how it ended, or None if it is still running.
    pub fn wait_exit(&mut self, pid: Pid, until: Instant) -> Option<Exit> {
        loop {
            match process::try_reap(pid) {
                Ok(Some(e)) => {
                    self.note_exit(pid, e);
                    self.pids.retain(|&p| p != pid);
                    return Some(e);
                }
                Ok(None) => {}
                Err(_) => {
                    self.pids.retain(|&p| p != pid);
                    return None;
                }
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            self.pause((until - now).min(Duration::from_micros(100)));
        }
    }

    /// Reaps every child (after a kill).
    pub fn reap_all(&mut self) {
        for (pid, exit) in process::reap_all(&std::mem::take(&mut self.pids)) {
            self.note_exit(pid, exit);
        }
    }

    fn note_exit(&mut self, pid: Pid, exit: Exit) {
        let who = format!("child {pid}");
        match exit {
            Exit::Stopped(sig) if self.own_signals.contains(&sig) => {}
            Exit::Stopped(sig) | Exit::Crashed(sig) => {
                self.deaths.push(format!("{who} died of {sig}"))
            }
            _ => self.lab.extend(exit.problem(&who)),
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
    /// has died, which `wait_until(.., |c| c.all_gone())` waits for.
    pub fn seal(&mut self) {
        self.ack_write = None;
    }

    /// Every child (and grandchild) holding the ack pipe has died; only after [`Children::seal`].
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
        self.events.absorb(self.board, self.writers);
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
