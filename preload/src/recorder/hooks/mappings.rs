//! Shared writable mappings of a data file (reported, never silently missed) and seeded randomness
//! (`getrandom`, `getentropy`, reads of `/dev/urandom`) for determinism.

use super::*;

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
