//! The recorder's process state: configuration, the fd table, the trial lock, the log, faults.

use std::cell::{Cell, UnsafeCell};
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU8, Ordering::*};
use std::sync::OnceLock;

use crate::format::{Enc, Tag};

pub const MAX_FD: usize = 65536;
pub const KIND_NONE: u8 = 0;
pub const KIND_FILE: u8 = 1;
pub const KIND_DIR: u8 = 2;
pub const KIND_RANDOM: u8 = 3;

pub static ACTIVE: AtomicBool = AtomicBool::new(false);
pub static ACK_FD: AtomicI32 = AtomicI32::new(-1);
/// The pid the state belongs to: a hook in another process (a `vfork` child sharing our memory, a
/// raw `clone`) passes straight through without touching the state.
pub static PID: AtomicU32 = AtomicU32::new(0);
pub static LOG_FD: AtomicI32 = AtomicI32::new(-1);
pub static LOCK_FD: AtomicI32 = AtomicI32::new(-1);
pub static SEEDED: AtomicBool = AtomicBool::new(false);
static FD_KIND: [AtomicU8; MAX_FD] = [const { AtomicU8::new(0) }; MAX_FD];

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// The folder, as canonical path and as given (absolute, normalised).
pub struct Roots {
    pub canonical: Vec<u8>,
    pub given: Vec<u8>,
    pub log_path: Vec<u8>,
    pub lock_path: Vec<u8>,
}

pub static ROOTS: OnceLock<Roots> = OnceLock::new();

pub use crate::faults::{FailAt as FailSpec, FailKind};

/// Per-fd bookkeeping (relative path and inode), guarded by the mutex.
#[derive(Clone, Default)]
pub struct FdInfo {
    pub path: Vec<u8>,
    pub ino: u64,
    pub dev: u64,
}

pub struct State {
    pub fds: Vec<Option<FdInfo>>,
    pub fail: Option<FailSpec>,
    pub crash_at: Option<u64>,
    /// Settings that did not parse: logged at the start so the lab sees them.
    pub bad_settings: Vec<String>,
    pub seed: Option<u64>,
    pub rng: u64,
    pub page: *mut u64,
    /// Mappings of folder files (start, length, file), for `msync`.
    pub maps: Vec<(usize, usize, FdInfo)>,
}

struct Global {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    state: UnsafeCell<Option<State>>,
}

unsafe impl Sync for Global {}

static GLOBAL: Global = Global {
    mutex: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER),
    state: UnsafeCell::new(None),
};

use crate::format::{
    SLOT_FAIL_COUNT as P_FAIL_COUNT, SLOT_FAIL_FIRED as P_FAIL_FIRED, SLOT_LOG_END as P_LOG_END,
    SLOT_PROC as P_PROC, SLOT_SEQ as P_SEQ,
};

/// Marks the thread as inside a hook for its lifetime.
pub struct HookGuard;

impl HookGuard {
    /// `None` when the recorder is inactive or this thread is already inside a hook.
    #[inline]
    pub fn enter() -> Option<HookGuard> {
        if !ACTIVE.load(Relaxed) {
            return None;
        }
        let already = IN_HOOK.try_with(|c| c.replace(true)).unwrap_or(true);
        if already {
            return None;
        }
        Some(HookGuard)
    }
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        let _ = IN_HOOK.try_with(|c| c.set(false));
    }
}

#[inline]
pub fn fd_kind(fd: c_int) -> u8 {
    if fd < 0 || fd as usize >= MAX_FD {
        return KIND_NONE;
    }
    FD_KIND[fd as usize].load(Relaxed)
}

pub fn set_fd_kind(fd: c_int, kind: u8) {
    if fd >= 0 && (fd as usize) < MAX_FD {
        FD_KIND[fd as usize].store(kind, Relaxed);
    }
}

pub fn our_fd(fd: c_int) -> bool {
    fd >= 0 && (fd == LOG_FD.load(Relaxed) || fd == LOCK_FD.load(Relaxed))
}

pub fn same_process() -> bool {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 == PID.load(Relaxed) }
}

