//! The kill delay, counted in the writer's own CPU time.
//!
//! A trial's kill point is "after K acknowledged commits, then D µs". Counted on the wall clock by
//! the slot, D says nothing about where the writer is when the SIGKILL lands: when the CPU is
//! shared, the writer may not run at all during D and dies exactly between two transactions
//! (measured, four runs at once: 1 of 2,400 `off-off`/`memory-off` trials damaged with D on the
//! wall clock, 188 with the default D counted here). So the writer whose ack is the K-th counts D itself, in the CPU time of its process (user
//! and system, all threads), and tells the slot `due` when D is used up. The slot, which preempts
//! it (the writer yields; a real-time slot preempts at once), then sends the SIGKILL. The kill
//! lands at a point of the writer's own execution that does not depend on machine load.
//!
//! The count uses a one-shot wall-clock timer (microsecond resolution; CPU-time timers only fire
//! on scheduler ticks) whose signal handler re-arms it for whatever CPU time is still missing. The
//! handler only calls async-signal-safe functions.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// The signal the timer raises in the writer.
const SIGNAL: libc::c_int = libc::SIGUSR2;

static FD: AtomicI32 = AtomicI32::new(-1);
static WRITER: AtomicU32 = AtomicU32::new(0);
static START_NS: AtomicU64 = AtomicU64::new(0);
static DELAY_NS: AtomicU64 = AtomicU64::new(0);
static TIMER: AtomicUsize = AtomicUsize::new(0);
static WALL_START_NS: AtomicU64 = AtomicU64::new(0);
static WALL_CAP_NS: AtomicU64 = AtomicU64::new(0);

/// Starts counting `delay` of this process's CPU time; when it is used up, `due <writer>` is
/// written to `fd` (the trial's ack pipe) and the writer yields the CPU to its slot. Called once,
/// by the writer whose acknowledgement reached the kill threshold. If the timer cannot be set up,
/// the kill point is due at once. `wall_cap` (zero: none) makes it due once that much wall time has
/// passed even if the CPU time has not: a scenario's process that acks and then waits (a parent
/// that sleeps while its forked child writes) would otherwise never use up its delay.
///
/// The timer signals the calling thread only, so the other threads of a pool keep their sleeps
/// (a busy handler's) uninterrupted.
pub fn arm(delay: Duration, fd: RawFd, writer: u32, wall_cap: Duration) {
    FD.store(fd, Ordering::SeqCst);
    WRITER.store(writer, Ordering::SeqCst);
    WALL_START_NS.store(wall_ns(), Ordering::SeqCst);
    WALL_CAP_NS.store(
        wall_cap.as_nanos().min(u128::from(u64::MAX)) as u64,
        Ordering::SeqCst,
    );
    let delay_ns = delay.as_nanos().min(u128::from(u64::MAX)) as u64;
    if delay_ns == 0 || !start_timer(delay_ns) {
        send_due();
    }
}

/// The monotonic clock, in nanoseconds; async-signal-safe.
fn wall_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack; async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of the whole process, in nanoseconds.
fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack; async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn start_timer(delay_ns: u64) -> bool {
    // SAFETY: a handler that only uses async-signal-safe calls; a zeroed sigaction and sigevent
    // are valid starting values; the timer id is stored for the handler before the timer runs.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_timer as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(SIGNAL, &sa, std::ptr::null_mut()) != 0 {
            return false;
        }
        let mut ev: libc::sigevent = std::mem::zeroed();
        ev.sigev_notify = libc::SIGEV_THREAD_ID;
        ev.sigev_signo = SIGNAL;
        ev.sigev_notify_thread_id = libc::gettid();
        let mut timer: libc::timer_t = std::ptr::null_mut();
        if libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut timer) != 0 {
            return false;
        }
        TIMER.store(timer as usize, Ordering::SeqCst);
        DELAY_NS.store(delay_ns, Ordering::SeqCst);
        START_NS.store(process_cpu_ns(), Ordering::SeqCst);
        set_timer(delay_ns)
    }
}

/// Arms the one-shot timer `ns` nanoseconds of wall time from now.
fn set_timer(ns: u64) -> bool {
    let ns = ns.max(1_000);
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        },
    };
    let timer = TIMER.load(Ordering::SeqCst) as libc::timer_t;
    // SAFETY: `timer` came from timer_create in this process; async-signal-safe.
    unsafe { libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()) == 0 }
}

