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
/// the pre-image is read before the call and the written bytes are read back after it.
fn logged_copy_write(fd: c_int, at: At, count: usize, call: impl FnOnce() -> ssize_t) -> ssize_t {
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
    let pre_len = old_size.saturating_sub(offset).min(count as u64) as usize;
    let pre = read_range(fd, offset, pre_len);
    let ret = call();
    let err = errno();
    let n = ret.max(0) as usize;
    let data = read_range(fd, offset, n);
    let mut rec = locked.enc(Tag::Write, if ret < 0 { err } else { 0 }, false);
    rec.file(fd, &info.path, info.ino)
        .u64(offset)
        .u64(old_size)
        .bytes(&data)
        .bytes(&pre[..pre.len().min(n)]);
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
    logged_copy_write(out, At::Current, n, || unsafe { f(out, inp, off, n) })
}

#[no_mangle]
pub unsafe extern "C" fn sendfile64(out: c_int, inp: c_int, off: *mut off_t, n: size_t) -> ssize_t {
    let f = real_or!("sendfile64", SendfileFn, -1);
    if !write_watched(out) || fd_kind(out) != KIND_FILE {
        return unsafe { f(out, inp, off, n) };
    }
    logged_copy_write(out, At::Current, n, || unsafe { f(out, inp, off, n) })
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
    logged_copy_write(fd_out, at_ptr(off_out), n, || unsafe {
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
    logged_copy_write(fd_out, at_ptr(off_out), n, || unsafe {
        f(fd_in, off_in, fd_out, off_out, n, flags)
    })
}

fn logged_write(fd: c_int, data: &[u8], at: At, call: impl FnOnce() -> ssize_t) -> ssize_t {
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
    let pre_len = old_size.saturating_sub(offset).min(data.len() as u64) as usize;
    let pre = read_range(fd, offset, pre_len);
    let ret = call();
    let err = errno();
    let n = (ret.max(0) as usize).min(data.len());
    let mut rec = locked.enc(Tag::Write, if ret < 0 { err } else { 0 }, false);
    rec.file(fd, &info.path, info.ino)
        .u64(offset)
        .u64(old_size)
        .bytes(&data[..n])
        .bytes(&pre[..pre.len().min(n)]);
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
    logged_write(fd, &data, v2_at(off), || unsafe {
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
    logged_write(fd, &data, v2_at(off), || unsafe {
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
    let (ret, err, injected, tail) = match locked.fail_check(FailKind::Truncate) {
        Some(e) => (-1, e, true, Vec::new()),
        None => {
            let tail = if new_size < old_size {
                read_range(fd, new_size, (old_size - new_size) as usize)
            } else {
                Vec::new()
            };
            let r = call();
            (r, if r < 0 { errno() } else { 0 }, false, tail)
        }
    };
    let mut rec = locked.enc(Tag::Truncate, err, injected);
    rec.file(fd, &info.path, info.ino)
        .u64(old_size)
        .u64(new_size)
        .bytes(&tail);
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
    let zeroing = mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0;
    let (ret, err, injected, pre) = match locked.fail_check(FailKind::Fallocate) {
        Some(e) => (if posix { e } else { -1 }, e, true, Vec::new()),
        None => {
            let pre = if zeroing {
                read_range(fd, off, old_size.saturating_sub(off).min(len) as usize)
            } else {
                Vec::new()
            };
            let r = call();
            let err = if posix {
                r
            } else if r < 0 {
                errno()
            } else {
                0
            };
            (r, err, false, pre)
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
        .bytes(&pre);
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

// ---- opens -------------------------------------------------------------------------------------

fn logged_open(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    call: impl FnOnce() -> c_int,
) -> c_int {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    let Some(abs) = resolve(dirfd, path) else {
        return call();
    };
    if SEEDED.load(Relaxed) && (abs == b"/dev/urandom" || abs == b"/dev/random") {
        let fd = call();
        let err = errno();
        if fd >= 0 {
            let locked = Locked::acquire();
            locked.untrack(fd);
            set_fd_kind(fd, KIND_RANDOM);
        }
        set_errno(err);
        return fd;
    }
    let Some(rel) = relative(&abs) else {
        let fd = call();
        let err = errno();
        if fd >= 0 && fd_kind(fd) != KIND_NONE {
            Locked::acquire().untrack(fd);
        }
        set_errno(err);
        return fd;
    };
    let before = lstat_path(&abs);
    let special = before.is_some_and(|s| {
        let t = s.st_mode & libc::S_IFMT;
        t != libc::S_IFREG && t != libc::S_IFDIR
    });
    if special {
        // A FIFO, socket or device in the folder: opening it may block; never under the lock.
        let fd = call();
        let err = errno();
        if fd >= 0 && fd_kind(fd) != KIND_NONE {
            Locked::acquire().untrack(fd);
        }
        set_errno(err);
        return fd;
    }
    let locked = Locked::acquire();
    let before = lstat_path(&abs);
    let existed = before.is_some();
    let regular = before.is_some_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFREG);
    let old_size = before.map(|s| s.st_size as u64).unwrap_or(0);
    let truncating =
        flags & libc::O_TRUNC != 0 && regular && flags & libc::O_ACCMODE != libc::O_RDONLY;
    let creating = flags & libc::O_CREAT != 0 && !existed;
    locked.crash_check();
    if creating || truncating {
        if let Some(e) = locked.fail_check(FailKind::Open) {
            let mut rec = locked.enc(Tag::Open, e, true);
            rec.file(-1, &rel, 0)
                .i32(flags)
                .u8(0)
                .u8(0)
                .u8(0)
                .u64(old_size)
                .bytes(&[]);
            locked.append(&mut rec);
            drop(locked);
            set_errno(e);
            return -1;
        }
    }
    let tail = if truncating && old_size > 0 {
        read_whole(&abs)
    } else {
        Vec::new()
    };
    let fd = call();
    let err = errno();
    if fd < 0 {
        if creating || truncating {
            let mut rec = locked.enc(Tag::Open, err, false);
            rec.file(-1, &rel, 0)
                .i32(flags)
                .u8(0)
                .u8(0)
                .u8(0)
                .u64(old_size)
                .bytes(&[]);
            locked.append(&mut rec);
        }
        drop(locked);
        set_errno(err);
        return fd;
    }
    let st = fstat(fd);
    let kind = match st.map(|s| s.st_mode & libc::S_IFMT) {
        Some(libc::S_IFREG) => KIND_FILE,
        Some(libc::S_IFDIR) => KIND_DIR,
        _ => KIND_NONE,
    };
    if kind == KIND_NONE {
        locked.untrack(fd);
    } else if let Some(st) = st {
        locked.track(
            fd,
            kind,
            FdInfo {
                path: rel.clone(),
                ino: st.st_ino,
                dev: st.st_dev,
            },
        );
        let mut rec = locked.enc(Tag::Open, 0, false);
        rec.file(fd, &rel, st.st_ino)
            .i32(flags)
            .u8(u8::from(creating))
            .u8(u8::from(kind == KIND_DIR))
            .u8(u8::from(truncating))
            .u64(old_size)
            .bytes(&tail);
        locked.append(&mut rec);
    }
    drop(locked);
    set_errno(err);
    fd
}

fn needs_mode(flags: c_int) -> bool {
    flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE
}

// `open` and `openat` are variadic in C; the mode is read as a fixed argument, which is how the
// x86_64 and aarch64 Linux calling conventions pass it (it is only used when O_CREAT/O_TMPFILE).

#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    let f = real_or!("open", OpenFn, -1);
    let mode = if needs_mode(flags) { mode } else { 0 };
    if !active() {
        return unsafe { f(path, flags, mode) };
    }
    logged_open(libc::AT_FDCWD, path, flags, || unsafe {
        f(path, flags, mode)
    })
}

#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    let f = real_or!("open64", OpenFn, -1);
    let mode = if needs_mode(flags) { mode } else { 0 };
    if !active() {
        return unsafe { f(path, flags, mode) };
    }
    logged_open(libc::AT_FDCWD, path, flags, || unsafe {
        f(path, flags, mode)
    })
}

#[no_mangle]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    let f = real_or!("openat", OpenatFn, -1);
    let mode = if needs_mode(flags) { mode } else { 0 };
    if !active() {
        return unsafe { f(dirfd, path, flags, mode) };
    }
    logged_open(dirfd, path, flags, || unsafe {
        f(dirfd, path, flags, mode)
    })
}

#[no_mangle]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    let f = real_or!("openat64", OpenatFn, -1);
    let mode = if needs_mode(flags) { mode } else { 0 };
    if !active() {
        return unsafe { f(dirfd, path, flags, mode) };
    }
    logged_open(dirfd, path, flags, || unsafe {
        f(dirfd, path, flags, mode)
    })
}

#[no_mangle]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    let f = real_or!("__open_2", Open2Fn, -1);
    if !active() {
        return unsafe { f(path, flags) };
    }
    logged_open(libc::AT_FDCWD, path, flags, || unsafe { f(path, flags) })
}

#[no_mangle]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    let f = real_or!("__open64_2", Open2Fn, -1);
    if !active() {
        return unsafe { f(path, flags) };
    }
    logged_open(libc::AT_FDCWD, path, flags, || unsafe { f(path, flags) })
}

#[no_mangle]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    let f = real_or!("__openat_2", Openat2Fn, -1);
    if !active() {
        return unsafe { f(dirfd, path, flags) };
    }
    logged_open(dirfd, path, flags, || unsafe { f(dirfd, path, flags) })
}

#[no_mangle]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    let f = real_or!("__openat64_2", Openat2Fn, -1);
    if !active() {
        return unsafe { f(dirfd, path, flags) };
    }
    logged_open(dirfd, path, flags, || unsafe { f(dirfd, path, flags) })
}

