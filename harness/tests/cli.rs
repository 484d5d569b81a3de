//! End-to-end tests: the real `torture` binary, real fork, real SIGKILL, real SQLite, small counts.
//! The controls: profiles SQLite promises survive a process crash must never fail; profiles it says
//! will corrupt must be caught.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn torture() -> Command {
    Command::new(env!("CARGO_BIN_EXE_torture"))
}

fn run(args: &[&str]) -> Output {
    torture().args(args).output().expect("torture runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads a trials.csv into header-keyed rows.
fn rows(out: &Path) -> Vec<std::collections::HashMap<String, String>> {
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

fn out_dir(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    tmp.path().join(name)
}

#[test]
fn crash_safe_journal_modes_never_fail_under_sigkill_at_any_synchronous_level() {
    // Negative control: DELETE, TRUNCATE, PERSIST and WAL at OFF/NORMAL/FULL/EXTRA.
    let tmp = tempfile::tempdir().unwrap();
    for workload in ["inserts", "bank", "mixed"] {
        let out = out_dir(&tmp, workload);
        let o = run(&[
            "--profile",
            "delete-*,truncate-*,persist-*,wal-*",
            "--workload",
            workload,
            "--iterations",
            "40",
            "--seed",
            "11",
            "--out",
            out.to_str().unwrap(),
        ]);
        let stdout = text(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{workload}: {stdout}{}",
            text(&o.stderr)
        );
        let rows = rows(&out);
        assert!(rows.len() >= 16 * 40, "{}", rows.len());
        let bad: Vec<_> = rows.iter().filter(|r| r["outcome"] != "intact").collect();
        assert!(bad.is_empty(), "{workload}: {bad:?}");
        assert!(rows.iter().all(|r| r["pragma_fallback"].is_empty()));
        assert!(!out.join("failures").exists());
    }
}

#[test]
fn journal_mode_off_and_memory_killed_mid_transaction_are_caught() {
    // Positive control: SQLite says these "will very likely go corrupt" when the process dies
    // mid-transaction. The mixed workload's large transactions give the kill the chance.
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "off");
    let o = run(&[
        "--profile",
        "off-off,memory-off",
        "--workload",
        "mixed",
        "--iterations",
        "300",
        "--seed",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    // Expected losses are not violations: exit 0.
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows = rows(&out);
    for profile in ["off-off", "memory-off"] {
        let caught = rows
            .iter()
            .filter(|r| r["profile"] == profile && r["outcome"] != "intact")
            .count();
        assert!(caught > 0, "{profile}: no trial caught");
        assert!(rows
            .iter()
            .filter(|r| r["profile"] == profile && r["outcome"] != "intact")
            .all(|r| r["verdict"] == "expected"));
    }
    // Evidence of each caught trial: the database files and a note to reproduce it.
    let bad = rows.iter().find(|r| r["outcome"] != "intact").unwrap();
    let evidence = out.join("failures").join(&bad["iteration"]);
    assert!(evidence.join("trial.db").exists());
    let note = std::fs::read_to_string(evidence.join("trial.json")).unwrap();
    assert!(
        note.contains(&bad["seed"]) && note.contains("command_line"),
        "{note}"
    );
    // The summary counts them as expected, and says so.
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(summary.lines().count() == 3, "{summary}");
    assert!(text(&o.stdout).contains("expected losses"));
}

#[test]
fn fail_on_any_turns_expected_losses_into_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "any");
    let o = run(&[
        "--profile",
        "memory-off",
        "--workload",
        "mixed",
        "--iterations",
        "300",
        "--seed",
        "5",
        "--fail-on",
        "any",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("--fail-on any"));
}

#[test]
fn several_writer_processes_and_a_pool_share_one_database_safely() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "pool");
    let o = run(&[
        "--profile",
        "wal-full-4proc,wal-normal-pool10,delete-full-4proc,delete-full-pool10-nobusy",
        "--workload",
        "bank",
        "--iterations",
        "25",
        "--seed",
        "3",
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
    assert!(rows.iter().all(|r| r["outcome"] == "intact"));
    let nobusy: u64 = rows
        .iter()
        .filter(|r| r["profile"] == "delete-full-pool10-nobusy")
        .map(|r| r["busy_errors"].parse::<u64>().unwrap())
        .sum();
    assert!(nobusy > 0, "ten connections without busy_timeout contend");
    assert!(rows
        .iter()
        .filter(|r| r["profile"] == "wal-full-4proc")
        .all(|r| r["processes"] == "4"));
}

#[test]
fn the_same_seed_draws_the_same_trials() {
    let tmp = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for name in ["a", "b"] {
        let out = out_dir(&tmp, name);
        let o = run(&[
            "--profile",
            "wal-full,delete-normal",
            "--iterations",
            "20",
            "--seed",
            "99",
            "--jobs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0));
        let mut r: Vec<(u64, String, String, String)> = rows(&out)
            .into_iter()
            .map(|r| {
                (
                    r["iteration"].parse().unwrap(),
                    r["seed"].clone(),
                    r["profile"].clone(),
                    r["kill_point"].clone(),
                )
            })
            .collect();
        r.sort();
        runs.push(r);
    }
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0].len(), 40);
    // Profiles are interleaved: even iterations are the first profile.
    assert!(runs[0]
        .iter()
        .all(|(i, _, p, _)| (i % 2 == 0) == (p == "wal-full")));
}

#[test]
fn a_silent_pragma_fallback_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    // SQLite caps mmap_size at its compile-time maximum (2 GiB - 64 KiB) and says nothing.
    std::fs::write(
        &file,
        "[[profile]]\nname = \"wal-bigmmap\"\nbase = \"wal-full\"\nmmap_size = 8589934592\n",
    )
    .unwrap();
    let out = out_dir(&tmp, "fb");
    let o = run(&[
        "--profile-file",
        file.to_str().unwrap(),
        "--iterations",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows = rows(&out);
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|r| r["pragma_fallback"].starts_with("mmap_size 8589934592->")),
        "{:?}",
        rows[0]
    );
}

#[test]
fn bad_input_gets_one_line_exit_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_toml = tmp.path().join("bad.toml");
    std::fs::write(
        &bad_toml,
        "[[profile]]\nname = \"x\"\njournal_mode = \"wall\"\n",
    )
    .unwrap();
    let unknown_key = tmp.path().join("unknown.toml");
    std::fs::write(
        &unknown_key,
        "[[profile]]\nname = \"x\"\nsynchronus = \"full\"\n",
    )
    .unwrap();
    let bad_page = tmp.path().join("page.toml");
    std::fs::write(&bad_page, "[[profile]]\nname = \"x\"\npage_size = 1000\n").unwrap();
    let garbage = tmp.path().join("garbage.toml");
    std::fs::write(&garbage, "this is not toml [[[").unwrap();
    let readonly = tmp.path().join("ro");
    std::fs::create_dir(&readonly).unwrap();
    let ro_parent = readonly.join("out");
    let file_as_dir = bad_toml.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--profile".into(), "wal-fulll".into()],
            "unknown profile `wal-fulll`",
        ),
        (
            vec!["--workload".into(), "oltp".into()],
            "unknown workload `oltp`",
        ),
        (vec!["--iterations".into(), "0".into()], "--iterations 0"),
        (
            vec!["--engine".into(), "oracle".into()],
            "unknown engine \"oracle\"",
        ),
        (
            vec!["--key".into(), "k".into()],
            "--key needs --engine sqlcipher",
        ),
        (vec!["--jobs".into(), "0".into()], "--jobs 0"),
        (
            vec!["--kill-after".into(), "20..1".into()],
            "the window is empty",
        ),
        (
            vec!["--kill-after".into(), "5ms..1ms".into()],
            "the window is empty",
        ),
        (
            vec![
                "--kill-after".into(),
                "1..5".into(),
                "--kill-delay".into(),
                "10".into(),
            ],
            "has no unit",
        ),
        (
            vec![
                "--kill-after".into(),
                "1s..20s".into(),
                "--trial-timeout".into(),
                "5s".into(),
            ],
            "--trial-timeout",
        ),
        (
            vec!["--profile-file".into(), bad_toml.to_str().unwrap().into()],
            "malformed profile file",
        ),
        (
            vec![
                "--profile-file".into(),
                unknown_key.to_str().unwrap().into(),
            ],
            "unknown field `synchronus`",
        ),
        (
            vec!["--profile-file".into(), bad_page.to_str().unwrap().into()],
            "page_size 1000",
        ),
        (
            vec!["--profile-file".into(), garbage.to_str().unwrap().into()],
            "malformed profile file",
        ),
        (
            vec!["--profile-file".into(), "/nonexistent/p.toml".into()],
            "cannot read profile file",
        ),
        (
            vec!["--dir".into(), "/nonexistent/dir".into()],
            "--dir /nonexistent/dir is not a directory",
        ),
        (
            vec!["--dir".into(), file_as_dir.clone()],
            "is not a directory",
        ),
        (vec!["--out".into(), file_as_dir], "is a file"),
        (
            vec!["--out".into(), tmp.path().to_str().unwrap().into()],
            "already holds results",
        ),
    ];
    for (args, expect) in &cases {
        let o = torture()
            .args(args)
            .args(
                ["--iterations", "3"]
                    .iter()
                    .filter(|_| !args.contains(&"--iterations".to_string())),
            )
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line, got {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}");
    }
    // An unwritable --out parent (skipped when running as root, which may write anywhere).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o555)).unwrap();
    if tempfile::tempfile_in(&readonly).is_err() {
        let o = run(&["--iterations", "3", "--out", ro_parent.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        assert!(!ro_parent.exists());
    }
    std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Nothing was written anywhere: the only entries are the inputs made above.
    let mut entries: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            "bad.toml",
            "garbage.toml",
            "page.toml",
            "ro",
            "unknown.toml"
        ]
    );
}

