//! The "torture" VFS: a thin shim over SQLite's own unix VFS that counts every durable-state I/O
//! operation of a writer process, can SIGKILL the process just before the N-th one or fail it with
//! an I/O error. Power cuts and every op-indexed fault of a trial are the recorder's
//! (`faults/recorded.rs`, `preload/`); the shim stays only where a crash must land on one of
//! SQLite's own VFS calls (`--crash-recovery`, the `checkpoint` and `recovery` scenarios).
//!
//! Everything else (locking, shared memory, mmap) is the real unix VFS, called with its own
//! `sqlite3_vfs*` and its own `sqlite3_file`, which lives right after this shim's header in the
//! allocation SQLite makes for us (`szOsFile` = header + real `szOsFile`).
//!
//! Counted operations, one process-wide sequence: `xWrite`, `xTruncate`, `xSync`, `xDelete` and
//! creating `xOpen` of a database, journal, WAL or super-journal. Each is counted, checked and
//! performed under one process-wide lock: op index and kernel order agree across threads, and a
//! crash point stops them all. No deadlock: the unix VFS never calls back into the
//! shim, and its own short mutexes are never held by a thread waiting for ours.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use rusqlite::ffi;

use super::config::{FaultConfig, FileKind, OpFilter, OpKind};

/// The name connections use to open a database through the shim.
pub const VFS_NAME: &str = "torture";
const VFS_NAME_C: &CStr = c"torture";

/// Registers the shim (once per process; later calls return the same answer) and returns its name
/// for `Connection::open_with_flags_and_vfs`. Registering in the slot before the fork is fine.
pub fn register() -> Result<&'static str, String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: called once; everything handed to SQLite is leaked and lives forever.
            unsafe { register_once() }
        })
        .clone()
        .map(|()| VFS_NAME)
}

/// Sets this process's fault configuration and resets its operation counters. Call it in the writer
/// child after the fork, before any connection is opened on the shim. Registers the shim if that
/// was not done yet.
pub fn configure(config: FaultConfig) -> std::io::Result<()> {
    register().map_err(std::io::Error::other)?;
    let seed = config.sqlite_prng_seed.unwrap_or(0);
    let mut state = lock_state();
    *state = State::INITIAL;
    state.config = config;
    drop(state);
    // 0 reverts to the VFS's randomness.
    super::recorded::seed_sqlite_prng(seed);
    Ok(())
}

/// How many counted operations this process has made since [`configure`] (or since it started).
/// Run a workload uncrashed and read this to know the range of useful crash points.
pub fn ops_so_far() -> u64 {
    lock_state().ops
}

/// How many counted operations matching `filter` this process has made since [`configure`] (the
/// shim's own tests: which files SQLite really used).
pub fn ops_matching_so_far(filter: OpFilter) -> u64 {
    let state = lock_state();
    let mut n = 0;
    for op in OpKind::ALL {
        for file in COUNTED_FILES {
            if filter.matches(op, file) {
                n += state.counts[op_slot(op)][file_slot(file)];
            }
        }
    }
    n
}

const COUNTED_FILES: [FileKind; 4] = [
    FileKind::MainDb,
    FileKind::MainJournal,
    FileKind::Wal,
    FileKind::SuperJournal,
];

fn op_slot(op: OpKind) -> usize {
    match op {
        OpKind::Open => 0,
        OpKind::Write => 1,
        OpKind::Truncate => 2,
        OpKind::Sync => 3,
        OpKind::Delete => 4,
    }
}

fn file_slot(file: FileKind) -> usize {
    match file {
        FileKind::MainDb => 0,
        FileKind::MainJournal => 1,
        FileKind::Wal => 2,
        FileKind::SuperJournal => 3,
        FileKind::Other => 4,
    }
}

/// The process-wide fault state. Also the lock that serialises counted operations.
struct State {
    config: FaultConfig,
    ops: u64,
    counts: [[u64; 5]; 5],
    crash_matches: u64,
}

impl State {
    const INITIAL: State = State {
        config: FaultConfig {
            crash_at: None,
            sqlite_prng_seed: None,
        },
        ops: 0,
        counts: [[0; 5]; 5],
        crash_matches: 0,
    };

