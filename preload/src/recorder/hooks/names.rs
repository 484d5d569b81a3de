//! Names in the folder: `unlink`, `unlinkat`, `rmdir`, `rename`, `renameat`, `renameat2`, logged
//! with what they removed, durable only once the directory is synced.

use super::*;

// ---- names -------------------------------------------------------------------------------------

pub(super) fn logged_unlink(
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
