//! The exported functions. Each checks, as cheaply as it can, whether the call concerns the
//! folder (or the ack fd, or a seeded random source); if not, it calls the real function.

use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use libc::{iovec, mode_t, off_t, size_t, ssize_t};

use super::state::*;
use crate::format::Tag;
use crate::log::SyncHow;

macro_rules! real {
    ($name:literal, $ty:ty) => {{
        static P: AtomicUsize = AtomicUsize::new(0);
        let mut p = P.load(Relaxed);
        if p == 0 {
            // SAFETY: a NUL-terminated symbol name.
            p = unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($name, "\0").as_ptr().cast()) }
                as usize;
            P.store(p, Relaxed);
        }
        if p == 0 {
            None
        } else {
            // SAFETY: the symbol has this C signature in libc.
            Some(unsafe { std::mem::transmute::<usize, $ty>(p) })
        }
    }};
}

macro_rules! real_or {
    ($name:literal, $ty:ty, $fail:expr) => {
        match real!($name, $ty) {
            Some(f) => f,
            None => {
                set_errno(libc::ENOSYS);
                return $fail;
            }
        }
    };
}

type WriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
type PwriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t, off_t) -> ssize_t;
type WritevFn = unsafe extern "C" fn(c_int, *const iovec, c_int) -> ssize_t;
type PwritevFn = unsafe extern "C" fn(c_int, *const iovec, c_int, off_t) -> ssize_t;
type Pwritev2Fn = unsafe extern "C" fn(c_int, *const iovec, c_int, off_t, c_int) -> ssize_t;
type FdFn = unsafe extern "C" fn(c_int) -> c_int;
type SfrFn = unsafe extern "C" fn(c_int, off_t, off_t, c_uint) -> c_int;
type MsyncFn = unsafe extern "C" fn(*mut c_void, size_t, c_int) -> c_int;
type FtruncFn = unsafe extern "C" fn(c_int, off_t) -> c_int;
type FallocFn = unsafe extern "C" fn(c_int, c_int, off_t, off_t) -> c_int;
type PosixFallocFn = unsafe extern "C" fn(c_int, off_t, off_t) -> c_int;
type OpenFn = unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int;
type Open2Fn = unsafe extern "C" fn(*const c_char, c_int) -> c_int;
type Openat2Fn = unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
type CreatFn = unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type Dup3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type FcntlFn = unsafe extern "C" fn(c_int, c_int, ...) -> c_int;
type PathFn = unsafe extern "C" fn(*const c_char) -> c_int;
type UnlinkatFn = unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
type RenameFn = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
type RenameatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char) -> c_int;
type Renameat2Fn =
    unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, c_uint) -> c_int;
type CloseRangeFn = unsafe extern "C" fn(c_uint, c_uint, c_int) -> c_int;
type MmapFn = unsafe extern "C" fn(*mut c_void, size_t, c_int, c_int, c_int, off_t) -> *mut c_void;
type ReadFn = unsafe extern "C" fn(c_int, *mut c_void, size_t) -> ssize_t;
type GetrandomFn = unsafe extern "C" fn(*mut c_void, size_t, c_uint) -> ssize_t;
type GetentropyFn = unsafe extern "C" fn(*mut c_void, size_t) -> c_int;

#[inline]
fn active() -> bool {
    ACTIVE.load(Relaxed)
}

/// Whether a write on `fd` takes the slow path.
#[inline]
fn write_watched(fd: c_int) -> bool {
    active() && (fd_kind(fd) == KIND_FILE || (fd >= 0 && fd == ACK_FD.load(Relaxed)))
}

unsafe fn bytes<'a>(buf: *const c_void, n: size_t) -> &'a [u8] {
    if buf.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: the caller passed n readable bytes at buf.
        unsafe { std::slice::from_raw_parts(buf.cast(), n) }
    }
}

unsafe fn gather(iov: *const iovec, cnt: c_int) -> Vec<u8> {
    let mut out = Vec::new();
    if iov.is_null() || cnt <= 0 {
        return out;
    }
    for i in 0..cnt as usize {
        // SAFETY: the caller passed cnt iovecs.
        let v = unsafe { &*iov.add(i) };
        out.extend_from_slice(unsafe { bytes(v.iov_base, v.iov_len) });
    }
    out
}

