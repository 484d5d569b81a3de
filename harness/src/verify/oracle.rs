//! The oracle: reopen the crashed database fresh, let SQLite recover it, and decide what survived.
//!
//! Checks, in order: the database opens and its schema reads (else `open-failed`);
//! `PRAGMA integrity_check` says `ok` (else `corrupt`); the workload's invariant holds (else
//! `atomicity`); every acknowledged commit is present with no gap (else `lost-commit`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use torture_workloads::{recovered_commits, Workload};

use crate::engine::{self, Engine};
use crate::verify::outcome::Outcome;
use crate::verify::sqlite_error;

/// What the oracle concluded about one recovered database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub outcome: Outcome,
    pub detail: String,
    /// Commits found after recovery, over all writers.
    pub recovered_commits: u64,
}

impl Verification {
    /// For a trial whose writers never started: nothing to verify.
    pub fn not_run() -> Self {
        Verification::new(Outcome::WorkerError, "")
    }

    fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Verification {
            outcome,
            detail: detail.into(),
            recovered_commits: 0,
        }
    }
}

/// Opens `db` (never creating it), recovers it and checks it against `acked`: the highest
/// acknowledged `seq` of each writer.
pub fn recover_and_verify(
    db: &Path,
    workload: Workload,
    acked: &BTreeMap<u32, u64>,
) -> Verification {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match crate::engine::open(db, flags, None) {
        Ok(c) => c,
        Err(e) => return classify_error(db, &e, "open"),
    };
    // The check only reads: skip the checkpoint SQLite would run when it closes a WAL database.
    let _ = conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    );
    // The first read runs recovery: hot-journal rollback, or rebuilding the WAL index.
    if let Err(e) = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    }) {
        return classify_error(db, &e, "recovery");
    }
    let problems = match integrity_problems(&conn) {
        Ok(p) => p,
        Err(e) => return classify_error(db, &e, "integrity_check"),
    };
    let recovered = recovered_commits(&conn);
    let recovered_total = recovered
        .as_ref()
        .map(|r| r.values().map(|c| c.count).sum())
        .unwrap_or(0);
    if let Some(first) = problems.first() {
        let mut v = Verification::new(
            Outcome::Corrupt,
            format!(
                "integrity_check: {} error(s); first: {first}",
                problems.len()
            ),
        );
        v.recovered_commits = recovered_total;
        return v;
    }
    let recovered = match recovered {
        Ok(r) => r,
        Err(e) => return classify_error(db, &e, "reading commits"),
    };
    let broken = match workload.check_invariants(&conn) {
        Ok(b) => b,
        Err(e) => return classify_error(db, &e, "checking invariants"),
    };
    let lost = lost_commits(acked, &recovered);
    let mut v = if !broken.is_empty() {
        let mut d = format!("invariant: {}", broken.join("; "));
        if !lost.is_empty() {
            let _ = write!(d, "; also lost: {lost}");
        }
        Verification::new(Outcome::Atomicity, d)
    } else if !lost.is_empty() {
        Verification::new(Outcome::LostCommit, lost)
    } else {
        Verification::new(Outcome::Intact, "")
    };
    v.recovered_commits = recovered_total;
    v
}

/// Every line `PRAGMA integrity_check` printed that is not `ok`.
pub fn integrity_problems(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let line: String = r.get(0)?;
        if line != "ok" {
            out.push(line);
        }
    }
    Ok(out)
}

/// Describes every writer whose acknowledged commits are not all present, or `""`.
fn lost_commits(
    acked: &BTreeMap<u32, u64>,
    recovered: &BTreeMap<u32, torture_workloads::WriterCommits>,
) -> String {
    let mut out = String::new();
    for (&writer, &acked_max) in acked {
        let got = recovered.get(&writer).copied().unwrap_or_default();
        if got.max_seq < acked_max {
            let _ = write!(
                out,
                "{}writer {writer}: acked up to {acked_max}, recovered up to {}",
                if out.is_empty() { "" } else { "; " },
                got.max_seq
            );
        }
    }
    // A gap inside any writer's sequence is a lost commit too, acknowledged or not yet read.
    for (&writer, got) in recovered {
        if got.count != got.max_seq {
            let _ = write!(
                out,
                "{}writer {writer}: {} of commits 1..{} present",
                if out.is_empty() { "" } else { "; " },
                got.count,
                got.max_seq
            );
        }
    }
    out
}

fn classify_error(db: &Path, e: &rusqlite::Error, during: &str) -> Verification {
    let described = format!("{during}: {}", sqlite_error::describe(e));
    if sqlite_error::is_corrupt(e) {
        return Verification::new(Outcome::Corrupt, described);
    }
    // SQLCipher says "not a database" both for a key that does not fit and for a damaged page 1.
    if let (true, Engine::Sqlcipher { key }) = (sqlite_error::is_notadb(e), engine::current()) {
        return match engine::key_mismatch(db, key) {
            Some(why) => Verification::new(Outcome::WrongKey, format!("{described}; {why}")),
            None => {
                let pages = engine::cipher_page_failures(db, key)
                    .map(|p| format!("; {} of {} pages fail HMAC", p.failed, p.total))
                    .unwrap_or_default();
                Verification::new(Outcome::OpenFailed, format!("{described}{pages}"))
            }
        };
    }
    Verification::new(Outcome::OpenFailed, described)
}

