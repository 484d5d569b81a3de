//! End-to-end: the life of a run — Ctrl-C, a killed parent, shards, resume, duration, JUnit, the nightly.

mod common;

#[allow(unused_imports)]
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
        // The docs' commands only listed (they run in full in the real nightly; docs.rs tests them).
        .env("NIGHTLY_DOCS", "list")
        // No hunt here: the sharded test below runs each engine's.
        .env("NIGHTLY_HUNT_BUDGET", "0")
        .output()
        .unwrap();
    assert!(!out.join("hunt-sqlite").exists() && !out.join("hunt-duckdb").exists());
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
    // The power-loss matrix and the exec target are reported next to the SIGKILL matrix.
    assert!(md.contains("power-loss") && md.contains("python"), "{md}");
    let docs = std::fs::read_to_string(out.join("doc-commands.log")).unwrap();
    assert!(
        docs.contains("to run,") && docs.contains("0 problem(s)"),
        "{docs}"
    );
}

/// The nightly workflow, parsed.
fn nightly_workflow() -> yaml_rust2::Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows/nightly.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
    docs.remove(0)
}

/// The step of a job whose `run` mentions `needle`.
fn step_running<'a>(job: &'a yaml_rust2::Yaml, needle: &str) -> &'a yaml_rust2::Yaml {
    job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains(needle)))
        .unwrap_or_else(|| panic!("a step runs {needle}"))
}

/// A `run:` as GitHub runs it (`bash --noprofile --norc -eo pipefail`).
fn github_shell(run: &str) -> Command {
    let mut c = Command::new("bash");
    c.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", run]);
    c
}

/// Sets a row's verdict to `violation`, as a run that found one writes it.
fn plant_violation(trials_csv: &Path) {
    let mut r = csv::Reader::from_path(trials_csv).unwrap();
    let headers = r.headers().unwrap().clone();
    let col = headers.iter().position(|h| h == "verdict").unwrap();
    let mut rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let mut row: Vec<String> = rows[0].iter().map(String::from).collect();
    row[col] = "violation".into();
    rows[0] = csv::StringRecord::from(row);
    let mut w = csv::Writer::from_path(trials_csv).unwrap();
    w.write_record(&headers).unwrap();
    for row in rows {
        w.write_record(&row).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn the_nightly_runs_as_the_workflow_runs_it_shards_then_merge_report_and_gate() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = env!("CARGO_BIN_EXE_torture");
    let wf = nightly_workflow();
    assert!(!wf["on"]["schedule"].is_badvalue());
    let shard_job = &wf["jobs"]["shard"];
    let matrix = shard_job["strategy"]["matrix"]["shard"].as_vec().unwrap();
    let n = matrix.len();
    assert!(n >= 2, "the nightly runs in shards");
    let step = step_running(shard_job, "scripts/nightly");
    let run = step["run"].as_str().unwrap();
    // The shard step's environment, each value set as the runner would (a small size, a fixed
    // seed, and the artifact's folder as download-artifact lays it out): a variable added to the
    // workflow fails here rather than going untested.
    let mut keys: Vec<&str> = step["env"]
        .as_hash()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "BIN",
            "NIGHTLY_ITERATIONS",
            "NIGHTLY_OUT",
            "NIGHTLY_SEED",
            "SHARD"
        ]
    );
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("shards");
    for k in matrix {
        let k = k.as_i64().unwrap();
        let o = github_shell(run)
            .current_dir(&repo)
            .env("SHARD", format!("{k}/{n}"))
            .env("NIGHTLY_ITERATIONS", "2")
            .env("NIGHTLY_SEED", "7")
            .env("NIGHTLY_OUT", shards.join(format!("shard-{k}")))
            .env("BIN", bin)
            .env("NIGHTLY_DOCS", "list")
            // Each engine's hunt for real, one small program each: SQLite through the stdlib,
            // DuckDB through the system python3's package (scripts/test installs it). A DuckDB
            // finding does not fail the night (its latest release has known crash bugs).
            .env("NIGHTLY_HUNT_BUDGET", "1s")
            .env("NIGHTLY_HUNT_ARGS", "--transactions 3")
            .env("NIGHTLY_HUNT_SHRINK", "1")
            .env("NIGHTLY_DUCKDB", "")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "shard {k}/{n}: {}", say(&o));
    }
    // SQLite's hunt on shard 2, DuckDB's on shard 3: each ran one program.
    for (k, engine) in [(2, "sqlite"), (3, "duckdb")] {
        let state = shards.join(format!("shard-{k}/hunt-{engine}/hunt.json"));
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
        assert_eq!(state["engine"], engine);
        assert!(state["programs"].as_u64() >= Some(1), "{state}");
    }
    // The report job, from the repository's root as checked out: its one step, as written.
    let report_job = &wf["jobs"]["report"];
    let step = step_running(report_job, "scripts/nightly-report");
    let run = step["run"].as_str().unwrap();
    assert_eq!(step["env"]["BIN"].as_str(), Some("target/release/torture"));
    std::os::unix::fs::symlink(repo.join("scripts"), tmp.path().join("scripts")).unwrap();
    let summary = tmp.path().join("step-summary.md");
    let o = github_shell(run)
        .current_dir(tmp.path())
        .env("BIN", bin)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let merged = tmp.path().join("merged");
    let upload = report_job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["with"]["name"].as_str() == Some("nightly-report"))
        .expect("the report is uploaded");
    assert_eq!(upload["with"]["path"].as_str(), Some("merged"));
    // Every part merged whole: the SIGKILL workloads, the power-loss matrix, the exec target.
    for part in ["inserts", "bank", "mixed", "power-loss", "exec-power-loss"] {
        let spec = std::fs::read_to_string(merged.join(part).join("run.json")).unwrap();
        assert!(!spec.contains("\"partial\""), "{part} merged whole: {spec}");
    }
    let html = std::fs::read_to_string(merged.join("report.html")).unwrap();
    let md = std::fs::read_to_string(merged.join("report.md")).unwrap();
    // The hunts' bug bases travel with the report, and the report says what each found.
    for engine in ["sqlite", "duckdb"] {
        assert!(merged.join(format!("hunt-{engine}/hunt.json")).is_file());
        assert!(
            md.contains(&format!("## Hunt: {engine} under power-loss")),
            "{md}"
        );
    }
    for needle in ["wal-full", "bank", "mixed", "power-loss", "python"] {
        assert!(md.contains(needle), "report.md shows {needle}:\n{md}");
    }
    assert!(
        html.contains("<svg") && html.contains("power-loss"),
        "{html}"
    );
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), md);
    // The gate's positive control: one violation in one part fails the report step.
    let violated = tmp.path().join("violated");
    std::fs::create_dir_all(violated.join("bank")).unwrap();
    for f in ["trials.csv", "run.json"] {
        std::fs::copy(merged.join("bank").join(f), violated.join("bank").join(f)).unwrap();
    }
    plant_violation(&violated.join("bank/trials.csv"));
    let o = Command::new(repo.join("scripts/nightly-report"))
        .arg(&violated)
        .env("BIN", bin)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    assert!(
        text(&o.stderr).contains("1 trials with a violation"),
        "{}",
        say(&o)
    );
    assert!(violated.join("report.html").is_file());
}

