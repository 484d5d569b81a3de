//! The SQLCipher build variant (`--features sqlcipher`, built by scripts/build-sqlcipher): real
//! encrypted files, real keys. The classifier tests make the files each outcome stands for; the
//! end-to-end tests are the controls of the core lab run again with `--engine sqlcipher`.
#![cfg(feature = "sqlcipher")]

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::SeedableRng;
use rusqlite::{Connection, OpenFlags};
use torture::engine::{self, Engine, DEFAULT_KEY};
use torture::verify::oracle::recover_and_verify;
use torture::verify::outcome::Outcome;
use torture_workloads::Workload;

fn install() {
    engine::install(&Engine::Sqlcipher {
        key: DEFAULT_KEY.into(),
    });
}

/// A database of `n` inserts commits written under `key` (`None`: plaintext).
fn db_with_commits(dir: &Path, key: Option<&str>, n: u64) -> PathBuf {
    let path = dir.join("t.db");
    let mut c = Connection::open(&path).unwrap();
    if let Some(key) = key {
        c.pragma_update(None, "key", key).unwrap();
    }
    Workload::Inserts.create_schema(&c).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for seq in 1..=n {
        Workload::Inserts
            .run_transaction(&mut c, 0, seq, &mut rng)
            .unwrap();
    }
    path
}

fn scribble(path: &Path, offset: u64, len: usize) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&vec![0x5a; len]).unwrap();
}

fn acked(n: u64) -> BTreeMap<u32, u64> {
    BTreeMap::from([(0, n)])
}

#[test]
fn the_build_is_sqlcipher_and_files_are_encrypted() {
    install();
    assert!(
        engine::version().contains("sqlcipher"),
        "{}",
        engine::version()
    );
    let d = tempfile::tempdir().unwrap();
    let db = db_with_commits(d.path(), Some(DEFAULT_KEY), 5);
    let head = std::fs::read(&db).unwrap();
    assert_ne!(
        &head[..16],
        b"SQLite format 3\0",
        "the file is not encrypted"
    );
    let v = recover_and_verify(&db, Workload::Inserts, &acked(5));
    assert_eq!(
        (v.outcome, v.recovered_commits),
        (Outcome::Intact, 5),
        "{v:?}"
    );
}

#[test]
fn a_file_written_under_another_key_is_wrong_key() {
    install();
    let d = tempfile::tempdir().unwrap();
    let db = db_with_commits(d.path(), Some("another passphrase"), 3);
    let v = recover_and_verify(&db, Workload::Inserts, &acked(3));
    assert_eq!(v.outcome, Outcome::WrongKey, "{v:?}");
    assert!(v.detail.contains("no page authenticates"), "{}", v.detail);
}

#[test]
fn a_plaintext_file_is_wrong_key_and_says_the_key_was_never_applied() {
    install();
    let d = tempfile::tempdir().unwrap();
    let db = db_with_commits(d.path(), None, 3);
    let v = recover_and_verify(&db, Workload::Inserts, &acked(3));
    assert_eq!(v.outcome, Outcome::WrongKey, "{v:?}");
    assert!(v.detail.contains("plaintext"), "{}", v.detail);
}

#[test]
fn a_damaged_first_page_under_the_right_key_is_open_failed_not_wrong_key() {
    install();
    let d = tempfile::tempdir().unwrap();
    let db = db_with_commits(d.path(), Some(DEFAULT_KEY), 40);
    // Past the 16-byte salt: the page no longer authenticates, the other pages still do.
    scribble(&db, 200, 64);
    let v = recover_and_verify(&db, Workload::Inserts, &acked(40));
    assert_eq!(v.outcome, Outcome::OpenFailed, "{v:?}");
    assert!(v.detail.contains("SQLITE_NOTADB"), "{}", v.detail);
    assert!(v.detail.contains("1 of"), "{}", v.detail);
}

#[test]
fn a_damaged_later_page_is_caught() {
    install();
    let d = tempfile::tempdir().unwrap();
    let db = db_with_commits(d.path(), Some(DEFAULT_KEY), 40);
    let pages = std::fs::metadata(&db).unwrap().len() / 4096;
    assert!(pages >= 3, "{pages} pages");
    scribble(&db, (pages - 1) * 4096 + 300, 64);
    let v = recover_and_verify(&db, Workload::Inserts, &acked(40));
    assert!(v.outcome.is_damage(), "{v:?}");
    assert_ne!(v.outcome, Outcome::WrongKey, "{v:?}");
}