#[no_mangle]
pub unsafe extern "C" fn creat(path: *const c_char, mode: mode_t) -> c_int {
    let f = real_or!("creat", CreatFn, -1);
    if !active() {
        return unsafe { f(path, mode) };
    }
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
    logged_open(libc::AT_FDCWD, path, flags, || unsafe { f(path, mode) })
}

#[no_mangle]
pub unsafe extern "C" fn creat64(path: *const c_char, mode: mode_t) -> c_int {
    let f = real_or!("creat64", CreatFn, -1);
    if !active() {
        return unsafe { f(path, mode) };
    }
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
    logged_open(libc::AT_FDCWD, path, flags, || unsafe { f(path, mode) })
}

// ---- descriptors -------------------------------------------------------------------------------

/// After a dup of `old` onto `new`: `new` names what `old` names.
fn copy_tracking(locked: &Locked, old: c_int, new: c_int) {
    let kind = fd_kind(old);
    match (kind, locked.fd_info(old)) {
        (KIND_FILE | KIND_DIR, Some(info)) => locked.track(new, kind, info),
        (KIND_RANDOM, _) => {
            locked.untrack(new);
            set_fd_kind(new, KIND_RANDOM);
        }
        _ => locked.untrack(new),
    }
}

#[no_mangle]
pub unsafe extern "C" fn dup(old: c_int) -> c_int {
    let f = real_or!("dup", FdFn, -1);
    if !active() || fd_kind(old) == KIND_NONE {
        return unsafe { f(old) };
    }
    let Some(_g) = HookGuard::enter() else {
        return unsafe { f(old) };
    };
    if !same_process() {
        return unsafe { f(old) };
    }
    let locked = Locked::acquire();
    let new = unsafe { f(old) };
    let err = errno();
    if new >= 0 {
        copy_tracking(&locked, old, new);
    }
    set_errno(err);
    new
}

