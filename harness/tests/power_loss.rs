//! Power loss of the built-in writers on the file-operation recorder (issue 13): the real binary,
//! real forked writers recorded through `torture-preload`, every crash state of each recording
//! checked by the oracle. Positive controls must be caught, negative controls never fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn torture() -> Command {
    Command::new(env!("CARGO_BIN_EXE_torture"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

type Row = HashMap<String, String>;

fn rows(out: &Path) -> Vec<Row> {
    let mut r = csv::Reader::from_path(out.join("trials.csv")).expect("trials.csv");
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.expect("every row is complete");
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// `torture --fault power-loss --profile P -n N --seed S EXTRA…`; the run must exit 0 (no
/// violation) unless `expect_code` says otherwise.
fn power_run(tmp: &Path, name: &str, profiles: &str, n: &str, extra: &[&str]) -> (Output, PathBuf) {
    let out = tmp.join(name);
    let o = torture()
        .args(["--fault", "power-loss", "--profile", profiles, "-n", n])
        .args(["--seed", "7", "--no-progress", "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    (o, out)
}

fn num(r: &Row, col: &str) -> u64 {
    r[col]
        .parse()
        .unwrap_or_else(|_| panic!("{col}: {:?}", r[col]))
}

#[test]
fn wal_full_one_and_four_processes_never_damaged_in_any_crash_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, out) = power_run(tmp.path(), "neg", "wal-full,wal-full-4proc", "12", &[]);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    let rows = rows(&out);
    assert_eq!(rows.len(), 24);
    for r in &rows {
        assert_eq!(r["outcome"], "intact", "{r:?}");
        assert!(num(r, "crash_states") >= 20, "every sync boundary: {r:?}");
        assert_eq!(num(r, "damaged_states"), 0, "{r:?}");
        assert!(r["kill_point"].starts_with("cut=op "), "{r:?}");
    }
    let four: Vec<&Row> = rows
        .iter()
        .filter(|r| r["profile"] == "wal-full-4proc")
        .collect();
    assert!(four
        .iter()
        .all(|r| r["processes"] == "4" && r["detail"].contains("4 process(es)")));
    let total: u64 = rows.iter().map(|r| num(r, "crash_states")).sum();
    assert!(
        stdout.contains(&format!("{total} crash states checked")),
        "the summary says how many states: {stdout}"
    );
}

#[test]
fn journal_off_and_a_lying_disk_are_caught_with_their_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, out) = power_run(tmp.path(), "off", "off-full", "8", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows_off = rows(&out);
    let damaged: Vec<&Row> = rows_off
        .iter()
        .filter(|r| num(r, "damaged_states") > 0)
        .collect();
    assert!(
        damaged.len() >= 6,
        "journal_mode=OFF must be caught: {rows_off:?}"
    );
    for r in &damaged {
        assert_ne!(r["outcome"], "intact");
        assert_eq!(r["verdict"], "expected");
    }
    // Expected losses keep one example (the first): issue 20 R19.
    for r in damaged.iter().take(1) {
        let ev = out.join("failures").join(&r["iteration"]);
        assert!(
            ev.join("trial.db").is_file() && ev.join("ops.log").is_file(),
            "{ev:?}"
        );
    }

    let (o, out) = power_run(tmp.path(), "lie", "wal-full", "12", &["--lying-disk"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows_lie = rows(&out);
    assert!(
        rows_lie.iter().any(|r| num(r, "damaged_states") > 0),
        "a disk that ignores fsync breaks WAL+FULL: {rows_lie:?}"
    );
    assert!(rows_lie
        .iter()
        .filter(|r| r["outcome"] != "intact")
        .all(|r| r["verdict"] == "expected"));
}

#[test]
fn replay_of_a_power_loss_failure_rebuilds_the_same_crash_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, out) = power_run(tmp.path(), "rep", "delete-off", "6", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows = rows(&out);
    let bad = rows
        .iter()
        .find(|r| r["outcome"] != "intact")
        .expect("delete-off is damaged by a power cut");
    let hash = bad["detail"]
        .split("worst state ")
        .nth(1)
        .expect("the detail names the worst state")[..16]
        .to_string();
    let o = torture()
        .arg("replay")
        .arg(out.join("failures").join(&bad["iteration"]))
        .output()
        .unwrap();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    assert!(stdout.contains("byte-identical"), "{stdout}");
    assert!(stdout.contains("same outcome"), "{stdout}");
    let replayed = stdout.split("replayed:").nth(1).unwrap();
    assert!(replayed.contains(&hash), "same state hash {hash}: {stdout}");
}

#[test]
fn long_workloads_cut_inside_wal_checkpoints() {
    // 400 commits pass the default wal_autocheckpoint (1000 pages): checkpoints and WAL resets.
    let tmp = tempfile::tempdir().unwrap();
    let (o, out) = power_run(
        tmp.path(),
        "ckpt",
        "wal-full,wal-normal",
        "3",
        &["--fault-commits", "400", "--max-states", "48"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows = rows(&out);
    for r in &rows {
        assert!(num(r, "crash_states") <= 48, "{r:?}");
        assert!(num(r, "cuts_in_checkpoint") > 0, "{r:?}");
        assert!(!r["detail"].contains(" 0 WAL reset(s)"), "{r:?}");
        assert!(
            matches!(r["outcome"].as_str(), "intact" | "lost-commit"),
            "{r:?}"
        );
        if r["profile"] == "wal-full" {
            assert_eq!(num(r, "damaged_states"), 0, "{r:?}");
        }
    }
}

#[test]
fn bad_power_loss_settings_are_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, out) = power_run(tmp.path(), "bad", "wal-full", "2", &["--max-states", "0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--max-states"), "{err}");
    assert!(!out.exists());
}
