//! `torture hunt` end to end, with real SQLite (Python's sqlite3), real power-loss recordings and
//! the real shrinker. The positive control is a driver that acknowledges each transaction before
//! its COMMIT (`TORTURE_HUNT_CONTROL=ack-before-commit`): the hunt must catch it, shrink it and
//! file a reproduction that reproduces. The negative control is the honest driver: no finding.

use std::path::Path;
use std::process::{Command, Output};

fn hunt(out: &Path, extra: &[&str], control: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_torture"));
    c.args([
        "hunt",
        "--budget",
        "1s",
        "--seed",
        "3",
        "--transactions",
        "3",
    ])
    .arg("--out")
    .arg(out)
    .args(extra);
    if control {
        c.env("TORTURE_HUNT_CONTROL", "ack-before-commit");
    } else {
        c.env_remove("TORTURE_HUNT_CONTROL");
    }
    c.output().expect("torture runs")
}

fn say(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn state(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("hunt.json")).unwrap()).unwrap()
}

#[test]
fn a_lying_driver_is_caught_shrunk_and_filed_with_a_reproduction() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("h");
    let o = hunt(&out, &["--max-shrink-runs", "10"], true);
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    assert_eq!(state(&out)["findings"], 1, "{}", say(&o));
    let base = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("sqlite-"))
        .expect("the bug base")
        .path();
    let bug = std::fs::read_dir(&base)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for f in [
        "program.json",
        "shrunk.json",
        "seed",
        "verdict.txt",
        "shrink.log",
        "hunt.py",
        "repro.sh",
        "report.md",
    ] {
        assert!(bug.join(f).is_file(), "{f} in {}", bug.display());
    }
    let count = |f: &str| -> usize {
        let p: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(bug.join(f)).unwrap()).unwrap();
        p["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_array().unwrap().len())
            .sum()
    };
    assert!(
        count("shrunk.json") < count("program.json"),
        "nothing was shrunk"
    );
    assert!(std::fs::read_to_string(bug.join("verdict.txt"))
        .unwrap()
        .contains("lost-commit"));
    // The draft report: its title names the finding, its steps are the shrunk program's
    // statements as SQL.
    let report = std::fs::read_to_string(bug.join("report.md")).unwrap();
    assert!(report.starts_with("# SQLite ") && report.contains("lost-commit after a power cut"));
    let shrunk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bug.join("shrunk.json")).unwrap()).unwrap();
    for t in shrunk["transactions"].as_array().unwrap() {
        for st in t.as_array().unwrap() {
            assert!(
                report.contains(&format!("{};", st.as_str().unwrap())),
                "{report}"
            );
        }
    }
    for part in [
        "## Versions",
        "## Steps",
        "## Expected",
        "## Actual",
        "## Reproduce",
    ] {
        assert!(report.contains(part), "{part}: {report}");
    }
    // The reproduction needs only python3 and the saved files: it reproduces (exit 1).
    let r = Command::new("sh")
        .arg(bug.join("repro.sh"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1), "{}", say(&r));
    // On an interpreter without the engine's version, it says so (exit 3), never "did not
    // reproduce".
    let other = Command::new("sh")
        .arg(bug.join("repro.sh"))
        .env("PYTHON", "/bin/false")
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(3), "{}", say(&other));
    assert!(String::from_utf8_lossy(&other.stderr).contains("repro.sh: needs sqlite "));
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("acknowledged commits"),
        "{}",
        say(&r)
    );
}

#[test]
fn the_honest_driver_finds_nothing_and_resume_continues() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("h");
    let o = hunt(&out, &[], false);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let s = state(&out);
    assert_eq!(s["findings"], 0);
    assert_eq!(s["programs"], 1);
    assert!(s["crash_states"].as_u64().unwrap() > 0);
    // The same folder again: refused without --resume, continued with it.
    let o = hunt(&out, &[], false);
    assert_eq!(o.status.code(), Some(2), "{}", say(&o));
    let o = hunt(&out, &["--resume"], false);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    assert_eq!(state(&out)["programs"], 2);
    assert_eq!(state(&out)["next"], 2);
}

#[test]
fn bad_hunt_settings_are_one_line_and_exit_2() {
    let t = tempfile::tempdir().unwrap();
    for (args, says) in [
        (vec!["--engine", "oracle"], "--engine oracle"),
        (vec!["--fault", "io-error"], "--fault io-error"),
        (vec!["--budget", "soon"], "--budget soon"),
        (vec!["--weights", "/no/such.toml"], "--weights"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_torture"))
            .arg("hunt")
            .arg("--out")
            .arg(t.path().join("h"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// A program the lab could not test is never "nothing found": with a cache the recorder cannot
/// be written to, exec exits 3 and so does the hunt, saying why.
#[test]
fn a_hunt_whose_programs_cannot_be_tested_is_a_lab_error() {
    let t = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_torture"))
        .args([
            "hunt",
            "--budget",
            "1s",
            "--seed",
            "3",
            "--transactions",
            "2",
            "--out",
        ])
        .arg(t.path().join("h"))
        .env("XDG_CACHE_HOME", "/proc/torture-no-cache")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", say(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("could not test the program"),
        "{}",
        say(&o)
    );
}

/// DuckDB under every fault the hunt accepts: its programs are tested (exec accepts the settings
/// the hunt gives it for that fault), never a lab error. The system python3's `duckdb`
/// (scripts/test installs it).
#[test]
fn duckdb_hunts_run_under_each_fault() {
    for fault in ["kill-at-op", "sigkill", "power-loss"] {
        let t = tempfile::tempdir().unwrap();
        let o = hunt(
            &t.path().join("h"),
            &[
                "--engine",
                "duckdb",
                "--fault",
                fault,
                "--max-shrink-runs",
                "1",
            ],
            false,
        );
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{fault}: {}",
            say(&o)
        );
        assert!(state(&t.path().join("h"))["programs"].as_u64() >= Some(1));
    }
}