fn logged_dup2(old: c_int, new: c_int, call: impl FnOnce() -> c_int) -> c_int {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    let locked = Locked::acquire();
    relocate_if_ours(new);
    let ret = call();
    let err = errno();
    if ret >= 0 && old != new {
        copy_tracking(&locked, old, new);
    }
    set_errno(err);
    ret
}

#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    let f = real_or!("dup2", Dup2Fn, -1);
    if !active() {
        return unsafe { f(old, new) };
    }
    logged_dup2(old, new, || unsafe { f(old, new) })
}

#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    let f = real_or!("dup3", Dup3Fn, -1);
    if !active() {
        return unsafe { f(old, new, flags) };
    }
    logged_dup2(old, new, || unsafe { f(old, new, flags) })
}

fn fcntl_common(fd: c_int, cmd: c_int, call: impl FnOnce() -> c_int) -> c_int {
    let is_dup = cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC;
    if !is_dup || !active() || fd_kind(fd) == KIND_NONE {
        return call();
    }
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    let locked = Locked::acquire();
    let new = call();
    let err = errno();
    if new >= 0 {
        copy_tracking(&locked, fd, new);
    }
    set_errno(err);
    new
}

// `fcntl` is variadic; its one optional argument is read as a fixed `long` (an int or a pointer
// travel in the same register).
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: libc::c_long) -> c_int {
    let f = real_or!("fcntl", FcntlFn, -1);
    fcntl_common(fd, cmd, || unsafe { f(fd, cmd, arg) })
}