/// Test helper: a WAL database as a killed writer leaves it after `commits` commits of writer 0, all
/// still in the WAL: `trial.db`, its `-wal` and `-shm`, copied while the writer has them open.
#[cfg(test)]
pub(crate) fn crashed_wal_database(dir: &Path, commits: u64) -> std::path::PathBuf {
    use crate::engine::{with_suffix, SIDECARS};
    use rand::SeedableRng;
    let live = dir.join("live.db");
    let mut c = Connection::open(&live).unwrap();
    let _: String = c
        .query_row("PRAGMA journal_mode=wal", [], |r| r.get(0))
        .unwrap();
    c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    Workload::Inserts.create_schema(&c).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    for seq in 1..=commits {
        Workload::Inserts
            .run_transaction(&mut c, 0, seq, &mut rng)
            .unwrap();
    }
    let db = dir.join("trial.db");
    for suffix in SIDECARS {
        let _ = std::fs::copy(with_suffix(&live, suffix), with_suffix(&db, suffix));
    }
    drop(c);
    db
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn db_with_commits(dir: &Path, n: u64) -> std::path::PathBuf {
        let path = dir.join("t.db");
        let mut c = Connection::open(&path).unwrap();
        Workload::Inserts.create_schema(&c).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for seq in 1..=n {
            Workload::Inserts
                .run_transaction(&mut c, 0, seq, &mut rng)
                .unwrap();
        }
        path
    }

    #[test]
    fn a_database_holding_every_acked_commit_is_intact() {
        let d = tempfile::tempdir().unwrap();
        let db = db_with_commits(d.path(), 5);
        let v = recover_and_verify(&db, Workload::Inserts, &BTreeMap::from([(0, 5)]));
        assert_eq!(v.outcome, Outcome::Intact, "{}", v.detail);
        assert_eq!(v.recovered_commits, 5);
    }

    #[test]
    fn a_missing_acked_commit_is_a_lost_commit() {
        let d = tempfile::tempdir().unwrap();
        let db = db_with_commits(d.path(), 5);
        let v = recover_and_verify(&db, Workload::Inserts, &BTreeMap::from([(0, 6)]));
        assert_eq!(v.outcome, Outcome::LostCommit);
        assert!(v.detail.contains("acked up to 6"), "{}", v.detail);
    }

    #[test]
    fn a_gap_in_the_sequence_is_a_lost_commit() {
        let d = tempfile::tempdir().unwrap();
        let db = db_with_commits(d.path(), 5);
        let c = Connection::open(&db).unwrap();
        c.execute_batch("DELETE FROM item WHERE seq = 3; DELETE FROM txn WHERE seq = 3")
            .unwrap();
        drop(c);
        let v = recover_and_verify(&db, Workload::Inserts, &BTreeMap::from([(0, 5)]));
        assert_eq!(v.outcome, Outcome::LostCommit, "{}", v.detail);
    }

    #[test]
    fn garbage_in_place_of_the_header_fails_to_open() {
        let d = tempfile::tempdir().unwrap();
        let db = db_with_commits(d.path(), 2);
        let mut bytes = std::fs::read(&db).unwrap();
        bytes[..100].fill(0xAB);
        std::fs::write(&db, bytes).unwrap();
        let v = recover_and_verify(&db, Workload::Inserts, &BTreeMap::new());
        assert_eq!(v.outcome, Outcome::OpenFailed, "{}", v.detail);
        assert!(v.detail.contains("SQLITE_NOTADB"), "{}", v.detail);
    }

    #[test]
    fn a_damaged_btree_page_is_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let db = db_with_commits(d.path(), 40);
        let mut bytes = std::fs::read(&db).unwrap();
        // Scribble over the middle of page 3 (a b-tree page of the item table or its index).
        let page = 4096;
        for b in &mut bytes[2 * page + 8..2 * page + 1200] {
            *b = 0x5A;
        }
        std::fs::write(&db, bytes).unwrap();
        let v = recover_and_verify(&db, Workload::Inserts, &BTreeMap::new());
        assert_eq!(v.outcome, Outcome::Corrupt, "{}", v.detail);
    }

    #[test]
    fn the_check_leaves_the_database_and_its_wal_as_they_were() {
        // The evidence snapshot relies on this: only -shm (and a hot journal) may change.
        let d = tempfile::tempdir().unwrap();
        let crashed = super::crashed_wal_database(d.path(), 20);
        let db_before = std::fs::read(&crashed).unwrap();
        let wal_before = std::fs::read(d.path().join("trial.db-wal")).unwrap();
        assert!(wal_before.len() > 4096, "the WAL holds frames");
        let v = recover_and_verify(&crashed, Workload::Inserts, &BTreeMap::from([(0, 20)]));
        assert_eq!(v.outcome, Outcome::Intact, "{}", v.detail);
        assert_eq!(std::fs::read(&crashed).unwrap(), db_before);
        assert_eq!(
            std::fs::read(d.path().join("trial.db-wal")).unwrap(),
            wal_before
        );
    }

    #[test]
    fn a_missing_file_fails_to_open() {
        let d = tempfile::tempdir().unwrap();
        let v = recover_and_verify(
            &d.path().join("nope.db"),
            Workload::Inserts,
            &BTreeMap::new(),
        );
        assert_eq!(v.outcome, Outcome::OpenFailed);
        assert!(v.detail.contains("SQLITE_CANTOPEN"), "{}", v.detail);
    }
}
