//! The harness under faults of its own (issue 15): a full scratch disk or results disk, two writers on
//! one OUT, strict merges, swept leftovers, capped evidence, counts and profiles that would silently
//! do less than asked. Each test names the item it covers.

mod common;

#[allow(unused_imports)]
use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A small tmpfs, unmounted when dropped: a real full file system, ENOSPC and all.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn new(parent: &Path, name: &str, size: &str) -> Tmpfs {
        let path = parent.join(name);
        std::fs::create_dir_all(&path).unwrap();
        let o = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount(8) is installed");
        assert!(
            o.status.success(),
            "mounting a {size} tmpfs at {} needs root (CAP_SYS_ADMIN); run the tests as root, as .ci/run does: {}",
            path.display(),
            text(&o.stderr)
        );
        Tmpfs { path }
    }

    fn resize(&self, size: &str) {
        let o = std::process::Command::new("mount")
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
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

fn one_line_exit(o: &std::process::Output, code: i32) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{}{err}", text(&o.stdout));
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
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
    for r in written.iter().filter(|r| r["outcome"] != "intact") {
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

/// Item 2.
#[test]
fn junit_to_an_unwritable_path_is_refused_before_the_first_trial() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = out_dir(&tmp, "out");
    for junit in [file.join("junit.xml"), tmp.path().to_path_buf()] {
        let o = run(&[
            "-n",
            "3",
            "--junit",
            junit.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = one_line_exit(&o, 2);
        assert!(err.contains("--junit"), "{err}");
        assert!(!out.exists(), "nothing was run");
    }
}

/// Item 3.
#[test]
fn exec_with_a_missing_program_is_bad_usage_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "out");
    for program in ["/nonexistent/writer", "no-such-program-torture-15"] {
        let o = run(&[
            "exec",
            "-n",
            "2",
            "--kill-after",
            "10ms..20ms",
            "--out",
            out.to_str().unwrap(),
            "--",
            program,
            "{db}",
        ]);
        let err = one_line_exit(&o, 2);
        assert!(err.contains(program), "{err}");
        assert!(!out.exists(), "nothing written for {program}");
    }
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
    let o = run(&["--resume", out.to_str().unwrap(), "--no-progress"]);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let status = first.wait().unwrap();
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

    // report refuses shards of different seeds, as merge does.
    let o = run(&["report", &p(&s1), &p(&s2), &p(&other_seed)]);
    let err = one_line_exit(&o, 2);
    assert!(err.contains("seed"), "{err}");
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
        "3",
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
    let kept = std::fs::read_dir(out.join("failures")).unwrap().count();
    assert_eq!(kept, 3);
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains(&format!("3 of {failed} failures")),
        "{stdout}"
    );
}

/// Item 9.
#[test]
fn a_count_the_plan_cannot_hold_is_refused() {
    let o = run(&["-p", "all", "-n", "768614336404564651", "--no-progress"]);
    let err = one_line_exit(&o, 2);
    assert!(err.contains("--iterations"), "{err}");
}

