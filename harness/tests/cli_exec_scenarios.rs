//! End-to-end: `torture exec` on a real program and `torture scenario`.

mod common;

#[allow(unused_imports)]
use common::*;
use std::path::Path;

#[test]
fn exec_mode_tortures_a_real_python_program() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "exec");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/exec/python_writer.py");
    let o = torture()
        .args([
            "exec",
            "-n",
            "6",
            "--seed",
            "4",
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--recovered-sql", "SELECT max(seq) FROM t", "--"])
        .arg("python3")
        .arg(&script)
        .arg("{db}")
        .output()
        .unwrap();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("calibrated"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        stdout.contains("--seed 4 -- python3"),
        "reproduce keeps the program last: {stdout}"
    );
    let rows = rows(&out);
    assert_eq!(rows.len(), 6);
    assert!(rows
        .iter()
        .all(|r| r["outcome"] == "intact" && r["profile"] == "exec:python_writer.py"));
    assert!(
        rows.iter().any(|r| r["acked_commits"] != "0"),
        "kills land while it writes"
    );
    let spec = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(
        spec.contains("python_writer.py"),
        "run.json records the program"
    );
    let o = run(&["exec", "--engine", "oracle", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown engine"));
    let o = run(&["exec", "--after-kill", "fsck", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("give delete-wal, delete-journal or db-only"));
    let o = run(&["exec", "--kill-after", "5..1", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("the window is empty"));
}

#[test]
fn scenarios_are_listed_and_run_through_the_cli() {
    let o = run(&["scenario", "list"]);
    assert_eq!(o.status.code(), Some(0));
    let list = text(&o.stdout);
    for name in [
        "pool",
        "writers",
        "wal-init",
        "backup",
        "recovery",
        "checkpoint",
        "shutdown",
        "corruptors",
    ] {
        assert!(list.lines().any(|l| l.starts_with(name)), "{name}: {list}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "corruptors");
    let o = run(&[
        "scenario",
        "run",
        "corruptors",
        "-n",
        "6",
        "--seed",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let rows = rows(&out);
    assert_eq!(rows.len(), 6 * 8);
    assert!(rows.iter().all(|r| r["profile"].starts_with("corruptors/")));
    let caught = rows
        .iter()
        .filter(|r| r["profile"] == "corruptors/unlink-delete" && r["outcome"] != "intact")
        .count();
    assert!(caught > 0, "unlink + recreate is a positive control");
    assert!(rows
        .iter()
        .filter(|r| r["outcome"] != "intact")
        .all(|r| r["verdict"] == "expected"));
    let o = run(&["scenario", "run", "nonesuch", "-n", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("pool"),
        "names the scenarios: {}",
        text(&o.stderr)
    );
}