#[test]
fn profiles_and_workloads_are_listed() {
    let o = run(&["profiles"]);
    assert_eq!(o.status.code(), Some(0));
    let s = text(&o.stdout);
    for name in [
        "wal-full",
        "delete-extra",
        "memory-off",
        "off-normal",
        "delete-full-pool10-nobusy",
    ] {
        assert!(s.lines().any(|l| l.starts_with(name)), "{name}");
    }
    assert!(s.contains("journal_mode=wal synchronous=full"));
    let o = run(&["workloads"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("bank"));
}

/// Processes whose environment carries `marker`: this test's parent, slots and writers.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(e.path().join("environ")) {
            if env.split(|&b| b == 0).any(|kv| kv == marker.as_bytes()) {
                out.push(pid);
            }
        }
    }
    out
}

fn wait_for_rows(out: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(t) = std::fs::read_to_string(out.join("trials.csv")) {
            if t.lines().count() > n {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no rows appeared");
}

fn assert_no_orphans(marker: &str) {
    // Generous: on a loaded machine the kernel may take a while to deliver the parent-death signals.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        let states: Vec<String> = left
            .iter()
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default())
            .collect();
        assert!(Instant::now() < deadline, "orphans left: {states:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_finishes_the_trials_in_flight_and_prints_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "int");
    let marker = format!("TORTURE_TEST_MARKER=sigint-{}", std::process::id());
    let (k, v) = marker.split_once('=').unwrap();
    let child = torture()
        .env(k, v)
        .args([
            "--profile",
            "wal-normal",
            "--iterations",
            "1000000",
            "--seed",
            "1",
        ])
        .args(["--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_rows(&out, 20);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(stdout.contains("interrupted:"), "{stdout}");
    assert!(
        stdout.contains("wal-normal"),
        "the summary table is printed"
    );
    let rows = rows(&out);
    assert!(rows.len() >= 20);
    assert!(rows.iter().all(|r| r["outcome"] == "intact"));
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let trials: usize = summary
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(5)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        trials,
        rows.len(),
        "the summary counts exactly the rows written"
    );
    assert_no_orphans(&marker);
}

#[test]
fn killing_the_parent_leaves_no_orphans_and_no_half_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "kill");
    let marker = format!("TORTURE_TEST_MARKER=sigkill-{}", std::process::id());
    let (k, v) = marker.split_once('=').unwrap();
    let mut child = torture()
        .env(k, v)
        .args([
            "--profile",
            "wal-full-4proc",
            "--iterations",
            "1000000",
            "--seed",
            "2",
        ])
        .args(["--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_rows(&out, 10);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_orphans(&marker);
    // Every row on disk is whole.
    let text = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    assert!(text.ends_with('\n'), "the last row is complete");
    let rows = rows(&out);
    assert!(rows.len() >= 10);
}

#[test]
fn shards_of_a_run_are_exactly_the_unsharded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let key = |out: &Path| -> Vec<(u64, String, String, String)> {
        let mut v: Vec<_> = rows(out)
            .into_iter()
            .map(|r| {
                (
                    r["iteration"].parse().unwrap(),
                    r["seed"].clone(),
                    r["profile"].clone(),
                    r["kill_point"].clone(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let common = [
        "--profile",
        "wal-full,delete-full,off-full",
        "--iterations",
        "7",
        "--seed",
        "77",
    ];
    let whole = out_dir(&tmp, "whole");
    let o = torture()
        .args(common)
        .args(["--out", whole.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut union = Vec::new();
    for k in 1..=3 {
        let shard = out_dir(&tmp, &format!("shard{k}"));
        let o = torture()
            .args(common)
            .args([
                "--partition",
                &format!("{k}/3"),
                "--out",
                shard.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        let rows = key(&shard);
        assert!(!rows.is_empty());
        union.extend(rows);
    }
    union.sort();
    assert_eq!(
        union,
        key(&whole),
        "the shards together are the whole run, trial for trial"
    );
}

#[test]
fn a_killed_run_resumes_without_losing_or_repeating_a_trial() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "resume");
    let mut child = torture()
        .args([
            "--profile",
            "wal-normal,delete-full",
            "--iterations",
            "400",
            "--seed",
            "8",
        ])
        .args(["--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_rows(&out, 30);
    child.kill().unwrap();
    child.wait().unwrap();
    let before = rows(&out).len();
    assert!(before < 800, "killed mid-way ({before} rows)");
    let o = run(&["--resume", out.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("resuming after"),
        "{}",
        text(&o.stderr)
    );
    let mut seen: Vec<u64> = rows(&out)
        .iter()
        .map(|r| r["iteration"].parse().unwrap())
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..800).collect::<Vec<u64>>(),
        "every trial exactly once"
    );
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let total: u64 = summary
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        total, 800,
        "the summary covers the resumed and the earlier trials"
    );
    // A finished run resumes to nothing more.
    let o = run(&["--resume", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(rows(&out).len(), 800);
}

#[test]
fn a_duration_budget_bounds_the_run_and_profiles_stay_even() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "dur");
    let started = Instant::now();
    let o = run(&[
        "--profile",
        "wal-full,delete-full",
        "--duration",
        "1500ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(started.elapsed() < Duration::from_secs(20));
    let rows = rows(&out);
    assert!(rows.len() > 10);
    let wal = rows.iter().filter(|r| r["profile"] == "wal-full").count() as i64;
    let del = rows.len() as i64 - wal;
    assert!((wal - del).abs() <= 4, "{wal} vs {del}");
}

#[test]
fn junit_has_one_case_per_profile_and_fails_what_the_exit_code_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "junit");
    let xml = tmp.path().join("junit.xml");
    let o = run(&[
        "--profile",
        "wal-full,memory-off",
        "--workload",
        "mixed",
        "--iterations",
        "200",
        "--seed",
        "5",
        "--fail-on",
        "any",
        "--junit",
        xml.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let x = std::fs::read_to_string(&xml).unwrap();
    assert!(
        x.contains("tests=\"2\" skipped=\"0\" failures=\"1\""),
        "{x}"
    );
    assert!(x.contains("name=\"memory-off [mixed, sigkill]\""), "{x}");
    assert!(x.contains("type=\"not-intact\""), "{x}");
}

#[test]
fn the_nightly_script_runs_end_to_end_on_a_small_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nightly");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nightly");
    let o = Command::new("bash")
        .arg(&script)
        .env("BIN", env!("CARGO_BIN_EXE_torture"))
        .env("NIGHTLY_ITERATIONS", "3")
        .env("NIGHTLY_WORKLOADS", "inserts bank")
        .env("NIGHTLY_OUT", &out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    for f in [
        "report.md",
        "report.html",
        "inserts/junit.xml",
        "bank/trials.csv",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("wal-full") && md.contains("bank"), "{md}");
}

#[test]
fn the_nightly_workflow_is_valid_yaml_that_runs_the_script_in_shards() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows/nightly.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
    let wf = &docs[0];
    let jobs = &wf["jobs"];
    assert_eq!(
        jobs["shard"]["strategy"]["matrix"]["shard"]
            .as_vec()
            .unwrap()
            .len(),
        4
    );
    let steps = jobs["shard"]["steps"].as_vec().unwrap();
    assert!(steps
        .iter()
        .any(|s| s["run"].as_str() == Some("scripts/nightly")));
    assert!(steps.iter().any(|s| s["uses"]
        .as_str()
        .is_some_and(|u| u.starts_with("actions/upload-artifact"))));
    let merge = jobs["report"]["steps"].as_vec().unwrap();
    assert!(merge.iter().any(|s| s["run"]
        .as_str()
        .is_some_and(|r| r.contains("torture merge"))));
    assert!(!wf["on"]["schedule"].is_badvalue());
}

/// Runs a fault over profiles and returns the rows.
fn fault_run(
    tmp: &tempfile::TempDir,
    name: &str,
    fault: &str,
    profiles: &str,
    n: &str,
    extra: &[&str],
) -> (Output, Vec<std::collections::HashMap<String, String>>) {
    let out = out_dir(tmp, name);
    let o = torture()
        .args([
            "--fault",
            fault,
            "--profile",
            profiles,
            "--iterations",
            n,
            "--seed",
            "3",
        ])
        .args(["--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    let rows = if out.join("trials.csv").exists() {
        rows(&out)
    } else {
        Vec::new()
    };
    (o, rows)
}

fn count(
    rows: &[std::collections::HashMap<String, String>],
    profile: &str,
    outcome: &str,
) -> usize {
    rows.iter()
        .filter(|r| r["profile"] == profile && r["outcome"] == outcome)
        .count()
}

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
fn op_indexed_faults_refuse_profiles_with_several_writers() {
    let o = run(&[
        "--fault",
        "kill-at-op",
        "--profile",
        "wal-normal-pool10",
        "--iterations",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("needs one writer"),
        "{}",
        text(&o.stderr)
    );
    let o = run(&["--fault", "brownout", "--iterations", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown fault `brownout`"));
    let o = run(&[
        "--fault",
        "kill-at-op",
        "--crash-at",
        "scribble:db",
        "--iterations",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown operation kind"));
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
    let o = run(&["exec", "--kill-after", "1..5", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("exec mode kills at a time"));
}

#[test]
fn sqlcipher_needs_its_build_variant() {
    // The default build links plain SQLite: asking for SQLCipher names the build that has it.
    if cfg!(feature = "sqlcipher") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "o");
    let o = run(&["--engine", "sqlcipher", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("scripts/build-sqlcipher"));
    assert!(!out.exists(), "nothing is written");
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

#[test]
fn exec_engine_libsql_without_the_package_or_with_a_stray_key_is_one_line_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    // python3 -S skips site-packages, where `pip install libsql` puts the package.
    let py = tmp.path().join("python-without-site");
    std::fs::write(&py, "#!/bin/sh\nexec python3 -S \"$@\"\n").unwrap();
    std::fs::set_permissions(&py, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = out_dir(&tmp, "libsql");
    let writer = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../workloads/exec/libsql_writer.py"
    );
    for (args, says) in [
        (
            vec!["--engine", "libsql", "--python", py.to_str().unwrap()],
            "pip install libsql",
        ),
        (vec!["--engine", "sqlite", "--key", "k"], "--engine libsql"),
        (vec!["--engine", "libsql", "--key", ""], "--key is empty"),
        (vec!["--engine", "libsq"], "sqlite, duckdb or libsql"),
    ] {
        let mut all = vec!["exec", "-n", "2", "--out", out.to_str().unwrap()];
        all.extend(args.iter().copied());
        all.extend(["--", "python3", writer, "{db}"]);
        let o = run(&all);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!out.exists(), "nothing is written");
    }
}

#[test]
fn replay_refuses_a_pool_power_loss_trial_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "poolpl");
    let o = run(&[
        "scenario",
        "run",
        "pool",
        "-n",
        "2",
        "--seed",
        "2026",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows = rows(&out);
    // The sync-off controls lose something in nearly every power cut.
    let failed = rows
        .iter()
        .find(|r| r["fault"] == "power-loss" && r["outcome"] != "intact")
        .expect("a power-loss trial that is not intact");
    let o = run(&[
        "replay",
        out.join("failures")
            .join(&failed["iteration"])
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot be replayed"), "{err}");
}
