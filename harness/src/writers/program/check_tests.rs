//! Tests of `check.rs`: the SQLite check on real databases.

use super::*;

/// A database as `workloads/exec/python_writer.py` makes it, with `commits` commits.
pub(crate) fn writer_db(path: &Path, commits: u64) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE t(seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
         CREATE TABLE item(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB);
         CREATE INDEX item_seq ON item(seq);
         CREATE TABLE counter(id INTEGER PRIMARY KEY CHECK (id = 0), items INTEGER NOT NULL);
         INSERT INTO counter VALUES (0, 0);
         CREATE TABLE account(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, pad BLOB);
         INSERT INTO account WITH RECURSIVE a(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM a WHERE i < 1000)
           SELECT i, 100, zeroblob(400) FROM a;",
    )
    .unwrap();
    for seq in 1..=commits {
        c.execute_batch(&format!(
            "BEGIN; INSERT INTO item(seq, payload) VALUES ({seq}, randomblob(500)), ({seq}, randomblob(90));
             INSERT INTO t VALUES ({seq}, 2); UPDATE counter SET items = items + 2;
             UPDATE account SET balance = balance - 5 WHERE id = {seq};
             UPDATE account SET balance = balance + 5 WHERE id = 1001 - {seq}; COMMIT;"
        ))
        .unwrap();
    }
}

pub(crate) fn verify_sql() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../workloads/exec/verify.sql"
    ))
    .unwrap()
}

fn check(exec: &ExecOptions, db: &Path, acked: u64) -> Check {
    let scratch = db.parent().unwrap();
    verify(&CheckEnv {
        exec,
        db,
        acked,
        acks: &[],
        timeout: Duration::from_secs(20),
        scratch,
        close_fds: &[],
    })
}

fn writer_opts() -> ExecOptions {
    let mut o = ExecOptions::new(vec!["x".into()]);
    o.recovered_sql = Some("SELECT max(seq) FROM t".into());
    o.verify_sql = Some(verify_sql());
    o
}

#[test]
fn durability_and_the_invariant_are_checked_as_for_built_in_workloads() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("trial.db");
    writer_db(&db, 10);
    let o = writer_opts();
    let c = check(&o, &db, 10);
    assert_eq!((c.outcome, c.recovered), (Outcome::Intact, 10), "{c:?}");
    let c = check(&o, &db, 11);
    assert_eq!(c.outcome, Outcome::LostCommit);
    assert!(c.detail.contains("acknowledged up to 11"), "{}", c.detail);
    Connection::open(&db)
        .unwrap()
        .execute_batch("DELETE FROM item WHERE id = 3")
        .unwrap();
    let c = check(&o, &db, 10);
    assert_eq!(c.outcome, Outcome::Atomicity, "{c:?}");
    assert!(c.detail.contains("half a transaction"), "{}", c.detail);
}

#[test]
fn no_database_or_no_schema_with_nothing_acknowledged_is_not_a_failure() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("trial.db");
    let o = writer_opts();
    let c = check(&o, &db, 0);
    assert_eq!(c.outcome, Outcome::Intact);
    assert!(c.detail.contains("before the program created"), "{c:?}");
    assert_eq!(check(&o, &db, 3).outcome, Outcome::OpenFailed);
    // An empty database, and one with a table but not yet the acknowledged one.
    Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 1")
        .unwrap();
    let c = check(&o, &db, 0);
    assert_eq!(c.outcome, Outcome::Intact);
    assert!(
        c.detail.contains("before the program made its schema"),
        "{c:?}"
    );
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE other(x)")
        .unwrap();
    let c = check(&o, &db, 0);
    assert_eq!(c.outcome, Outcome::Intact, "{c:?}");
    assert!(c.detail.contains("no such table"), "{c:?}");
    let c = check(&o, &db, 2);
    assert_eq!(c.outcome, Outcome::LostCommit, "{c:?}");
}

