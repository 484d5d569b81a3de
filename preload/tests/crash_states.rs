//! Record once, crash everywhere, on real SQLite (Python's sqlite3 → the system libsqlite3 → libc):
//! run the writer under the recorder, enumerate the crash states, check each with rusqlite.

mod common;

use std::time::Instant;

use common::Tally;
use common::*;
use torture_preload::{enumerate, Coverage, CrashPlan, Model, OpKind, Variant};

fn plan(model: Model) -> CrashPlan {
    CrashPlan {
        random_per_cut: 2,
        seed: 7,
        ..CrashPlan::every_sync(model)
    }
}

#[test]
fn wal_full_every_crash_state_is_intact_with_every_acked_commit() {
    let r = record_writer("wal", &["--commits", "50", "--synchronous", "full"], &[]);
    assert_eq!(r.log.coverage(), Coverage::FileOps);
    let started = Instant::now();
    let e = enumerate(&r.start, &r.log, &plan(Model::default())).unwrap();
    let t = check_states(e.states());
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "WAL+FULL, 50 commits: {} ops, {} cut points, {} candidates, {} distinct states checked in {:.2}s ({:.0}/s): {:?}",
        r.log.ops.len(),
        e.cut_points,
        e.candidates,
        t.states,
        secs,
        t.states as f64 / secs,
        t
    );
    assert!(t.states >= 100, "too few crash states: {t:?}");
    assert_eq!(t.damaged, 0, "{t:?}");
    assert_eq!(t.lost, 0, "WAL+FULL lost an acknowledged commit: {t:?}");
    assert_eq!(t.max_acks, 50);
}

#[test]
fn wal_normal_may_lose_recent_acked_commits_but_never_corrupts() {
    let r = record_writer("wal", &["--commits", "40", "--synchronous", "normal"], &[]);
    // NORMAL syncs only at checkpoints: cut at every operation instead of every sync.
    let p = CrashPlan {
        random_per_cut: 1,
        seed: 7,
        ..CrashPlan::every_op(Model::default())
    };
    let e = enumerate(&r.start, &r.log, &p).unwrap();
    let t = check_states(e.states());
    eprintln!("WAL+NORMAL: {t:?}");
    assert_eq!(t.damaged, 0, "{t:?}");
    // NORMAL does not sync the WAL at commit: a power cut loses acked commits (documented).
    assert!(t.lost > 0, "the model lost nothing under WAL+NORMAL: {t:?}");
}

#[test]
fn journal_off_is_caught_damaged() {
    let r = record_writer(
        "off",
        &[
            "--commits",
            "30",
            "--synchronous",
            "full",
            "--rows",
            "12",
            "--payload",
            "1500",
        ],
        &[],
    );
    let mut p = plan(Model::default());
    p.random_per_cut = 6;
    let e = enumerate(&r.start, &r.log, &p).unwrap();
    let t = check_states(e.states());
    eprintln!("journal_mode=OFF: {t:?}");
    assert!(t.damaged > 0, "positive control not caught: {t:?}");
}

#[test]
fn a_lying_disk_loses_wal_full_acked_commits() {
    let r = record_writer("wal", &["--commits", "20", "--synchronous", "full"], &[]);
    let model = Model {
        lying_disk: true,
        ..Model::default()
    };
    let e = enumerate(&r.start, &r.log, &plan(model)).unwrap();
    let t = check_states(e.states());
    eprintln!("WAL+FULL on a lying disk: {t:?}");
    assert!(t.lost > 0, "positive control not caught: {t:?}");
}

#[test]
fn delete_full_syncs_the_directory_and_never_corrupts() {
    let r = record_writer("delete", &["--commits", "15", "--synchronous", "full"], &[]);
    let dir_syncs = r
        .log
        .ops
        .iter()
        .filter(|o| matches!(&o.kind, OpKind::Sync { is_dir: true, .. }))
        .count();
    let journal_creates = r
        .log
        .ops
        .iter()
        .filter(|o| {
            matches!(&o.kind, OpKind::Open { created: true, path, .. } if path.ends_with("x.db-journal"))
        })
        .count();
    let journal_unlinks = r
        .log
        .ops
        .iter()
        .filter(
            |o| matches!(&o.kind, OpKind::Unlink { path, .. } if path.ends_with("x.db-journal")),
        )
        .count();
    assert!(dir_syncs >= 15, "directory fsyncs seen: {dir_syncs}");
    assert!(journal_creates >= 15 && journal_unlinks >= 15);
    let e = enumerate(&r.start, &r.log, &plan(Model::default())).unwrap();
    let t = check_states(e.states());
    eprintln!("DELETE+FULL: {dir_syncs} directory fsyncs; {t:?}");
    assert_eq!(t.damaged, 0, "{t:?}");
}

