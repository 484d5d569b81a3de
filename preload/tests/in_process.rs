//! The built-in writers are forked, not executed: `start_recording` turns the recorder on inside a
//! forked child of a binary that links this crate (here, this test binary with its bundled SQLite).

mod common;

use std::os::unix::ffi::OsStrExt;

use common::*;
use torture_preload::{enumerate, env, start_recording, Coverage, CrashPlan, Model};

#[test]
fn a_forked_child_records_the_sqlite_linked_into_its_own_binary() {
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    let log_path = tmp.path().join("log");
    {
        let c = rusqlite::Connection::open(dir.join("x.db")).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE t(seq INTEGER, writer TEXT, PRIMARY KEY(seq, writer));
             CREATE TABLE item(id INTEGER PRIMARY KEY, seq INTEGER, payload BLOB);",
        )
        .unwrap();
    }
    let start = torture_preload::snapshot(&dir).unwrap();
    let mut fds = [0; 2];
    // SAFETY: a plain pipe.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (r, w) = (fds[0], fds[1]);
    let dir_s = String::from_utf8(dir.as_os_str().as_bytes().to_vec()).unwrap();
    let log_s = String::from_utf8(log_path.as_os_str().as_bytes().to_vec()).unwrap();
    let w_s = w.to_string();
    // SAFETY: the child only runs the closure below and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let ok = std::panic::catch_unwind(|| {
            start_recording(&[(env::DIR, &dir_s), (env::LOG, &log_s), (env::ACKFD, &w_s)]).unwrap();
            let c = rusqlite::Connection::open(dir.join("x.db")).unwrap();
            c.execute_batch("PRAGMA synchronous=FULL").unwrap();
            for n in 1..=20 {
                c.execute_batch(&format!(
                    "BEGIN; INSERT INTO item(seq, payload) VALUES ({n}, zeroblob(700));
                     INSERT INTO t VALUES ({n}, ''); COMMIT;"
                ))
                .unwrap();
                let line = format!("ack {n}\n");
                // SAFETY: a valid buffer on our pipe.
                unsafe { libc::write(w, line.as_ptr().cast(), line.len()) };
            }
        })
        .is_ok();
        // SAFETY: ending the forked child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    // SAFETY: closing our copy of the write end, draining the read end, reaping the child.
    unsafe { libc::close(w) };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = unsafe { libc::read(r, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    unsafe { libc::close(r) };
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status}"
    );
    assert!(String::from_utf8_lossy(&out).ends_with("ack 20\n"));

    let log = torture_preload::read_log(&log_path).unwrap();
    assert_eq!(
        log.coverage(),
        Coverage::FileOps,
        "the child's SQLite was not recorded"
    );
    assert_eq!(torture_preload::acks_before(&log.ops, u64::MAX).total(), 20);
    let e = enumerate(&start, &log, &CrashPlan::every_sync(Model::default())).unwrap();
    let t = check_states(e.states());
    eprintln!("in-process recording, WAL+FULL: {t:?}");
    assert!(t.states >= 20);
    assert_eq!((t.damaged, t.lost), (0, 0), "{t:?}");
}
