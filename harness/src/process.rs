//! Every process the lab starts, in one place: forking a child that dies with its parent and never
//! unwinds into the parent's code, starting a user's program in its own process group, classifying
//! how a child ended, and killing and reaping — a list of children, or a whole process group down
//! to the last grandchild. Nothing else in the lab calls `fork()`.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// Exit status of a forked child whose body panicked (caught, so it never unwinds into the
/// parent's code).
pub const PANIC_EXIT: i32 = 101;

/// How a child ended, as the lab judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exited with status 0.
    Clean,
    /// Ended by a signal the lab sends to end a trial (SIGKILL, SIGTERM); whether this trial sent
    /// it is the caller's to say (`Children::own_signals`).
    Stopped(Signal),
    /// The child's body panicked (a lab bug).
    Panicked,
    /// Exited with a non-zero status.
    Failed(i32),
    /// Died of a signal nobody sent (SIGSEGV, SIGBUS, SIGABRT, …).
    Crashed(Signal),
}

impl Exit {
    /// Classifies a final wait status; None for statuses that are not an ending (stopped,
    /// continued, still alive).
    pub fn of(status: WaitStatus) -> Option<Exit> {
        match status {
            WaitStatus::Exited(_, 0) => Some(Exit::Clean),
            WaitStatus::Exited(_, PANIC_EXIT) => Some(Exit::Panicked),
            WaitStatus::Exited(_, code) => Some(Exit::Failed(code)),
            WaitStatus::Signaled(_, sig @ (Signal::SIGKILL | Signal::SIGTERM), _) => {
                Some(Exit::Stopped(sig))
            }
            WaitStatus::Signaled(_, sig, _) => Some(Exit::Crashed(sig)),
            _ => None,
        }
    }

    /// The lab's words for an ending that needs explaining; None for a clean exit or the lab's own
    /// signal.
    pub fn problem(self, who: &str) -> Option<String> {
        match self {
            Exit::Clean | Exit::Stopped(_) => None,
            Exit::Panicked => Some(format!("{who} panicked")),
            Exit::Failed(code) => Some(format!("{who} exited with status {code}")),
            Exit::Crashed(sig) => Some(format!("{who} died of {sig}")),
        }
    }
}

/// Forks a child that runs `body` and exits with its code, never unwinding back into the caller:
/// the child asks to die with the forking process and closes `close` first.
///
/// # Safety contract
/// The caller is single-threaded (the parent before its first thread, a slot, or a writer child
/// that has not started threads) and holds no SQLite connection it expects the child not to use.
pub fn fork_child(close: &[RawFd], body: impl FnOnce() -> i32) -> Result<Pid, String> {
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

/// Asks the kernel to SIGKILL this process when its parent dies, so no child outlives the harness.
/// `parent` is the forking process's pid, taken before the fork: if the parent died between the fork
/// and the request, the child has already been re-parented and must go at once.
pub fn die_with_parent(parent: Pid) {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        exit_now(1);
    }
}

/// Ends a forked child at once: no destructors, no atexit handlers, no buffered output of the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and takes no pointers.
    unsafe { libc::_exit(code) }
}

/// Makes this process the reaper of its orphaned descendants: a grandchild whose parent dies (the
/// `sqlite3` shell of a killed `sh -c` pipeline) is re-parented here instead of to init, so the
/// lab can wait for it before it checks the files the grandchild was writing.
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// One child of this process, as `/proc/<pid>/stat` shows it.
#[derive(Clone, Copy, Debug)]
pub struct ChildProc {
    pub pid: Pid,
    /// The state letter: `Z` for one that has ended and waits to be reaped.
    pub state: char,
    pub session: i32,
}

/// This process's children now (processes whose parent it is).
pub fn children() -> Vec<ChildProc> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // The command name (field 2) may hold spaces and parentheses: read after its last ')'.
        // Then: state, ppid, process group, session.
        let f: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 1)..]
            .split_whitespace()
            .take(4)
            .collect();
        if f.len() == 4 && f[1] == me {
            out.push(ChildProc {
                pid: Pid::from_raw(pid),
                state: f[0].chars().next().unwrap_or('?'),
                session: f[3].parse().unwrap_or(0),
            });
        }
    }
    out
}