#[test]
fn two_forked_writers_share_one_total_order_and_keep_their_acks_apart() {
    let r = record_writer(
        "wal",
        &[
            "--commits",
            "15",
            "--synchronous",
            "full",
            "--fork",
            "--id",
            "w",
        ],
        &[],
    );
    let pids: std::collections::BTreeSet<u32> = r.log.ops.iter().map(|o| o.pid).collect();
    assert!(pids.len() >= 2, "one process only: {pids:?}");
    let seqs: Vec<u64> = r.log.ops.iter().map(|o| o.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence not total"
    );
    let all = torture_preload::acks_before(&r.log.ops, u64::MAX);
    let p = torture_preload::Writer::Id("w-p".into());
    let c = torture_preload::Writer::Id("w-c".into());
    assert_eq!(all.by_writer.get(&p).map(Vec::len), Some(15), "{all:?}");
    assert_eq!(all.by_writer.get(&c).map(Vec::len), Some(15), "{all:?}");
    let e = enumerate(&r.start, &r.log, &plan(Model::default())).unwrap();
    let t = check_states(e.states());
    eprintln!("two forked writers: {t:?}");
    assert_eq!((t.damaged, t.lost), (0, 0), "{t:?}");
}

#[test]
fn a_kill_at_op_state_is_what_the_files_hold_after_the_kill() {
    // The recorder SIGKILLs the process group instead of op 60; rebuilding forward from the start
    // with everything kept (the page cache survives a process crash) must give the files on disk.
    let r = record_writer_allow_failure(
        "wal",
        &["--commits", "30"],
        &[("TORTURE_FAULTFS_CRASH_AT", "60")],
    );
    let last = r.log.ops.last().expect("ops");
    assert!(
        matches!(last.kind, OpKind::Crash),
        "last op {:?}",
        last.kind
    );
    assert_eq!(last.seq, 60);
    let state = torture_preload::build_state(
        &r.start,
        &r.log,
        torture_preload::Cut { after: 59 },
        Variant::KeepAll,
        &Model::default(),
    )
    .unwrap();
    let on_disk = torture_preload::snapshot(&r.dir()).unwrap();
    for (path, data) in &state {
        let f = on_disk
            .files
            .get(path)
            .unwrap_or_else(|| panic!("{} missing on disk", path.display()));
        assert!(f.data == *data, "{} differs", path.display());
    }
    let non_shm = on_disk
        .files
        .keys()
        .filter(|p| !p.to_string_lossy().ends_with("-shm"))
        .count();
    assert_eq!(non_shm, state.len());
}

#[test]
fn the_final_state_rebuilt_from_the_log_is_the_final_folder() {
    let r = record_writer("delete", &["--commits", "10"], &[]);
    let end = r.log.ops.last().unwrap().seq;
    let state = torture_preload::build_state(
        &r.start,
        &r.log,
        torture_preload::Cut { after: end },
        Variant::KeepAll,
        &Model::default(),
    )
    .unwrap();
    let on_disk = torture_preload::snapshot(&r.dir()).unwrap();
    let disk: std::collections::BTreeMap<_, _> = on_disk
        .files
        .into_iter()
        .map(|(p, f)| (p, f.data))
        .collect();
    assert_eq!(disk, state);
}

