//! The harness under faults of its own (issue 15): a full scratch disk or results disk, two writers on
//! one OUT, strict merges, swept leftovers, capped evidence. Each test names the item it covers;
//! bad input and the fuzz test are in `reliability_input.rs`.

mod common;

#[allow(unused_imports)]
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

/// A small tmpfs (mode 1777, so the tests' own user writes it), unmounted when dropped: a real full file system, ENOSPC and all.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn new(parent: &Path, name: &str, size: &str) -> Tmpfs {
        let path = parent.join(name);
        std::fs::create_dir_all(&path).unwrap();
        let o = as_root("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=1777"),
                "tmpfs",
            ])
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

    fn resize(&self, size: &str) {
        let o = as_root("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    }

    /// Leaves about `free_kib` free.
    fn fill_leaving(&self, free_kib: u64) {
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

/// Item 1.
#[test]
fn a_full_dir_is_a_lab_error_naming_the_path_and_free_space_never_a_violation() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::new(tmp.path(), "scratch", "4m");
    disk.fill_leaving(1200);
    let out = out_dir(&tmp, "out");
    let o = torture()
        .args([
            "-p",
            "wal-*,delete-*,truncate-full",
            "-n",
            "20",
            "--seed",
            "1",
        ])
        .args(["-j", "4", "--workload", "mixed", "--kill-after", "1..100"])
        .args(["--no-progress", "--dir", disk.path.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{}{err}", text(&o.stdout));
    let line = err
        .lines()
        .find(|l| l.contains("full"))
        .unwrap_or_else(|| panic!("a line about the full disk: {err}"));
    assert!(
        line.contains(disk.path.to_str().unwrap()) && line.contains("free"),
        "{line}"
    );
    assert!(line.contains("--resume"), "{line}");
    if out.join("trials.csv").exists() {
        assert!(
            rows(&out).iter().all(|r| r["verdict"] != "violation"),
            "a full scratch disk is never SQLite's violation"
        );
    }
}

/// Item 5 (and 1 for OUT): a full results disk.
#[test]
fn a_full_out_keeps_whole_rows_and_complete_evidence_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::new(tmp.path(), "results", "300k");
    let out = disk.path.join("out");
    let o = torture()
        .args([
            "-p",
            "off-off,memory-off",
            "-n",
            "150",
            "--seed",
            "1",
            "-j",
            "2",
        ])
        .args(["--no-progress", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{}{err}", text(&o.stdout));
    let line = err
        .lines()
        .find(|l| l.contains("No space") || l.contains("full"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains(out.to_str().unwrap()) && line.contains("--resume"),
        "{line}"
    );
    let csv = std::fs::read(out.join("trials.csv")).unwrap();
    assert_eq!(csv.last(), Some(&b'\n'), "no torn row at the end");
    let written = rows(&out);
    // A repeated expected loss keeps no folder: its row names its group's example (issue 20 R19).
    for r in written
        .iter()
        .filter(|r| r["outcome"] != "intact" && !r["detail"].contains("evidence: none kept"))
    {
        let note = out
            .join("failures")
            .join(&r["iteration"])
            .join("trial.json");
        let t = std::fs::read_to_string(&note).unwrap_or_default();
        assert!(
            serde_json_ok(&t),
            "{} is complete before its row",
            note.display()
        );
    }
    for e in walk(&out) {
        assert!(
            !e.to_string_lossy().ends_with(".tmp"),
            "stale {}",
            e.display()
        );
    }
    // Room again: the run resumes to exactly one row per trial.
    disk.resize("64m");
    let o = run(&["--resume", out.to_str().unwrap(), "--no-progress"]);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        text(&o.stderr)
    );
    let mut seen: Vec<u64> = rows(&out)
        .iter()
        .map(|r| r["iteration"].parse().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, (0..300).collect::<Vec<u64>>());
}

fn serde_json_ok(t: &str) -> bool {
    t.trim_start().starts_with('{') && t.trim_end().ends_with('}') && t.contains("\"record\"")
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

/// Item 5: a run refused at the start leaves no run.json.
#[test]
fn a_run_that_cannot_start_leaves_no_run_json() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::new(tmp.path(), "tiny", "64k");
    disk.fill_leaving(0);
    let out = disk.path.join("out");
    let o = run(&["-n", "3", "--no-progress", "--out", out.to_str().unwrap()]);
    assert!(
        matches!(o.status.code(), Some(2 | 3)),
        "{}",
        text(&o.stderr)
    );
    assert!(!out.join("run.json").exists(), "no run.json left behind");
}

/// Item 4.
#[test]
fn a_second_writer_on_one_out_is_refused_while_the_first_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "locked");
    let mut first = torture()
        .args([
            "-p",
            "wal-normal",
            "-n",
            "1000000",
            "--seed",
            "4",
            "-j",
            "1",
        ])
        .args(["--no-progress", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_rows(&out, 5);
    // Bounded: a second writer that is not refused would run a million trials.
    let o = run_bounded(
        tmp.path(),
        &[
            "--resume".into(),
            out.to_str().unwrap().into(),
            "--no-progress".into(),
        ],
        Duration::from_secs(20),
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let status = first.wait().unwrap();
    let o = o.expect("the second writer is refused at once, not run");
    let err = one_line_exit(&o, 2);
    assert!(
        err.contains(out.to_str().unwrap()) && err.contains("in use"),
        "{err}"
    );
    assert_eq!(status.code(), Some(130));
    let rows = rows(&out);
    let mut seen: Vec<&str> = rows.iter().map(|r| r["iteration"].as_str()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), rows.len(), "no trial twice");
}

fn shard(tmp: &tempfile::TempDir, name: &str, profiles: &str, seed: &str, part: &str) -> PathBuf {
    let out = out_dir(tmp, name);
    let o = run(&[
        "-p",
        profiles,
        "-n",
        "6",
        "--seed",
        seed,
        "--partition",
        part,
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    out
}

/// Item 6.
#[test]
fn merge_refuses_missing_or_mismatched_shards_and_partial_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let s1 = shard(&tmp, "s1", "wal-full,delete-full", "5", "1/3");
    let s2 = shard(&tmp, "s2", "wal-full,delete-full", "5", "2/3");
    let s3 = shard(&tmp, "s3", "wal-full,delete-full", "5", "3/3");
    let other_profiles = shard(&tmp, "o3", "wal-full,truncate-full", "5", "3/3");
    let other_seed = shard(&tmp, "x3", "wal-full,delete-full", "6", "3/3");
    let p = |x: &PathBuf| x.to_str().unwrap().to_string();
    let m = |name: &str| out_dir(&tmp, name);

    let o = run(&["merge", &p(&m("m1")), &p(&s1), &p(&s2)]);
    let err = one_line_exit(&o, 2);
    assert!(err.contains("3/3") && err.contains("--partial"), "{err}");
    assert!(!m("m1").exists());

    let o = run(&["merge", &p(&m("m2")), &p(&s1), &p(&s2), &p(&other_profiles)]);
    let err = one_line_exit(&o, 2);
    assert!(err.contains("profiles"), "{err}");

    let o = run(&["merge", &p(&m("m3")), &p(&s1), &p(&s2), &p(&other_seed)]);
    one_line_exit(&o, 2);

    // Another SQLite version in one shard's run.json.
    let edited = out_dir(&tmp, "v3");
    std::fs::create_dir_all(&edited).unwrap();
    for f in ["trials.csv", "summary.csv"] {
        std::fs::copy(s3.join(f), edited.join(f)).unwrap();
    }
    let spec = std::fs::read_to_string(s3.join("run.json")).unwrap();
    let v = spec
        .split("\"sqlite_version\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    std::fs::write(edited.join("run.json"), spec.replace(&v, "3.0.0")).unwrap();
    let o = run(&["merge", &p(&m("m4")), &p(&s1), &p(&s2), &p(&edited)]);
    let err = one_line_exit(&o, 2);
    assert!(err.contains("SQLite"), "{err}");

    // --partial merges and says so, in run.json and in the report.
    let o = run(&["merge", "--partial", &p(&m("m5")), &p(&s1), &p(&s2)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("partial"), "{}", text(&o.stdout));
    let spec = std::fs::read_to_string(m("m5").join("run.json")).unwrap();
    assert!(spec.contains("\"partial\""), "{spec}");
    let o = run(&["report", &p(&m("m5"))]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("partial") || text(&o.stderr).contains("partial"),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );

    // The complete set still merges.
    let o = run(&["merge", &p(&m("m6")), &p(&s1), &p(&s2), &p(&s3)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    // report never pools shards of different seeds (merge refuses them): it sets the two runs
    // side by side, labelled by seed, and warns that each lacks shards.
    let o = run(&["report", &p(&s1), &p(&s2), &p(&other_seed)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("2 runs side by side") && out.contains("[seed 5]") && out.contains("[seed 6]"),
        "{out}"
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("shard(s) 3/3 not given") && err.contains("shard(s) 1/3, 2/3 not given"),
        "{err}"
    );
}

/// Item 7: the scratch folder of a SIGKILLed run is swept by the next run; replay cleans up.
#[test]
fn scratch_folders_of_killed_runs_are_swept_and_replay_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let out = out_dir(&tmp, "killed");
    let mut child = torture()
        .args([
            "-p",
            "wal-normal",
            "-n",
            "1000000",
            "-j",
            "1",
            "--no-progress",
        ])
        .args(["--dir", scratch.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_rows(&out, 3);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("torture-"))
            .collect()
    };
    // The slot may take a moment to die with its parent.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(left(&scratch).len(), 1, "the killed run left its folder");
    // A live run's folder is never swept: one in flight, owned by this test process.
    let o = run(&[
        "-n",
        "2",
        "--no-progress",
        "--dir",
        scratch.to_str().unwrap(),
        "--out",
        out_dir(&tmp, "next").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(left(&scratch).is_empty(), "swept: {:?}", left(&scratch));

    // replay: its own temporary folder goes when it is done.
    let fixed = out_dir(&tmp, "fixed");
    let o = run(&[
        "--fault",
        "power-loss",
        "-p",
        "delete-off",
        "-n",
        "30",
        "--seed",
        "3",
        "--crash-at",
        "write:db:9",
        "--no-progress",
        "--out",
        fixed.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let bad = rows(&fixed)
        .into_iter()
        .find(|r| r["outcome"] != "intact")
        .unwrap();
    let tmpdir = tmp.path().join("tmpdir");
    std::fs::create_dir(&tmpdir).unwrap();
    let o = torture()
        .env("TMPDIR", &tmpdir)
        .arg("replay")
        .arg(fixed.join("failures").join(&bad["iteration"]))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(left(&tmpdir).is_empty(), "{:?}", left(&tmpdir));
}

/// Item 8.
#[test]
fn evidence_is_capped_and_the_summary_says_how_many_failures_were_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "cap");
    let o = run(&[
        "-p",
        "off-off,memory-off",
        "-n",
        "60",
        "--seed",
        "2",
        "--max-evidence",
        "1",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let failed = rows(&out)
        .iter()
        .filter(|r| r["outcome"] != "intact")
        .count();
    assert!(failed > 3, "the control fails often enough ({failed})");
    // Two groups, one kept under --max-evidence 1. A group's example is a folder that was kept
    // (issue 20 R19): the first group's repeats name it; the other group has no example, so each
    // of its failures is over --max-evidence. Every failure is one or the other.
    let kept = std::fs::read_dir(out.join("failures")).unwrap().count();
    assert_eq!(kept, 1);
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains(&format!("1 of {failed} failures")),
        "{stdout}"
    );
    let count = |after: &str| -> usize {
        let at = stdout.find(after).map_or(0, |i| i);
        stdout[..at]
            .rsplit(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())
            .and_then(|w| w.parse().ok())
            .unwrap_or(0)
    };
    let repeats = count(" repeated expected loss(es)");
    let over = count(" over --max-evidence 1");
    assert!(over >= 1, "{stdout}");
    assert_eq!(repeats + over, failed - 1, "{stdout}");
    for r in rows(&out).iter().filter(|r| r["outcome"] != "intact") {
        if let Some(i) = r["detail"].find("like failures/") {
            let k: String = r["detail"][i + "like failures/".len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            assert!(out.join("failures").join(&k).is_dir(), "names failures/{k}");
        }
    }
}

/// Item 13: a resumed `--duration` run runs what is left of it.
#[test]
fn a_resumed_duration_run_runs_only_what_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "dur");
    let started = Instant::now();
    let mut child = torture()
        .args([
            "-p",
            "wal-normal",
            "--duration",
            "8s",
            "-j",
            "1",
            "--no-progress",
        ])
        .args(["--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_rows(&out, 3);
    let wait = Duration::from_secs(5).saturating_sub(started.elapsed());
    std::thread::sleep(wait);
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = Instant::now();
    let o = run(&["--resume", out.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let took = resumed.elapsed();
    assert!(
        took < Duration::from_millis(6500),
        "about 3s were left of 8s, took {took:?}"
    );
}