#[test]
fn a_key_applied_after_the_first_statement_does_not_encrypt_the_file() {
    // Seed 001 suspects "key applied after writes began" leaves "mixed encrypted/unencrypted
    // pages". Measured: once the plaintext file has been read, SQLCipher will not re-key it with
    // PRAGMA key; the file stays plaintext and a keyed reader cannot open it at all.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("late.db");
    let c = Connection::open(&path).unwrap();
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
        .unwrap();
    let _ = c.pragma_update(None, "key", DEFAULT_KEY);
    let _ = c.execute_batch("INSERT INTO t VALUES (2)");
    drop(c);
    assert_eq!(&std::fs::read(&path).unwrap()[..16], b"SQLite format 3\0");
    let keyed = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    keyed.pragma_update(None, "key", DEFAULT_KEY).unwrap();
    assert!(keyed
        .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
        .is_err());
}

// ---- end to end: the core lab's controls, on SQLCipher ----

/// Runs the binary with `--engine sqlcipher`; the folder is returned so its evidence can be read.
fn torture(
    args: &[&str],
) -> (
    i32,
    Vec<BTreeMap<String, String>>,
    String,
    tempfile::TempDir,
) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_torture"))
        .args([
            "--engine",
            "sqlcipher",
            "--no-progress",
            "--seed",
            "11",
            "--out",
        ])
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let mut r = csv::Reader::from_path(out.join("trials.csv")).expect(&stderr);
    let headers = r.headers().unwrap().clone();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect();
    (o.status.code().unwrap_or(-1), rows, stderr, tmp)
}

fn non_intact<'a>(rows: &'a [BTreeMap<String, String>], profile: &str) -> Vec<&'a str> {
    rows.iter()
        .filter(|r| r["profile"] == profile && r["outcome"] != "intact")
        .map(|r| r["detail"].as_str())
        .collect()
}

#[test]
fn sigkill_controls_on_sqlcipher() {
    let (code, rows, stderr, tmp) = torture(&[
        "--profile",
        "wal-normal,wal-full,delete-full,truncate-normal,off-off,memory-off",
        "--iterations",
        "60",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows.len(), 360);
    assert!(rows
        .iter()
        .all(|r| r["sqlite_version"].contains("sqlcipher")));
    for p in ["wal-normal", "wal-full", "delete-full", "truncate-normal"] {
        assert_eq!(non_intact(&rows, p), Vec::<&str>::new(), "{p}");
    }
    // Positive control: without a journal a kill mid-transaction must be caught, keyed or not.
    assert!(non_intact(&rows, "off-off").len() >= 5, "{stderr}");
    // And the files the lab tortured really were encrypted (the key reached the writers).
    let failures = tmp.path().join("out").join("failures");
    let mut seen = 0;
    for entry in std::fs::read_dir(&failures).unwrap() {
        let db = entry.unwrap().path().join("trial.db");
        if let Ok(bytes) = std::fs::read(&db) {
            assert_ne!(&bytes[..16], b"SQLite format 3\0", "{}", db.display());
            seen += 1;
        }
    }
    // Expected losses keep one example folder per group (docs/reliability.md), so off-off's many
    // failures leave at least one folder, and every folder kept must be encrypted.
    assert!(seen >= 1, "{seen} evidence databases");
}

#[test]
fn power_loss_controls_on_sqlcipher() {
    let (code, rows, stderr, _tmp) = torture(&[
        "--fault",
        "power-loss",
        "--profile",
        "wal-full,delete-extra,off-off",
        "--iterations",
        "40",
    ]);
    assert_eq!(code, 0, "{stderr}");
    for p in ["wal-full", "delete-extra"] {
        assert_eq!(non_intact(&rows, p), Vec::<&str>::new(), "{p}");
    }
    assert!(!non_intact(&rows, "off-off").is_empty(), "{stderr}");
}

#[test]
fn a_passphrase_key_works_end_to_end() {
    // Every connection, writers' and oracle's alike, gets the same --key, so a passphrase works
    // end to end (slowly: PBKDF2 on every open).
    let (code, rows, stderr, _tmp) = torture(&[
        "--key",
        "a passphrase",
        "--profile",
        "wal-full",
        "--iterations",
        "3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(non_intact(&rows, "wal-full"), Vec::<&str>::new());
}

#[test]
fn an_op_indexed_sqlcipher_failure_replays_to_the_same_outcome() {
    let (code, rows, stderr, tmp) = torture(&[
        "--fault",
        "kill-at-op",
        "--profile",
        "off-off",
        "--iterations",
        "12",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let failed = rows
        .iter()
        .find(|r| r["outcome"] != "intact")
        .expect("journal_mode=off killed at an I/O op is caught in some trial");
    let folder = tmp
        .path()
        .join("out")
        .join("failures")
        .join(&failed["iteration"]);
    let o = Command::new(env!("CARGO_BIN_EXE_torture"))
        .arg("replay")
        .arg(&folder)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    // Fresh random IVs make the bytes differ on every run: replay compares the outcome.
    assert!(stdout.contains("compared by outcome"), "{stdout}");
    assert_eq!(o.status.code(), Some(0), "{stdout}");
}