#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: libc::c_long) -> c_int {
    let f = real_or!("fcntl64", FcntlFn, -1);
    fcntl_common(fd, cmd, || unsafe { f(fd, cmd, arg) })
}

#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    let f = real_or!("close", FdFn, -1);
    if !active() {
        return unsafe { f(fd) };
    }
    if our_fd(fd) && same_process() {
        // The program closes every descriptor (a daemon, a subprocess child): keep the log.
        return 0;
    }
    let kind = fd_kind(fd);
    if kind == KIND_NONE {
        return unsafe { f(fd) };
    }
    let Some(_g) = HookGuard::enter() else {
        return unsafe { f(fd) };
    };
    if !same_process() {
        return unsafe { f(fd) };
    }
    let locked = Locked::acquire();
    if kind != KIND_RANDOM {
        if let Some(info) = locked.fd_info(fd) {
            locked.crash_check();
            let mut rec = locked.enc(Tag::Close, 0, false);
            rec.file(fd, &info.path, info.ino);
            locked.append(&mut rec);
        }
    }
    locked.untrack(fd);
    let ret = unsafe { f(fd) };
    let err = errno();
    drop(locked);
    set_errno(err);
    ret
}

#[no_mangle]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let f = real_or!("close_range", CloseRangeFn, -1);
    if !active() || flags & (libc::CLOSE_RANGE_CLOEXEC as c_int) != 0 {
        return unsafe { f(first, last, flags) };
    }
    let Some(_g) = HookGuard::enter() else {
        return unsafe { f(first, last, flags) };
    };
    if !same_process() {
        return unsafe { f(first, last, flags) };
    }
    let locked = Locked::acquire();
    let top = (last as u64).min(MAX_FD as u64 - 1) as c_uint;
    let mut fd = first;
    while fd <= top {
        if fd_kind(fd as c_int) != KIND_NONE {
            locked.untrack(fd as c_int);
        }
        fd += 1;
    }
    // Close around our own descriptors.
    let mut ours: Vec<c_uint> = [LOG_FD.load(Relaxed), LOCK_FD.load(Relaxed)]
        .into_iter()
        .filter(|&o| o >= 0 && (o as c_uint) >= first && (o as c_uint) <= last)
        .map(|o| o as c_uint)
        .collect();
    ours.sort_unstable();
    let mut start = first;
    let mut ret = 0;
    for o in ours {
        if o > start {
            ret |= unsafe { f(start, o - 1, flags) };
        }
        start = o + 1;
    }
    if start <= last {
        ret |= unsafe { f(start, last, flags) };
    }
    let err = errno();
    drop(locked);
    set_errno(err);
    ret
}

// ---- names -------------------------------------------------------------------------------------