enum At {
    Current,
    Offset(i64),
}

/// The checks every fd hook makes under the lock: the fd still names the file it was opened on.
fn checked_info(locked: &Locked, fd: c_int) -> Option<(FdInfo, libc::stat)> {
    let info = locked.fd_info(fd)?;
    let st = fstat(fd)?;
    if st.st_ino != info.ino || st.st_dev != info.dev {
        locked.untrack(fd);
        return None;
    }
    Some((info, st))
}

/// Where a write at `at` lands (`O_APPEND` appends even for `pwrite`, on Linux).
fn write_offset(fd: c_int, at: At, old_size: u64, flags: c_int) -> u64 {
    if flags & libc::O_APPEND != 0 {
        return old_size;
    }
    match at {
        At::Offset(o) => o.max(0) as u64,
        // SAFETY: a plain call on a valid fd.
        At::Current => unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }.max(0) as u64,
    }
}

/// A write on an `O_SYNC`/`O_DSYNC` fd is durable when it returns: log a sync right after it.
fn sync_if_synchronous(locked: &Locked, fd: c_int, info: &FdInfo, flags: c_int, ret: ssize_t) {
    if ret > 0 && flags & libc::O_DSYNC != 0 {
        let mut rec = locked.enc(Tag::Sync, 0, false);
        rec.file(fd, &info.path, info.ino)
            .u8(SyncHow::Fdatasync.to_byte())
            .u8(0);
        locked.append(&mut rec);
    }
}

/// A write whose bytes the caller does not hand over (`sendfile`, `copy_file_range`, `splice`):
/// the written bytes are read back after the call.
fn logged_copy_write(fd: c_int, at: At, call: impl FnOnce() -> ssize_t) -> ssize_t {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() || fd_kind(fd) != KIND_FILE {
        return call();
    }
    let locked = Locked::acquire();
    let Some((info, st)) = checked_info(&locked, fd) else {
        drop(locked);
        return call();
    };
    let old_size = st.st_size as u64;
    // SAFETY: a plain call on a valid fd.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) }.max(0);
    let offset = write_offset(fd, at, old_size, flags);
    locked.crash_check();
    if let Some(e) = locked.fail_check(FailKind::Write) {
        let mut rec = locked.enc(Tag::Write, e, true);
        rec.file(fd, &info.path, info.ino)
            .u64(offset)
            .u64(old_size)
            .bytes(&[])
            .bytes(&[]);
        locked.append(&mut rec);
        drop(locked);
        set_errno(e);
        return -1;
    }
    let ret = call();
    let err = errno();
    let n = ret.max(0) as usize;
    let data = read_range(fd, offset, n);
    let mut rec = locked.enc(Tag::Write, if ret < 0 { err } else { 0 }, false);
    rec.file(fd, &info.path, info.ino)
        .u64(offset)
        .u64(old_size)
        .bytes(&data)
        .bytes(&[]);
    locked.append(&mut rec);
    sync_if_synchronous(&locked, fd, &info, flags, ret);
    drop(locked);
    set_errno(err);
    ret
}

fn at_ptr(off: *const i64) -> At {
    if off.is_null() {
        At::Current
    } else {
        // SAFETY: a non-null offset pointer points to the caller's offset.
        At::Offset(unsafe { *off })
    }
}

type SendfileFn = unsafe extern "C" fn(c_int, c_int, *mut off_t, size_t) -> ssize_t;
type CopyRangeFn =
    unsafe extern "C" fn(c_int, *mut i64, c_int, *mut i64, size_t, c_uint) -> ssize_t;

#[no_mangle]
pub unsafe extern "C" fn sendfile(out: c_int, inp: c_int, off: *mut off_t, n: size_t) -> ssize_t {
    let f = real_or!("sendfile", SendfileFn, -1);
    if !write_watched(out) || fd_kind(out) != KIND_FILE {
        return unsafe { f(out, inp, off, n) };
    }
    logged_copy_write(out, At::Current, || unsafe { f(out, inp, off, n) })
}

