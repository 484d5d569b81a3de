//! io-error on the recorder, the built-in writer's way: a forked writer records its commits with
//! the recorder failing its K-th sync (EIO), then every crash state is checked as a trial checks
//! it (keep-all judged as the io-error promise, the others as power cuts). Positive control: a
//! writer that acknowledges the commit whose sync failed is caught. Negative control: the built-in
//! policy (a failed commit is not acknowledged; retry the same commit) loses nothing in WAL+FULL.

use std::path::{Path, PathBuf};

use torture_preload::Variant;
use torture_workloads::{Profile, Workload};

use super::recorded::{self, CheckPlan, Checked, RecordingPlan, StateKind};
use super::testkit::{in_child, scratch_dir, serial};
use crate::seed;
use crate::verify::outcome::{Outcome, Verdict};
use crate::verify::verdict::{self, Fault};

const COMMITS: u64 = 12;

/// Records one run of `COMMITS` inserts (WAL+FULL) with the recorder failing sync number
/// `fail_sync`; `lie`: acknowledge a commit that failed anyway (and move on to the next number).
fn record_and_check(dir: &Path, fail_sync: u64, lie: bool) -> Checked {
    let (start, log) = record(dir, fail_sync, lie);
    let scratch = dir.join("state");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let judge = |o: Outcome, v: Variant| {
        verdict::judge(
            o,
            "wal",
            "full",
            Fault::IoError.judged_as(v == Variant::KeepAll),
            true,
        )
    };
    recorded::check_recording(
        &start,
        &log,
        &scratch,
        "trial.db",
        CheckPlan {
            kind: StateKind::PowerCut,
            model: torture_preload::Model::default(),
            max_states: 200,
            seed: 5,
            fixed: None,
            workload: Workload::Inserts,
            judge: &judge,
            before_check: None,
            after_check: None,
        },
    )
    .expect("check")
}

/// The recording of [`record_and_check`]: its starting snapshot and its log.
fn record(dir: &Path, fail_sync: u64, lie: bool) -> (torture_preload::Snapshot, PathBuf) {
    let profile = Profile::builtin("wal-full").expect("wal-full");
    let template = dir.join("template.db");
    crate::writers::workload::make_starting_database(&template, &profile, Workload::Inserts)
        .expect("starting database");
    let mut plan = RecordingPlan::in_slot(dir, 5);
    plan.fail_at = Some(format!("sync:{fail_sync}:eio"));
    let db = plan.prepare(&template, "trial.db").expect("prepare");
    let start = torture_preload::snapshot(&plan.dir).expect("snapshot");
    let failed_file = dir.join("failed");
    in_child(|| {
        let ack = recorded::start_in_writer(&plan, 0).expect("recorder");
        let mut conn = rusqlite::Connection::open(&db).expect("open");
        profile.apply(&conn).expect("profile");
        let mut rng = seed::rng_for(5, seed::WRITER_STREAM_BASE);
        let (mut seq, mut failed) = (1, 0);
        while seq <= COMMITS && failed < 50 {
            match Workload::Inserts.run_transaction(&mut conn, 0, seq, &mut rng) {
                Ok(()) => {
                    recorded::log_ack(ack, 0, seq);
                    seq += 1;
                }
                Err(_) => {
                    failed += 1;
                    if lie {
                        recorded::log_ack(ack, 0, seq);
                        seq += 1;
                    }
                }
            }
        }
        std::fs::write(&failed_file, failed.to_string()).expect("write");
        // Killed, not closed: no checkpoint on close.
        std::mem::forget(conn);
        0
    });
    let failed: u64 = std::fs::read_to_string(&failed_file)
        .expect("the writer ran")
        .parse()
        .expect("count");
    assert!(failed > 0, "the injected EIO failed a commit");
    (start, plan.log)
}