fn logged_unlink(
    dirfd: c_int,
    path: *const c_char,
    is_dir: bool,
    call: impl FnOnce() -> c_int,
) -> c_int {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    let Some(abs) = resolve(dirfd, path) else {
        return call();
    };
    let Some(rel) = relative(&abs) else {
        return call();
    };
    let locked = Locked::acquire();
    let ino = lstat_path(&abs).map(|s| s.st_ino).unwrap_or(0);
    locked.crash_check();
    let (ret, err, injected) = match locked.fail_check(FailKind::Unlink) {
        Some(e) => (-1, e, true),
        None => {
            let r = call();
            (r, if r < 0 { errno() } else { 0 }, false)
        }
    };
    let mut rec = locked.enc(Tag::Unlink, err, injected);
    rec.bytes(&rel).u64(ino).u8(u8::from(is_dir));
    locked.append(&mut rec);
    drop(locked);
    set_errno(err);
    ret
}

#[no_mangle]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    let f = real_or!("unlink", PathFn, -1);
    if !active() {
        return unsafe { f(path) };
    }
    logged_unlink(libc::AT_FDCWD, path, false, || unsafe { f(path) })
}

#[no_mangle]
pub unsafe extern "C" fn rmdir(path: *const c_char) -> c_int {
    let f = real_or!("rmdir", PathFn, -1);
    if !active() {
        return unsafe { f(path) };
    }
    logged_unlink(libc::AT_FDCWD, path, true, || unsafe { f(path) })
}

#[no_mangle]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    let f = real_or!("unlinkat", UnlinkatFn, -1);
    if !active() {
        return unsafe { f(dirfd, path, flags) };
    }
    let is_dir = flags & libc::AT_REMOVEDIR != 0;
    logged_unlink(dirfd, path, is_dir, || unsafe { f(dirfd, path, flags) })
}

fn logged_rename(
    olddir: c_int,
    old: *const c_char,
    newdir: c_int,
    new: *const c_char,
    flags: c_uint,
    call: impl FnOnce() -> c_int,
) -> c_int {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    let (Some(a), Some(b)) = (resolve(olddir, old), resolve(newdir, new)) else {
        return call();
    };
    let (ra, rb) = (relative(&a), relative(&b));
    if ra.is_none() && rb.is_none() {
        return call();
    }
    let locked = Locked::acquire();
    let ino = lstat_path(&a).map(|s| s.st_ino).unwrap_or(0);
    let replaced = lstat_path(&b).map(|s| s.st_ino).unwrap_or(0);
    let content = if ra.is_none() {
        read_whole(&a)
    } else {
        Vec::new()
    };
    locked.crash_check();
    let (ret, err, injected) = match locked.fail_check(FailKind::Rename) {
        Some(e) => (-1, e, true),
        None => {
            let r = call();
            (r, if r < 0 { errno() } else { 0 }, false)
        }
    };
    let mut rec = locked.enc(Tag::Rename, err, injected);
    rec.bytes(ra.as_deref().unwrap_or_default())
        .u8(u8::from(ra.is_some()))
        .bytes(rb.as_deref().unwrap_or_default())
        .u8(u8::from(rb.is_some()))
        .u64(ino)
        .u64(replaced)
        .u32(flags)
        .bytes(&content);
    locked.append(&mut rec);
    drop(locked);
    set_errno(err);
    ret
}

#[no_mangle]
pub unsafe extern "C" fn rename(old: *const c_char, new: *const c_char) -> c_int {
    let f = real_or!("rename", RenameFn, -1);
    if !active() {
        return unsafe { f(old, new) };
    }
    logged_rename(libc::AT_FDCWD, old, libc::AT_FDCWD, new, 0, || unsafe {
        f(old, new)
    })
}

#[no_mangle]
pub unsafe extern "C" fn renameat(
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
) -> c_int {
    let f = real_or!("renameat", RenameatFn, -1);
    if !active() {
        return unsafe { f(od, old, nd, new) };
    }
    logged_rename(od, old, nd, new, 0, || unsafe { f(od, old, nd, new) })
}

#[no_mangle]
pub unsafe extern "C" fn renameat2(
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
    flags: c_uint,
) -> c_int {
    let f = real_or!("renameat2", Renameat2Fn, -1);
    if !active() {
        return unsafe { f(od, old, nd, new, flags) };
    }
    logged_rename(od, old, nd, new, flags, || unsafe {
        f(od, old, nd, new, flags)
    })
}