#[test]
fn the_reproduce_line_pastes_as_one_command_and_names_the_folder_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("first run");
    let o = run(&[
        "-s",
        "11",
        "--profile",
        "wal-full",
        "--iterations",
        "3",
        "--no-progress",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let stdout = text(&o.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("reproduce: "))
        .expect("a reproduce line");
    assert!(line.ends_with("--seed 11"), "{line}");
    assert!(
        !line.contains("first run") && !line.contains("-o "),
        "{line}"
    );
    let hint = format!("torture --resume '{}'", out.display());
    assert!(stdout.contains(&hint), "{stdout}");
    // Pasted into a shell (from another folder): it runs, into a new folder, the same trials.
    let o = Command::new("bash")
        .args(["-c", line])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{line}: {}", say(&o));
    let made: Vec<_> = std::fs::read_dir(tmp.path().join("results"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(made.len(), 1);
    // Rows come in finishing order: compare the trials (index and seed) as sets.
    let trials = |dir: &Path| {
        let mut t: Vec<(String, String)> = rows(dir)
            .into_iter()
            .map(|r| (r["iteration"].clone(), r["seed"].clone()))
            .collect();
        t.sort();
        t
    };
    assert_eq!(trials(&made[0].path()), trials(&out));
    assert_eq!(trials(&out).len(), 3);
}

#[test]
fn quiet_prints_nothing_on_a_clean_run_and_only_the_verdict_on_a_failing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "clean");
    let o = run(&[
        "-q",
        "--profile",
        "wal-full",
        "-n",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", say(&o));
    assert_eq!(rows(&out).len(), 4, "the files are written as always");
    assert!(out.join("summary.csv").is_file());
    // journal_mode=OFF under power loss is damaged in every trial (its crash states include a
    // half-written page; seed 1 measured 20 of 20): with --fail-on any, the verdict line stays.
    let out = out_dir(&tmp, "failing");
    let o = run(&[
        "--quiet",
        "--fault",
        "power-loss",
        "--profile",
        "off-full",
        "--seed",
        "1",
        "-n",
        "4",
        "--fail-on",
        "any",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    let stdout = text(&o.stdout);
    assert_eq!(stdout.lines().count(), 1, "{}", say(&o));
    assert!(stdout.starts_with("FAILED (--fail-on any)"), "{stdout}");
}