#[no_mangle]
pub unsafe extern "C" fn sendfile64(out: c_int, inp: c_int, off: *mut off_t, n: size_t) -> ssize_t {
    let f = real_or!("sendfile64", SendfileFn, -1);
    if !write_watched(out) || fd_kind(out) != KIND_FILE {
        return unsafe { f(out, inp, off, n) };
    }
    logged_copy_write(out, At::Current, || unsafe { f(out, inp, off, n) })
}

#[no_mangle]
pub unsafe extern "C" fn copy_file_range(
    fd_in: c_int,
    off_in: *mut i64,
    fd_out: c_int,
    off_out: *mut i64,
    n: size_t,
    flags: c_uint,
) -> ssize_t {
    let f = real_or!("copy_file_range", CopyRangeFn, -1);
    if !write_watched(fd_out) || fd_kind(fd_out) != KIND_FILE {
        return unsafe { f(fd_in, off_in, fd_out, off_out, n, flags) };
    }
    logged_copy_write(fd_out, at_ptr(off_out), || unsafe {
        f(fd_in, off_in, fd_out, off_out, n, flags)
    })
}

#[no_mangle]
pub unsafe extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut i64,
    fd_out: c_int,
    off_out: *mut i64,
    n: size_t,
    flags: c_uint,
) -> ssize_t {
    let f = real_or!("splice", CopyRangeFn, -1);
    if !write_watched(fd_out) || fd_kind(fd_out) != KIND_FILE {
        return unsafe { f(fd_in, off_in, fd_out, off_out, n, flags) };
    }
    logged_copy_write(fd_out, at_ptr(off_out), || unsafe {
        f(fd_in, off_in, fd_out, off_out, n, flags)
    })
}

fn logged_write(fd: c_int, data: &[u8], at: At, call: impl FnOnce() -> ssize_t) -> ssize_t {
    logged_write_flags(fd, data, at, 0, call)
}

/// `pwritev2`'s per-call flags: `RWF_DSYNC`/`RWF_SYNC` make that one write durable, as `O_DSYNC`
/// does for every write of a descriptor.
fn rwf_sync(flags: c_int) -> c_int {
    if flags & (libc::RWF_DSYNC | libc::RWF_SYNC) != 0 {
        libc::O_DSYNC
    } else {
        0
    }
}

/// [`logged_write`], with `extra` open flags for this call (`O_DSYNC` from `RWF_DSYNC`).
fn logged_write_flags(
    fd: c_int,
    data: &[u8],
    at: At,
    extra: c_int,
    call: impl FnOnce() -> ssize_t,
) -> ssize_t {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    if fd_kind(fd) != KIND_FILE {
        return ack(fd, data, call);
    }
    let locked = Locked::acquire();
    let Some((info, st)) = checked_info(&locked, fd) else {
        drop(locked);
        return call();
    };
    let old_size = st.st_size as u64;
    // SAFETY: a plain call on a valid fd.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) }.max(0) | extra;
    let offset = write_offset(fd, at, old_size, flags);
    locked.crash_check();
    if let Some(e) = locked.fail_check(FailKind::Write) {
        let mut rec = locked.enc(Tag::Write, e, true);
        rec.file(fd, &info.path, info.ino)
            .u64(offset)
            .u64(old_size)
            .bytes(&[])
            .bytes(&[]);
        locked.append(&mut rec);
        drop(locked);
        set_errno(e);
        return -1;
    }
    let ret = call();
    let err = errno();
    let n = (ret.max(0) as usize).min(data.len());
    let mut rec = locked.enc(Tag::Write, if ret < 0 { err } else { 0 }, false);
    rec.file(fd, &info.path, info.ino)
        .u64(offset)
        .u64(old_size)
        .bytes(&data[..n])
        .bytes(&[]);
    locked.append(&mut rec);
    sync_if_synchronous(&locked, fd, &info, flags, ret);
    drop(locked);
    set_errno(err);
    ret
}