// ---- mappings ----------------------------------------------------------------------------------

fn note_mmap(ret: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off_t) {
    if ret == libc::MAP_FAILED {
        return;
    }
    let Some(_g) = HookGuard::enter() else {
        return;
    };
    if !same_process() {
        return;
    }
    let err = errno();
    let locked = Locked::acquire();
    if let Some((info, _)) = checked_info(&locked, fd) {
        if let Some(s) = locked.state() {
            s.maps.push((ret as usize, len, info.clone()));
        }
        let shared_write = prot & libc::PROT_WRITE != 0 && flags & libc::MAP_SHARED != 0;
        if shared_write && !info.path.ends_with(b"-shm") {
            let mut rec = locked.enc(Tag::MmapWrite, 0, false);
            rec.file(fd, &info.path, info.ino)
                .u64(off.max(0) as u64)
                .u64(len as u64);
            locked.append(&mut rec);
        }
    }
    drop(locked);
    set_errno(err);
}

#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    let f = real_or!("mmap", MmapFn, libc::MAP_FAILED);
    let ret = unsafe { f(addr, len, prot, flags, fd, off) };
    if active() && fd_kind(fd) == KIND_FILE {
        note_mmap(ret, len, prot, flags, fd, off);
    }
    ret
}

#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    let f = real_or!("mmap64", MmapFn, libc::MAP_FAILED);
    let ret = unsafe { f(addr, len, prot, flags, fd, off) };
    if active() && fd_kind(fd) == KIND_FILE {
        note_mmap(ret, len, prot, flags, fd, off);
    }
    ret
}

// ---- seeded randomness -------------------------------------------------------------------------

fn seeded_fill(buf: *mut c_void, n: size_t) -> bool {
    if buf.is_null() || !SEEDED.load(Relaxed) {
        return false;
    }
    let Some(_g) = HookGuard::enter() else {
        return false;
    };
    if !same_process() {
        return false;
    }
    let locked = Locked::acquire();
    // SAFETY: the caller passed n writable bytes at buf.
    let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), n) };
    locked.fill_random(out);
    true
}

#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    let f = real_or!("read", ReadFn, -1);
    if active() && fd_kind(fd) == KIND_RANDOM && seeded_fill(buf, n) {
        return n as ssize_t;
    }
    unsafe { f(fd, buf, n) }
}

#[no_mangle]
pub unsafe extern "C" fn getrandom(buf: *mut c_void, n: size_t, flags: c_uint) -> ssize_t {
    let f = real_or!("getrandom", GetrandomFn, -1);
    if active() && seeded_fill(buf, n) {
        return n as ssize_t;
    }
    unsafe { f(buf, n, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn getentropy(buf: *mut c_void, n: size_t) -> c_int {
    let f = real_or!("getentropy", GetentropyFn, -1);
    if active() && n <= 256 && seeded_fill(buf, n) {
        return 0;
    }
    unsafe { f(buf, n) }
}

// ---- stdio -------------------------------------------------------------------------------------

type FopenFn = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE;
type FdopenFn = unsafe extern "C" fn(c_int, *const c_char) -> *mut libc::FILE;

/// A stdio stream on a folder file: glibc's stdio writes through its internal `write`, which no
/// preload can see. The stream's fd is tracked (its `fsync`s and `close` are seen) and an
/// `unsupported` record tells the lab that writes through it are missing from the log.
fn note_stream(stream: *mut libc::FILE, mode: *const c_char) {
    if stream.is_null() || mode.is_null() {
        return;
    }
    // SAFETY: a valid stream and a NUL-terminated mode string.
    let (fd, mode) = unsafe {
        (
            libc::fileno(stream),
            std::ffi::CStr::from_ptr(mode).to_bytes(),
        )
    };
    let writes = mode.iter().any(|b| matches!(b, b'w' | b'a' | b'+'));
    let Some(_g) = HookGuard::enter() else {
        return;
    };
    if !same_process() || !writes {
        return;
    }
    let err = errno();
    let p = format!("/proc/self/fd/{fd}");
    let target = std::fs::read_link(&p)
        .map(|t| t.into_os_string().into_encoded_bytes())
        .unwrap_or_default();
    if let Some(rel) = relative(&target) {
        if let Some(st) = fstat(fd) {
            let locked = Locked::acquire();
            let info = FdInfo {
                path: rel.clone(),
                ino: st.st_ino,
                dev: st.st_dev,
            };
            locked.track(fd, KIND_FILE, info);
            let mut rec = locked.enc(Tag::Unsupported, 0, false);
            rec.file(fd, &rel, st.st_ino)
                .bytes(b"stdio stream opened for writing: its writes are not recorded");
            locked.append(&mut rec);
        }
    }
    set_errno(err);
}

#[no_mangle]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    let Some(f) = real!("fopen", FopenFn) else {
        set_errno(libc::ENOSYS);
        return std::ptr::null_mut();
    };
    let s = unsafe { f(path, mode) };
    if active() {
        note_stream(s, mode);
    }
    s
}

#[no_mangle]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    let Some(f) = real!("fopen64", FopenFn) else {
        set_errno(libc::ENOSYS);
        return std::ptr::null_mut();
    };
    let s = unsafe { f(path, mode) };
    if active() {
        note_stream(s, mode);
    }
    s
}