pub fn errno() -> c_int {
    // SAFETY: errno location is thread-local and always valid.
    unsafe { *libc::__errno_location() }
}

pub fn set_errno(e: c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e }
}

pub fn tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// The trial lock, held: the process mutex and the `flock`; gives the state.
pub struct Locked {
    _not_send: std::marker::PhantomData<*mut ()>,
}

impl Locked {
    pub fn acquire() -> Locked {
        // SAFETY: the mutex is a static initialised with PTHREAD_MUTEX_INITIALIZER.
        unsafe {
            libc::pthread_mutex_lock(GLOBAL.mutex.get());
            let fd = LOCK_FD.load(Relaxed);
            while libc::flock(fd, libc::LOCK_EX) != 0 && errno() == libc::EINTR {}
        }
        Locked {
            _not_send: std::marker::PhantomData,
        }
    }

    #[allow(clippy::mut_from_ref)]
    pub fn state(&self) -> Option<&mut State> {
        // SAFETY: the mutex is held for the lifetime of `self`.
        unsafe { (*GLOBAL.state.get()).as_mut() }
    }

    fn page(&self) -> Option<*mut u64> {
        self.state().map(|s| s.page).filter(|p| !p.is_null())
    }

    fn slot(&self, i: usize) -> u64 {
        // SAFETY: the page is a 4096-byte shared mapping; i < 512; we hold the flock.
        self.page()
            .map(|p| unsafe { p.add(i).read_volatile() })
            .unwrap_or(0)
    }

    fn set_slot(&self, i: usize, v: u64) {
        if let Some(p) = self.page() {
            // SAFETY: as in `slot`.
            unsafe { p.add(i).write_volatile(v) }
        }
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.slot(P_SEQ) + 1
    }

    /// `TORTURE_FAULTFS_CRASH_AT`: when the next op is the crash point, logs `Crash` and SIGKILLs
    /// the process group. Never returns in that case.
    pub fn crash_check(&self) {
        let Some(at) = self.state().and_then(|s| s.crash_at) else {
            return;
        };
        if self.next_seq() >= at {
            let mut e = self.enc(Tag::Crash, 0, false);
            self.append(&mut e);
            // SAFETY: plain signal calls.
            unsafe {
                libc::kill(0, libc::SIGKILL);
                libc::raise(libc::SIGKILL);
            }
        }
    }

    /// `TORTURE_FAULTFS_FAIL_AT`: whether this op of `kind` is to fail, and with which errno.
    pub fn fail_check(&self, kind: FailKind) -> Option<c_int> {
        let spec = self.state().and_then(|s| s.fail)?;
        if spec.kind != FailKind::Any && spec.kind != kind {
            return None;
        }
        if spec.persist && self.slot(P_FAIL_FIRED) != 0 {
            return Some(spec.errno);
        }
        let count = self.slot(P_FAIL_COUNT) + 1;
        self.set_slot(P_FAIL_COUNT, count);
        if count == spec.n {
            self.set_slot(P_FAIL_FIRED, 1);
            return Some(spec.errno);
        }
        None
    }

    pub fn enc(&self, tag: Tag, errno: c_int, injected: bool) -> Enc {
        Enc::new(tag, 0, PID.load(Relaxed), tid(), errno, injected)
    }

    /// Appends one record: gives it the next sequence number, cuts off a torn record a SIGKILLed
    /// appender left, and writes it with one `write(2)`.
    pub fn append(&self, e: &mut Enc) {
        let fd = LOG_FD.load(Relaxed);
        if fd < 0 {
            return;
        }
        let end = self.slot(P_LOG_END);
        let size = file_size(fd);
        if size > end {
            // SAFETY: fd is our log.
            unsafe { libc::ftruncate(fd, end as libc::off_t) };
            let seq = self.next_seq();
            let mut r = self.enc(Tag::Repair, 0, false);
            r.u64(size - end);
            r.set_seq(seq);
            self.write_all(fd, r.finish());
            self.set_slot(P_SEQ, seq);
        }
        let seq = self.next_seq();
        e.set_seq(seq);
        self.write_all(fd, e.finish());
        self.set_slot(P_SEQ, seq);
    }

