//! End-to-end tests of `torture exec` (issue 11): the real binary torturing real programs —
//! Python's sqlite3 module (`workloads/exec/python_writer.py`) and the sqlite3 shell in a `--shell`
//! pipeline. Each test names the item of the issue it shows; each has its positive control (the
//! failure is caught) and its negative control (a sound program never fails). A missing tool is a
//! failure naming the fix, never a skip.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn torture() -> Command {
    Command::new(env!("CARGO_BIN_EXE_torture"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn exec(args: &[&str]) -> Output {
    torture()
        .arg("exec")
        .args(args)
        .output()
        .expect("torture runs")
}

fn say(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
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

fn num(r: &Row, k: &str) -> u64 {
    r[k].parse().unwrap()
}

fn writer() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/exec/python_writer.py");
    p.canonicalize().unwrap().to_string_lossy().into_owned()
}

fn exec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../workloads/exec")
        .canonicalize()
        .unwrap()
}

fn verify_sql() -> String {
    std::fs::read_to_string(exec_dir().join("verify.sql")).unwrap()
}

/// Python 3 with its sqlite3 module: the programs under test. Missing is a failure naming the fix.
fn require_python() {
    let ok = Command::new("python3")
        .args(["-c", "import sqlite3"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with its sqlite3 module is needed: apt-get install python3 (the lab tortures real programs)"
    );
}

fn require_sqlite3_shell() -> &'static str {
    let p = "/usr/bin/sqlite3";
    assert!(
        Path::new(p).is_file(),
        "the sqlite3 command-line shell is needed at {p}: apt-get install sqlite3"
    );
    p
}

/// The arguments of a python_writer.py run: `args` after the database.
fn py(args: &[&str]) -> Vec<String> {
    let mut v = vec!["python3".to_string(), writer(), "{db}".to_string()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// `torture exec` with these options, then `--`, then the program.
fn exec_prog(opts: &[&str], out: &Path, prog: &[String]) -> Output {
    let mut all: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
    all.extend(["--out".into(), out.to_string_lossy().into_owned()]);
    all.push("--no-progress".into());
    all.push("--".into());
    all.extend(prog.iter().cloned());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    exec(&refs)
}

/// One line on stderr, naming the fix, exit 2, nothing run.
fn assert_bad_input(o: &Output, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", say(o));
    assert!(err.contains(needle), "{}", say(o));
    assert_eq!(err.trim().lines().count(), 1, "one line: {}", say(o));
}

/// Every evidence folder of a run: `failures/<i>` and `evidence/<i>`.
fn evidence_folders(out: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["failures", "evidence"] {
        if let Ok(d) = std::fs::read_dir(out.join(sub)) {
            v.extend(d.flatten().map(|e| e.path()));
        }
    }
    v.sort();
    v
}

fn replay(folder: &Path) -> Output {
    torture()
        .arg("replay")
        .arg(folder)
        .output()
        .expect("torture runs")
}

/// Item 1. A program that never exits by itself is stopped at the end of calibration; that kill is
/// a crash like any trial's. A `journal_mode=OFF` server holding a transaction open used to be
/// refused there ("the uninterrupted run already fails the check", exit 2, no trial); now the
/// calibration's finding is recorded (OUT/calibration, judged like a trial: expected under OFF)
/// and the trials run. Negative control: the same program in WAL mode, nothing found anywhere.
#[test]
fn item1_a_never_exiting_journal_mode_off_writer_is_caught_not_refused() {
    require_python();
    let tmp = tempfile::tempdir().unwrap();
    let vsql = verify_sql();
    let opts = [
        "-n",
        "4",
        "--calibration-timeout",
        "3s",
        "--recovered-sql",
        "SELECT max(seq) FROM t",
        "--verify-sql",
        &vsql,
    ];
    let hang = |mode: &str| {
        py(&[
            // Writing for about half a second (long next to the start-up, so the trials land in
            // it), fewer than the 100 acks after which calibration stops: it goes on into --hang.
            "--commits",
            "90",
            "--pace",
            "0.006",
            "--hang",
            "--journal-mode",
            mode,
            "--synchronous",
            "off",
            "--cache-size",
            "8",
        ])
    };
    let out = tmp.path().join("off");
    let o = exec_prog(&opts, &out, &hang("off"));
    assert_eq!(
        o.status.code(),
        Some(0),
        "caught, judged expected: {}",
        say(&o)
    );
    assert_eq!(rows(&out).len(), 4, "the trials ran: {}", say(&o));
    let note: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("calibration/trial.json")).expect("the finding is kept"),
    )
    .unwrap();
    let outcome = note["record"]["outcome"].as_str().unwrap();
    assert!(["atomicity", "corrupt"].contains(&outcome), "{note}");
    assert_eq!(note["record"]["verdict"], "expected", "{note}");
    assert!(out.join("calibration/trial.db").is_file());
    assert!(
        text(&o.stdout).contains("calibration: the lab's kill"),
        "{}",
        say(&o)
    );
    let wal = tmp.path().join("wal");
    let o = exec_prog(&opts, &wal, &hang("wal"));
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    assert!(!wal.join("calibration").exists(), "{}", say(&o));
    assert!(rows(&wal).iter().all(|r| r["outcome"] == "intact"));
}

/// Item 1, the other half: a program that exits by itself and leaves a database that fails the
/// check is a usage problem (exit 2), and the folder the message names still holds its files.
#[test]
fn item1_a_program_that_exits_failing_the_check_is_refused_with_its_files_kept() {
    require_python();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = exec_prog(
        &["-n", "3", "--recovered-sql", "SELECT max(seq) - 5 FROM t"],
        &out,
        &py(&["--commits", "20"]),
    );
    assert_bad_input(&o, "exited by itself and already fails the check");
    let err = text(&o.stderr);
    let folder = err
        .split("its files are in ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("the message names the folder");
    let folder = Path::new(folder.trim());
    assert!(folder.join("trial.db").is_file(), "{folder:?}: {err}");
    assert!(folder.join("trial.json").is_file(), "{folder:?}");
    assert!(!out.join("trials.csv").exists(), "no trial ran");
}

/// Item 2. A commit lost below the newest is invisible to "the highest surviving commit". With a
/// `--recovered-sql` that answers every surviving seq, every acknowledged number is looked for.
/// Positive control: a program that acknowledges every 7th transaction although it rolled it back.
/// Negative control: the same program without the bug, same query: never a failure.
#[test]
fn item2_a_lost_commit_that_is_not_the_newest_is_caught_by_the_set_check() {
    require_python();
    let tmp = tempfile::tempdir().unwrap();
    let set = ["--recovered-sql", "SELECT seq FROM t"];
    let good = tmp.path().join("good");
    let o = exec_prog(
        &[&set[..], &["-n", "6", "--seed", "5"]].concat(),
        &good,
        &py(&[]),
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    for r in rows(&good) {
        assert_eq!(r["outcome"], "intact", "{r:?}");
        assert!(
            num(&r, "recovered_commits") >= num(&r, "acked_commits"),
            "{r:?}"
        );
    }
    let bad = tmp.path().join("bad");
    let o = exec_prog(
        &[&set[..], &["-n", "6", "--seed", "5"]].concat(),
        &bad,
        &py(&["--forever", "--drop-every", "7"]),
    );
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    let rows_bad = rows(&bad);
    let late: Vec<&Row> = rows_bad
        .iter()
        .filter(|r| num(r, "acked_commits") >= 7)
        .collect();
    assert!(late.len() >= 3, "{rows_bad:?}");
    for r in &rows_bad {
        if num(r, "acked_commits") < 7 {
            assert_eq!(r["outcome"], "intact", "{r:?}");
            continue;
        }
        assert_eq!(r["outcome"], "lost-commit", "{r:?}");
        assert_eq!(r["verdict"], "violation");
        // The newest commit is there: only the set check sees the loss.
        assert!(
            num(r, "recovered_commits") + 1 >= num(r, "acked_commits"),
            "{r:?}"
        );
        let missing = num(r, "acked_commits") / 7;
        assert!(
            r["detail"].contains(&format!("{missing} of "))
                && r["detail"].contains("missing, first 7"),
            "{r:?}"
        );
    }
    // --verify-cmd gets the acknowledged numbers in the file TORTURE_ACKS names.
    let cmd = r#"python3 -c "
import os, sqlite3
acks = [int(l) for l in open(os.environ['TORTURE_ACKS'])]
have = {r[0] for r in sqlite3.connect(os.environ['TORTURE_DB']).execute('SELECT seq FROM t')}
missing = [a for a in acks if a not in have]
print(len(acks), 'acked; missing', missing[:1])
raise SystemExit(1 if missing or not acks else 0)""#;
    let viacmd = tmp.path().join("cmd");
    let o = exec_prog(
        &["-n", "4", "--seed", "6", "--verify-cmd", cmd],
        &viacmd,
        &py(&["--forever", "--drop-every", "7"]),
    );
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    for r in rows(&viacmd) {
        if num(&r, "acked_commits") < 7 {
            assert_eq!(r["outcome"], "intact", "{r:?}");
        } else {
            assert_eq!(r["outcome"], "atomicity", "{r:?}");
            assert!(r["detail"].contains("missing [7]"), "{r:?}");
        }
    }
}

/// Item 3. In a `--shell` pipeline the sqlite3 shell is a grandchild of the lab; the check must not
/// run before every process of the trial is gone. Proof: every trial's files are kept
/// (`--keep-evidence`) and re-checking each folder (`torture replay`) gives the recorded verdict.
#[test]
fn item3_every_verdict_of_a_shell_pipeline_run_is_confirmed_by_its_saved_evidence() {
    require_sqlite3_shell();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pipe");
    let script = exec_dir().join("sqlite3_cli_writer.sh");
    let cmd = format!("sh '{}' \"$TORTURE_DB\" 4000 | cat", script.display());
    let vsql = verify_sql();
    let o = exec_prog(
        &[
            "-n",
            "16",
            "--seed",
            "7",
            "--shell",
            "--keep-evidence",
            "--recovered-sql",
            "SELECT max(seq) FROM t",
            "--verify-sql",
            &vsql,
        ],
        &out,
        &[cmd],
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let rows = rows(&out);
    assert_eq!(rows.len(), 16);
    assert!(
        rows.iter().filter(|r| num(r, "acked_commits") > 0).count() >= 8,
        "{rows:?}"
    );
    let folders = evidence_folders(&out);
    assert_eq!(
        folders.len(),
        16,
        "every trial's files are kept: {folders:?}"
    );
    for f in &folders {
        let r = replay(f);
        assert_eq!(r.status.code(), Some(0), "{f:?}: {}", say(&r));
        assert!(text(&r.stdout).contains("confirmed"), "{}", say(&r));
    }
}

/// Item 4. The labels are the program's: the SQLite that last wrote the file (header offset 96)
/// when the program does not print `sqlite_version`, WAL from the header; and damage in a mode the
/// lab cannot see is said so in the summary, with how to declare the mode.
#[test]
fn item4_labels_come_from_the_program_and_an_unknown_mode_is_said() {
    require_python();
    let pyver = Command::new("python3")
        .args(["-c", "import sqlite3; print(sqlite3.sqlite_version)"])
        .output()
        .unwrap();
    let pyver = text(&pyver.stdout).trim().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("quiet");
    let o = exec_prog(
        &["-n", "4", "--recovered-sql", "SELECT max(seq) FROM t"],
        &out,
        &py(&["--quiet"]),
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let rows_quiet = rows(&out);
    assert!(rows_quiet.iter().any(|r| num(r, "acked_commits") > 0));
    // A trial killed before the file had its header has no version to read: `?`, never the lab's.
    for r in rows_quiet.iter().filter(|r| num(r, "acked_commits") > 0) {
        assert_eq!(r["sqlite_version"], pyver, "{r:?}");
        assert_eq!(r["journal_mode"], "wal", "{r:?}");
    }
    let off = tmp.path().join("off");
    let o = exec_prog(
        &["-n", "12", "--seed", "4"],
        &off,
        &py(&[
            "--quiet",
            "--forever",
            "--journal-mode",
            "off",
            "--synchronous",
            "off",
            "--transfers",
            "30",
            "--cache-size",
            "8",
        ]),
    );
    let damaged = rows(&off)
        .iter()
        .filter(|r| !["intact", "worker-error"].contains(&r["outcome"].as_str()))
        .count();
    assert!(damaged >= 1, "{}", say(&o));
    let stdout = text(&o.stdout);
    assert!(stdout.contains("journal mode unknown"), "{}", say(&o));
    assert!(stdout.contains("--journal-mode off"), "{}", say(&o));
}

/// Item 5. A program that never wrote — it exits at once, or prints garbage — must not look like
/// 100% survival: say so and exit 3 (the run vouches for nothing, as when the program fails by
/// itself; 2 stays "refused before anything ran, one line").
#[test]
fn item5_a_program_that_never_wrote_does_not_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exits");
    let o = exec_prog(
        &["-n", "3", "--kill-after", "200ms..300ms"],
        &out,
        &["/bin/sh".into(), "-c".into(), "echo starting".into()],
    );
    assert_eq!(o.status.code(), Some(3), "{}", say(&o));
    assert!(text(&o.stdout).contains("NOTHING TESTED"), "{}", say(&o));
    let out = tmp.path().join("garbage");
    let o = exec_prog(
        &[
            "-n",
            "3",
            "--kill-after",
            "100ms..200ms",
            "--recovered-sql",
            "SELECT 1",
        ],
        &out,
        &[
            "/bin/sh".into(),
            "-c".into(),
            "while :; do echo garbage; sleep 0.01; done".into(),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", say(&o));
    assert!(text(&o.stdout).contains("NOTHING TESTED"), "{}", say(&o));
}

/// Item 6. A `--seed-db` that is not a database is bad usage: exit 2 before any trial.
#[test]
fn item6_a_seed_db_that_is_not_a_database_is_refused_before_any_trial() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = tmp.path().join("seed.db");
    std::fs::write(&seed, "CREATE TABLE t(x);\n").unwrap();
    let out = tmp.path().join("out");
    let o = exec_prog(
        &[
            "-n",
            "2",
            "--kill-after",
            "10ms..20ms",
            "--seed-db",
            seed.to_str().unwrap(),
        ],
        &out,
        &["true".to_string()],
    );
    assert_bad_input(&o, "--seed-db");
    assert!(
        text(&o.stderr).contains("not a sqlite database"),
        "{}",
        say(&o)
    );
    assert!(!out.join("trials.csv").exists());
}

/// Item 7. `--kill-after 1..20` counts acknowledged commits, as the core does, then `--kill-delay`.
#[test]
fn item7_kills_after_k_acknowledged_commits() {
    require_python();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("acks");
    let o = exec_prog(
        &[
            "-n",
            "8",
            "--kill-after",
            "3..12",
            "--kill-delay",
            "0us..0us",
            "--recovered-sql",
            "SELECT max(seq) FROM t",
        ],
        &out,
        &py(&["--pace", "0.01"]),
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    for r in rows(&out) {
        let k: u64 = r["kill_point"]
            .strip_prefix("acks=")
            .and_then(|s| s.split('+').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{r:?}"));
        assert!((3..=12).contains(&k), "{r:?}");
        let acked = num(&r, "acked_commits");
        assert!(acked >= k && acked <= k + 3, "killed near ack {k}: {r:?}");
        assert_eq!(r["outcome"], "intact");
    }
}

/// Item 8. A slow program is killed across everything the calibration run saw it do (not only in
/// its first second); a program that never exits is calibrated until it showed enough, not for
/// the whole timeout; the rate is never "0 trials/s".
#[test]
fn item8_slow_programs_are_covered_and_calibration_stops_when_it_has_seen_enough() {
    require_python();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("slow");
    let o = exec_prog(
        &[
            "-n",
            "10",
            "--seed",
            "8",
            "--recovered-sql",
            "SELECT max(seq) FROM t",
        ],
        &out,
        &py(&["--pace", "0.25", "--commits", "16"]),
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let most = rows(&out)
        .iter()
        .map(|r| num(r, "acked_commits"))
        .max()
        .unwrap();
    assert!(
        most >= 9,
        "kills reach the late commits: highest acked {most}; {}",
        say(&o)
    );
    let stdout = text(&o.stdout);
    assert!(!stdout.contains(" 0 trials/s"), "{stdout}");
    let t = Instant::now();
    let out = tmp.path().join("forever");
    let o = exec_prog(
        &[
            "-n",
            "2",
            "--calibration-timeout",
            "60s",
            "--recovered-sql",
            "SELECT max(seq) FROM t",
        ],
        &out,
        &py(&["--forever"]),
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "{:?}: {}",
        t.elapsed(),
        say(&o)
    );
    assert!(text(&o.stderr).contains("stopped (killed"), "{}", say(&o));
}

/// Item 9. `--instances 4` on one database in WAL + FULL: nothing lost, each instance's acks kept
/// apart and every one of them checked; `--kill one` lets the others go on; bad input is refused.
#[test]
fn item9_four_instances_lose_nothing_and_keep_their_acks_apart() {
    require_python();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("four");
    let vsql = verify_sql();
    let o = exec_prog(
        &[
            "-n",
            "8",
            "--seed",
            "9",
            "--instances",
            "4",
            "--keep-evidence",
            "--recovered-sql",
            "SELECT seq FROM t",
            "--verify-sql",
            &vsql,
        ],
        &out,
        &py(&["--forever"]),
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let rows = rows(&out);
    assert!(
        rows.iter()
            .all(|r| r["outcome"] == "intact" && r["processes"] == "4"),
        "{rows:?}"
    );
    let mut all_four = 0;
    for f in evidence_folders(&out) {
        let note: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.join("trial.json")).unwrap()).unwrap();
        let acks = note["acks"].as_array().unwrap();
        assert_eq!(acks.len(), 4, "{f:?}");
        for (i, a) in acks.iter().enumerate() {
            for n in a.as_array().unwrap() {
                assert_eq!(n.as_u64().unwrap() / 1_000_000_000, i as u64, "{f:?}");
            }
        }
        if acks.iter().all(|a| !a.as_array().unwrap().is_empty()) {
            all_four += 1;
        }
    }
    // How many instances have acked by the kill depends on how fast a loaded machine starts four
    // Pythons: the claim is that acks are kept apart, which needs one trial where all four wrote.
    assert!(all_four >= 1, "some trial sees every instance write");
    let one = tmp.path().join("one");
    let o = exec_prog(
        &[
            "-n",
            "4",
            "--seed",
            "10",
            "--instances",
            "3",
            "--kill",
            "one",
            "--recovered-sql",
            "SELECT seq FROM t",
        ],
        &one,
        &py(&["--forever"]),
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    for r in rows_of(&one) {
        assert!(
            r["detail"].contains("killed first; the others then acknowledged"),
            "{r:?}"
        );
    }
    assert_bad_input(&exec(&["--instances", "0", "--", "true"]), "--instances 0");
    assert_bad_input(&exec(&["--kill", "one", "--", "true"]), "--kill one");
}

fn rows_of(out: &Path) -> Vec<Row> {
    rows(out)
}

/// Item 10. A `--verify-sql` answering `1` or `true` passes as `ok` does; anything else is the
/// detail of an `atomicity` failure.
#[test]
fn item10_a_boolean_invariant_passes_like_ok() {
    require_python();
    let tmp = tempfile::tempdir().unwrap();
    for (name, sql) in [
        (
            "one",
            "SELECT (SELECT count(*) FROM item) = (SELECT items FROM counter)",
        ),
        ("true", "SELECT 'true'"),
    ] {
        let out = tmp.path().join(name);
        let o = exec_prog(&["-n", "3", "--verify-sql", sql], &out, &py(&[]));
        assert_eq!(o.status.code(), Some(0), "{name}: {}", say(&o));
        assert!(rows(&out).iter().all(|r| r["outcome"] == "intact"));
    }
    let out = tmp.path().join("zero");
    let o = exec_prog(
        &["-n", "2", "--verify-sql", "SELECT 0"],
        &out,
        &py(&["--forever"]),
    );
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    for r in rows(&out).iter().filter(|r| num(r, "acked_commits") > 0) {
        assert_eq!(r["outcome"], "atomicity");
        assert!(r["detail"].contains("--verify-sql answered: 0"), "{r:?}");
    }
}

/// Item 11. `torture replay FOLDER` re-checks an exec trial's saved files: it confirms the
/// recorded verdict (exit 0), and says so when it does not (exit 1).
#[test]
fn item11_replay_rechecks_the_saved_files_of_an_exec_trial() {
    require_python();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lie");
    let o = exec_prog(
        &[
            "-n",
            "8",
            "--seed",
            "11",
            "--recovered-sql",
            "SELECT max(seq) FROM t",
            "--kill-after",
            "5..40",
            "--kill-delay",
            "0us..2ms",
        ],
        &out,
        &py(&["--lie", "--journal-mode", "delete", "--rows", "20..40"]),
    );
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    let folders = evidence_folders(&out);
    assert!(!folders.is_empty(), "{}", say(&o));
    for f in &folders {
        let r = replay(f);
        assert_eq!(r.status.code(), Some(0), "{f:?}: {}", say(&r));
        assert!(
            text(&r.stdout).contains("recorded lost-commit"),
            "{}",
            say(&r)
        );
    }
    // A record that its files contradict: acknowledged no further than what survived.
    let f = &folders[0];
    let note = f.join("trial.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&note).unwrap()).unwrap();
    v["record"]["outcome"] = "intact".into();
    v["record"]["verdict"] = "ok".into();
    std::fs::write(&note, serde_json::to_string(&v).unwrap()).unwrap();
    let r = replay(f);
    assert_eq!(r.status.code(), Some(1), "{}", say(&r));
    assert!(text(&r.stdout).contains("NOT CONFIRMED"), "{}", say(&r));
    let r = replay(tmp.path());
    assert_eq!(r.status.code(), Some(2), "{}", say(&r));
}

/// Bad input: a `--recovered-sql` that answers text is one line naming the fix, exit 2 — from
/// the calibration run, and from the trials when the window is given.
#[test]
fn a_recovered_sql_answering_text_is_bad_input() {
    require_python();
    let tmp = tempfile::tempdir().unwrap();
    let o = exec_prog(
        &[
            "-n",
            "2",
            "--recovered-sql",
            "SELECT 'seq ' || max(seq) FROM t",
        ],
        &tmp.path().join("cal"),
        &py(&["--commits", "20"]),
    );
    assert_bad_input(&o, "--recovered-sql answered `seq 20`");
    assert!(
        text(&o.stderr).contains("make it answer numbers"),
        "{}",
        say(&o)
    );
    let o = exec_prog(
        &[
            "-n",
            "2",
            "--kill-after",
            "5..10",
            "--recovered-sql",
            "SELECT 'seq ' || max(seq) FROM t",
        ],
        &tmp.path().join("given"),
        &py(&[]),
    );
    assert_eq!(o.status.code(), Some(2), "{}", say(&o));
    assert!(
        text(&o.stdout).contains("BAD INPUT: --recovered-sql answered"),
        "{}",
        say(&o)
    );
}