#[no_mangle]
pub unsafe extern "C" fn fdopen(fd: c_int, mode: *const c_char) -> *mut libc::FILE {
    let Some(f) = real!("fdopen", FdopenFn) else {
        set_errno(libc::ENOSYS);
        return std::ptr::null_mut();
    };
    let s = unsafe { f(fd, mode) };
    if active() {
        note_stream(s, mode);
    }
    s
}

// ---- libc wrappers whose inner calls bypass the hooks ------------------------------------------

/// `remove` unlinks (or removes a directory) through glibc's internal `unlink`/`rmdir`.
#[no_mangle]
pub unsafe extern "C" fn remove(path: *const c_char) -> c_int {
    let f = real_or!("remove", PathFn, -1);
    if !active() {
        return unsafe { f(path) };
    }
    let is_dir = resolve(libc::AT_FDCWD, path)
        .and_then(|abs| lstat_path(&abs))
        .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
    logged_unlink(libc::AT_FDCWD, path, is_dir, || unsafe { f(path) })
}

type TruncateFn = unsafe extern "C" fn(*const c_char, off_t) -> c_int;

fn logged_path_truncate(path: *const c_char, len: off_t, call: impl FnOnce() -> c_int) -> c_int {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    let Some(abs) = resolve(libc::AT_FDCWD, path) else {
        return call();
    };
    let Some(rel) = relative(&abs) else {
        return call();
    };
    let locked = Locked::acquire();
    let st = lstat_path(&abs);
    let (ino, old_size) = st.map(|s| (s.st_ino, s.st_size as u64)).unwrap_or((0, 0));
    let new_size = len.max(0) as u64;
    locked.crash_check();
    let (ret, err, injected, tail) = match locked.fail_check(FailKind::Truncate) {
        Some(e) => (-1, e, true, Vec::new()),
        None => {
            let tail = if new_size < old_size {
                let whole = read_whole(&abs);
                whole.get(new_size as usize..).unwrap_or_default().to_vec()
            } else {
                Vec::new()
            };
            let r = call();
            (r, if r < 0 { errno() } else { 0 }, false, tail)
        }
    };
    let mut rec = locked.enc(Tag::Truncate, err, injected);
    rec.file(-1, &rel, ino)
        .u64(old_size)
        .u64(new_size)
        .bytes(&tail);
    locked.append(&mut rec);
    drop(locked);
    set_errno(err);
    ret
}

#[no_mangle]
pub unsafe extern "C" fn truncate(path: *const c_char, len: off_t) -> c_int {
    let f = real_or!("truncate", TruncateFn, -1);
    if !active() {
        return unsafe { f(path, len) };
    }
    logged_path_truncate(path, len, || unsafe { f(path, len) })
}

#[no_mangle]
pub unsafe extern "C" fn truncate64(path: *const c_char, len: off_t) -> c_int {
    let f = real_or!("truncate64", TruncateFn, -1);
    if !active() {
        return unsafe { f(path, len) };
    }
    logged_path_truncate(path, len, || unsafe { f(path, len) })
}

