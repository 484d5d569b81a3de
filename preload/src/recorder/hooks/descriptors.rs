//! Descriptor bookkeeping: `dup`, `dup2`, `dup3`, `fcntl(F_DUPFD*)`, `close`, `close_range` keep
//! the table of the folder's descriptors true.

use super::*;

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
