//! Tests of `vfs.rs`, kept beside it (the module itself is long enough).

use super::*;
use crate::faults::config::CrashAt;
use crate::faults::testkit::{self, killed, Trial, Workload};
use nix::sys::wait::WaitStatus;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

fn open_shim(path: &Path) -> Connection {
    let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), register().unwrap())
        .expect("open through the shim");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

/// Several connections (one per thread) commit through the shim; the result is checked with
/// plain SQLite.
/// The caller holds the serial lock (it reads the counters afterwards).
fn commits_from_several_connections(journal_mode: &str) {
    configure(FaultConfig::default()).unwrap();
    let dir = testkit::scratch_dir();
    let db = dir.path().join("multi.db");
    let first = open_shim(&db);
    let mode: String = first
        .query_row(&format!("PRAGMA journal_mode={journal_mode}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode, journal_mode);
    // mmap exercises xFetch/xUnfetch through the shim.
    first
        .execute_batch(
            "PRAGMA mmap_size=1048576;
             CREATE TABLE t(writer INTEGER, seq INTEGER, PRIMARY KEY (writer, seq));",
        )
        .unwrap();
    std::thread::scope(|s| {
        for writer in 0..3 {
            let db = &db;
            s.spawn(move || {
                let conn = open_shim(db);
                for seq in 0..20 {
                    conn.execute("INSERT INTO t(writer, seq) VALUES (?1, ?2)", [writer, seq])
                        .unwrap();
                }
            });
        }
    });
    let n: i64 = first
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 60);
    drop(first);
    let check = testkit::check_rows(&db);
    assert_eq!(check, ("ok".to_string(), 60));
}

#[test]
fn wal_mode_through_the_shim_really_is_wal() {
    let _serial = testkit::serial();
    commits_from_several_connections("wal");
    // The WAL was written and synced through the shim (synchronous defaults to FULL).
    assert!(ops_matching_so_far("write:wal".parse().unwrap()) > 0);
    assert!(ops_matching_so_far("sync:wal".parse().unwrap()) > 0);
}

#[test]
fn delete_mode_commits_through_the_shim_from_several_connections() {
    let _serial = testkit::serial();
    commits_from_several_connections("delete");
    assert!(ops_matching_so_far("delete:journal".parse().unwrap()) >= 60);
    assert!(ops_matching_so_far("write:db".parse().unwrap()) >= 60);
    assert!(ops_matching_so_far("sync:journal".parse().unwrap()) > 0);
}

#[test]
fn register_is_idempotent() {
    assert_eq!(register(), Ok(VFS_NAME));
    assert_eq!(register(), Ok(VFS_NAME));
}

const WAL_WORKLOAD: Workload<'static> = Workload {
    journal_mode: "wal",
    synchronous: "full",
    commits: 12,
    pad: 300,
};

#[test]
fn a_crash_point_kills_the_writer_just_before_that_op_and_repeats_byte_for_byte() {
    let _serial = testkit::serial();
    let dir = testkit::scratch_dir();
    let template = dir.path().join("template.db");
    testkit::make_db(&template, "wal");
    let total = testkit::measure_ops(&template, &WAL_WORKLOAD);
    assert!(
        total > 30,
        "a dozen WAL commits make dozens of ops: {total}"
    );

    for n in [1, total / 2, total] {
        let trial = Trial::new(&template);
        let crash = CrashAt {
            op: n,
            filter: OpFilter::ANY,
        };
        assert!(killed(trial.run(&WAL_WORKLOAD, Some(crash))), "op {n}");
        // Ops come in commit order, so a later crash point never loses an acknowledgement an
        // earlier one kept.
        assert!(trial.acked() <= WAL_WORKLOAD.commits, "op {n}");
    }

    // The same crash point twice: the same files, byte for byte.
    let crash = Some(CrashAt {
        op: total / 2,
        filter: OpFilter::ANY,
    });
    let (a, b) = (Trial::new(&template), Trial::new(&template));
    assert!(killed(a.run(&WAL_WORKLOAD, crash)));
    assert!(killed(b.run(&WAL_WORKLOAD, crash)));
    assert!(a.files().iter().any(|(suffix, _)| suffix == "-wal"));
    assert_eq!(a.files(), b.files());
    assert_eq!(a.acked(), b.acked());

    // Past the last op, nothing happens: the writer finishes.
    let past = Trial::new(&template);
    let status = past.run(
        &WAL_WORKLOAD,
        Some(CrashAt {
            op: total + 1,
            filter: OpFilter::ANY,
        }),
    );
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    assert_eq!(past.acked(), WAL_WORKLOAD.commits);
}

#[test]
fn a_crash_filter_counts_only_the_ops_it_names() {
    let _serial = testkit::serial();
    let dir = testkit::scratch_dir();
    let template = dir.path().join("template.db");
    testkit::make_db(&template, "wal");
    let trial = Trial::new(&template);
    let crash = CrashAt {
        op: 3,
        filter: "sync:wal".parse().unwrap(),
    };
    assert!(killed(trial.run(&WAL_WORKLOAD, Some(crash))));
    // Under WAL+FULL a commit syncs the WAL once, and the commit that writes a new WAL header
    // syncs it once more before its frames: the third WAL sync is the second commit's, so it
    // died before its sync and only the first was acknowledged. Counting every op instead (the
    // unfiltered count at 3 is the WAL's creating open, long before any commit) would kill
    // with nothing acknowledged.
    assert_eq!(trial.acked(), 1);
    let any = Trial::new(&template);
    assert!(killed(any.run(
        &WAL_WORKLOAD,
        Some(CrashAt {
            op: 3,
            filter: OpFilter::ANY,
        })
    )));
    assert_eq!(any.acked(), 0);
}

#[test]
fn sigkill_at_any_op_leaves_wal_and_delete_databases_intact() {
    let _serial = testkit::serial();
    for journal_mode in ["wal", "delete"] {
        let workload = Workload {
            journal_mode,
            synchronous: "normal",
            commits: 8,
            pad: 700,
        };
        let dir = testkit::scratch_dir();
        let template = dir.path().join("template.db");
        testkit::make_db(&template, journal_mode);
        let total = testkit::measure_ops(&template, &workload);
        for n in (1..=total).step_by(3) {
            let trial = Trial::new(&template);
            let crash = CrashAt {
                op: n,
                filter: OpFilter::ANY,
            };
            assert!(killed(trial.run(&workload, Some(crash))));
            let acked = trial.acked();
            let check = testkit::check(&trial.db, acked);
            assert!(check.intact(), "{journal_mode} op {n}: {check:?}");
            assert_eq!(check.present, acked, "{journal_mode} op {n}");
        }
    }
}