    /// Counts one operation and returns its index, or the error code to return instead of
    /// performing it. Does not return at the crash point.
    fn admit(&mut self, op: OpKind, file: FileKind) -> Result<u64, c_int> {
        self.ops += 1;
        self.counts[op_slot(op)][file_slot(file)] += 1;
        if let Some(crash) = self.config.crash_at {
            if crash.filter.matches(op, file) {
                self.crash_matches += 1;
                if self.crash_matches == crash.op {
                    crash_now();
                }
            }
        }
        Ok(self.ops)
    }
}

fn lock_state() -> MutexGuard<'static, State> {
    static STATE: Mutex<State> = Mutex::new(State::INITIAL);
    // A panic cannot unwind out of the extern "C" callbacks (it aborts), so poison only means a
    // test thread panicked while holding the lock; the state itself is still consistent.
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn crash_now() -> ! {
    // SAFETY: kill and pause take no pointers. SIGKILL cannot be caught or blocked, and a signal a
    // process sends itself is delivered before kill() returns; pause() only covers the impossible.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
        loop {
            libc::pause();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file object.

/// Our part of the `sqlite3_file` allocation; the real unix file follows at `HEADER_SIZE`.
#[repr(C)]
struct ShimFile {
    /// Must be first: SQLite sees this allocation as a `sqlite3_file`.
    base: ffi::sqlite3_file,
    kind: FileKind,
}

const HEADER_SIZE: usize = std::mem::size_of::<ShimFile>().next_multiple_of(8);

/// The real unix file inside our allocation.
///
/// # Safety
/// `file` must be an allocation of our `szOsFile` bytes handed to us by SQLite.
unsafe fn real_file(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    file.cast::<u8>().add(HEADER_SIZE).cast()
}

/// # Safety
/// As for [`real_file`], and the header must have been initialised by `x_open`.
unsafe fn shim<'a>(file: *mut ffi::sqlite3_file) -> &'a mut ShimFile {
    &mut *file.cast::<ShimFile>()
}

/// # Safety
/// `path` must be null or a valid NUL-terminated string.
unsafe fn path_bytes<'a>(path: *const c_char) -> &'a [u8] {
    if path.is_null() {
        b""
    } else {
        CStr::from_ptr(path).to_bytes()
    }
}

/// Calls method `$m` of the real file behind `$file`; `$missing` if the real file lacks it.
macro_rules! real_io {
    ($file:expr, $m:ident, $missing:expr $(, $arg:expr)*) => {{
        let real = real_file($file);
        match (*(*real).pMethods).$m {
            Some(f) => f(real $(, $arg)*),
            None => $missing,
        }
    }};
}

/// Calls method `$m` of the real VFS behind our `$vfs`.
macro_rules! real_vfs {
    ($vfs:expr, $m:ident, $missing:expr $(, $arg:expr)*) => {{
        let real = (*$vfs).pAppData.cast::<ffi::sqlite3_vfs>();
        match (*real).$m {
            Some(f) => f(real $(, $arg)*),
            None => $missing,
        }
    }};
}

// The two method tables: the real unix VFS gives shared memory only to main database files (journals
// and WALs use its no-lock methods), and SQLite decides whether WAL is possible from xShmMap.
static IO_METHODS: ffi::sqlite3_io_methods = methods(true);
static IO_METHODS_NO_SHM: ffi::sqlite3_io_methods = methods(false);

const fn methods(shm: bool) -> ffi::sqlite3_io_methods {
    ffi::sqlite3_io_methods {
        iVersion: 3,
        xClose: Some(x_close),
        xRead: Some(x_read),
        xWrite: Some(x_write),
        xTruncate: Some(x_truncate),
        xSync: Some(x_sync),
        xFileSize: Some(x_file_size),
        xLock: Some(x_lock),
        xUnlock: Some(x_unlock),
        xCheckReservedLock: Some(x_check_reserved_lock),
        xFileControl: Some(x_file_control),
        xSectorSize: Some(x_sector_size),
        xDeviceCharacteristics: Some(x_device_characteristics),
        xShmMap: if shm { Some(x_shm_map) } else { None },
        xShmLock: Some(x_shm_lock),
        xShmBarrier: Some(x_shm_barrier),
        xShmUnmap: Some(x_shm_unmap),
        xFetch: Some(x_fetch),
        xUnfetch: Some(x_unfetch),
    }
}

// SAFETY (all methods below): SQLite calls them only on files our x_open initialised and left with
// non-null pMethods, so the header is valid and the real file behind it is open with non-null
// pMethods. Pointer arguments are SQLite's, passed through unchanged.

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    real_io!(file, xClose, ffi::SQLITE_OK)
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    real_io!(file, xRead, ffi::SQLITE_IOERR_READ, buf, amount, offset)
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let sh = shim(file);
    if !sh.kind.is_counted() {
        return real_io!(file, xWrite, ffi::SQLITE_IOERR_WRITE, buf, amount, offset);
    }
    let mut state = lock_state();
    if let Err(rc) = state.admit(OpKind::Write, sh.kind) {
        return rc;
    }
    real_io!(file, xWrite, ffi::SQLITE_IOERR_WRITE, buf, amount, offset)
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    let sh = shim(file);
    if !sh.kind.is_counted() {
        return real_io!(file, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size);
    }
    let mut state = lock_state();
    if let Err(rc) = state.admit(OpKind::Truncate, sh.kind) {
        return rc;
    }
    real_io!(file, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let sh = shim(file);
    if !sh.kind.is_counted() {
        return real_io!(file, xSync, ffi::SQLITE_IOERR_FSYNC, flags);
    }
    let mut state = lock_state();
    if let Err(rc) = state.admit(OpKind::Sync, sh.kind) {
        return rc;
    }
    real_io!(file, xSync, ffi::SQLITE_IOERR_FSYNC, flags)
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    real_io!(file, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    real_io!(file, xLock, ffi::SQLITE_IOERR_LOCK, level)
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    real_io!(file, xUnlock, ffi::SQLITE_IOERR_UNLOCK, level)
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    real_io!(
        file,
        xCheckReservedLock,
        ffi::SQLITE_IOERR_CHECKRESERVEDLOCK,
        out
    )
}

unsafe extern "C" fn x_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    real_io!(file, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
}

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    real_io!(file, xSectorSize, 4096)
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    real_io!(file, xDeviceCharacteristics, 0)
}

unsafe extern "C" fn x_shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    real_io!(
        file,
        xShmMap,
        ffi::SQLITE_IOERR_SHMMAP,
        region,
        size,
        extend,
        out
    )
}

unsafe extern "C" fn x_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    real_io!(file, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset, n, flags)
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    real_io!(file, xShmBarrier, ())
}

unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    real_io!(file, xShmUnmap, ffi::SQLITE_OK, delete)
}

unsafe extern "C" fn x_fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // Without xFetch the answer is "no mapping": SQLite falls back to xRead.
    real_io!(
        file,
        xFetch,
        {
            *out = ptr::null_mut();
            ffi::SQLITE_OK
        },
        offset,
        amount,
        out
    )
}

unsafe extern "C" fn x_unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    real_io!(file, xUnfetch, ffi::SQLITE_OK, offset, page)
}

// ---------------------------------------------------------------------------------------------
// The VFS object.

unsafe fn register_once() -> Result<(), String> {
    let real = ffi::sqlite3_vfs_find(c"unix".as_ptr());
    if real.is_null() {
        return Err("SQLite has no \"unix\" VFS to wrap".into());
    }
    let real_size = usize::try_from((*real).szOsFile).map_err(|e| e.to_string())?;
    let vfs = Box::new(ffi::sqlite3_vfs {
        iVersion: 3,
        szOsFile: c_int::try_from(HEADER_SIZE + real_size).map_err(|e| e.to_string())?,
        mxPathname: (*real).mxPathname,
        pNext: ptr::null_mut(),
        zName: VFS_NAME_C.as_ptr(),
        pAppData: real.cast(),
        xOpen: Some(v_open),
        xDelete: Some(v_delete),
        xAccess: Some(v_access),
        xFullPathname: Some(v_full_pathname),
        xDlOpen: Some(v_dl_open),
        xDlError: Some(v_dl_error),
        xDlSym: Some(v_dl_sym),
        xDlClose: Some(v_dl_close),
        xRandomness: Some(v_randomness),
        xSleep: Some(v_sleep),
        xCurrentTime: Some(v_current_time),
        xGetLastError: Some(v_get_last_error),
        xCurrentTimeInt64: Some(v_current_time_int64),
        xSetSystemCall: Some(v_set_system_call),
        xGetSystemCall: Some(v_get_system_call),
        xNextSystemCall: Some(v_next_system_call),
    });
    // Leaked on purpose: SQLite keeps the pointer for the life of the process.
    let vfs = Box::into_raw(vfs);
    let rc = ffi::sqlite3_vfs_register(vfs, 0);
    if rc != ffi::SQLITE_OK {
        drop(Box::from_raw(vfs));
        return Err(format!("sqlite3_vfs_register failed with code {rc}"));
    }
    Ok(())
}