/// Kills and reaps every child of this process that is not in `known` and either left this
/// process's session (`setsid()`) or carries `env` (`TORTURE_DB=<the trial's database>`) in its
/// environment: the processes of a program that left its process group and came back to us,
/// this process being their subreaper — round after round, as each one's own children come back
/// to us when it dies. Any other child (another caller's, in a test binary's threads) is left
/// alone. Returns how many were alive when found, and false if one still lived at `until`.
pub fn kill_escaped(known: &[Pid], env: &[u8], until: Instant) -> (usize, bool) {
    // SAFETY: getsid has no preconditions.
    let my_session = unsafe { libc::getsid(0) };
    let escaped = |c: &ChildProc| {
        c.session != my_session
            || std::fs::read(format!("/proc/{}/environ", c.pid))
                .is_ok_and(|e| e.split(|&b| b == 0).any(|kv| kv == env))
    };
    let mut alive = 0;
    loop {
        let found: Vec<ChildProc> = children()
            .into_iter()
            .filter(|c| !known.contains(&c.pid) && escaped(c))
            .collect();
        if found.is_empty() {
            return (alive, true);
        }
        alive += found.iter().filter(|c| c.state != 'Z').count();
        for c in &found {
            signal(c.pid, Signal::SIGKILL);
        }
        for c in &found {
            // ECHILD: not ours after all (reaped already); else wait, bounded by `until`.
            while let Ok(None) = try_reap(c.pid) {
                if Instant::now() >= until {
                    return (alive, false);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

/// Starts `command` as the leader of a new process group that dies with this process. Its
/// descendants share the group, so [`kill_group`] and [`reap_group`] reach all of them.
pub fn spawn_program(command: &mut Command) -> std::io::Result<Child> {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls.
    unsafe {
        command.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != parent.as_raw() {
                libc::_exit(1);
            }
            Ok(())
        })
    };
    command.spawn()
}

/// Sends `signal` to one child; a child already gone (ESRCH) is fine.
pub fn signal(pid: Pid, sig: Signal) {
    let _ = kill(pid, sig);
}

/// SIGKILLs every child in `pids`.
pub fn kill_all(pids: &[Pid]) {
    for &pid in pids {
        signal(pid, Signal::SIGKILL);
    }
}

/// SIGKILLs every process of group `group`.
pub fn kill_group(group: Pid) {
    let _ = killpg(group, Signal::SIGKILL);
}

/// Waits for `pid` to end (retrying on EINTR) and classifies how; None if it was not our child.
pub fn reap(pid: Pid) -> Option<Exit> {
    loop {
        match waitpid(pid, None) {
            Ok(s) => match Exit::of(s) {
                Some(e) => return Some(e),
                None => continue,
            },
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Reaps every child in `pids`, in order, with how each ended.
pub fn reap_all(pids: &[Pid]) -> Vec<(Pid, Exit)> {
    pids.iter()
        .filter_map(|&pid| reap(pid).map(|e| (pid, e)))
        .collect()
}

/// Reaps `pid` if it has ended: `Ok(Some(exit))`, `Ok(None)` while it runs, `Err` if it is not
/// our child (already reaped).
pub fn try_reap(pid: Pid) -> Result<Option<Exit>, Errno> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(s) => match Exit::of(s) {
                Some(e) => return Ok(Some(e)),
                None => return Ok(None),
            },
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// After a kill of group `group`: waits until no process of the group is left, reaping every one
/// that is our child (the leader, and grandchildren re-parented to us by [`become_subreaper`]).
/// Returns false if some process of the group still lived at `until` (it is SIGKILLed again each
/// round; a process in uninterruptible sleep can outlast that).
pub fn reap_group(group: Pid, until: Instant) -> bool {
    let whole_group = Pid::from_raw(-group.as_raw());
    loop {
        // Reap whatever of the group has ended.
        loop {
            match waitpid(whole_group, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => break, // ECHILD: none of the group is our child any more
            }
        }
        // Signal 0 reaches any process of the group still alive or not yet reaped elsewhere.
        match killpg(group, None) {
            Err(Errno::ESRCH) => return true,
            _ if Instant::now() >= until => return false,
            _ => {
                kill_group(group);
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

/// Runs `f` at normal scheduling, then restores the slot's real-time priority if it had one. A
/// slot is real-time only to wake on time for a kill; checking hundreds of crash states is seconds
/// of CPU, and at `SCHED_FIFO` it would starve every other process on that CPU — other slots,
/// other runs, the very program another slot is timing.
pub fn at_normal_priority<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: plain syscalls on this process, with valid arguments.
    let policy = unsafe { libc::sched_getscheduler(0) };
    let realtime = policy >= 0 && (policy & !libc::SCHED_RESET_ON_FORK) == libc::SCHED_FIFO;
    if realtime {
        let normal = libc::sched_param { sched_priority: 0 };
        // SAFETY: as above.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &normal) };
    }
    let out = f();
    if realtime {
        let rt = libc::sched_param { sched_priority: 1 };
        // SAFETY: as above.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &rt) };
    }
    out
}

/// The program exec runs must exist and be executable (a path, or a name found on PATH): checked
/// before anything is written, so a typo is bad usage, not a run of failed trials.
pub fn find_program(program: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        runnable(std::path::Path::new(program))
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| runnable(&d.join(program))))
    };
    if found {
        Ok(())
    } else {
        Err(format!(
            "exec: program `{program}` is not an executable file{}; check the path, or run it through a shell with --shell",
            if program.contains('/') { "" } else { " on PATH" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_are_classified_by_status_and_signal() {
        let p = Pid::from_raw(1);
        assert_eq!(Exit::of(WaitStatus::Exited(p, 0)), Some(Exit::Clean));
        assert_eq!(Exit::of(WaitStatus::Exited(p, 3)), Some(Exit::Failed(3)));
        assert_eq!(
            Exit::of(WaitStatus::Exited(p, PANIC_EXIT)),
            Some(Exit::Panicked)
        );
        assert_eq!(
            Exit::of(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            Some(Exit::Stopped(Signal::SIGKILL))
        );
        assert_eq!(
            Exit::of(WaitStatus::Signaled(p, Signal::SIGSEGV, true)),
            Some(Exit::Crashed(Signal::SIGSEGV))
        );
        assert_eq!(Exit::of(WaitStatus::StillAlive), None);
        assert!(Exit::Stopped(Signal::SIGKILL).problem("w").is_none());
        assert_eq!(
            Exit::Crashed(Signal::SIGBUS).problem("writer 2").unwrap(),
            "writer 2 died of SIGBUS"
        );
    }

    #[test]
    fn a_forked_child_exits_with_its_body_code_and_a_panic_is_caught() {
        let pid = fork_child(&[], || 7).unwrap();
        assert_eq!(reap(pid), Some(Exit::Failed(7)));
        // The test binary is multi-threaded: in the child, a lock another thread held at the fork
        // is held forever — the panic hook's (another test failing at that moment), stderr's. So
        // the child unwinds without the hook (`resume_unwind` calls none) and prints nothing.
        let pid = fork_child(&[], || std::panic::resume_unwind(Box::new("in the child"))).unwrap();
        assert_eq!(reap(pid), Some(Exit::Panicked));
    }

    /// The `--shell` pipeline case: the leader dies at once, its grandchild holds on. Waiting for
    /// the leader alone returned while the grandchild still ran; `reap_group` returns only when no
    /// process of the group is left.
    ///
    /// In a process of its own (this test binary, running only the test below): a subreaper test
    /// process would collect every other test's orphans, and a forked child of this multi-threaded
    /// binary could wait forever on a lock another thread held at the fork.
    #[test]
    fn reaping_a_group_waits_for_grandchildren() {
        let o = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "process::tests::group_is_reaped_to_the_last_grandchild",
                "--ignored",
                "--test-threads",
                "1",
            ])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(said.contains("1 passed"), "{said}");
    }

    #[test]
    #[ignore = "run in a process of its own by reaping_a_group_waits_for_grandchildren"]
    fn group_is_reaped_to_the_last_grandchild() {
        become_subreaper();
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-ran");
        let script = format!(
            "(sleep 0.3; echo done > '{}') & sleep 0.05",
            marker.display()
        );
        let mut child = spawn_program(Command::new("sh").args(["-c", &script])).unwrap();
        let group = Pid::from_raw(child.id() as i32);
        let _ = child.wait();
        // The leader is gone; the grandchild is not.
        assert!(killpg(group, None).is_ok(), "grandchild should still run");
        kill_group(group);
        assert!(reap_group(group, Instant::now() + Duration::from_secs(5)));
        assert!(matches!(killpg(group, None), Err(Errno::ESRCH)));
        std::thread::sleep(Duration::from_millis(400));
        assert!(!marker.exists(), "the grandchild outlived the kill");
    }
}
