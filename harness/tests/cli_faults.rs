//! End-to-end: op-indexed faults (kill-at-op, power loss, I/O errors, crash during recovery).

mod common;

#[allow(unused_imports)]
use common::*;

#[test]
fn power_loss_reproduces_the_documented_synchronous_matrix() {
    // Negative controls: WAL+FULL and DELETE+EXTRA lose nothing. Positive controls: synchronous=OFF
    // corrupts; WAL+NORMAL loses recent commits but stays consistent; DELETE+FULL loses the last.
    let tmp = tempfile::tempdir().unwrap();
    let (o, rows) = fault_run(
        &tmp,
        "pl",
        "power-loss",
        "wal-full,wal-normal,delete-full,delete-extra,delete-off,wal-off",
        "40",
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(count(&rows, "wal-full", "intact"), 40);
    assert_eq!(count(&rows, "delete-extra", "intact"), 40);
    assert!(count(&rows, "wal-normal", "lost-commit") > 0);
    assert_eq!(count(&rows, "wal-normal", "corrupt"), 0);
    assert!(count(&rows, "delete-full", "lost-commit") > 0);
    assert!(
        count(&rows, "delete-off", "intact") < 40,
        "synchronous=OFF must be caught"
    );
    assert!(rows
        .iter()
        .all(|r| r["fault"] == "power-loss" && r["kill_point"].starts_with("cut=op ")));
    assert!(rows
        .iter()
        .filter(|r| r["outcome"] != "intact")
        .all(|r| r["verdict"] == "expected"));
}

#[test]
fn a_lying_disk_breaks_even_wal_full_and_the_verdict_says_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, rows) = fault_run(
        &tmp,
        "lie",
        "power-loss",
        "wal-full",
        "40",
        &["--lying-disk"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        count(&rows, "wal-full", "intact") < 40,
        "a disk ignoring fsync must hurt"
    );
    assert!(rows
        .iter()
        .filter(|r| r["outcome"] != "intact")
        .all(|r| r["verdict"] == "expected"));
}

#[test]
fn kill_at_op_and_io_errors_never_hurt_crash_safe_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    for fault in ["kill-at-op", "io-error", "disk-full"] {
        let (o, rows) = fault_run(
            &tmp,
            fault,
            fault,
            "wal-full,delete-full,wal-normal",
            "25",
            &[],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{fault}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        assert_eq!(rows.len(), 75);
        let bad: Vec<_> = rows.iter().filter(|r| r["outcome"] != "intact").collect();
        assert!(bad.is_empty(), "{fault}: {bad:?}");
    }
    // The op-indexed kill does reach journal_mode=OFF mid-transaction.
    let (_, rows) = fault_run(
        &tmp,
        "kao-off",
        "kill-at-op",
        "off-off",
        "60",
        &["--workload", "mixed"],
    );
    assert!(count(&rows, "off-off", "intact") < 60);
}

#[test]
fn a_crash_at_a_fixed_operation_replays_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, rows) = fault_run(
        &tmp,
        "fixed",
        "power-loss",
        "delete-off",
        "30",
        &["--crash-at", "write:db:9"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // One cut, just before the 9th write to the database file, with its keep/lose/tear variants.
    assert!(rows
        .iter()
        .all(|r| r["kill_point"].starts_with("cut=op ") && r["detail"].contains("fixed cut")));
    let bad = rows
        .iter()
        .find(|r| r["outcome"] != "intact")
        .expect("delete-off loses under power loss");
    let evidence = out_dir(&tmp, "fixed")
        .join("failures")
        .join(&bad["iteration"]);
    assert!(
        evidence.join("ops.log").is_file(),
        "the op log travels with the evidence"
    );
    let o = torture().arg("replay").arg(&evidence).output().unwrap();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    assert!(
        stdout.contains("byte-identical") && stdout.contains("same outcome"),
        "{stdout}"
    );
}

#[test]
fn a_crash_in_the_middle_of_recovery_loses_nothing_either() {
    let tmp = tempfile::tempdir().unwrap();
    for fault in ["sigkill", "power-loss"] {
        let (o, rows) = fault_run(
            &tmp,
            &format!("cr-{fault}"),
            fault,
            "delete-extra,truncate-full,wal-full",
            "40",
            &["--crash-recovery"],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{fault}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        let bad: Vec<_> = rows.iter().filter(|r| r["outcome"] != "intact").collect();
        assert!(bad.is_empty(), "{fault}: {bad:?}");
        let crashed = rows
            .iter()
            .filter(|r| r["detail"].contains("recovery crashed at op"))
            .count();
        assert!(crashed > 0, "{fault}: some recoveries had I/O to crash in");
    }
}
