//! End-to-end tests of the real `torture` binary (real fork, real SIGKILL, real SQLite, small counts):
//! the controls. Profiles SQLite promises survive a process crash must never fail; profiles it says
//! will corrupt must be caught.

mod common;

#[allow(unused_imports)]
use common::*;

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
