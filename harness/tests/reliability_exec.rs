//! The harness under faults of its own, the exec side (issue 20 R2, R3, R4, R12, R19): a full
//! results disk mid-trial, a killed probe, a full scratch disk under a program, a program that
//! escapes the kill with `setsid()`, and evidence capped in bytes. Real processes, real files, a
//! real tmpfs (root or passwordless sudo; never skipped).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `program` as root: directly when this process is root, else through `sudo -n` (CI runners).
fn as_root(program: &str) -> std::process::Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::process::Command::new(program)
    } else {
        let mut c = std::process::Command::new("sudo");
        c.args(["-n", program]);
        c
    }
}

/// A small tmpfs (mode 1777), unmounted when dropped: a real full file system, ENOSPC and all.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn new(parent: &Path, name: &str, size: &str) -> Tmpfs {
        let path = parent.join(name);
        std::fs::create_dir_all(&path).unwrap();
        let o = as_root("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=1777")])
            .arg("tmpfs")
            .arg(&path)
            .output()
            .expect("mount(8) is installed");
        assert!(
            o.status.success(),
            "mounting a {size} tmpfs at {} needs root (CAP_SYS_ADMIN) or passwordless sudo; run the tests as root or give sudo: {}",
            path.display(),
            text(&o.stderr)
        );
        Tmpfs { path }
    }

    /// Empties the file system, then fills it to leave about `free_kib` free.
    fn fill_leaving(&self, free_kib: u64) {
        for e in std::fs::read_dir(&self.path).unwrap().flatten() {
            let p = e.path();
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
        let st = nix::sys::statvfs::statvfs(&self.path).unwrap();
        let free = st.blocks_available() as u64 * st.fragment_size() as u64;
        let fill = free.saturating_sub(free_kib * 1024);
        std::fs::write(self.path.join("filler"), vec![0u8; fill as usize]).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = as_root("umount").arg("-l").arg(&self.path).status();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

/// R4: the results disk fills while a trial's note is written. The trial in flight when the run
/// stops (drained, never given a row) wrote its note into a full OUT: a 0-byte `trial.json` that
/// looked like evidence. Notes are written to a temporary name and renamed, so each is whole or
/// absent, and no temporary file is left.
#[test]
fn a_full_out_never_leaves_a_torn_trial_json() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::new(tmp.path(), "results", "1m");
    // A program that fails at once: its evidence is the note alone (no database, empty stderr and
    // stdout), so the disk fills exactly at a `trial.json`. Free space in whole pages: one of
    // these leaves room for the run's own files and a note or two, then none.
    let mut stopped = 0;
    for free_kib in [8, 12, 16, 20] {
        disk.fill_leaving(free_kib);
        let out = disk.path.join("out");
        let o = torture()
            .args(["exec", "-n", "6", "-j", "1", "--seed", "1", "--no-progress"])
            // It exits long before the kill, however loaded the machine.
            .args([
                "--kill-after",
                "20s..30s",
                "--trial-timeout",
                "60s",
                "--out",
            ])
            .arg(&out)
            .args(["--", "sh", "-c", "exit 1"])
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert!(!err.contains("panicked"), "{err}");
        if o.status.code() == Some(3) && err.contains("cannot save the evidence") {
            stopped += 1;
        }
        for p in walk(&out) {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                !name.contains("tmp-write"),
                "{free_kib} KiB free: a stale {}",
                p.display()
            );
            if name == "trial.json" {
                let t = std::fs::read_to_string(&p).unwrap_or_default();
                assert!(
                    serde_json::from_str::<serde_json::Value>(&t).is_ok(),
                    "{free_kib} KiB free: {} is torn ({} bytes): {err}",
                    p.display(),
                    t.len()
                );
            }
        }
    }
    assert!(
        stopped >= 2,
        "the disk filled at a note in most sizes ({stopped} of 4)"
    );
}

/// The `torture-*` folders left in `dir`.
fn scratch_left(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("torture-"))
        .collect()
}