/// A write to the ack fd. The real write runs outside the lock: the fd is usually a pipe, and a
/// reader that is itself a recorded process waiting for the lock must not deadlock a full pipe.
/// The record is appended right after, before this thread does anything else, so an ack precedes
/// every later op of its own thread; another process's ops may land between the write and the
/// record, where the ack then counts for fewer cuts (never more).
fn ack(fd: c_int, data: &[u8], call: impl FnOnce() -> ssize_t) -> ssize_t {
    if fd != ACK_FD.load(Relaxed) {
        return call();
    }
    Locked::acquire().crash_check();
    let ret = call();
    let err = errno();
    if ret > 0 {
        let locked = Locked::acquire();
        let mut rec = locked.enc(Tag::Ack, 0, false);
        rec.i32(fd).bytes(&data[..(ret as usize).min(data.len())]);
        locked.append(&mut rec);
    }
    set_errno(err);
    ret
}

#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    let f = real_or!("write", WriteFn, -1);
    if !write_watched(fd) {
        return unsafe { f(fd, buf, n) };
    }
    logged_write(fd, unsafe { bytes(buf, n) }, At::Current, || unsafe {
        f(fd, buf, n)
    })
}

#[no_mangle]
pub unsafe extern "C" fn pwrite(fd: c_int, buf: *const c_void, n: size_t, off: off_t) -> ssize_t {
    let f = real_or!("pwrite", PwriteFn, -1);
    if !write_watched(fd) {
        return unsafe { f(fd, buf, n, off) };
    }
    logged_write(fd, unsafe { bytes(buf, n) }, At::Offset(off), || unsafe {
        f(fd, buf, n, off)
    })
}

#[no_mangle]
pub unsafe extern "C" fn pwrite64(fd: c_int, buf: *const c_void, n: size_t, off: off_t) -> ssize_t {
    let f = real_or!("pwrite64", PwriteFn, -1);
    if !write_watched(fd) {
        return unsafe { f(fd, buf, n, off) };
    }
    logged_write(fd, unsafe { bytes(buf, n) }, At::Offset(off), || unsafe {
        f(fd, buf, n, off)
    })
}

#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    let f = real_or!("writev", WritevFn, -1);
    if !write_watched(fd) {
        return unsafe { f(fd, iov, cnt) };
    }
    let data = unsafe { gather(iov, cnt) };
    logged_write(fd, &data, At::Current, || unsafe { f(fd, iov, cnt) })
}

#[no_mangle]
pub unsafe extern "C" fn pwritev(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t) -> ssize_t {
    let f = real_or!("pwritev", PwritevFn, -1);
    if !write_watched(fd) {
        return unsafe { f(fd, iov, cnt, off) };
    }
    let data = unsafe { gather(iov, cnt) };
    logged_write(fd, &data, At::Offset(off), || unsafe {
        f(fd, iov, cnt, off)
    })
}

#[no_mangle]
pub unsafe extern "C" fn pwritev64(
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: off_t,
) -> ssize_t {
    let f = real_or!("pwritev64", PwritevFn, -1);
    if !write_watched(fd) {
        return unsafe { f(fd, iov, cnt, off) };
    }
    let data = unsafe { gather(iov, cnt) };
    logged_write(fd, &data, At::Offset(off), || unsafe {
        f(fd, iov, cnt, off)
    })
}

fn v2_at(off: off_t) -> At {
    // pwritev2 with offset -1 writes at (and moves) the current offset.
    if off == -1 {
        At::Current
    } else {
        At::Offset(off)
    }
}

#[no_mangle]
pub unsafe extern "C" fn pwritev2(
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: off_t,
    flags: c_int,
) -> ssize_t {
    let f = real_or!("pwritev2", Pwritev2Fn, -1);
    if !write_watched(fd) {
        return unsafe { f(fd, iov, cnt, off, flags) };
    }
    let data = unsafe { gather(iov, cnt) };
    logged_write_flags(fd, &data, v2_at(off), rwf_sync(flags), || unsafe {
        f(fd, iov, cnt, off, flags)
    })
}

#[no_mangle]
pub unsafe extern "C" fn pwritev64v2(
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: off_t,
    flags: c_int,
) -> ssize_t {
    let f = real_or!("pwritev64v2", Pwritev2Fn, -1);
    if !write_watched(fd) {
        return unsafe { f(fd, iov, cnt, off, flags) };
    }
    let data = unsafe { gather(iov, cnt) };
    logged_write_flags(fd, &data, v2_at(off), rwf_sync(flags), || unsafe {
        f(fd, iov, cnt, off, flags)
    })
}