fn record_writer_allow_failure(
    journal_mode: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Recording {
    let tmp = new_folder();
    prepare(&tmp.path().join("db"), journal_mode);
    let mut cmd = std::process::Command::new(python());
    cmd.arg(writer_script())
        .arg(tmp.path().join("db/x.db"))
        .args(["--journal-mode", journal_mode])
        .args(args);
    record_cmd(tmp, cmd, env)
}

#[test]
fn an_injected_fsync_error_reaches_the_program_and_is_logged() {
    let r = record_writer_allow_failure(
        "wal",
        &["--commits", "10"],
        &[("TORTURE_FAULTFS_FAIL_AT", "sync:3:eio")],
    );
    assert!(
        !r.output.status.success(),
        "the program did not see the error"
    );
    let injected: Vec<_> = r.log.ops.iter().filter(|o| o.injected).collect();
    assert_eq!(injected.len(), 1, "{injected:?}");
    assert!(matches!(injected[0].kind, OpKind::Sync { .. }));
    assert_eq!(injected[0].errno, libc::EIO);
    assert!(String::from_utf8_lossy(&r.output.stderr).contains("disk I/O error"));
}

#[test]
fn a_full_disk_reaches_the_program_as_enospc() {
    let r = record_writer_allow_failure(
        "wal",
        &["--commits", "10"],
        &[("TORTURE_FAULTFS_FAIL_AT", "write:5:enospc:persist")],
    );
    assert!(!r.output.status.success());
    let injected = r.log.ops.iter().filter(|o| o.injected).count();
    assert!(injected >= 1);
    assert!(r
        .log
        .ops
        .iter()
        .filter(|o| o.injected)
        .all(|o| o.errno == libc::ENOSPC));
    // Which call fails decides SQLite's message ("database or disk is full" for a data write,
    // "disk I/O error" for the -shm's size extension): either way the program saw the error.
    let err = String::from_utf8_lossy(&r.output.stderr);
    assert!(err.contains("sqlite3.OperationalError"), "{err}");
}

/// WAL runs long enough to checkpoint mid-run (wal_autocheckpoint of a few pages): cuts inside the
/// checkpoints, counted.
fn checkpointing(sync: &str) -> (usize, Tally) {
    let r = record_writer(
        "wal",
        &[
            "--commits",
            "40",
            "--synchronous",
            sync,
            "--autocheckpoint",
            "8",
            "--rows",
            "6",
        ],
        &[],
    );
    let cps = torture_preload::wal_checkpoints(&r.log);
    assert!(cps.len() >= 3, "too few checkpoints: {cps:?}");
    let p = CrashPlan {
        random_per_cut: 2,
        seed: 11,
        ..CrashPlan::every_op(Model::default())
    };
    let e = enumerate(&r.start, &r.log, &p).unwrap();
    let mut inside = 0;
    let states = e.states().inspect(|s| {
        if cps.iter().any(|c| c.contains(s.cut)) {
            inside += 1;
        }
    });
    let t = check_states(states);
    eprintln!(
        "WAL+{sync} with {} checkpoints: {inside} of {} states cut inside a checkpoint: {t:?}",
        cps.len(),
        t.states
    );
    assert!(inside > 0, "no cut fell inside a checkpoint");
    (inside, t)
}

#[test]
fn wal_full_cuts_inside_checkpoints_lose_nothing() {
    let (_, t) = checkpointing("full");
    assert_eq!((t.damaged, t.lost), (0, 0), "{t:?}");
}

#[test]
fn wal_normal_cuts_inside_checkpoints_never_corrupt() {
    let (_, t) = checkpointing("normal");
    assert_eq!(t.damaged, 0, "{t:?}");
}

/// io-error: the 8th sync fails. A program that acknowledges the commit anyway is caught (an
/// acked commit missing); one that stops at the error loses nothing it acknowledged.
fn failed_fsync(ignore_errors: bool) -> Tally {
    let mut args = vec!["--commits", "20", "--synchronous", "full"];
    if ignore_errors {
        args.push("--ignore-errors");
    }
    let r = record_writer_allow_failure("wal", &args, &[("TORTURE_FAULTFS_FAIL_AT", "sync:8:eio")]);
    assert_eq!(
        r.output.status.success(),
        ignore_errors,
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    assert_eq!(r.log.ops.iter().filter(|o| o.injected).count(), 1);
    let e = enumerate(&r.start, &r.log, &CrashPlan::every_sync(Model::default())).unwrap();
    let t = check_states(e.states());
    eprintln!("failed fsync, ignore errors {ignore_errors}: {t:?}");
    t
}

#[test]
fn a_program_that_acks_a_commit_whose_fsync_failed_is_caught() {
    let t = failed_fsync(true);
    assert!(t.lost > 0, "positive control not caught: {t:?}");
}

#[test]
fn a_program_that_stops_at_a_failed_fsync_loses_nothing_it_acked() {
    let t = failed_fsync(false);
    assert_eq!((t.damaged, t.lost), (0, 0), "{t:?}");
}

#[test]
fn a_kill_at_the_nth_wal_sync_is_cut_from_the_recorded_log() {
    // Record once; the state a SIGKILL just before the 5th WAL sync leaves is rebuilt from the log.
    let r = record_writer("wal", &["--commits", "10"], &[]);
    let filter: torture_preload::OpFilter = "sync:wal".parse().unwrap();
    let seq = filter.nth(&r.log, 5).expect("a 5th WAL sync");
    assert!(
        matches!(&r.log.ops[(seq - 1) as usize].kind, OpKind::Sync { path, .. } if path.ends_with("x.db-wal"))
    );
    let files = torture_preload::build_state(
        &r.start,
        &r.log,
        torture_preload::Cut { after: seq - 1 },
        Variant::KeepAll,
        &Model::default(),
    )
    .unwrap();
    let acks = torture_preload::acks_before(&r.log.ops, seq - 1);
    let scratch = tempfile::tempdir().unwrap();
    torture_preload::write_files(scratch.path(), &files).unwrap();
    assert_eq!(check_db(scratch.path(), &acks), Verdict::Intact);
    assert!(filter.nth(&r.log, 10_000).is_none());
}
