//! The recorder under encrypted libSQL (the `libsql` Python package): crash states checked by
//! libSQL itself with the key.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use torture_preload::{enumerate, Coverage, CrashPlan, CrashState, Model};

const KEY: &str = "s3cret-key";

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libsql_writer.py")
}

fn require_libsql() {
    let out = Command::new(python())
        .args(["-c", "import libsql"])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "these tests need libSQL's Python package: pip install libsql ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// (states, damaged, lost) with one libSQL process checking every state.
fn check_with_libsql(states: &[CrashState]) -> (usize, usize, usize) {
    let root = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let mut dirs = Vec::new();
    for (i, s) in states.iter().enumerate() {
        let d = root.path().join(i.to_string());
        s.write_to(&d).unwrap();
        dirs.push(d);
    }
    let out = Command::new(python())
        .arg(script())
        .args(["--check", KEY])
        .args(&dirs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), states.len());
    let (mut damaged, mut lost) = (0, 0);
    for (line, s) in lines.iter().zip(states) {
        match line.strip_prefix("ok ") {
            Some(seqs) => {
                let present: std::collections::BTreeSet<u64> =
                    seqs.split(',').filter_map(|x| x.parse().ok()).collect();
                if s.acks.all().any(|(_, n)| !present.contains(&n)) {
                    lost += 1;
                }
            }
            None => {
                damaged += 1;
                eprintln!("damaged at cut {} {:?}: {line}", s.cut.after, s.variant);
            }
        }
    }
    (states.len(), damaged, lost)
}

fn record(commits: &str) -> Recording {
    require_libsql();
    let tmp = new_folder();
    let db = tmp.path().join("db/x.db");
    let out = Command::new(python())
        .arg(script())
        .arg(&db)
        .args(["0", KEY])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Command::new(python());
    cmd.arg(script()).arg(&db).args([commits, KEY]);
    let r = record_cmd(tmp, cmd, &[]);
    assert!(
        r.output.status.success(),
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    r
}

#[test]
fn encrypted_libsql_wal_full_keeps_every_acked_commit() {
    let r = record("20");
    assert_eq!(r.log.coverage(), Coverage::FileOps);
    let plan = CrashPlan {
        random_per_cut: 1,
        seed: 3,
        ..CrashPlan::every_sync(Model::default())
    };
    let e = enumerate(&r.start, &r.log, &plan).unwrap();
    let states: Vec<CrashState> = e.states().collect();
    let (n, damaged, lost) = check_with_libsql(&states);
    eprintln!("encrypted libSQL, WAL+FULL: {n} states, {damaged} damaged, {lost} lost");
    assert!(n >= 20);
    assert_eq!((damaged, lost), (0, 0));
}

#[test]
fn encrypted_libsql_on_a_lying_disk_loses_acked_commits() {
    let r = record("10");
    let model = Model {
        lying_disk: true,
        ..Model::default()
    };
    let e = enumerate(&r.start, &r.log, &CrashPlan::every_sync(model)).unwrap();
    let states: Vec<CrashState> = e.states().collect();
    let (n, damaged, lost) = check_with_libsql(&states);
    eprintln!("encrypted libSQL, lying disk: {n} states, {damaged} damaged, {lost} lost");
    assert!(lost + damaged > 0, "positive control not caught");
}