type MkstempFn = unsafe extern "C" fn(*mut c_char) -> c_int;
type MkostempFn = unsafe extern "C" fn(*mut c_char, c_int) -> c_int;

/// `mkstemp` and friends create the file through glibc's internal `open`: log the creation.
fn note_created(fd: c_int, template: *const c_char) {
    if fd < 0 {
        return;
    }
    let Some(_g) = HookGuard::enter() else {
        return;
    };
    if !same_process() {
        return;
    }
    let err = errno();
    if let (Some(abs), Some(st)) = (resolve(libc::AT_FDCWD, template), fstat(fd)) {
        let locked = Locked::acquire();
        match relative(&abs) {
            Some(rel) => {
                let info = FdInfo {
                    path: rel.clone(),
                    ino: st.st_ino,
                    dev: st.st_dev,
                };
                locked.track(fd, KIND_FILE, info);
                let mut rec = locked.enc(Tag::Open, 0, false);
                rec.file(fd, &rel, st.st_ino)
                    .i32(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)
                    .u8(1)
                    .u8(0)
                    .u8(0)
                    .u64(0)
                    .bytes(&[]);
                locked.append(&mut rec);
            }
            None => locked.untrack(fd),
        }
    }
    set_errno(err);
}

#[no_mangle]
pub unsafe extern "C" fn mkstemp(template: *mut c_char) -> c_int {
    let f = real_or!("mkstemp", MkstempFn, -1);
    let fd = unsafe { f(template) };
    if active() {
        note_created(fd, template);
    }
    fd
}

#[no_mangle]
pub unsafe extern "C" fn mkstemp64(template: *mut c_char) -> c_int {
    let f = real_or!("mkstemp64", MkstempFn, -1);
    let fd = unsafe { f(template) };
    if active() {
        note_created(fd, template);
    }
    fd
}

#[no_mangle]
pub unsafe extern "C" fn mkostemp(template: *mut c_char, flags: c_int) -> c_int {
    let f = real_or!("mkostemp", MkostempFn, -1);
    let fd = unsafe { f(template, flags) };
    if active() {
        note_created(fd, template);
    }
    fd
}

#[no_mangle]
pub unsafe extern "C" fn mkostemp64(template: *mut c_char, flags: c_int) -> c_int {
    let f = real_or!("mkostemp64", MkostempFn, -1);
    let fd = unsafe { f(template, flags) };
    if active() {
        note_created(fd, template);
    }
    fd
}

// ---- whole-file-system syncs -------------------------------------------------------------------

type SyncFn = unsafe extern "C" fn();

/// `sync()` and `syncfs()` make everything durable: logged as one `All` sync (path "").
fn logged_sync_all(call: impl FnOnce() -> c_int) -> c_int {
    let Some(_g) = HookGuard::enter() else {
        return call();
    };
    if !same_process() {
        return call();
    }
    let locked = Locked::acquire();
    locked.crash_check();
    let (ret, err, injected) = match locked.fail_check(FailKind::Sync) {
        Some(e) => (-1, e, true),
        None => {
            let r = call();
            (r, if r < 0 { errno() } else { 0 }, false)
        }
    };
    let mut rec = locked.enc(Tag::Sync, err, injected);
    rec.file(-1, b"", 0).u8(SyncHow::All.to_byte()).u8(0);
    locked.append(&mut rec);
    drop(locked);
    set_errno(err);
    ret
}

#[no_mangle]
pub unsafe extern "C" fn sync() {
    let Some(f) = real!("sync", SyncFn) else {
        return;
    };
    if !active() {
        return unsafe { f() };
    }
    logged_sync_all(|| {
        unsafe { f() };
        0
    });
}

#[no_mangle]
pub unsafe extern "C" fn syncfs(fd: c_int) -> c_int {
    let f = real_or!("syncfs", FdFn, -1);
    if !active() {
        return unsafe { f(fd) };
    }
    logged_sync_all(|| unsafe { f(fd) })
}
