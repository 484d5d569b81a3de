//! Evidence folders are data, never code (issue 20, S1–S6): each test plants what a hostile
//! folder or path could hold and asserts that nothing runs and nothing outside OUT changes, with
//! a positive control showing the planted thing would have run had the lab let it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{rows, run, say, text, torture};

fn writer() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../workloads/exec/python_writer.py")
        .to_string_lossy()
        .into_owned()
}

/// A two-trial exec run whose every trial keeps its files (`OUT/evidence/<i>`), in `cwd`.
fn exec_run(cwd: &Path, out: &str, extra: &[&str]) -> Output {
    let w = writer();
    let mut args = vec![
        "exec",
        "-n",
        "2",
        "--seed",
        "1",
        "--kill-after",
        "1..3",
        "--keep-evidence",
        "--recovered-sql",
        "SELECT max(seq) FROM t",
        "--out",
        out,
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "python3", &w, "{db}"]);
    torture().current_dir(cwd).args(&args).output().unwrap()
}

/// A kill-at-op run of `off-off`: every trial loses something; one slot, so trial 0 is the first
/// and keeps the folder of this expected loss (one example per group, issue 20 R19).
fn core_run(out: &Path) -> PathBuf {
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
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    out.join("failures/0")
}

fn edit_note(folder: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = folder.join("trial.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn replay(cwd: &Path, folder: &Path, extra: &[&str]) -> Output {
    // A replay that differs keeps its folder in the temporary folder: this test's own.
    torture()
        .env("TMPDIR", cwd)
        .current_dir(cwd)
        .arg("replay")
        .arg(folder)
        .args(extra)
        .output()
        .unwrap()
}

/// Exit 2, one line on stderr containing `needle`.
fn assert_one_line_refusal(o: &Output, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", say(o));
    assert_eq!(err.trim().lines().count(), 1, "one line: {}", say(o));
    assert!(err.contains(needle), "{}", say(o));
}

/// S1: a verify command planted in an exec trial's `trial.json` never runs on replay; the user
/// names it again (`--verify-cmd`) or trusts the folder (`--trust-folder`, the positive control).
#[test]
fn s1_replay_never_runs_a_verify_command_taken_from_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let o = exec_run(tmp.path(), "o", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let folder = tmp.path().join("o/evidence/0");
    let pwned = tmp.path().join("pwned");
    edit_note(&folder, |v| {
        v["exec"]["verify_cmd"] = format!("touch {}", pwned.display()).into();
    });
    let r = replay(tmp.path(), &folder, &[]);
    assert_one_line_refusal(&r, "--trust-folder");
    assert!(!pwned.exists(), "the folder's command ran");
    // Named again by the user: the user's command runs, not the folder's.
    let r = replay(tmp.path(), &folder, &["--verify-cmd", "test -s {db}"]);
    assert_eq!(r.status.code(), Some(0), "{}", say(&r));
    assert!(text(&r.stdout).contains("confirmed"), "{}", say(&r));
    assert!(!pwned.exists(), "the folder's command ran");
    // Positive control: trusted, the planted command does run (so the refusal above is real).
    let r = replay(tmp.path(), &folder, &["--trust-folder"]);
    assert!(pwned.exists(), "{}", say(&r));
}

/// S1: an interpreter planted as `exec.python` never runs on replay.
#[test]
fn s1_replay_never_runs_an_interpreter_taken_from_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let o = exec_run(tmp.path(), "o", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let folder = tmp.path().join("o/evidence/0");
    let pwned = tmp.path().join("pwned");
    let script = tmp.path().join("evil.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", pwned.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    edit_note(&folder, |v| {
        v["exec"]["python"] = script.to_string_lossy().into_owned().into();
        v["exec"]["engine"] = "duckdb".into();
    });
    let r = replay(tmp.path(), &folder, &[]);
    assert_one_line_refusal(&r, "--python");
    assert!(!pwned.exists(), "the folder's interpreter ran");
    // Positive control: trusted, the planted interpreter runs.
    let _ = replay(tmp.path(), &folder, &["--trust-folder"]);
    assert!(pwned.exists(), "the control never ran the interpreter");
}

/// S1: a built-in trial's note that carries a program (`run.exec.command`) is refused: replay of
/// a built-in trial never runs a program.
#[test]
fn s1_replay_of_a_built_in_trial_never_runs_a_program_from_the_note() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = core_run(&tmp.path().join("core"));
    let pwned = tmp.path().join("pwned");
    let exec = {
        let o = exec_run(tmp.path(), "o", &[]);
        assert_eq!(o.status.code(), Some(0), "{}", say(&o));
        let t = std::fs::read_to_string(tmp.path().join("o/evidence/0/trial.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&t).unwrap();
        v["exec"]["command"] =
            serde_json::json!(["/bin/sh", "-c", format!("touch {}", pwned.display())]);
        v["exec"].clone()
    };
    edit_note(&folder, |v| v["run"]["exec"] = exec);
    let r = replay(tmp.path(), &folder, &[]);
    assert_one_line_refusal(&r, "names a program to run");
    assert!(!pwned.exists(), "the note's program ran");
}

/// S1: resuming an exec run runs the program its `run.json` names only with `--trust-folder`.
#[test]
fn s1_resume_of_an_exec_run_needs_trust_folder_to_run_the_folder_s_program() {
    let tmp = tempfile::tempdir().unwrap();
    let o = exec_run(tmp.path(), "o", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    // The run's own hint says what a resume of it takes.
    assert!(
        text(&o.stdout).contains("torture --resume o --trust-folder"),
        "{}",
        say(&o)
    );
    let out = tmp.path().join("o");
    let pwned = tmp.path().join("pwned");
    let spec = out.join("run.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    v["exec"]["command"] =
        serde_json::json!(["/bin/sh", "-c", format!("touch {}", pwned.display())]);
    std::fs::write(&spec, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    // One trial left to run.
    let csv = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    let kept: Vec<&str> = csv.lines().take(2).collect();
    std::fs::write(out.join("trials.csv"), kept.join("\n") + "\n").unwrap();
    let r = torture()
        .args(["--resume", out.to_str().unwrap(), "--no-progress"])
        .output()
        .unwrap();
    assert_one_line_refusal(&r, "--trust-folder");
    assert!(!pwned.exists(), "the folder's program ran");
    // Positive control: trusted, the folder's program is what runs.
    let _ = torture()
        .args([
            "--resume",
            out.to_str().unwrap(),
            "--trust-folder",
            "--no-progress",
        ])
        .output()
        .unwrap();
    assert!(pwned.exists(), "the control never ran the program");
}

/// S2: a `--dir` path full of shell syntax is never read as code by `--verify-cmd`'s shell, in
/// any quoting the command puts `{db}` in, and no false verdict comes of it.
#[test]
fn s2_a_db_path_with_shell_syntax_is_never_code_in_verify_cmd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scratch $(touch P) `touch Q` it's");
    std::fs::create_dir(&dir).unwrap();
    let o = exec_run(
        tmp.path(),
        "o",
        &[
            "--dir",
            dir.to_str().unwrap(),
            "--verify-cmd",
            r#"test -s {db} && test -s "{db}" && test "$TORTURE_DB" = '{db}'"#,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    for r in rows(&tmp.path().join("o")) {
        assert_eq!(r["outcome"], "intact", "{r:?}");
    }
    for planted in ["P", "Q"] {
        assert!(
            !tmp.path().join(planted).exists() && !dir.join(planted).exists(),
            "a substitution in the path ran: {}",
            say(&o)
        );
    }
}

/// S2: a `--verify-cmd` the shell cannot parse is refused before any trial (exit 2, one line),
/// and one whose command is not found is the lab's set-up error (exit 3), never a verdict.
#[test]
fn s2_shell_plumbing_errors_are_never_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let o = exec_run(tmp.path(), "bad", &["--verify-cmd", r#"test -s "{db}"#]);
    assert_one_line_refusal(&o, "--verify-cmd");
    assert!(!tmp.path().join("bad").exists(), "nothing written");
    let o = exec_run(
        tmp.path(),
        "missing",
        &["--verify-cmd", "no-such-tool-anywhere {db}"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", say(&o));
    for r in rows(&tmp.path().join("missing")) {
        assert!(
            r["outcome"] == "intact" || r["outcome"] == "worker-error",
            "{r:?}"
        );
        assert_ne!(r["verdict"], "violation", "{r:?}");
    }
}

/// Lines of `trials.csv` kept, the rest cut so a resume has trials to run.
fn cut_rows(out: &Path, keep: usize) {
    let csv = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    let kept: Vec<&str> = csv.lines().take(1 + keep).collect();
    std::fs::write(out.join("trials.csv"), kept.join("\n") + "\n").unwrap();
}

/// Every file under `dir` with its bytes, to compare before and after.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
                out.push((p, Vec::new()));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// S3: `OUT/failures` planted as a symlink to another folder: resume refuses with one line and
/// the other folder is untouched. Negative control: the same resume without the link runs.
#[test]
fn s3_a_symlinked_failures_folder_is_refused_and_its_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("core");
    core_run(&out);
    cut_rows(&out, 2);
    let victim = tmp.path().join("victim");
    std::fs::create_dir_all(victim.join("subdir")).unwrap();
    std::fs::write(victim.join("subdir/keep.txt"), "mine").unwrap();
    let real = tmp.path().join("real-failures");
    std::fs::rename(out.join("failures"), &real).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("failures")).unwrap();
    let before = snapshot(&victim);
    let r = run(&["--resume", out.to_str().unwrap(), "--no-progress"]);
    assert_one_line_refusal(&r, "symlink");
    assert_eq!(snapshot(&victim), before, "the link's target changed");
    // Negative control: without the link the resume runs to six rows.
    std::fs::remove_file(out.join("failures")).unwrap();
    std::fs::rename(&real, out.join("failures")).unwrap();
    let r = run(&["--resume", out.to_str().unwrap(), "--no-progress"]);
    assert_eq!(r.status.code(), Some(0), "{}", say(&r));
    assert_eq!(rows(&out).len(), 6);
}

/// S4: `OUT/trials.csv` planted as a symlink: resume refuses and appends nothing to its target;
/// a planted evidence file is refused the same way.
#[test]
fn s4_a_symlinked_trials_csv_is_refused_and_its_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("core");
    core_run(&out);
    cut_rows(&out, 2);
    let target = tmp.path().join("elsewhere.csv");
    std::fs::rename(out.join("trials.csv"), &target).unwrap();
    std::os::unix::fs::symlink(&target, out.join("trials.csv")).unwrap();
    let before = std::fs::read(&target).unwrap();
    let r = run(&["--resume", out.to_str().unwrap(), "--no-progress"]);
    assert_one_line_refusal(&r, "symlink");
    assert_eq!(std::fs::read(&target).unwrap(), before);
    // A link inside an evidence folder, as a database file.
    std::fs::remove_file(out.join("trials.csv")).unwrap();
    std::fs::rename(&target, out.join("trials.csv")).unwrap();
    let victim = tmp.path().join("victim.db");
    std::fs::write(&victim, "mine").unwrap();
    std::fs::remove_file(out.join("failures/0/trial.db")).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("failures/0/trial.db")).unwrap();
    let r = run(&["--resume", out.to_str().unwrap(), "--no-progress"]);
    assert_one_line_refusal(&r, "symlink");
    assert_eq!(std::fs::read(&victim).unwrap(), b"mine");
}

/// S3 for replay: an exec evidence folder whose database file is a symlink (to `/dev/zero`
/// here: it would never end) is refused with one line.
#[test]
fn s3_replay_refuses_a_symlink_in_an_evidence_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let o = exec_run(tmp.path(), "o", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let folder = tmp.path().join("o/evidence/0");
    std::fs::remove_file(folder.join("trial.db-wal")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", folder.join("trial.db-wal")).unwrap();
    let r = replay(tmp.path(), &folder, &[]);
    assert_one_line_refusal(&r, "symlink");
    std::fs::remove_file(folder.join("trial.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", folder.join("trial.json")).unwrap();
    let r = replay(tmp.path(), &folder, &[]);
    assert_one_line_refusal(&r, "symlink");
}

/// S5: a version planted in `trial.json` is quoted in the suggested command. The suggestion is
/// run by a shell with `printf` standing in for torture: the version arrives as one word and
/// nothing in it runs.
#[test]
fn s5_a_suggested_command_quotes_what_the_folder_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = core_run(&tmp.path().join("core"));
    edit_note(&folder, |v| {
        v["record"]["sqlite_version"] = "3.1.1; touch pwned `touch pwned2`".into();
    });
    let r = replay(tmp.path(), &folder, &[]);
    assert_one_line_refusal(&r, "--sqlite");
    let err = text(&r.stderr);
    let suggested = err
        .split_once("replay it with `")
        .and_then(|(_, rest)| rest.trim_end().rsplit_once('`'))
        .expect("a suggested command in backticks")
        .0;
    let words = std::process::Command::new("/bin/sh")
        .current_dir(tmp.path())
        .arg("-c")
        .arg(format!(
            "torture() {{ printf '%s\\n' \"$@\"; }}; {suggested}"
        ))
        .output()
        .unwrap();
    assert!(words.status.success(), "{}", say(&words));
    assert!(
        text(&words.stdout)
            .lines()
            .any(|l| l == "3.1.1; touch pwned `touch pwned2`"),
        "{}",
        say(&words)
    );
    assert!(!tmp.path().join("pwned").exists() && !tmp.path().join("pwned2").exists());
}

/// S6: the run's scratch folder and replay's are the owner's only (0700): a `--verify-cmd` finds
/// the `torture-*` folder above its database and records its mode.
#[test]
fn s6_scratch_folders_are_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let modes = tmp.path().join("modes");
    let dir = tmp.path().join("work");
    std::fs::create_dir(&dir).unwrap();
    let cmd = format!(
        r#"p={{db}}; while :; do case "$(basename "$p")" in torture-*) break;; /) exit 9;; esac; p=$(dirname "$p"); done; stat -c %a "$p" >> '{}'"#,
        modes.display()
    );
    let o = exec_run(
        tmp.path(),
        "o",
        &["--dir", dir.to_str().unwrap(), "--verify-cmd", &cmd],
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let r = replay(
        tmp.path(),
        &tmp.path().join("o/evidence/0"),
        &["--verify-cmd", &cmd],
    );
    assert_eq!(r.status.code(), Some(0), "{}", say(&r));
    let seen = std::fs::read_to_string(&modes).unwrap_or_default();
    let seen: Vec<&str> = seen.lines().collect();
    // Trials before the first ack skip the command; the replay's check always runs it.
    assert!(!seen.is_empty(), "{}", say(&o));
    assert!(seen.iter().all(|m| *m == "700"), "{seen:?}");
}

/// Every node's JSON pointer.
fn pointers_of(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                pointers_of(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        serde_json::Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers_of(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// One mutation of a JSON text: a node replaced by a value of another kind, the
/// text cut short, or a byte changed.
fn mutate_json(text: &str, rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    use rand::RngExt;
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    match rng.random_range(0..4u8) {
        0 | 1 => {
            // A random node, by its JSON pointer.
            let mut pointers = Vec::new();
            pointers_of(&v, String::new(), &mut pointers);
            let at = pointers[rng.random_range(0..pointers.len())].clone();
            let node = v.pointer_mut(&at).unwrap();
            let values = [
                serde_json::json!(null),
                serde_json::json!(-1),
                serde_json::json!(1e308),
                serde_json::json!(u64::MAX),
                serde_json::json!("x\n'$(touch fuzz-pwned)"),
                serde_json::json!([]),
                serde_json::json!({}),
                serde_json::json!(true),
                serde_json::json!("../../.."),
            ];
            *node = values[rng.random_range(0..values.len())].clone();
            serde_json::to_vec_pretty(&v).unwrap()
        }
        2 => {
            let b = text.as_bytes();
            b[..rng.random_range(0..b.len())].to_vec()
        }
        _ => {
            let mut b = text.as_bytes().to_vec();
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
            b
        }
    }
}

/// Acceptance (issue 20): `trial.json` of a built-in and of an exec trial, and `trials.csv` for
/// the report loader, mutated at random for a bounded time (~15 s): replay and report always exit
/// 0, 1, 2 or 3, a usage error is one line, nothing panics, hangs (120 s) or takes more than
/// 1 GiB of memory (`wait4`'s peak), and no mutated field runs anything (the planted
/// `$(touch fuzz-pwned)` never runs). `TORTURE_FUZZ_SEED` replays a run.
#[test]
fn fuzz_trial_json_and_the_report_loader_never_panic_and_run_nothing() {
    use rand::{RngExt, SeedableRng};
    let seed: u64 = std::env::var("TORTURE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("fuzz seed {seed} (TORTURE_FUZZ_SEED={seed} replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let core = core_run(&tmp.path().join("core"));
    let o = exec_run(tmp.path(), "o", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let exec = tmp.path().join("o/evidence/0");
    let notes = [
        (
            core.clone(),
            std::fs::read_to_string(core.join("trial.json")).unwrap(),
        ),
        (
            exec.clone(),
            std::fs::read_to_string(exec.join("trial.json")).unwrap(),
        ),
    ];
    let csv_path = tmp.path().join("core/trials.csv");
    let csv = std::fs::read(&csv_path).unwrap();
    let started = std::time::Instant::now();
    let mut runs = 0;
    while started.elapsed() < std::time::Duration::from_secs(15) {
        runs += 1;
        let cmd = if rng.random_range(0..3u8) < 2 {
            let (folder, text) = &notes[rng.random_range(0..notes.len())];
            std::fs::write(folder.join("trial.json"), mutate_json(text, &mut rng)).unwrap();
            let mut c = torture();
            c.env("TMPDIR", tmp.path())
                .current_dir(tmp.path())
                .arg("replay")
                .arg(folder);
            c
        } else {
            let mut bytes = csv.clone();
            for _ in 0..rng.random_range(1..4u8) {
                match rng.random_range(0..4u8) {
                    0 => bytes.truncate(rng.random_range(0..bytes.len().max(1))),
                    1 if !bytes.is_empty() => {
                        let i = rng.random_range(0..bytes.len());
                        bytes[i] = rng.random();
                    }
                    // A row that runs on past any row torture writes (the R8 row cap).
                    2 => bytes.extend(std::iter::repeat_n(rng.random::<u8>(), 2 << 20)),
                    _ => bytes.extend_from_slice(b"\n9,x,,,\"\n"),
                }
            }
            let input = tmp.path().join("fuzz.csv");
            std::fs::write(&input, &bytes).unwrap();
            let mut c = torture();
            c.arg("report").arg(&input);
            c
        };
        // Not a timing test: only a run that seems never to end is a failure (a hang), cut at
        // 120 s; and never more than 1 GiB of memory.
        let m = common::run_measured(cmd, std::time::Duration::from_secs(120));
        assert!(
            m.max_rss_kib < common::FUZZ_MAX_RSS_KIB,
            "seed {seed}: one input took {} MiB",
            m.max_rss_kib >> 10
        );
        let o = m
            .output
            .unwrap_or_else(|| panic!("seed {seed}: one input ran past 120 s (a hang)"));
        let err = text(&o.stderr);
        let code = o.status.code();
        assert!(
            matches!(code, Some(0..=3)),
            "seed {seed}: exit {code:?}: {err}"
        );
        assert!(!err.contains("panicked"), "seed {seed}: {err}");
        if code == Some(2) {
            assert_eq!(err.trim_end().lines().count(), 1, "seed {seed}: {err}");
        }
        assert!(
            !tmp.path().join("fuzz-pwned").exists(),
            "seed {seed}: a field ran"
        );
    }
    eprintln!("{runs} mutated inputs");
}

/// S3 for merge: a shard whose evidence holds a symlink (to a file outside it) is refused, and
/// nothing of the link's target reaches the merged folder. Negative control: without the link
/// the same merge copies the evidence.
#[test]
fn s3_merge_refuses_a_symlink_in_a_shard_and_copies_nothing_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = tmp.path().join("core");
    core_run(&shard);
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "not for the artifact").unwrap();
    let db = shard.join("failures/0/trial.db");
    let real = tmp.path().join("trial.db");
    std::fs::rename(&db, &real).unwrap();
    std::os::unix::fs::symlink(&secret, &db).unwrap();
    let merged = tmp.path().join("merged");
    let r = run(&["merge", merged.to_str().unwrap(), shard.to_str().unwrap()]);
    assert_one_line_refusal(&r, "symlink");
    assert!(
        !merged.join("failures/0/trial.db").exists(),
        "the link's target was copied"
    );
    std::fs::remove_file(&db).unwrap();
    std::fs::rename(&real, &db).unwrap();
    let merged = tmp.path().join("merged2");
    let r = run(&["merge", merged.to_str().unwrap(), shard.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0), "{}", say(&r));
    assert_eq!(
        std::fs::read(merged.join("failures/0/trial.db")).unwrap(),
        std::fs::read(&db).unwrap()
    );
}

/// S1 for `report` and `merge`: a folder whose `run.json` and every `trial.json` name a program,
/// a verify command and an interpreter (each would touch a file) is read as data by `report` in
/// every format and by `merge`, and by `report` of the merged folder: nothing runs. Positive
/// control: a resume of the merged folder that trusts it does run the planted program, so the
/// plant reached the places torture reads it from.
#[test]
fn s1_report_and_merge_run_nothing_a_folder_names() {
    let tmp = tempfile::tempdir().unwrap();
    let o = exec_run(tmp.path(), "o", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let out = tmp.path().join("o");
    let pwned = tmp.path().join("pwned");
    let script = tmp.path().join("evil.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", pwned.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let plant = |exec: &mut serde_json::Value| {
        exec["command"] =
            serde_json::json!(["/bin/sh", "-c", format!("touch {}", pwned.display())]);
        exec["verify_cmd"] = format!("touch {}", pwned.display()).into();
        exec["python"] = script.to_string_lossy().into_owned().into();
    };
    let spec = out.join("run.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    plant(&mut v["exec"]);
    std::fs::write(&spec, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    for i in 0..2 {
        edit_note(&out.join("evidence").join(i.to_string()), |v| {
            plant(&mut v["exec"])
        });
    }
    for format in ["table", "markdown", "csv", "json", "html"] {
        let r = torture()
            .current_dir(tmp.path())
            .args(["report", "--format", format, "o"])
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "{format}: {}", say(&r));
        assert!(
            !pwned.exists(),
            "report --format {format} ran the folder's program"
        );
    }
    let merged = tmp.path().join("merged");
    let r = run(&["merge", merged.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0), "{}", say(&r));
    assert!(!pwned.exists(), "merge ran the folder's program");
    let r = run(&["report", merged.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0), "{}", say(&r));
    assert!(
        !pwned.exists(),
        "report of the merge ran the folder's program"
    );
    // Positive control: one trial cut, and the merged folder resumed with trust.
    cut_rows(&merged, 1);
    let _ = torture()
        .current_dir(tmp.path())
        .args([
            "--resume",
            merged.to_str().unwrap(),
            "--trust-folder",
            "--no-progress",
        ])
        .output()
        .unwrap();
    assert!(pwned.exists(), "the control never ran the planted program");
}

/// S4 for `crash-states.csv`, the other file a resume appends to (an exec power-loss run's):
/// planted as a symlink, a trusted resume refuses with one line and its target is unchanged.
/// Negative control: the same resume without the link runs and appends the missing trial's
/// states.
#[test]
fn s4_a_symlinked_crash_states_csv_is_refused_and_its_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let o = exec_run(tmp.path(), "pl", &["--fault", "power-loss"]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let out = tmp.path().join("pl");
    cut_rows(&out, 1);
    let target = tmp.path().join("elsewhere.csv");
    std::fs::rename(out.join("crash-states.csv"), &target).unwrap();
    std::os::unix::fs::symlink(&target, out.join("crash-states.csv")).unwrap();
    let before = std::fs::read(&target).unwrap();
    let resume = || {
        torture()
            .args(["--resume", out.to_str().unwrap(), "--trust-folder"])
            .arg("--no-progress")
            .output()
            .unwrap()
    };
    let r = resume();
    assert_one_line_refusal(&r, "symlink");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "rows were appended"
    );
    std::fs::remove_file(out.join("crash-states.csv")).unwrap();
    std::fs::rename(&target, out.join("crash-states.csv")).unwrap();
    let r = resume();
    assert_eq!(r.status.code(), Some(0), "{}", say(&r));
    assert_eq!(rows(&out).len(), 2);
}

/// S5 for `report`'s warning: a shard stopped early is named with the command that resumes it.
/// In folders whose names hold a space, `$(…)` and a quote, the suggestion, run by a shell with
/// `printf` for torture, passes each folder as one word and runs nothing.
#[test]
fn s5_report_s_resume_suggestion_quotes_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let shards: Vec<PathBuf> = (1..=2)
        .map(|k| {
            let out = tmp.path().join(format!("shard {k} $(touch pwned) it's"));
            let o = run(&[
                "-p",
                "wal-full",
                "-n",
                "6",
                "--seed",
                "5",
                "--partition",
                &format!("{k}/2"),
                "--no-progress",
                "--out",
                out.to_str().unwrap(),
            ]);
            assert_eq!(o.status.code(), Some(0), "{}", say(&o));
            out
        })
        .collect();
    cut_rows(&shards[1], 1);
    let r = torture()
        .current_dir(tmp.path())
        .arg("report")
        .args(&shards)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", say(&r));
    let err = text(&r.stderr);
    let suggested = err
        .split_once("resume it with `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(cmd, _)| cmd)
        .unwrap_or_else(|| panic!("a resume suggestion: {err}"));
    let words = std::process::Command::new("/bin/sh")
        .current_dir(tmp.path())
        .arg("-c")
        .arg(format!(
            "torture() {{ printf '%s\\n' \"$@\"; }}; {suggested}"
        ))
        .output()
        .unwrap();
    assert!(words.status.success(), "{suggested}: {}", say(&words));
    assert_eq!(
        text(&words.stdout),
        format!("--resume\n{}\n", shards[1].display()),
        "{suggested}"
    );
    assert!(!tmp.path().join("pwned").exists(), "{suggested}");
}

/// S6 for the built-in paths: the scratch folder of a built-in run (`--dir/torture-*`, seen while
/// it runs) and the folder a built-in replay keeps when its outcome differs
/// (`$TMPDIR/torture-replay-*`) are the owner's only. (The exec paths: the test above.)
#[test]
fn s6_built_in_scratch_and_replay_folders_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scratch");
    std::fs::create_dir(&dir).unwrap();
    let mut child = torture()
        .args(["-p", "wal-full", "-n", "1000000", "--no-progress", "--dir"])
        .arg(&dir)
        .arg("--out")
        .arg(tmp.path().join("long"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let scratch = loop {
        let found = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("torture-"));
        if let Some(e) = found {
            break e.path();
        }
        assert!(std::time::Instant::now() < deadline, "no scratch folder");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mode = std::fs::metadata(&scratch).unwrap().permissions().mode() & 0o777;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(mode, 0o700, "{}", scratch.display());
    // A replay whose outcome differs (the note's outcome edited) keeps its folder.
    let folder = core_run(&tmp.path().join("core"));
    edit_note(&folder, |v| v["record"]["outcome"] = "intact".into());
    let temp = tmp.path().join("temp");
    std::fs::create_dir(&temp).unwrap();
    let r = torture()
        .env("TMPDIR", &temp)
        .arg("replay")
        .arg(&folder)
        .output()
        .unwrap();
    assert!(text(&r.stdout).contains("DIFFERENT"), "{}", say(&r));
    let kept: Vec<PathBuf> = std::fs::read_dir(&temp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("torture-replay-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let mode = std::fs::metadata(&kept[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", kept[0].display());
}
