//! Opening files: `open`, `openat`, `creat` and their fortified forms: a create or `O_TRUNC` of a
//! file of the folder is logged, and every descriptor of the folder is tracked.

use super::*;

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
            .bytes(&[]);
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