/// Item 10.
#[test]
fn custom_profiles_cannot_shadow_built_ins_or_each_other_and_explicit_profiles_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let shadow = tmp.path().join("shadow.toml");
    std::fs::write(
        &shadow,
        "[[profile]]\nname = \"wal-full\"\nbase = \"delete-full\"\n",
    )
    .unwrap();
    let twice = tmp.path().join("twice.toml");
    std::fs::write(
        &twice,
        "[[profile]]\nname = \"mine\"\n\n[[profile]]\nname = \"mine\"\nsynchronous = \"off\"\n",
    )
    .unwrap();
    for (f, expect) in [(&shadow, "wal-full"), (&twice, "mine")] {
        let o = run(&["-n", "2", "--profile-file", f.to_str().unwrap()]);
        let err = one_line_exit(&o, 2);
        assert!(err.contains(expect), "{err}");
        let o = run(&["profiles", "--profile-file", f.to_str().unwrap()]);
        one_line_exit(&o, 2);
    }
    let good = tmp.path().join("good.toml");
    std::fs::write(
        &good,
        "[[profile]]\nname = \"mine\"\nbase = \"delete-full\"\n",
    )
    .unwrap();
    let out = out_dir(&tmp, "explicit");
    let o = run(&[
        "-p",
        "wal-full",
        "--profile-file",
        good.to_str().unwrap(),
        "-n",
        "2",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let profiles: std::collections::BTreeSet<String> =
        rows(&out).iter().map(|r| r["profile"].clone()).collect();
    assert_eq!(profiles, ["wal-full".to_string()].into());
}

/// Item 11.
#[test]
fn faults_that_cannot_fire_are_refused_or_reported() {
    for args in [
        vec!["--lying-disk"],
        vec!["--no-powersafe-overwrite"],
        vec!["--crash-at", "write:db:3"],
        vec!["--fault", "kill-at-op", "--lying-disk"],
    ] {
        let mut a = vec!["-n", "2", "--no-progress"];
        a.extend(args.iter());
        let o = run(&a);
        let err = one_line_exit(&o, 2);
        let flag = args.iter().rev().find(|a| a.starts_with("--")).unwrap();
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "beyond");
    let o = run(&[
        "--fault",
        "power-loss",
        "-p",
        "wal-full",
        "--crash-at",
        "write:db:100000",
        "-n",
        "3",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("never fired"),
        "{}",
        text(&o.stdout)
    );
}

/// Item 12.
#[test]
fn exec_shell_quotes_the_database_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a$(touch pwned)b");
    std::fs::create_dir(&dir).unwrap();
    let out = out_dir(&tmp, "out");
    let o = torture()
        .current_dir(tmp.path())
        .args(["exec", "-n", "1", "--kill-after", "10ms..20ms", "--shell"])
        .args(["--no-progress", "--dir", dir.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--", "test -n {db}"])
        .output()
        .unwrap();
    assert!(o.status.code() != Some(2), "{}", text(&o.stderr));
    assert!(
        !tmp.path().join("pwned").exists(),
        "the shell ran what --dir spelled"
    );
}

/// Item 13: the smaller ones.
#[test]
fn names_types_and_negative_counts_get_one_line_that_names_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let long = tmp.path().join("long.toml");
    std::fs::write(
        &long,
        format!("[[profile]]\nname = \"{}\"\n", "x".repeat(100_000)),
    )
    .unwrap();
    let o = run(&["profiles", "--profile-file", long.to_str().unwrap()]);
    let err = one_line_exit(&o, 2);
    assert!(err.len() < 400 && err.contains("name"), "{err}");

    let typed = tmp.path().join("typed.toml");
    std::fs::write(
        &typed,
        "[[profile]]\nname = \"x\"\nconnections = \"four\"\n",
    )
    .unwrap();
    let o = run(&["profiles", "--profile-file", typed.to_str().unwrap()]);
    let err = one_line_exit(&o, 2);
    assert!(
        err.contains("connections") && err.contains("line 3"),
        "{err}"
    );

    let o = run(&["-n", "-5"]);
    let err = one_line_exit(&o, 2);
    assert!(
        err.contains("-5") && !err.contains("unexpected argument"),
        "{err}"
    );
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

/// Item 13: replay refuses a hand-edited trial.json whose fields are out of range.
#[test]
fn replay_refuses_out_of_range_fields_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "src");
    let o = run(&[
        "-p",
        "off-off",
        "-n",
        "40",
        "--seed",
        "2",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let failure = std::fs::read_dir(out.join("failures"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let note = std::fs::read_to_string(failure.join("trial.json")).unwrap();
    let edits: Vec<(&str, String)> = vec![
        ("profiles", {
            let start = note.find("\"profiles\": [").unwrap();
            let run = &note[start..];
            let end = start + run.find("\n    ],").unwrap() + "\n    ]".len();
            format!("{}\"profiles\": []{}", &note[..start], &note[end..])
        }),
        (
            "iteration",
            note.replacen("\"iteration\": ", "\"iteration\": 9999999", 1),
        ),
        (
            "iterations",
            note.replace("\"iterations\": 40", "\"iterations\": 0"),
        ),
    ];
    for (what, edited) in edits {
        assert_ne!(edited, note, "{what}: the edit applies");
        std::fs::write(failure.join("trial.json"), &edited).unwrap();
        let o = torture().arg("replay").arg(&failure).output().unwrap();
        one_line_exit(&o, 2);
    }
}

/// Runs the binary with a time limit; `None` when it was still running (a valid run, killed).
fn run_bounded(cwd: &Path, args: &[String], limit: Duration) -> Option<std::process::Output> {
    let mut child = torture()
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn check_one_invocation(what: &str, o: &std::process::Output) {
    let err = text(&o.stderr);
    let code = o.status.code();
    assert!(
        matches!(code, Some(0..=3)),
        "{what}: exit {code:?} (signal {:?}): {err}",
        std::os::unix::process::ExitStatusExt::signal(&o.status)
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    if code == Some(2) {
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("torture:") || l.starts_with("error"))
            .collect();
        assert_eq!(lines.len(), 1, "{what}: one line on error: {err}");
    }
}

/// Acceptance: random argument vectors and random profile files, for a bounded time (~20 s): never
/// a panic, always exit 0/1/2/3, one line on a usage error. The seed is printed, and
/// `TORTURE_FUZZ_SEED` replays a failure.
#[test]
fn fuzz_the_command_line_and_profile_files_never_panic() {
    use rand::{Rng, RngExt, SeedableRng};
    let seed: u64 = std::env::var("TORTURE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("fuzz seed {seed} (TORTURE_FUZZ_SEED={seed} replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let flags = [
        "-p",
        "--profile",
        "--profile-file",
        "-w",
        "-n",
        "--iterations",
        "--duration",
        "--partition",
        "--resume",
        "--junit",
        "-s",
        "-j",
        "-o",
        "--dir",
        "--kill-after",
        "--kill-delay",
        "--trial-timeout",
        "--max-commits",
        "--fail-on",
        "--fault",
        "--crash-at",
        "--fault-commits",
        "--sector-size",
        "--lying-disk",
        "--no-powersafe-overwrite",
        "--crash-recovery",
        "--engine",
        "--key",
        "--no-progress",
        "--max-evidence",
        "--",
    ];
    let values = [
        "",
        "0",
        "1",
        "-5",
        "3",
        "18446744073709551615",
        "99999999999999999999",
        "wal-full",
        "all",
        "*",
        "wal-*",
        "nope",
        "inserts",
        "bank",
        "x",
        "1..20",
        "20..1",
        "2ms..30ms",
        "0us..300us",
        "10s",
        "0s",
        "1/2",
        "0/0",
        "3/2",
        "power-loss",
        "sigkill",
        "kill-at-op",
        "io-error",
        "disk-full",
        "write:db:3",
        "any",
        "sync:wal",
        "512",
        "1000",
        "violation",
        "any",
        "sqlcipher",
        "/nonexistent",
        "/dev/null",
        ".",
        "..",
        "\u{1F4A5}",
        "a b",
        "'$(x)'",
        "-",
        "--",
        "=",
    ];
    let subcommands = [
        "",
        "profiles",
        "workloads",
        "report",
        "merge",
        "replay",
        "exec",
        "scenario",
        "scenario run",
        "scenario list",
        "help",
    ];
    let started = Instant::now();
    let mut runs = 0;
    while started.elapsed() < Duration::from_secs(12) {
        let mut args: Vec<String> = Vec::new();
        let sub = subcommands[rng.random_range(0..subcommands.len())];
        args.extend(sub.split_whitespace().map(String::from));
        for _ in 0..rng.random_range(0..6) {
            match rng.random_range(0..4) {
                0 => args.push(values[rng.random_range(0..values.len())].to_string()),
                1 => {
                    let mut bytes = vec![0u8; rng.random_range(0..12)];
                    rng.fill_bytes(&mut bytes);
                    args.push(String::from_utf8_lossy(&bytes).replace('\0', ""));
                }
                _ => {
                    args.push(flags[rng.random_range(0..flags.len())].to_string());
                    args.push(values[rng.random_range(0..values.len())].to_string());
                }
            }
        }
        // Keep accidental real runs short; they still count (bounded by the time limit).
        if sub.is_empty() && rng.random_bool(0.5) {
            args.extend(["-n".into(), "2".into(), "-j".into(), "1".into()]);
        }
        if let Some(o) = run_bounded(tmp.path(), &args, Duration::from_secs(4)) {
            check_one_invocation(&format!("{args:?}"), &o);
        }
        runs += 1;
    }
    // Profile files: random TOML over the real keys, values of every type, some garbage.
    let keys = [
        "name",
        "base",
        "journal_mode",
        "synchronous",
        "connections",
        "processes",
        "busy_timeout_ms",
        "wal_autocheckpoint",
        "cache_size",
        "page_size",
        "locking_mode",
        "mmap_size",
        "bogus",
    ];
    let toml_values = [
        "\"wal\"",
        "\"x\"",
        "\"wal-full\"",
        "1",
        "0",
        "-1",
        "4096",
        "1000",
        "65536",
        "99999999999999999999",
        "true",
        "[]",
        "{}",
        "1.5",
        "\"\"",
        "\"exclusive\"",
        "\"delete-full\"",
        "\"off\"",
    ];
    let file = tmp.path().join("fuzz.toml");
    while started.elapsed() < Duration::from_secs(20) {
        let mut t = String::new();
        for _ in 0..rng.random_range(0..4) {
            t.push_str(if rng.random_bool(0.9) {
                "[[profile]]\n"
            } else {
                "[profile]\n"
            });
            for _ in 0..rng.random_range(0..6) {
                let k = keys[rng.random_range(0..keys.len())];
                let v = toml_values[rng.random_range(0..toml_values.len())];
                t.push_str(&format!("{k} = {v}\n"));
            }
        }
        if rng.random_bool(0.1) {
            let cut = rng.random_range(0..=t.len());
            t.truncate(t.floor_char_boundary(cut));
        }
        std::fs::write(&file, &t).unwrap();
        let args: Vec<String> = vec![
            "profiles".into(),
            "--profile-file".into(),
            file.to_str().unwrap().into(),
        ];
        let o = run_bounded(tmp.path(), &args, Duration::from_secs(4)).expect("profiles is quick");
        check_one_invocation(&t, &o);
        runs += 1;
    }
    assert!(runs > 20, "only {runs} invocations in 20 s");
}