#[test]
fn a_damaged_file_is_corrupt_or_open_failed() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("trial.db");
    writer_db(&db, 40);
    let o = writer_opts();
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    for b in &mut bytes[2 * page + 8..2 * page + 1200] {
        *b = 0x5A;
    }
    std::fs::write(&db, &bytes).unwrap();
    assert_eq!(check(&o, &db, 40).outcome, Outcome::Corrupt);
    bytes[..100].fill(0xAB);
    std::fs::write(&db, &bytes).unwrap();
    let c = check(&o, &db, 40);
    assert_eq!(c.outcome, Outcome::OpenFailed, "{c:?}");
    assert!(c.detail.contains("SQLITE_NOTADB"), "{}", c.detail);
}

#[test]
fn verify_cmd_sees_the_database_and_a_non_zero_exit_is_atomicity() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("trial.db");
    writer_db(&db, 3);
    let mut o = writer_opts();
    o.verify_cmd = Some(r#"test -s {db} && test "$TORTURE_DB" = {db}"#.into());
    assert_eq!(check(&o, &db, 3).outcome, Outcome::Intact);
    o.verify_cmd = Some("echo 'balance is off by 7'; exit 3".into());
    let c = check(&o, &db, 3);
    assert_eq!(c.outcome, Outcome::Atomicity);
    assert_eq!(
        c.detail,
        "--verify-cmd exited with status 3: balance is off by 7"
    );
}

/// What SQLite recovers from `db` bytes and `wal` bytes, in a fresh folder: the rows of `t`, or
/// None when it cannot read them.
fn recovered_count(db: &[u8], wal: &[u8]) -> Option<i64> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    std::fs::write(&path, db).unwrap();
    std::fs::write(dir.path().join("x.db-wal"), wal).unwrap();
    let c = Connection::open(&path).ok()?;
    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).ok()
}

#[test]
fn states_with_the_same_wal_prefix_recover_alike_in_real_sqlite() {
    // The effective key's premise, on real SQLite: two WAL files with the same prefix as
    // `recovered_prefix` reads it recover to the same database; a torn, zeroed or flipped tail
    // past it changes nothing, and cutting into it does.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(v BLOB);",
    )
    .unwrap();
    for _ in 0..6 {
        // Two pages a commit: a commit frame after a non-commit one.
        c.execute_batch("INSERT INTO t VALUES (zeroblob(5000))")
            .unwrap();
    }
    let db = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("x.db-wal")).unwrap();
    let mut variants: Vec<Vec<u8>> = Vec::new();
    for len in (0..=wal.len()).step_by(700).chain([wal.len()]) {
        variants.push(wal[..len].to_vec());
        // The rest of the file zeroed (appended blocks a crash left empty), or one byte flipped.
        let mut zeroed = wal.clone();
        zeroed[len..].fill(0);
        variants.push(zeroed);
        if len < wal.len() {
            let mut flipped = wal.clone();
            flipped[len] ^= 0x40;
            variants.push(flipped);
        }
    }
    let mut by_prefix = std::collections::HashMap::<Vec<u8>, Option<i64>>::new();
    let mut answers = std::collections::BTreeSet::new();
    for v in &variants {
        let used = torture_preload::wal::recovered_prefix(v);
        let got = recovered_count(&db, v);
        answers.insert(got);
        let prefix = v[..used.prefix].to_vec();
        if let Some(before) = by_prefix.insert(prefix, got) {
            assert_eq!(
                before, got,
                "same prefix ({} frames), other rows",
                used.frames
            );
        }
        if used.frames == 0 {
            // Nothing of the WAL used: the database file alone (the table not there yet).
            assert_eq!(got, None, "{} bytes", v.len());
        }
    }
    // The positive control: the variants recover to many different databases, and the whole WAL
    // to all six rows.
    assert!(answers.len() >= 5, "{answers:?}");
    assert_eq!(recovered_count(&db, &wal), Some(6));
    assert_eq!(
        torture_preload::wal::recovered_prefix(&wal).prefix,
        wal.len()
    );
    assert!(
        by_prefix.len() < variants.len(),
        "no two variants shared a prefix"
    );
}