/// A sync of a folder file or directory.
fn logged_sync(
    fd: c_int,
    how: SyncHow,
    info: Option<FdInfo>,
    call: impl FnOnce() -> c_int,
) -> c_int {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    let locked = Locked::acquire();
    let kind = fd_kind(fd);
    let info = match info {
        Some(i) => i,
        None => match checked_info(&locked, fd) {
            Some((i, _)) => i,
            None => {
                drop(locked);
                return call();
            }
        },
    };
    locked.crash_check();
    let (ret, err, injected) = match locked.fail_check(FailKind::Sync) {
        Some(e) => (-1, e, true),
        None => {
            let r = call();
            (r, if r < 0 { errno() } else { 0 }, false)
        }
    };
    let mut rec = locked.enc(Tag::Sync, err, injected);
    rec.file(fd, &info.path, info.ino)
        .u8(how.to_byte())
        .u8(u8::from(kind == KIND_DIR));
    locked.append(&mut rec);
    drop(locked);
    set_errno(err);
    ret
}

#[inline]
fn sync_watched(fd: c_int) -> bool {
    active() && matches!(fd_kind(fd), KIND_FILE | KIND_DIR)
}

#[no_mangle]
pub unsafe extern "C" fn fsync(fd: c_int) -> c_int {
    let f = real_or!("fsync", FdFn, -1);
    if !sync_watched(fd) {
        return unsafe { f(fd) };
    }
    logged_sync(fd, SyncHow::Fsync, None, || unsafe { f(fd) })
}

#[no_mangle]
pub unsafe extern "C" fn fdatasync(fd: c_int) -> c_int {
    let f = real_or!("fdatasync", FdFn, -1);
    if !sync_watched(fd) {
        return unsafe { f(fd) };
    }
    logged_sync(fd, SyncHow::Fdatasync, None, || unsafe { f(fd) })
}

#[no_mangle]
pub unsafe extern "C" fn sync_file_range(fd: c_int, off: off_t, n: off_t, flags: c_uint) -> c_int {
    let f = real_or!("sync_file_range", SfrFn, -1);
    if !sync_watched(fd) {
        return unsafe { f(fd, off, n, flags) };
    }
    logged_sync(fd, SyncHow::SyncFileRange, None, || unsafe {
        f(fd, off, n, flags)
    })
}

#[no_mangle]
pub unsafe extern "C" fn msync(addr: *mut c_void, len: size_t, flags: c_int) -> c_int {
    let f = real_or!("msync", MsyncFn, -1);
    if !active() {
        return unsafe { f(addr, len, flags) };
    }
    let info = {
        let Some(_g) = HookGuard::enter() else {
            return unsafe { f(addr, len, flags) };
        };
        let locked = Locked::acquire();
        let a = addr as usize;
        locked.state().and_then(|s| {
            s.maps
                .iter()
                .find(|(start, l, _)| a >= *start && a < start + l)
                .map(|(_, _, i)| i.clone())
        })
    };
    match info {
        Some(i) => logged_sync(-1, SyncHow::Msync, Some(i), || unsafe {
            f(addr, len, flags)
        }),
        None => unsafe { f(addr, len, flags) },
    }
}

fn logged_truncate(fd: c_int, len: off_t, call: impl FnOnce() -> c_int) -> c_int {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    let locked = Locked::acquire();
    let Some((info, st)) = checked_info(&locked, fd) else {
        drop(locked);
        return call();
    };
    let old_size = st.st_size as u64;
    let new_size = len.max(0) as u64;
    locked.crash_check();
    let (ret, err, injected) = match locked.fail_check(FailKind::Truncate) {
        Some(e) => (-1, e, true),
        None => {
            let r = call();
            (r, if r < 0 { errno() } else { 0 }, false)
        }
    };
    let mut rec = locked.enc(Tag::Truncate, err, injected);
    rec.file(fd, &info.path, info.ino)
        .u64(old_size)
        .u64(new_size)
        .bytes(&[]);
    locked.append(&mut rec);
    drop(locked);
    set_errno(err);
    ret
}