    fn write_all(&self, fd: c_int, mut b: &[u8]) {
        while !b.is_empty() {
            // SAFETY: b is a valid slice; fd is our log.
            let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                return;
            }
            b = &b[n as usize..];
            let end = self.slot(P_LOG_END) + n as u64;
            self.set_slot(P_LOG_END, end);
        }
    }

    pub fn fd_info(&self, fd: c_int) -> Option<FdInfo> {
        self.state()?.fds.get(fd as usize)?.clone()
    }

    pub fn track(&self, fd: c_int, kind: u8, info: FdInfo) {
        if fd < 0 || fd as usize >= MAX_FD {
            return;
        }
        if let Some(s) = self.state() {
            if s.fds.len() <= fd as usize {
                s.fds.resize(fd as usize + 1, None);
            }
            s.fds[fd as usize] = Some(info);
        }
        set_fd_kind(fd, kind);
    }

    pub fn untrack(&self, fd: c_int) {
        if let Some(s) = self.state() {
            if let Some(slot) = s.fds.get_mut(fd as usize) {
                *slot = None;
            }
        }
        set_fd_kind(fd, KIND_NONE);
    }

    /// The next bytes of this process's seeded random stream.
    pub fn fill_random(&self, buf: &mut [u8]) {
        if let Some(s) = self.state() {
            for chunk in buf.chunks_mut(8) {
                let v = splitmix(&mut s.rng).to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
    }

    /// Logs this process's start and draws its place in the order of starts.
    fn start(&self, forked: bool) {
        let index = self.slot(P_PROC);
        self.set_slot(P_PROC, index + 1);
        if let Some(s) = self.state() {
            if let Some(seed) = s.seed {
                s.rng = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                splitmix(&mut s.rng);
            }
        }
        let exe = std::fs::read_link("/proc/self/exe")
            .map(|p| p.into_os_string().into_encoded_bytes())
            .unwrap_or_default();
        let mut e = self.enc(Tag::Start, 0, false);
        // SAFETY: getppid has no preconditions.
        e.u32(unsafe { libc::getppid() } as u32)
            .u64(index)
            .u8(u8::from(forked))
            .bytes(&exe);
        self.append(&mut e);
        let bad = self
            .state()
            .map(|s| s.bad_settings.clone())
            .unwrap_or_default();
        for msg in bad {
            let mut e = self.enc(Tag::Unsupported, 0, false);
            e.file(-1, b"", 0).bytes(msg.as_bytes());
            self.append(&mut e);
        }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: we hold both.
        unsafe {
            libc::flock(LOCK_FD.load(Relaxed), libc::LOCK_UN);
            libc::pthread_mutex_unlock(GLOBAL.mutex.get());
        }
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn file_size(fd: c_int) -> u64 {
    fstat(fd).map(|s| s.st_size as u64).unwrap_or(0)
}

pub fn fstat(fd: c_int) -> Option<libc::stat> {
    // SAFETY: st is written by the kernel on success.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some(st)
    }
}

pub fn lstat_path(abs: &[u8]) -> Option<libc::stat> {
    let c = cstring(abs)?;
    // SAFETY: c is NUL-terminated; st written on success.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::lstat(c.as_ptr(), &mut st) == 0).then_some(st)
    }
}

pub fn cstring(b: &[u8]) -> Option<std::ffi::CString> {
    std::ffi::CString::new(b.to_vec()).ok()
}

/// Reads `len` bytes at `off` from `fd` (through `/proc/self/fd` when `fd` is write-only).
pub fn read_range(fd: c_int, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut got = 0usize;
    let mut rfd = fd;
    let mut opened = -1;
    while got < len {
        // SAFETY: buf has room for len bytes.
        let n = unsafe {
            libc::pread(
                rfd,
                buf[got..].as_mut_ptr().cast(),
                len - got,
                (off + got as u64) as libc::off_t,
            )
        };
        if n < 0 && errno() == libc::EBADF && opened < 0 {
            let p = format!("/proc/self/fd/{fd}\0");
            // SAFETY: p is NUL-terminated.
            opened = unsafe { libc::open(p.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if opened < 0 {
                break;
            }
            rfd = opened;
            continue;
        }
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    if opened >= 0 {
        // SAFETY: we opened it.
        unsafe { libc::close(opened) };
    }
    buf.truncate(got);
    buf
}

/// The whole content of the file at `abs`.
pub fn read_whole(abs: &[u8]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    std::fs::read(std::ffi::OsStr::from_bytes(abs)).unwrap_or_default()
}

/// Lexically normalises an absolute path (`.`, `..`, repeated slashes).
pub fn normalize(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in p.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            x => parts.push(x),
        }
    }
    let mut out = Vec::with_capacity(p.len());
    for part in parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn readlink(p: &[u8]) -> Option<Vec<u8>> {
    let c = cstring(p)?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf has room for 4096 bytes.
    let n = unsafe { libc::readlink(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// The absolute, normalised form of `path` as `openat(dirfd, path)` would see it.
pub fn resolve(dirfd: c_int, path: *const c_char) -> Option<Vec<u8>> {
    if path.is_null() {
        return None;
    }
    // SAFETY: a non-null path argument is a NUL-terminated string.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    if p.first() == Some(&b'/') {
        return Some(normalize(p));
    }
    let mut base = if dirfd == libc::AT_FDCWD {
        std::env::current_dir()
            .ok()?
            .into_os_string()
            .into_encoded_bytes()
    } else {
        readlink(format!("/proc/self/fd/{dirfd}").as_bytes())?
    };
    base.push(b'/');
    base.extend_from_slice(p);
    Some(normalize(&base))
}

/// The path relative to the folder, if `abs` is the folder or inside it.
pub fn relative(abs: &[u8]) -> Option<Vec<u8>> {
    let roots = ROOTS.get()?;
    for root in [&roots.canonical, &roots.given] {
        if abs == root.as_slice() {
            return Some(Vec::new());
        }
        if abs.len() > root.len() && abs.starts_with(root) && abs[root.len()] == b'/' {
            return Some(abs[root.len() + 1..].to_vec());
        }
    }
    None
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn open_high(path: &[u8], flags: c_int) -> c_int {
    let Some(c) = cstring(path) else { return -1 };
    // SAFETY: c is NUL-terminated.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return fd;
    }
    // Keep our descriptors out of the low numbers programs reuse and `dup2` onto.
    // SAFETY: fd is ours.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 700) };
    if high >= 0 {
        unsafe { libc::close(fd) };
        high
    } else {
        fd
    }
}

/// Opens the log and the lock file (and maps the counters page) for this process.
fn open_files(roots: &Roots) -> Option<*mut u64> {
    let log = open_high(
        &roots.log_path,
        libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT,
    );
    let lock = open_high(&roots.lock_path, libc::O_RDWR | libc::O_CREAT);
    if log < 0 || lock < 0 {
        return None;
    }
    LOG_FD.store(log, Relaxed);
    LOCK_FD.store(lock, Relaxed);
    // SAFETY: plain calls on our own descriptors; the mapping is 4096 bytes of a file at least
    // that long.
    unsafe {
        while libc::flock(lock, libc::LOCK_EX) != 0 && errno() == libc::EINTR {}
        let fresh = file_size(lock) < 4096;
        if fresh && libc::ftruncate(lock, 4096) != 0 {
            libc::flock(lock, libc::LOCK_UN);
            return None;
        }
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            lock,
            0,
        );
        if p == libc::MAP_FAILED {
            libc::flock(lock, libc::LOCK_UN);
            return None;
        }
        let page = p as *mut u64;
        if fresh {
            page.add(P_LOG_END).write_volatile(file_size(log));
        }
        libc::flock(lock, libc::LOCK_UN);
        Some(page)
    }
}

/// The constructor: reads the environment; when both variables are set, opens the log, re-learns
/// inherited descriptors of the folder, registers the fork handlers and logs the process start.
pub fn init_from_env() {
    let _ = init(&env);
}

/// Starts recording in this process with settings given by environment-variable name (for a
/// process the lab forks without exec: its built-in writers). Call it in the child right after the
/// fork, while it is single-threaded, before it opens the database. Bad settings are an error.
pub fn start_recording(settings: &[(&str, &str)]) -> Result<(), String> {
    let get = |name: &str| {
        settings
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(v) = get("TORTURE_FAULTFS_SEED") {
        crate::faults::parse_seed(&v)?;
    }
    if let Some(v) = get("TORTURE_FAULTFS_FAIL_AT") {
        v.parse::<FailSpec>()?;
    }
    if let Some(v) = get("TORTURE_FAULTFS_CRASH_AT") {
        crate::faults::parse_crash_at(&v)?;
    }
    if let Some(v) = get("TORTURE_FAULTFS_ACKFD") {
        v.parse::<i32>()
            .map_err(|_| format!("TORTURE_FAULTFS_ACKFD={v:?}: give a file descriptor number"))?;
    }
    init(&get)
}

fn init(env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    if ACTIVE.load(Relaxed) || ROOTS.get().is_some() {
        return Err("the recorder is already active in this process".into());
    }
    let (Some(dir), Some(log)) = (env("TORTURE_FAULTFS_DIR"), env("TORTURE_FAULTFS_LOG")) else {
        return Err("give TORTURE_FAULTFS_DIR and TORTURE_FAULTFS_LOG".into());
    };
    let cwd = std::env::current_dir()
        .map(|p| p.into_os_string().into_encoded_bytes())
        .unwrap_or_else(|_| b"/".to_vec());
    let absolute = |p: &str| {
        let b = p.as_bytes();
        if b.first() == Some(&b'/') {
            normalize(b)
        } else {
            let mut x = cwd.clone();
            x.push(b'/');
            x.extend_from_slice(b);
            normalize(&x)
        }
    };
    let given = absolute(&dir);
    let canonical = std::fs::canonicalize(&dir)
        .map(|p| p.into_os_string().into_encoded_bytes())
        .unwrap_or_else(|_| given.clone());
    let log_path = absolute(&log);
    let mut lock_path = log_path.clone();
    lock_path.extend_from_slice(b".lock");
    let roots = Roots {
        canonical,
        given,
        log_path,
        lock_path,
    };
    let Some(page) = open_files(&roots) else {
        return Err(format!(
            "cannot open the log {} or its lock file: {}",
            String::from_utf8_lossy(&roots.log_path),
            std::io::Error::last_os_error()
        ));
    };
    if ROOTS.set(roots).is_err() {
        return Err("the recorder is already active in this process".into());
    }
    // SAFETY: getpid has no preconditions.
    PID.store(unsafe { libc::getpid() } as u32, Relaxed);
    if let Some(fd) = env("TORTURE_FAULTFS_ACKFD").and_then(|v| v.parse::<i32>().ok()) {
        ACK_FD.store(fd, Relaxed);
    }
    let mut bad_settings = Vec::new();
    let mut setting = |name: &str, parse: &dyn Fn(&str) -> Result<(), String>| {
        if let Some(v) = env(name) {
            if let Err(e) = parse(&v) {
                bad_settings.push(e);
            }
        }
    };
    setting("TORTURE_FAULTFS_SEED", &|v| {
        crate::faults::parse_seed(v).map(drop)
    });
    setting("TORTURE_FAULTFS_FAIL_AT", &|v| {
        v.parse::<FailSpec>().map(drop)
    });
    setting("TORTURE_FAULTFS_CRASH_AT", &|v| {
        crate::faults::parse_crash_at(v).map(drop)
    });
    let seed = env("TORTURE_FAULTFS_SEED").and_then(|v| crate::faults::parse_seed(&v).ok());
    SEEDED.store(seed.is_some(), Relaxed);
    let state = State {
        fds: Vec::new(),
        fail: env("TORTURE_FAULTFS_FAIL_AT").and_then(|v| v.parse().ok()),
        crash_at: env("TORTURE_FAULTFS_CRASH_AT")
            .and_then(|v| crate::faults::parse_crash_at(&v).ok()),
        bad_settings,
        seed,
        rng: 0,
        page,
        maps: Vec::new(),
    };
    // SAFETY: no hook is active yet (ACTIVE is false), so nothing else reads the state.
    unsafe { *GLOBAL.state.get() = Some(state) };
    let locked = Locked::acquire();
    relearn_fds(&locked);
    locked.start(false);
    drop(locked);
    // SAFETY: the handlers are plain extern "C" functions.
    unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_parent),
            Some(after_fork_child),
        )
    };
    ACTIVE.store(true, SeqCst);
    Ok(())
}

/// Descriptors of the folder inherited across `exec` (or open before the constructor ran).
fn relearn_fds(locked: &Locked) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<c_int> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if our_fd(fd) {
            continue;
        }
        let Some(target) = readlink(format!("/proc/self/fd/{fd}").as_bytes()) else {
            continue;
        };
        if SEEDED.load(Relaxed) && (target == b"/dev/urandom" || target == b"/dev/random") {
            set_fd_kind(fd, KIND_RANDOM);
            continue;
        }
        let Some(rel) = relative(&target) else {
            continue;
        };
        let Some(st) = fstat(fd) else { continue };
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => KIND_FILE,
            libc::S_IFDIR => KIND_DIR,
            _ => continue,
        };
        locked.track(
            fd,
            kind,
            FdInfo {
                path: rel,
                ino: st.st_ino,
                dev: st.st_dev,
            },
        );
    }
}

