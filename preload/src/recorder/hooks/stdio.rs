//! Calls that reach the file system without the hooked libc entry points: stdio, libc wrappers whose
//! inner calls bypass the hooks, and whole-file-system syncs (`sync`, `syncfs`).

use super::names::logged_unlink;
use super::*;

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
    let (ret, err, injected) = match locked.fail_check(FailKind::Truncate) {
        Some(e) => (-1, e, true),
        None => {
            let r = call();
            (r, if r < 0 { errno() } else { 0 }, false)
        }
    };
    let mut rec = locked.enc(Tag::Truncate, err, injected);
    rec.file(-1, &rel, ino)
        .u64(old_size)
        .u64(new_size)
        .bytes(&[]);
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