#[no_mangle]
pub unsafe extern "C" fn ftruncate(fd: c_int, len: off_t) -> c_int {
    let f = real_or!("ftruncate", FtruncFn, -1);
    if !write_watched(fd) || fd_kind(fd) != KIND_FILE {
        return unsafe { f(fd, len) };
    }
    logged_truncate(fd, len, || unsafe { f(fd, len) })
}

#[no_mangle]
pub unsafe extern "C" fn ftruncate64(fd: c_int, len: off_t) -> c_int {
    let f = real_or!("ftruncate64", FtruncFn, -1);
    if !write_watched(fd) || fd_kind(fd) != KIND_FILE {
        return unsafe { f(fd, len) };
    }
    logged_truncate(fd, len, || unsafe { f(fd, len) })
}

/// `fallocate`; `posix` calls return the error number instead of setting errno.
fn logged_fallocate(
    fd: c_int,
    mode: c_int,
    off: off_t,
    len: off_t,
    posix: bool,
    call: impl FnOnce() -> c_int,
) -> c_int {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    let locked = Locked::acquire();
    let Some((info, st)) = checked_info(&locked, fd) else {
        drop(locked);
        return call();
    };
    let old_size = st.st_size as u64;
    let (off, len) = (off.max(0) as u64, len.max(0) as u64);
    locked.crash_check();
    let (ret, err, injected) = match locked.fail_check(FailKind::Fallocate) {
        Some(e) => (if posix { e } else { -1 }, e, true),
        None => {
            let r = call();
            let err = if posix {
                r
            } else if r < 0 {
                errno()
            } else {
                0
            };
            (r, err, false)
        }
    };
    let new_size = file_size(fd);
    let mut rec = locked.enc(Tag::Fallocate, err, injected);
    rec.file(fd, &info.path, info.ino)
        .i32(mode)
        .u64(off)
        .u64(len)
        .u64(old_size)
        .u64(new_size)
        .bytes(&[]);
    locked.append(&mut rec);
    drop(locked);
    if !posix {
        set_errno(err);
    }
    ret
}

#[no_mangle]
pub unsafe extern "C" fn fallocate(fd: c_int, mode: c_int, off: off_t, len: off_t) -> c_int {
    let f = real_or!("fallocate", FallocFn, -1);
    if !write_watched(fd) || fd_kind(fd) != KIND_FILE {
        return unsafe { f(fd, mode, off, len) };
    }
    logged_fallocate(fd, mode, off, len, false, || unsafe {
        f(fd, mode, off, len)
    })
}

#[no_mangle]
pub unsafe extern "C" fn fallocate64(fd: c_int, mode: c_int, off: off_t, len: off_t) -> c_int {
    let f = real_or!("fallocate64", FallocFn, -1);
    if !write_watched(fd) || fd_kind(fd) != KIND_FILE {
        return unsafe { f(fd, mode, off, len) };
    }
    logged_fallocate(fd, mode, off, len, false, || unsafe {
        f(fd, mode, off, len)
    })
}

#[no_mangle]
pub unsafe extern "C" fn posix_fallocate(fd: c_int, off: off_t, len: off_t) -> c_int {
    let Some(f) = real!("posix_fallocate", PosixFallocFn) else {
        return libc::ENOSYS;
    };
    if !write_watched(fd) || fd_kind(fd) != KIND_FILE {
        return unsafe { f(fd, off, len) };
    }
    logged_fallocate(fd, 0, off, len, true, || unsafe { f(fd, off, len) })
}

#[no_mangle]
pub unsafe extern "C" fn posix_fallocate64(fd: c_int, off: off_t, len: off_t) -> c_int {
    let Some(f) = real!("posix_fallocate64", PosixFallocFn) else {
        return libc::ENOSYS;
    };
    if !write_watched(fd) || fd_kind(fd) != KIND_FILE {
        return unsafe { f(fd, off, len) };
    }
    logged_fallocate(fd, 0, off, len, true, || unsafe { f(fd, off, len) })
}

mod descriptors;
mod mappings;
mod names;
mod opens;
mod stdio;