// SAFETY (all VFS methods below): SQLite calls them with our registered vfs, whose pAppData is the
// real unix VFS; every other argument is passed through unchanged.

unsafe extern "C" fn v_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let kind = FileKind::from_open_flags(flags);
    let creates = flags & ffi::SQLITE_OPEN_CREATE != 0;
    // SQLite does not zero the allocation. pMethods must be null unless xClose is to be called.
    file.cast::<ShimFile>().write(ShimFile {
        base: ffi::sqlite3_file {
            pMethods: ptr::null(),
        },
        kind,
    });
    let open_real = || {
        let real = real_file(file);
        (*real).pMethods = ptr::null();
        let rc = real_vfs!(
            vfs,
            xOpen,
            ffi::SQLITE_CANTOPEN,
            name,
            real,
            flags,
            out_flags
        );
        // Even a failed open may leave the real file needing xClose: mirror it exactly.
        if !(*real).pMethods.is_null() {
            let with_shm =
                (*(*real).pMethods).iVersion >= 2 && (*(*real).pMethods).xShmMap.is_some();
            (*file).pMethods = if with_shm {
                &IO_METHODS
            } else {
                &IO_METHODS_NO_SHM
            };
        }
        rc
    };
    if !(creates && kind.is_counted() && !name.is_null()) {
        return open_real();
    }
    let mut state = lock_state();
    if let Err(rc) = state.admit(OpKind::Open, kind) {
        return rc;
    }
    open_real()
}

unsafe extern "C" fn v_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    let path = path_bytes(name);
    let kind = FileKind::from_deleted_name(&String::from_utf8_lossy(path));
    if !kind.is_counted() {
        return real_vfs!(vfs, xDelete, ffi::SQLITE_IOERR_DELETE, name, sync_dir);
    }
    let mut state = lock_state();
    if let Err(rc) = state.admit(OpKind::Delete, kind) {
        return rc;
    }
    real_vfs!(vfs, xDelete, ffi::SQLITE_IOERR_DELETE, name, sync_dir)
}

unsafe extern "C" fn v_access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    real_vfs!(vfs, xAccess, ffi::SQLITE_IOERR_ACCESS, name, flags, out)
}

unsafe extern "C" fn v_full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    real_vfs!(vfs, xFullPathname, ffi::SQLITE_CANTOPEN, name, n_out, out)
}

unsafe extern "C" fn v_dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    real_vfs!(vfs, xDlOpen, ptr::null_mut(), name)
}

unsafe extern "C" fn v_dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    real_vfs!(vfs, xDlError, (), n, out)
}

type DlSym = Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)>;

unsafe extern "C" fn v_dl_sym(
    vfs: *mut ffi::sqlite3_vfs,
    handle: *mut c_void,
    symbol: *const c_char,
) -> DlSym {
    real_vfs!(vfs, xDlSym, None, handle, symbol)
}

unsafe extern "C" fn v_dl_close(vfs: *mut ffi::sqlite3_vfs, handle: *mut c_void) {
    real_vfs!(vfs, xDlClose, (), handle)
}

unsafe extern "C" fn v_randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    real_vfs!(vfs, xRandomness, 0, n, out)
}

unsafe extern "C" fn v_sleep(vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    real_vfs!(vfs, xSleep, 0, micros)
}

unsafe extern "C" fn v_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    real_vfs!(vfs, xCurrentTime, ffi::SQLITE_ERROR, out)
}

unsafe extern "C" fn v_get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    real_vfs!(vfs, xGetLastError, 0, n, out)
}

unsafe extern "C" fn v_current_time_int64(
    vfs: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    real_vfs!(vfs, xCurrentTimeInt64, ffi::SQLITE_ERROR, out)
}

unsafe extern "C" fn v_set_system_call(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    call: ffi::sqlite3_syscall_ptr,
) -> c_int {
    real_vfs!(vfs, xSetSystemCall, ffi::SQLITE_NOTFOUND, name, call)
}

unsafe extern "C" fn v_get_system_call(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
) -> ffi::sqlite3_syscall_ptr {
    real_vfs!(vfs, xGetSystemCall, None, name)
}

unsafe extern "C" fn v_next_system_call(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
) -> *const c_char {
    real_vfs!(vfs, xNextSystemCall, ptr::null(), name)
}

#[cfg(test)]
#[path = "vfs_tests.rs"]
mod tests;