/// The one crash-state loop with a scripted check: one mark per state in cut order, the worst by
/// rank (the violation, whatever comes after it), no file built when `build` says no.
#[test]
fn the_crash_state_loop_keeps_every_mark_and_the_worst_state() {
    let _serial = serial();
    let tmp = scratch_dir();
    let (start, log_path) = record(tmp.path(), 3, false);
    let log = torture_preload::read_log(&log_path).expect("log");
    struct Scripted {
        seen: Vec<(String, bool)>,
        bad: usize,
    }
    impl recorded::CrashStateCheck for Scripted {
        type Found = usize;
        fn check(
            &mut self,
            state: &mut torture_preload::KeyedState,
            cut: &str,
        ) -> Result<recorded::Judged<usize>, String> {
            let i = self.seen.len();
            self.seen.push((cut.to_string(), state.built));
            let (outcome, verdict) = if i == self.bad {
                (Outcome::LostCommit, Verdict::Violation)
            } else {
                (Outcome::Intact, Verdict::Ok)
            };
            Ok(recorded::Judged {
                outcome,
                verdict,
                acked: state.state.acks.all().count() as u64,
                found: i,
            })
        }
    }
    let plan = |build| recorded::Sweep {
        crash: torture_preload::CrashPlan {
            max_states: Some(200),
            seed: 5,
            ..torture_preload::CrashPlan::every_sync(torture_preload::Model::default())
        },
        fixed: None,
        excuse_ignored_dir_syncs: true,
        build,
    };
    let mut check = Scripted {
        seen: Vec::new(),
        bad: 2,
    };
    let s = recorded::sweep(&start, &log, &plan(None), &mut check).expect("sweep");
    assert!(s.marks.len() > 10, "{}", s.marks.len());
    assert_eq!(s.marks.len(), check.seen.len());
    assert!(check
        .seen
        .iter()
        .all(|(cut, built)| cut.starts_with("cut=op ") && *built));
    let worst = s.worst.as_ref().expect("a worst state");
    assert_eq!((worst.index, worst.judged.found), (2, 2));
    assert_eq!(worst.cut, check.seen[2].0);
    assert_eq!(s.marks[2].verdict, Verdict::Violation);
    assert_eq!(s.damaged(), 1);
    assert!(s.counts().contains("1 lost-commit"), "{}", s.counts());
    // Negative control: nothing bad, the worst is an intact state (the one with the most acks).
    let mut clean = Scripted {
        seen: Vec::new(),
        bad: usize::MAX,
    };
    let c = recorded::sweep(&start, &log, &plan(None), &mut clean).expect("sweep");
    assert_eq!(c.damaged(), 0);
    assert_eq!(c.worst.expect("worst").judged.verdict, Verdict::Ok);
    // Keyed: a state whose key the caller does not want built comes without its files.
    let never = |_: u64| false;
    let mut keyed = Scripted {
        seen: Vec::new(),
        bad: usize::MAX,
    };
    let k = recorded::sweep(&start, &log, &plan(Some(&never)), &mut keyed).expect("sweep");
    assert_eq!(k.marks.len(), s.marks.len());
    assert!(keyed.seen.iter().all(|(_, built)| !built));
}

#[test]
fn a_writer_that_acknowledges_a_failed_commit_is_caught_and_the_honest_one_loses_nothing() {
    let _serial = serial();
    for fail_sync in [3, 7] {
        let liar = record_and_check(scratch_dir().path(), fail_sync, true);
        assert_eq!(liar.injected_ops, 1);
        assert_eq!(liar.verdict, Verdict::Violation, "{}", liar.detail);
        assert_eq!(liar.outcome, Outcome::LostCommit, "{}", liar.detail);

        let honest = record_and_check(scratch_dir().path(), fail_sync, false);
        assert_eq!(honest.injected_ops, 1);
        assert_eq!(honest.outcome, Outcome::Intact, "{}", honest.detail);
        assert_eq!(honest.verdict, Verdict::Ok);
        assert!(honest.crash_states > 10, "{}", honest.detail);
    }
}

/// The excuse for a failed directory fsync applies only to damaged power-cut states cut inside its
/// span: from the failed sync to the next successful fsync of that directory.
#[test]
fn only_power_cut_violations_after_a_failed_directory_fsync_are_excused() {
    let excuse = |spans: &[(u64, u64)], after: u64, v: Variant, verdict: Verdict| {
        recorded::excuse_after_failed_directory_sync(spans, after, v, verdict)
    };
    let spans = [(10, 20)];
    let v = Verdict::Violation;
    assert_eq!(
        excuse(&spans, 12, Variant::LoseAll, v),
        Some(Verdict::Expected)
    );
    assert_eq!(
        excuse(&spans, 10, Variant::TearLast, v),
        Some(Verdict::Expected)
    );
    // Before the failure, at or after the next good directory fsync, a process crash (keep-all),
    // no failure, or no violation: unchanged.
    assert_eq!(excuse(&spans, 9, Variant::LoseAll, v), None);
    assert_eq!(excuse(&spans, 20, Variant::LoseAll, v), None);
    assert_eq!(excuse(&spans, 12, Variant::KeepAll, v), None);
    assert_eq!(excuse(&[], 12, Variant::LoseAll, v), None);
    assert_eq!(
        excuse(&spans, 12, Variant::LoseAll, Verdict::Expected),
        None
    );
}

/// The trial's example state: the gravest verdict first; among violations, one after an ack
/// before one before any (whatever the outcomes); then the outcome; then the most acks.
#[test]
fn a_failure_after_a_promise_is_the_example_before_one_before_any() {
    let torn_first = recorded::worst_rank(Verdict::Violation, Outcome::OpenFailed, 0);
    let lost_later = recorded::worst_rank(Verdict::Violation, Outcome::LostCommit, 7);
    assert!(lost_later > torn_first);
    let open_later = recorded::worst_rank(Verdict::Violation, Outcome::OpenFailed, 3);
    assert!(
        open_later > lost_later,
        "outcome before acks once both are after an ack"
    );
    assert!(
        recorded::worst_rank(Verdict::Violation, Outcome::LostCommit, 9) > lost_later,
        "more acks among equals"
    );
    assert!(torn_first > recorded::worst_rank(Verdict::Expected, Outcome::LostCommit, 9));
}
