//! `torture exec --fault power-loss` on programs in other languages and engines, end to end: Node
//! on better-sqlite3 (its own SQLite, npm), a Go program through cgo (the system's libsqlite3),
//! libSQL encrypted and DuckDB (PyPI). Each is recorded once and every crash state checked.
//! Negative controls: WAL+FULL (and DuckDB's committed data) survive every state. Positive controls:
//! a program that acknowledges before it commits (`--lie`) is caught as `lost-commit`.
//!
//! What these need is installed by `.ci/run`: `node` with `better-sqlite3` under
//! `~/.cache/torture/node/node_modules` (or `TORTURE_NODE_MODULES`), `go` with `libsqlite3-dev`,
//! and Python's `duckdb` and `libsql`. A missing one fails the test with the line that installs it.

mod common;

use common::{csv_rows, say, Row};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const VERIFY: &str = include_str!("../../workloads/exec/verify.sql");
const VERIFY_DUCKDB: &str = include_str!("../../workloads/exec/verify_duckdb.sql");

/// `torture exec --fault power-loss` with `flags`, then `-- program`; returns the output, the
/// trials and the crash states.
fn power_loss(
    out: &Path,
    env: &[(&str, &Path)],
    flags: &[&str],
    program: &[&str],
) -> (Output, Vec<Row>, Vec<Row>) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_torture"));
    c.args([
        "exec",
        "--no-progress",
        "-n",
        "1",
        "-j",
        "1",
        "--seed",
        "3",
        "--fault",
        "power-loss",
        "--out",
    ])
    .arg(out)
    .args(flags)
    .arg("--")
    .args(program);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("torture runs");
    let trials = csv_rows(&out.join("trials.csv"));
    let states = if out.join("crash-states.csv").exists() {
        csv_rows(&out.join("crash-states.csv"))
    } else {
        Vec::new()
    };
    (o, trials, states)
}

fn all(rows: &[Row], col: &str, value: &str) -> bool {
    rows.iter().all(|r| r[col] == value)
}

/// The WAL+FULL run is intact in every state, with acks to check; the `--lie` run is caught.
fn clean_and_lie(out: &Path, env: &[(&str, &Path)], program: &[&str], flags: &[&str]) {
    let mut f = vec![
        "--recovered-sql",
        "SELECT seq FROM t",
        "--verify-sql",
        VERIFY,
    ];
    f.extend_from_slice(flags);
    let mut p = program.to_vec();
    p.extend_from_slice(&["--commits", "25"]);
    let (o, trials, states) = power_loss(&out.join("clean"), env, &f, &p);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    assert!(states.len() >= 40, "{} states\n{}", states.len(), say(&o));
    assert!(all(&states, "outcome", "intact"), "{}", say(&o));
    assert!(states.iter().any(|r| r["acked_commits"] == "25"));
    assert!(all(&trials, "journal_mode", "wal") && all(&trials, "synchronous", "full"));

    p.push("--lie");
    let (o, trials, states) = power_loss(&out.join("lie"), env, &f, &p);
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    assert!(all(&trials, "outcome", "lost-commit"), "{trials:?}");
    assert!(states.iter().any(|r| r["outcome"] == "lost-commit"));
    assert!(!states
        .iter()
        .any(|r| ["corrupt", "atomicity", "open-failed"].contains(&r["outcome"].as_str())));
}

fn node_modules() -> PathBuf {
    let dir = std::env::var_os("TORTURE_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("torture/node/node_modules")
        });
    assert!(
        dir.join("better-sqlite3").is_dir(),
        "{}/better-sqlite3 is missing: npm install --prefix {} better-sqlite3@12.8.0 (what .ci/run does)",
        dir.display(),
        dir.parent().unwrap().display()
    );
    dir
}

#[test]
fn node_better_sqlite3_survives_every_power_cut_in_wal_full_and_a_lie_is_caught() {
    let modules = node_modules();
    let t = tempfile::tempdir().unwrap();
    let writer = format!("{ROOT}/workloads/exec/node_writer.js");
    clean_and_lie(
        t.path(),
        &[("NODE_PATH", &modules)],
        &["node", &writer, "{db}"],
        &[],
    );
    // better-sqlite3 bundles its own SQLite: the row says which.
    let trials = csv_rows(&t.path().join("clean/trials.csv"));
    assert!(trials[0]["sqlite_version"].starts_with("3."), "{trials:?}");
}

#[test]
fn a_go_program_through_cgo_is_recorded_and_its_acks_placed_when_read() {
    let t = tempfile::tempdir().unwrap();
    let bin = t.path().join("go_writer");
    let build = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(format!("{ROOT}/workloads/exec/go_writer/main.go"))
        .env("GOCACHE", t.path().join("gocache"))
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("`go` runs: apt-get install golang-go libsqlite3-dev (what .ci/run does)");
    assert!(build.status.success(), "go build: {}", say(&build));
    let bin = bin.to_str().unwrap();
    clean_and_lie(t.path(), &[], &[bin, "{db}"], &[]);
    // Go writes stdout without libc: every ack entered the order when the lab read it.
    let trials = csv_rows(&t.path().join("clean/trials.csv"));
    assert!(
        trials[0]["detail"].contains("placed when the lab read them"),
        "{trials:?}"
    );
}