/// Waits (up to a minute) until `dir` holds a folder named `prefix*` with `inner` in it.
fn wait_for_folder(dir: &Path, prefix: &str, inner: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = std::fs::read_dir(dir).unwrap().flatten().find(|e| {
            e.file_name().to_string_lossy().starts_with(prefix) && e.path().join(inner).exists()
        });
        if let Some(e) = found {
            return e.path();
        }
        assert!(Instant::now() < deadline, "no {prefix}* folder appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// R2: `kill -9` of the parent while `exec --fault` probes the program left `D/torture-probe-*`
/// with no owner file, and no later run swept it. The probe folder is claimed like a run's.
#[test]
fn a_killed_probe_leaves_a_folder_the_next_run_sweeps() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let marker = format!("TORTURE_TEST_R2={}", std::process::id());
    let (k, v) = marker.split_once('=').unwrap();
    // A program that writes nothing and waits: the probe waits for it, so the kill lands in it.
    let mut child = torture()
        .env(k, v)
        .args(["exec", "--fault", "power-loss", "-n", "1", "--no-progress"])
        .args(["--calibration-timeout", "120s", "--dir"])
        .arg(&scratch)
        .arg("--out")
        .arg(tmp.path().join("killed"))
        .args([
            "--",
            "python3",
            "-c",
            "import sys, time; time.sleep(120)",
            "{db}",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let probe = wait_for_folder(&scratch, "torture-probe-", "db");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_orphans(&marker);
    assert!(probe.exists(), "the killed run left {}", probe.display());
    let o = run(&[
        "-n",
        "2",
        "--no-progress",
        "--dir",
        scratch.to_str().unwrap(),
        "--out",
        tmp.path().join("next").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    assert!(
        scratch_left(&scratch).is_empty(),
        "swept: {:?}",
        scratch_left(&scratch)
    );
}

/// A program that fills its disk with 64 KiB commits and fails when the disk is full (the
/// traceback it prints goes to a stderr file on that same full disk).
const FILLER: &str = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE IF NOT EXISTS t(x)")
c.commit()
for i in range(1, 1000000):
    c.execute("INSERT INTO t VALUES (zeroblob(65536))")
    c.commit()
    print("ack", i, flush=True)
"#;

/// R3: on a full `--dir`, an exec run recorded `worker-error` rows ("exited with status 1 before
/// the kill:", an empty stderr, which the full disk had swallowed) that resume never redid. It
/// stops with exit 3 and the disk-full line, as the built-in path does, and records no such row.
#[test]
fn a_full_dir_stops_an_exec_run_with_the_disk_full_line() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::new(tmp.path(), "scratch", "3m");
    let program = tmp.path().join("filler.py");
    std::fs::write(&program, FILLER).unwrap();
    let out = tmp.path().join("out");
    // The kill comes long after the program has filled the disk: no race with the kill time.
    let o = torture()
        .args(["exec", "-n", "4", "-j", "1", "--seed", "1", "--no-progress"])
        .args([
            "--kill-after",
            "20s..30s",
            "--trial-timeout",
            "60s",
            "--dir",
        ])
        .arg(&disk.path)
        .arg("--out")
        .arg(&out)
        .arg("--")
        .arg("python3")
        .arg(&program)
        .arg("{db}")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{}", say(&o));
    let line = err
        .lines()
        .find(|l| l.contains("scratch disk is full"))
        .unwrap_or_else(|| panic!("a line about the full disk: {err}"));
    assert!(
        line.contains(disk.path.to_str().unwrap()) && line.contains("--resume"),
        "{line}"
    );
    if out.join("trials.csv").exists() {
        let bad: Vec<Row> = rows(&out)
            .into_iter()
            .filter(|r| r["outcome"] == "worker-error")
            .collect();
        assert!(bad.is_empty(), "rows resume would not redo: {bad:?}");
    }
    // Calibrated (no --kill-after): the uninterrupted run fills the disk; the lab's failure too
    // (it was a usage error, exit 2), and no scratch folder is left.
    std::fs::remove_dir_all(&out).unwrap();
    let o = torture()
        .args(["exec", "-n", "2", "-j", "1", "--seed", "1", "--no-progress"])
        .args(["--calibration-timeout", "60s", "--dir"])
        .arg(&disk.path)
        .arg("--out")
        .arg(&out)
        .arg("--")
        .arg("python3")
        .arg(&program)
        .arg("{db}")
        .output()
        .unwrap();
    let line = one_line_exit(&o, 3);
    assert!(
        line.contains("scratch disk is full") && line.contains(disk.path.to_str().unwrap()),
        "{line}"
    );
    let left: Vec<_> = std::fs::read_dir(&disk.path).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The folders under `OUT/failures`, by iteration.
fn failure_folders(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out.join("failures"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn bytes_under(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .filter(|p| p.is_file())
        .map(|p| p.metadata().unwrap().len())
        .sum()
}

/// R19 / issue 18 item 4: the expected losses of a control keep one example per profile ×
/// workload × fault; every other such row names that example.
#[test]
fn expected_losses_keep_one_example_per_group_and_their_rows_point_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("controls");
    let o = run(&[
        "-p",
        "off-off,memory-off",
        "-n",
        "60",
        "--seed",
        "2",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let all = rows(&out);
    let failed: Vec<&Row> = all.iter().filter(|r| r["outcome"] != "intact").collect();
    assert!(failed.len() > 4, "the controls fail often enough");
    assert!(failed.iter().all(|r| r["verdict"] == "expected"));
    let groups: std::collections::BTreeSet<&str> =
        failed.iter().map(|r| r["profile"].as_str()).collect();
    let folders = failure_folders(&out);
    assert_eq!(folders.len(), groups.len(), "one example each: {folders:?}");
    for r in &failed {
        if folders.contains(&r["iteration"]) {
            continue;
        }
        let example = r["detail"]
            .rsplit("failures/")
            .next()
            .and_then(|t| t.split(',').next())
            .unwrap_or_else(|| panic!("the row names its example: {r:?}"));
        assert!(folders.contains(&example.to_string()), "{r:?}");
        let note = out.join("failures").join(example).join("trial.json");
        let t = std::fs::read_to_string(note).unwrap();
        assert!(t.contains(&format!("\"profile\": \"{}\"", r["profile"])));
    }
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains(&format!(
            "{} repeated expected loss(es) kept none",
            failed.len() - groups.len()
        )),
        "{stdout}"
    );
}

/// R19: evidence is capped in bytes per trial (a quarter of `--max-evidence-bytes`): the folder
/// loses its biggest files, `trial.json` lists them, and `torture replay` refuses the folder
/// with one line (exit 2) instead of a verdict on missing files.
#[test]
fn a_trial_over_the_byte_cap_keeps_its_note_and_replay_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("capped");
    let o = run(&[
        "--fault",
        "power-loss",
        "-p",
        "delete-off",
        "-n",
        "4",
        "--seed",
        "3",
        "--max-evidence-bytes",
        "40k",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let folders = failure_folders(&out);
    assert_eq!(folders.len(), 1, "{folders:?}");
    let folder = out.join("failures").join(&folders[0]);
    assert!(bytes_under(&folder) <= 12 << 10, "about 10 KiB per trial");
    let note: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("trial.json")).unwrap()).unwrap();
    let dropped: Vec<&str> = note["dropped"]
        .as_array()
        .expect("trial.json lists what the cap dropped")
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        dropped.iter().any(|d| d.starts_with("trial.db (")),
        "{dropped:?}"
    );
    assert!(text(&o.stdout).contains("--max-evidence-bytes 40 KiB: 1 folder(s) trimmed"));
    let o = torture().arg("replay").arg(&folder).output().unwrap();
    let line = one_line_exit(&o, 2);
    assert!(line.contains("--max-evidence-bytes"), "{line}");
}

/// R19: the whole run's evidence stays under `--max-evidence-bytes` (here failures a program
/// makes, never `expected`, each with a 200 KiB database).
#[test]
fn a_run_keeps_no_more_evidence_than_its_byte_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run-cap");
    let o = torture()
        .args(["exec", "-n", "8", "-j", "1", "--seed", "1", "--no-progress"])
        .args(["--kill-after", "20s..30s", "--trial-timeout", "60s"])
        .args(["--max-evidence-bytes", "1M", "--out"])
        .arg(&out)
        .args([
            "--",
            "sh",
            "-c",
            "head -c 204800 /dev/zero > \"$1\"; exit 1",
            "sh",
            "{db}",
        ])
        .output()
        .unwrap();
    assert!(!text(&o.stderr).contains("panicked"), "{}", say(&o));
    let failed = rows(&out)
        .iter()
        .filter(|r| r["outcome"] != "intact")
        .count();
    assert_eq!(failed, 8, "{}", say(&o));
    // The cap, plus the notes: every failed trial keeps its `trial.json` (a few KB) whatever the
    // cap, so no row's evidence is gone without a word.
    assert!(
        bytes_under(&out.join("failures")) <= (1 << 20) + 8 * (16 << 10),
        "{} bytes kept",
        bytes_under(&out.join("failures"))
    );
    assert_eq!(failure_folders(&out).len(), 8, "{}", say(&o));
    for f in failure_folders(&out) {
        assert!(
            out.join("failures").join(&f).join("trial.json").is_file(),
            "failures/{f} lost its note"
        );
    }
    let trimmed = failure_folders(&out)
        .iter()
        .filter(|f| {
            std::fs::read_to_string(out.join("failures").join(f).join("trial.json"))
                .unwrap()
                .contains("\"dropped\"")
        })
        .count();
    assert!(
        trimmed >= 2,
        "the last trials lost their database: {trimmed}"
    );
    assert!(
        text(&o.stdout).contains("of evidence dropped"),
        "{}",
        say(&o)
    );
}

/// A program that double-forks a process into a session of its own (`setsid()`), out of the
/// process group the lab kills; that process keeps writing the database for minutes. The program
/// itself then writes and acknowledges commits.
const ESCAPER: &str = r#"
import os, sqlite3, sys, time
db = sys.argv[1]
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE IF NOT EXISTS t(seq INTEGER)")
c.commit()
first = os.fork()
if first == 0:
    os.setsid()
    if os.fork() == 0:
        e = sqlite3.connect(db, timeout=30)
        for _ in range(30000):
            e.execute("INSERT INTO t VALUES (-1)")
            e.commit()
            time.sleep(0.01)
    os._exit(0)
# The escapee exists once its parent has exited: only then the first ack.
os.waitpid(first, 0)
for i in range(1, 100000):
    c.execute("INSERT INTO t VALUES (?)", (i,))
    c.commit()
    print("ack", i, flush=True)
    time.sleep(0.002)
"#;

/// R12: a program whose child calls `setsid()` escaped the kill: its trials were "intact" while
/// the escaped process still wrote the database, and it outlived torture. The lab, subreaper of
/// the program's processes, kills and reaps every process that came back to it before the check,
/// and the row says so.
#[test]
fn a_process_that_leaves_the_group_with_setsid_is_killed_before_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let program = tmp.path().join("escaper.py");
    std::fs::write(&program, ESCAPER).unwrap();
    let out = tmp.path().join("out");
    let marker = format!("TORTURE_TEST_R12={}", std::process::id());
    let (k, v) = marker.split_once('=').unwrap();
    let o = torture()
        .env(k, v)
        .args(["exec", "-n", "3", "-j", "1", "--seed", "1", "--no-progress"])
        // Killed after the 3rd to 5th ack: the escapee is alive by then, however slow the machine.
        .args(["--kill-after", "3..5"])
        .args(["--recovered-sql", "SELECT max(seq) FROM t", "--out"])
        .arg(&out)
        .arg("--")
        .arg("python3")
        .arg(&program)
        .arg("{db}")
        .output()
        .unwrap();
    // Whatever the lab left running is still here now that torture has exited.
    let left = processes_with(&marker);
    for &p in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        left.is_empty(),
        "processes outlived torture: {left:?}\n{}",
        say(&o)
    );
    assert!(!text(&o.stderr).contains("panicked"), "{}", say(&o));
    let all = rows(&out);
    assert_eq!(all.len(), 3, "{}", say(&o));
    for r in &all {
        // Never a silent "intact": either the escapee was killed before the check and the row
        // says so, or the trial was not judged.
        assert!(
            r["detail"]
                .contains("left its process group (setsid) and were killed before the check")
                || r["outcome"] == "worker-error",
            "{r:?}"
        );
    }
}

/// R19: "keep what the replay needs". A kill-at-op failure's folder over its byte cap (a quarter
/// of 800 KiB) drops its 1 MiB recording (`ops.log`, which a re-check does without) and keeps its
/// database; `trial.json` names what went, the summary says so, and `torture replay` of the
/// trimmed folder still re-checks it: the same outcome, exit 0.
#[test]
fn a_trimmed_folder_keeps_what_replay_needs_and_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("trimmed");
    let o = run(&[
        "-j",
        "1",
        "-p",
        "off-off",
        "-n",
        "6",
        "--seed",
        "3",
        "--fault",
        "kill-at-op",
        "--workload",
        "mixed",
        // The worst state (the most acks among the corrupt ones) has a 132 KiB database.
        "--max-evidence-bytes",
        "800k",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let folder = out.join("failures/0");
    assert!(folder.join("trial.db").is_file(), "the database is kept");
    assert!(!folder.join("ops.log").exists(), "the recording went");
    assert!(bytes_under(&folder) <= 200 << 10);
    let note: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("trial.json")).unwrap()).unwrap();
    let dropped: Vec<&str> = note["dropped"]
        .as_array()
        .expect("trial.json lists what the cap dropped")
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        dropped.iter().any(|d| d.starts_with("ops.log (")),
        "{dropped:?}"
    );
    assert!(
        !dropped.iter().any(|d| d.starts_with("trial.db")),
        "{dropped:?}"
    );
    assert!(
        text(&o.stdout).contains("1 folder(s) trimmed"),
        "{}",
        say(&o)
    );
    let r = torture().arg("replay").arg(&folder).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", say(&r));
    assert!(text(&r.stdout).contains("same outcome"), "{}", say(&r));
}
