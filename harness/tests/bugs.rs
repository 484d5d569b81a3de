//! The gallery's CI entry (docs/bugs.md): a real, public DuckDB bug caught on the affected release
//! and absent on the fixed one, through the real binary, with the engine versions installed from PyPI
//! into the lab's managed virtual environments (`--engine-version`). Plus the version flags' bad
//! input: one line naming the fix, exit 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn torture() -> Command {
    Command::new(env!("CARGO_BIN_EXE_torture"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn outcomes(out: &Path, o: &Output) -> Vec<(String, String, String)> {
    let mut r = csv::Reader::from_path(out.join("trials.csv")).unwrap_or_else(|e| {
        panic!(
            "no trials.csv ({e}): exit {:?}\n{}{}",
            o.status.code(),
            text(&o.stdout),
            text(&o.stderr)
        )
    });
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let (o, v, d) = (col("outcome"), col("sqlite_version"), col("detail"));
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[o].to_string(), rec[v].to_string(), rec[d].to_string())
        })
        .collect()
}

/// duckdb PR #24744: one transaction deletes a key range and re-inserts the same keys (130,000 rows,
/// written optimistically), acknowledged, no checkpoint. DuckDB 1.5.5's WAL replay loses the keys
/// from the primary-key index (point lookups miss rows a scan finds); 1.5.6 replays it right.
fn replace_range(version: &str, out: &Path) -> Output {
    let w = repo().join("workloads/exec/duckdb_replace_range.py");
    let verify = Command::new("python3")
        .arg(&w)
        .arg("--print-verify")
        .output()
        .expect("python3 runs");
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    torture()
        .args([
            "exec",
            "--engine",
            "duckdb",
            "--engine-version",
            version,
            "--iterations",
            "6",
            "--seed",
            "2026",
            "--jobs",
            "1",
            "--no-progress",
            // The uninterrupted run lingers as long as its start took: on a loaded machine that
            // is longer than the default 30 s (cut short, it would leave the WAL to replay).
            "--calibration-timeout",
            "180s",
            "--trial-timeout",
            "180s",
            "--recovered-sql",
            "SELECT max(seq) FROM t",
            "--verify-sql",
            text(&verify.stdout).trim(),
            "--out",
            out.to_str().unwrap(),
            "--",
            "python3",
            w.to_str().unwrap(),
            "{db}",
        ])
        .output()
        .expect("torture runs")
}

#[test]
fn duckdb_index_loss_on_wal_replay_is_caught_on_1_5_5_and_absent_on_1_5_6() {
    let tmp = tempfile::tempdir().unwrap();
    // Positive control: the affected release.
    let bad = tmp.path().join("1.5.5");
    let o = replace_range("1.5.5", &bad);
    let rows = outcomes(&bad, &o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let caught: Vec<_> = rows.iter().filter(|r| r.0 == "atomicity").collect();
    assert!(!caught.is_empty(), "{rows:?}");
    for r in &caught {
        assert!(r.2.contains("point lookups by key found"), "{}", r.2);
    }
    // A trial killed before the program said its version reads `duckdb ?`.
    assert!(
        rows.iter()
            .all(|r| r.1 == "duckdb 1.5.5" || r.1 == "duckdb ?"),
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.0 == "atomicity" || r.0 == "intact"),
        "{rows:?}"
    );
    // Negative control: the fixed release, same seed, same workload.
    let good = tmp.path().join("1.5.6");
    let o = replace_range("1.5.6", &good);
    let rows = outcomes(&good, &o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(rows.len(), 6);
    // A trial killed before the program said its version reads `duckdb ?` here too.
    assert!(
        rows.iter()
            .all(|r| r.0 == "intact" && (r.1 == "duckdb 1.5.6" || r.1 == "duckdb ?")),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r.1 == "duckdb 1.5.6"), "{rows:?}");
}

fn usage_line(args: &[&str]) -> String {
    let o = torture().args(args).output().expect("torture runs");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    err
}

#[test]
fn bad_engine_versions_are_one_line_naming_the_fix_and_exit_2() {
    let e = usage_line(&["--sqlite", "3.0.99", "--iterations", "1"]);
    assert!(e.contains("--sqlite /path/to/sqlite3.c"), "{e}");
    let e = usage_line(&["--sqlite", "latest", "--iterations", "1"]);
    assert!(e.contains("e.g. 3.51.2"), "{e}");
    let tmp = tempfile::tempdir().unwrap();
    let not_c = tmp.path().join("sqlite3.c");
    std::fs::write(&not_c, "int main(void) { return 0; }\n").unwrap();
    let e = usage_line(&["--sqlite", not_c.to_str().unwrap()]);
    assert!(e.contains("not an SQLite amalgamation"), "{e}");
    let not_so = tmp.path().join("libsqlite3.so");
    std::fs::write(&not_so, "not a library").unwrap();
    let e = usage_line(&["--sqlite", not_so.to_str().unwrap()]);
    assert!(e.contains("not an SQLite library"), "{e}");
    let e = usage_line(&["--engine-version", "1.5.6", "--iterations", "1"]);
    assert!(e.contains("torture exec --engine duckdb"), "{e}");
    let e = usage_line(&[
        "exec",
        "--engine",
        "duckdb",
        "--engine-version",
        "0.0.0.404",
        "--",
        "true",
    ]);
    assert!(e.contains("pip index versions duckdb"), "{e}");
}