extern "C" fn on_timer(_: libc::c_int) {
    // The interrupted code (SQLite between a syscall and its errno check) must find errno as it was.
    // SAFETY: __errno_location returns this thread's errno slot.
    let saved_errno = unsafe { *libc::__errno_location() };
    let used = process_cpu_ns().saturating_sub(START_NS.load(Ordering::SeqCst));
    let delay = DELAY_NS.load(Ordering::SeqCst);
    let cap = WALL_CAP_NS.load(Ordering::SeqCst);
    let waited = wall_ns().saturating_sub(WALL_START_NS.load(Ordering::SeqCst));
    // The wall time passed, but the writer may not have run for all of it: wait for the rest.
    if used >= delay || (cap > 0 && waited >= cap) || !set_timer(delay - used) {
        send_due();
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Writes `due <writer>\n` with one write(2) and no allocation, then yields so the slot, woken on
/// this CPU, can kill the writer right here.
fn send_due() {
    let mut buf = [0u8; 24];
    buf[..4].copy_from_slice(b"due ");
    let mut len = 4;
    let mut digits = [0u8; 10];
    let mut n = WRITER.load(Ordering::SeqCst);
    let mut d = 0;
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[len] = digits[d];
        len += 1;
    }
    buf[len] = b'\n';
    len += 1;
    // SAFETY: write and sched_yield are plain syscalls; `buf` lives on this stack.
    unsafe {
        let _ = libc::write(FD.load(Ordering::SeqCst), buf.as_ptr().cast(), len);
        libc::sched_yield();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Instant;

    /// Runs `body` in a forked child with a pipe as the writer's fd and returns what the child
    /// wrote and the wall time until it wrote it (or the timeout).
    fn in_child(body: fn(RawFd), timeout: Duration) -> (String, Duration) {
        // Non-blocking: after the timeout, an empty pipe reads as nothing said.
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let started = Instant::now();
        // SAFETY: the test child only runs `body` and exits; it touches no lock of the parent.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                drop(r);
                body(w.as_raw_fd());
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let mut fds = [nix::poll::PollFd::new(
                    std::os::fd::AsFd::as_fd(&r),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(
                    &mut fds,
                    nix::poll::PollTimeout::try_from(timeout.as_millis() as u32).unwrap(),
                );
                let waited = started.elapsed();
                let mut buf = [0u8; 64];
                let n = nix::unistd::read(&r, &mut buf).unwrap_or(0);
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                (String::from_utf8_lossy(&buf[..n]).into_owned(), waited)
            }
        }
    }

    #[test]
    fn the_delay_is_due_once_the_writer_has_used_it() {
        let (msg, waited) = in_child(
            |fd| {
                arm(Duration::from_millis(5), fd, 37, Duration::ZERO);
                let started = process_cpu_ns();
                // Burn CPU well past the delay; the handler fires in between.
                while process_cpu_ns() - started < 200_000_000 {
                    std::hint::black_box(0u64);
                }
            },
            Duration::from_secs(5),
        );
        assert_eq!(msg, "due 37\n");
        assert!(waited >= Duration::from_millis(5), "{waited:?}");
    }

    #[test]
    fn a_writer_that_does_not_run_is_not_due() {
        // Sleeping uses no CPU time: 50 ms of wall time must not count as 5 ms of delay.
        let (msg, waited) = in_child(
            |fd| {
                arm(Duration::from_millis(5), fd, 1, Duration::ZERO);
                std::thread::sleep(Duration::from_secs(2));
            },
            Duration::from_millis(50),
        );
        assert_eq!(msg, "", "due after {waited:?} of sleep");
    }

    #[test]
    fn an_idle_writer_is_due_once_the_wall_cap_has_passed() {
        let (msg, waited) = in_child(
            |fd| {
                arm(Duration::from_millis(5), fd, 3, Duration::from_millis(30));
                std::thread::sleep(Duration::from_secs(2));
            },
            Duration::from_secs(2),
        );
        assert_eq!(msg, "due 3\n");
        assert!(
            waited >= Duration::from_millis(30) && waited < Duration::from_secs(1),
            "{waited:?}"
        );
    }

    #[test]
    fn a_zero_delay_is_due_at_once() {
        let (msg, _) = in_child(
            |fd| arm(Duration::ZERO, fd, 0, Duration::ZERO),
            Duration::from_secs(5),
        );
        assert_eq!(msg, "due 0\n");
    }
}