extern "C" fn before_fork() {
    if ACTIVE.load(Relaxed) {
        // SAFETY: the static mutex; released in one of the two handlers below.
        unsafe { libc::pthread_mutex_lock(GLOBAL.mutex.get()) };
    }
}

extern "C" fn after_fork_parent() {
    if ACTIVE.load(Relaxed) {
        // SAFETY: locked in before_fork.
        unsafe { libc::pthread_mutex_unlock(GLOBAL.mutex.get()) };
    }
}

/// In the child: its own open file descriptions for the log and the lock (a `flock` is per open
/// file description, so sharing the parent's would let both hold it), a new place in the order of
/// starts, a new random stream.
extern "C" fn after_fork_child() {
    if !ACTIVE.load(Relaxed) {
        return;
    }
    let _guard = IN_HOOK.try_with(|c| c.replace(true));
    // SAFETY: getpid has no preconditions; the mutex was locked in before_fork.
    unsafe {
        PID.store(libc::getpid() as u32, Relaxed);
        libc::close(LOG_FD.load(Relaxed));
        libc::close(LOCK_FD.load(Relaxed));
        LOG_FD.store(-1, Relaxed);
        LOCK_FD.store(-1, Relaxed);
    }
    if let Some(roots) = ROOTS.get() {
        let log = open_high(
            &roots.log_path,
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT,
        );
        let lock = open_high(&roots.lock_path, libc::O_RDWR | libc::O_CREAT);
        LOG_FD.store(log, Relaxed);
        LOCK_FD.store(lock, Relaxed);
    }
    // SAFETY: locked in before_fork by this (the forking) thread.
    unsafe { libc::pthread_mutex_unlock(GLOBAL.mutex.get()) };
    if LOCK_FD.load(Relaxed) < 0 || LOG_FD.load(Relaxed) < 0 {
        ACTIVE.store(false, Relaxed);
    } else {
        let locked = Locked::acquire();
        locked.start(true);
    }
    let _ = IN_HOOK.try_with(|c| c.set(false));
}

/// Moves one of our descriptors out of the way of a `dup2` onto its number.
pub fn relocate_if_ours(newfd: c_int) {
    for slot in [&LOG_FD, &LOCK_FD] {
        let fd = slot.load(Relaxed);
        if fd >= 0 && fd == newfd {
            // SAFETY: fd is ours.
            let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 700) };
            if moved >= 0 {
                slot.store(moved, Relaxed);
            }
        }
    }
}