#[test]
fn libsql_encrypted_survives_every_power_cut_in_wal_full_and_a_lie_is_caught() {
    let t = tempfile::tempdir().unwrap();
    let writer = format!("{ROOT}/workloads/exec/libsql_writer.py");
    clean_and_lie(
        t.path(),
        &[],
        &["python3", &writer, "{db}"],
        &[
            "--engine",
            "libsql",
            "--key",
            "test-key",
            "--max-states",
            "60",
        ],
    );
    let trials = csv_rows(&t.path().join("clean/trials.csv"));
    assert!(
        trials[0]["sqlite_version"].starts_with("libsql"),
        "{trials:?}"
    );
}

/// DuckDB from a prepared database, with a journaling file system's name durability
/// (`--fsync-commits-names`: DuckDB never fsyncs the directory after creating its `.wal`). Every
/// state that keeps or loses the unsynced writes whole is intact with every acknowledged commit;
/// the only damage allowed is DuckDB's refusal of a WAL whose unsynced tail landed out of order
/// ("Corrupt WAL file": a checksum mismatch, by design since duckdb PR #13758), in the random
/// write-back variant — docs/exec-faults.md.
#[test]
fn duckdb_keeps_every_acknowledged_commit_when_unsynced_writes_land_whole_or_not_at_all() {
    let t = tempfile::tempdir().unwrap();
    let writer = format!("{ROOT}/workloads/exec/duckdb_writer.py");
    let seed = t.path().join("seed.duckdb");
    let prep = Command::new("python3")
        .args([&writer, seed.to_str().unwrap(), "--commits", "1"])
        .output()
        .expect("python3 runs");
    assert!(prep.status.success(), "{}", say(&prep));
    let (o, trials, states) = power_loss(
        &t.path().join("o"),
        &[],
        &[
            "--engine",
            "duckdb",
            "--seed-db",
            seed.to_str().unwrap(),
            "--fsync-commits-names",
            "--recovered-sql",
            "SELECT seq FROM t",
            "--verify-sql",
            VERIFY_DUCKDB,
        ],
        &["python3", &writer, "{db}", "--commits", "15"],
    );
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", say(&o));
    assert_eq!(trials.len(), 1);
    assert!(states.len() >= 30, "{} states\n{}", states.len(), say(&o));
    for r in &states {
        let random = r["cut"].contains("random:");
        if r["outcome"] != "intact" {
            assert!(
                random && r["outcome"] == "open-failed" && r["detail"].contains("Corrupt WAL file"),
                "{r:?}"
            );
        }
    }
    assert!(
        states.iter().any(|r| r["acked_commits"] == "16"),
        "{}",
        say(&o)
    );
    // A refused WAL, when one came up, is refused again from the saved files by `torture replay`.
    let failure = t.path().join("o/failures/0");
    if failure.is_dir() {
        let r = Command::new(env!("CARGO_BIN_EXE_torture"))
            .arg("replay")
            .arg(&failure)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "{}", say(&r));
    }
}

/// Under the strict model (no `--fsync-commits-names`) DuckDB's files, created without a directory
/// fsync, may vanish whole at a power cut. A commit lost that way was acknowledged before any sync
/// covered its file's name: the cause says so (a state with no database file holds no commit), and
/// the verdict names DuckDB's own promise — never "lost after durable", which would blame recovery.
#[test]
fn duckdb_files_never_named_durably_are_lost_before_durable_not_after() {
    let t = tempfile::tempdir().unwrap();
    let writer = format!("{ROOT}/workloads/exec/duckdb_writer.py");
    let mut c = Command::new(env!("CARGO_BIN_EXE_torture"));
    c.args(["exec", "--no-progress", "-n", "3", "-j", "1", "--seed", "3"])
        .args(["--fault", "power-loss", "--max-states", "all", "--out"])
        .arg(t.path().join("o"))
        .args(["--engine", "duckdb", "--recovered-sql", "SELECT seq FROM t"])
        .args(["--", "python3", &writer, "{db}", "--commits", "15"]);
    let o = c.output().expect("torture runs");
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    let states = csv_rows(&t.path().join("o/crash-states.csv"));
    // The end of each run, every unsynced name lost: no database file at all.
    assert!(
        states
            .iter()
            .any(|r| r["detail"].contains("the database file is gone")),
        "{}",
        say(&o)
    );
    let lost: Vec<_> = states
        .iter()
        .filter(|r| r["outcome"] == "lost-commit")
        .collect();
    assert!(!lost.is_empty(), "{}", say(&o));
    for r in lost {
        assert!(
            r["detail"].contains("[acked-before-durable]")
                && r["detail"]
                    .contains("DuckDB (it syncs its WAL at every commit) is documented durable"),
            "{r:?}"
        );
        assert_eq!(r["verdict"], "violation");
    }
}
