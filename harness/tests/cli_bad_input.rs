//! End-to-end: bad input gets one line and exit 2 and writes nothing; the listing commands.

mod common;

#[allow(unused_imports)]
use common::*;

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
            vec!["--max-states".into(), "5".into()],
            "--max-states places an op-indexed fault",
        ),
        (
            vec!["--lying-disk".into()],
            "--lying-disk shapes a power cut",
        ),
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
fn replay_refuses_a_scenario_power_loss_trial_with_one_line() {
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
    // The -power variants run on the recorder: every row counts its crash states.
    for r in rows.iter().filter(|r| r["fault"] == "power-loss") {
        let states: u64 = r["crash_states"].parse().unwrap();
        assert!(states > 0, "{r:?}");
        assert!(r["kill_point"].starts_with("cut=op "), "{r:?}");
    }
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

#[test]
fn op_indexed_fault_settings_are_checked_before_a_run() {
    // Several writers are recorded in one order now (kill-at-op, io-error and disk-full run on the
    // recorder, as power loss does): a pool is no longer refused. The recorder fails the N-th
    // operation of a kind in any file: io-error with a file part is refused, naming the fix.
    let o = run(&[
        "--fault",
        "io-error",
        "--crash-at",
        "sync:wal:3",
        "--iterations",
        "3",
    ]);
    let err = one_line_exit(&o, 2);
    assert!(
        err.contains("drop the file part") && err.contains("--crash-at sync:N"),
        "{err}"
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
