//! The parent: forks one slot process per job, hands out trial indices, collects the finished
//! trials' rows in completion order, and handles Ctrl-C. It never opens a database and never forks
//! while it has a thread besides its own.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::lab::slot;
use crate::options::RunOptions;
use crate::process;
use crate::verify::outcome::Finished;

/// Ctrl-C / SIGTERM count since the run started.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

/// How the run ended, beyond its rows.
#[derive(Debug, Default)]
pub struct RunEnd {
    /// Stopped by Ctrl-C or SIGTERM.
    pub interrupted: bool,
    /// Trials handed to a slot that died without reporting them (a lab error).
    pub lost_trials: u64,
    pub elapsed: Duration,
}

struct SlotHandle {
    pid: Pid,
    /// `None` once no more work will be sent.
    commands: Option<File>,
    results: OwnedFd,
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no newline (a long line is scanned once).
    scanned: usize,
    in_flight: u64,
    open: bool,
}

/// Trials a slot holds at once: one running, one queued, so a slot never waits for the parent.
const QUEUE_DEPTH: u64 = 2;

/// After the first Ctrl-C, how long (beyond the trial timeout) in-flight trials may take to finish
/// before they are killed.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Runs every trial of `opts` whose index `select` accepts, calling `on_record` for each finished
/// trial in completion order. `on_record` errors (e.g. the CSV became unwritable) stop the run.
pub fn run(
    opts: &RunOptions,
    indices: impl Iterator<Item = u64>,
    deadline: Option<Instant>,
    on_record: &mut dyn FnMut(Finished) -> io::Result<()>,
) -> io::Result<RunEnd> {
    let started = Instant::now();
    sweep_orphans(&opts.work_base);
    // Owner only: the trials' databases may hold a user's data.
    let work_dir = tempfile::Builder::new()
        .prefix("torture-")
        .permissions(crate::fsio::private_dir())
        .tempdir_in(&opts.work_base)?;
    claim(work_dir.path())?;
    let mut slots: Vec<SlotHandle> = Vec::with_capacity(opts.jobs);
    for s in 0..opts.jobs {
        let (cmd_r, cmd_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (res_r, res_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        // The other slots' ends and this slot's parent ends: the child must not hold them, or the
        // other slots would never see end-of-file.
        let mut close: Vec<RawFd> = vec![cmd_w.as_raw_fd(), res_r.as_raw_fd()];
        for other in &slots {
            close.push(other.results.as_raw_fd());
            if let Some(c) = &other.commands {
                close.push(c.as_raw_fd());
            }
        }
        // The parent is single-threaded here (no progress bar or other thread yet).
        let child = process::fork_child(&close, || {
            crate::fsio::close_in_child();
            slot::run_slot(opts, s, work_dir.path(), cmd_r, res_w)
        })
        .map_err(io::Error::other)?;
        let _ = nix::unistd::setpgid(child, child);
        set_nonblocking(&res_r);
        slots.push(SlotHandle {
            pid: child,
            commands: Some(File::from(cmd_w)),
            results: res_r,
            pending: Vec::new(),
            scanned: 0,
            in_flight: 0,
            open: true,
        });
    }
    install_interrupt_handlers();

    let mut indices = indices.peekable();
    let mut end = RunEnd::default();
    let mut stopping_since: Option<Instant> = None;
    for slot in &mut slots {
        feed(slot, &mut indices, QUEUE_DEPTH);
    }
    let mut sink_error: Option<io::Error> = None;
    while slots.iter().any(|s| s.open) {
        let interrupts = INTERRUPTS.load(Ordering::SeqCst);
        let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
        if (interrupts > 0 || sink_error.is_some() || out_of_time) && stopping_since.is_none() {
            end.interrupted = interrupts > 0;
            stopping_since = Some(Instant::now());
            for slot in &mut slots {
                slot.commands = None;
            }
            if end.interrupted {
                eprintln!(
                    "torture: interrupted; finishing the trials in flight (Ctrl-C again to stop now)"
                );
            }
        }
        if interrupts > 1
            || stopping_since.is_some_and(|t| t.elapsed() > DRAIN_GRACE + opts.trial_timeout)
        {
            for slot in slots.iter().filter(|s| s.open) {
                let _ = signal::killpg(slot.pid, Signal::SIGKILL);
            }
        }
        let mut fds: Vec<PollFd<'_>> = slots
            .iter()
            .filter(|s| s.open)
            .map(|s| PollFd::new(s.results.as_fd(), PollFlags::POLLIN))
            .collect();
        match nix::poll::poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<i32> = fds
            .iter()
            .filter(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|f| f.as_fd().as_raw_fd())
            .collect();
        drop(fds);
        for slot in slots.iter_mut().filter(|s| s.open) {
            if !ready.contains(&slot.results.as_raw_fd()) {
                continue;
            }
            let eof = read_available(slot);
            for record in take_records(slot) {
                slot.in_flight = slot.in_flight.saturating_sub(1);
                if sink_error.is_none() {
                    if let Err(e) = on_record(record) {
                        sink_error = Some(e);
                    }
                }
                if stopping_since.is_none() && sink_error.is_none() {
                    feed(slot, &mut indices, 1);
                }
            }
            if eof {
                slot.open = false;
                let _ = waitpid(slot.pid, None);
                end.lost_trials += slot.in_flight;
                if slot.in_flight > 0 && stopping_since.is_none() {
                    eprintln!(
                        "torture: slot process {} died with {} trial(s) unreported",
                        slot.pid, slot.in_flight
                    );
                }
            }
        }
    }
    end.elapsed = started.elapsed();
    restore_default_handlers();
    drop(work_dir);
    match sink_error {
        Some(e) => Err(e),
        None => Ok(end),
    }
}

/// The file in a scratch folder that names the process owning it.
const OWNER: &str = "owner";

/// Marks `dir` (a `torture-*` scratch folder) as this process's: its pid and start time, so a later
/// run can tell a folder whose owner died (SIGKILL leaves it behind) from a live run's, even when
/// the pid has been reused.
pub fn claim(dir: &Path) -> io::Result<()> {
    let me = std::process::id();
    let start = start_time(me).unwrap_or_default();
    std::fs::write(dir.join(OWNER), format!("{me} {start}\n"))
}

/// Removes the `torture-*` scratch folders under `base` whose owner process is gone. Folders without
/// an owner file (older versions, or made by something else) are left alone.
pub fn sweep_orphans(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with("torture-") {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(e.path().join(OWNER)) else {
            continue;
        };
        let mut words = owner.split_whitespace();
        let (Some(Ok(pid)), Some(Ok(start))) = (
            words.next().map(str::parse::<u32>),
            words.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        if start_time(pid) != Some(start) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A process's start time (clock ticks since boot, `/proc/<pid>/stat` field 22), or `None` when no
/// such process exists.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Sends up to `n` more trial indices to a slot; closes its command pipe when there are none left.
fn feed(
    slot: &mut SlotHandle,
    indices: &mut std::iter::Peekable<impl Iterator<Item = u64>>,
    n: u64,
) {
    for _ in 0..n {
        let Some(cmd) = slot.commands.as_mut() else {
            return;
        };
        match indices.next() {
            Some(i) => {
                if cmd.write_all(&i.to_le_bytes()).is_ok() {
                    slot.in_flight += 1;
                } else {
                    slot.commands = None;
                }
            }
            None => {
                slot.commands = None;
                return;
            }
        }
    }
    if indices.peek().is_none() {
        slot.commands = None;
    }
}

/// Reads whatever the slot has sent; true at end of file.
fn read_available(slot: &mut SlotHandle) -> bool {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match nix::unistd::read(&slot.results, &mut buf) {
            Ok(0) => return true,
            Ok(n) => slot.pending.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN) => return false,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}

/// Complete JSON lines received so far, parsed.
fn take_records(slot: &mut SlotHandle) -> Vec<Finished> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut from = slot.scanned;
    while let Some(nl) = slot.pending[from..].iter().position(|&b| b == b'\n') {
        let end = from + nl;
        let line = &slot.pending[start..end];
        match serde_json::from_slice::<Finished>(line) {
            Ok(r) => out.push(r),
            Err(e) => eprintln!("torture: unreadable trial record from a slot: {e}"),
        }
        start = end + 1;
        from = start;
    }
    slot.pending.drain(..start);
    slot.scanned = slot.pending.len();
    out
}

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
    }
}

fn install_interrupt_handlers() {
    INTERRUPTS.store(0, Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only touches an atomic.
    unsafe {
        let _ = signal::sigaction(Signal::SIGINT, &action);
        let _ = signal::sigaction(Signal::SIGTERM, &action);
    }
}

fn restore_default_handlers() {
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: restoring the default disposition.
    unsafe {
        let _ = signal::sigaction(Signal::SIGINT, &action);
        let _ = signal::sigaction(Signal::SIGTERM, &action);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_folders_whose_owner_is_gone_are_swept() {
        let base = tempfile::tempdir().unwrap();
        let mine = base.path().join("torture-live");
        let dead = base.path().join("torture-dead");
        let reused = base.path().join("torture-reused");
        let foreign = base.path().join("torture-foreign");
        for d in [&mine, &dead, &reused, &foreign] {
            std::fs::create_dir(d).unwrap();
        }
        claim(&mine).unwrap();
        std::fs::write(dead.join(OWNER), "4194304999 1\n").unwrap();
        // This process's pid, another start time: the pid was reused.
        std::fs::write(reused.join(OWNER), format!("{} 1\n", std::process::id())).unwrap();
        sweep_orphans(base.path());
        assert!(mine.is_dir() && foreign.is_dir());
        assert!(!dead.exists() && !reused.exists());
    }
}
