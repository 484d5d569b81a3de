//! Write workloads: what a writer does between its start and its death.
//!
//! Every transaction, whatever the workload, inserts one row `(writer, seq, rows)` into `txn` in the same
//! transaction as its body, so the oracle can tell exactly which acknowledged commits survived. Each
//! workload also leaves an invariant that a partially applied transaction breaks, checked after recovery.

use std::collections::BTreeMap;

use rand::{Rng, RngExt};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// The built-in workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Append-only transactions of 1..8 rows (now and then 64), payloads from 8 bytes to three pages.
    Inserts,
    /// Transfers between 64 accounts with a secondary index on the balance; the total never changes.
    Bank,
    /// Inserts, updates and deletes with index churn, and now and then a 100-operation transaction.
    Mixed,
}

/// Accounts in the `bank` workload and the balance each starts with.
const BANK_ACCOUNTS: i64 = 64;
const BANK_START_BALANCE: i64 = 1000;

/// How many commits of one writer survived recovery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterCommits {
    /// Highest `seq` found.
    pub max_seq: u64,
    /// Number of distinct `seq` found; below `max_seq` means a commit in the middle is missing.
    pub count: u64,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Workload::Inserts, Workload::Bank, Workload::Mixed];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Inserts => "inserts",
            Workload::Bank => "bank",
            Workload::Mixed => "mixed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == s)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Workload::Inserts => "append-only transactions of 1-8 rows (sometimes 64), payloads 8 B to 3 pages (overflow pages)",
            Workload::Bank => "transfers between 64 accounts with an index on balance; invariant: the total never changes",
            Workload::Mixed => "inserts/updates/deletes with index churn and occasional 100-operation transactions; invariant: a counter row matches the table",
        }
    }

    /// Creates the schema and starting rows. Run once on the trial's starting database.
    pub fn create_schema(self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE txn(writer INTEGER NOT NULL, seq INTEGER NOT NULL, rows INTEGER NOT NULL,
                              PRIMARY KEY(writer, seq)) WITHOUT ROWID;",
        )?;
        match self {
            Workload::Inserts => conn.execute_batch(
                "CREATE TABLE item(id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, seq INTEGER NOT NULL,
                                   payload BLOB NOT NULL, digest INTEGER NOT NULL);
                 CREATE INDEX item_txn ON item(writer, seq);",
            ),
            Workload::Bank => {
                conn.execute_batch(
                    "CREATE TABLE account(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, note BLOB NOT NULL);
                     CREATE INDEX account_balance ON account(balance);",
                )?;
                let mut ins =
                    conn.prepare("INSERT INTO account(id, balance, note) VALUES (?1, ?2, x'')")?;
                for id in 0..BANK_ACCOUNTS {
                    ins.execute(params![id, BANK_START_BALANCE])?;
                }
                Ok(())
            }
            Workload::Mixed => conn.execute_batch(
                "CREATE TABLE kv(k INTEGER PRIMARY KEY, v BLOB NOT NULL, tag INTEGER NOT NULL);
                 CREATE INDEX kv_tag ON kv(tag);
                 CREATE TABLE counter(id INTEGER PRIMARY KEY CHECK (id = 1), rows INTEGER NOT NULL,
                                      bytes INTEGER NOT NULL);
                 INSERT INTO counter VALUES (1, 0, 0);",
            ),
        }
    }

    /// Runs one whole transaction numbered `seq` for `writer` and commits it. An error leaves nothing
    /// committed (the transaction is rolled back when dropped).
    pub fn run_transaction(
        self,
        conn: &mut Connection,
        writer: u32,
        seq: u64,
        rng: &mut impl Rng,
    ) -> rusqlite::Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows = match self {
            Workload::Inserts => {
                let rows: u32 = if rng.random_ratio(1, 50) {
                    64
                } else {
                    rng.random_range(1..=8)
                };
                let mut ins = tx.prepare_cached(
                    "INSERT INTO item(writer, seq, payload, digest) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for _ in 0..rows {
                    let payload = random_payload(rng);
                    ins.execute(params![writer, seq as i64, payload, digest(&payload)])?;
                }
                rows
            }
            Workload::Bank => {
                let transfers: u32 = rng.random_range(1..=4);
                let mut upd = tx.prepare_cached(
                    "UPDATE account SET balance = balance + ?2, note = ?3 WHERE id = ?1",
                )?;
                for _ in 0..transfers {
                    let from = rng.random_range(0..BANK_ACCOUNTS);
                    let to = rng.random_range(0..BANK_ACCOUNTS);
                    let amount: i64 = rng.random_range(1..=100);
                    let note_from = random_bytes(rng, 0..=600);
                    let note_to = random_bytes(rng, 0..=600);
                    upd.execute(params![from, -amount, note_from])?;
                    upd.execute(params![to, amount, note_to])?;
                }
                transfers
            }
            Workload::Mixed => {
                let ops: u32 = if rng.random_ratio(1, 30) {
                    100
                } else {
                    rng.random_range(1..=10)
                };
                let (mut d_rows, mut d_bytes) = (0i64, 0i64);
                for _ in 0..ops {
                    let (r, b) = mixed_op(&tx, rng)?;
                    d_rows += r;
                    d_bytes += b;
                }
                tx.prepare_cached(
                    "UPDATE counter SET rows = rows + ?1, bytes = bytes + ?2 WHERE id = 1",
                )?
                .execute(params![d_rows, d_bytes])?;
                ops
            }
        };
        tx.prepare_cached("INSERT INTO txn(writer, seq, rows) VALUES (?1, ?2, ?3)")?
            .execute(params![writer, seq as i64, rows])?;
        tx.commit()
    }

    /// Checks the workload's invariant after recovery. Returns what is broken, empty when all holds.
    pub fn check_invariants(self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let mut broken = Vec::new();
        match self {
            Workload::Inserts => {
                // Every transaction's rows are all there, none without its txn row, none torn.
                let mut stmt = conn.prepare(
                    "SELECT t.writer, t.seq, t.rows, count(i.id) FROM txn t
                     LEFT JOIN item i ON i.writer = t.writer AND i.seq = t.seq
                     GROUP BY t.writer, t.seq HAVING count(i.id) != t.rows LIMIT 3",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    broken.push(format!(
                        "txn {}:{} has {} of its {} rows",
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(2)?
                    ));
                }
                let orphans: i64 = conn.query_row(
                    "SELECT count(*) FROM item i WHERE NOT EXISTS
                       (SELECT 1 FROM txn t WHERE t.writer = i.writer AND t.seq = i.seq)",
                    [],
                    |r| r.get(0),
                )?;
                if orphans > 0 {
                    broken.push(format!("{orphans} rows of uncommitted transactions"));
                }
                let mut stmt = conn.prepare("SELECT id, payload, digest FROM item")?;
                let mut rows = stmt.query([])?;
                let mut torn = 0u64;
                while let Some(r) = rows.next()? {
                    let payload = r.get_ref(1)?.as_blob()?;
                    if digest(payload) != r.get::<_, i64>(2)? {
                        torn += 1;
                    }
                }
                if torn > 0 {
                    broken.push(format!(
                        "{torn} rows whose payload does not match its digest"
                    ));
                }
            }
            Workload::Bank => {
                let (count, total): (i64, Option<i64>) =
                    conn.query_row("SELECT count(*), sum(balance) FROM account", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                let expected = BANK_ACCOUNTS * BANK_START_BALANCE;
                if count != BANK_ACCOUNTS || total != Some(expected) {
                    broken.push(format!(
                        "bank total {} over {count} accounts, expected {expected} over {BANK_ACCOUNTS}",
                        total.map_or("NULL".to_string(), |t| t.to_string())
                    ));
                }
            }
            Workload::Mixed => {
                let (rows, bytes): (i64, i64) =
                    conn.query_row("SELECT rows, bytes FROM counter WHERE id = 1", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                let (actual_rows, actual_bytes): (i64, i64) = conn.query_row(
                    "SELECT count(*), coalesce(sum(length(v)), 0) FROM kv",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if (rows, bytes) != (actual_rows, actual_bytes) {
                    broken.push(format!(
                        "counter says {rows} rows/{bytes} bytes, table has {actual_rows}/{actual_bytes}"
                    ));
                }
            }
        }
        Ok(broken)
    }
}

/// Reads which commits survived, per writer.
pub fn recovered_commits(conn: &Connection) -> rusqlite::Result<BTreeMap<u32, WriterCommits>> {
    let mut stmt = conn.prepare("SELECT writer, max(seq), count(*) FROM txn GROUP BY writer")?;
    let mut out = BTreeMap::new();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let writer: i64 = r.get(0)?;
        out.insert(
            writer as u32,
            WriterCommits {
                max_seq: r.get::<_, i64>(1)? as u64,
                count: r.get::<_, i64>(2)? as u64,
            },
        );
    }
    Ok(out)
}

/// One insert, update, delete or re-tag in the `mixed` workload. Returns the change in row count and
/// in payload bytes, which the transaction adds to the counter row.
fn mixed_op(tx: &rusqlite::Transaction<'_>, rng: &mut impl Rng) -> rusqlite::Result<(i64, i64)> {
    let probe: i64 = rng.random_range(0..1_000_000);
    let existing: Option<(i64, i64)> = tx
        .prepare_cached("SELECT k, length(v) FROM kv WHERE k >= ?1 ORDER BY k LIMIT 1")?
        .query_row([probe], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let choice = rng.random_range(0..10);
    match (choice, existing) {
        (0..=4, _) | (_, None) => {
            let v = random_bytes(rng, 1..=1500);
            let len = v.len() as i64;
            let n = tx
                .prepare_cached(
                    "INSERT INTO kv(k, v, tag) VALUES (?1, ?2, ?3) ON CONFLICT(k) DO NOTHING",
                )?
                .execute(params![probe, v, rng.random_range(0..100i64)])?;
            Ok(if n == 1 { (1, len) } else { (0, 0) })
        }
        (5..=6, Some((k, old_len))) => {
            let v = random_bytes(rng, 1..=1500);
            let len = v.len() as i64;
            tx.prepare_cached("UPDATE kv SET v = ?2 WHERE k = ?1")?
                .execute(params![k, v])?;
            Ok((0, len - old_len))
        }
        (7..=8, Some((k, old_len))) => {
            tx.prepare_cached("DELETE FROM kv WHERE k = ?1")?
                .execute([k])?;
            Ok((-1, -old_len))
        }
        (_, Some((k, _))) => {
            tx.prepare_cached("UPDATE kv SET tag = ?2 WHERE k = ?1")?
                .execute(params![k, rng.random_range(0..100i64)])?;
            Ok((0, 0))
        }
    }
}

/// A payload from tiny to three pages: mostly small rows, some that need overflow pages.
fn random_payload(rng: &mut impl Rng) -> Vec<u8> {
    let roll = rng.random_range(0..100);
    let len = match roll {
        0..=69 => rng.random_range(8..=100),
        70..=89 => rng.random_range(100..=2000),
        _ => rng.random_range(2000..=12_000),
    };
    fill(rng, len)
}

fn random_bytes(rng: &mut impl Rng, len: std::ops::RangeInclusive<usize>) -> Vec<u8> {
    let len = rng.random_range(len);
    fill(rng, len)
}

fn fill(rng: &mut impl Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// A cheap 64-bit digest, eight bytes at a step: enough to tell a torn payload from the one written.
pub fn digest(bytes: &[u8]) -> i64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = K ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(K).rotate_left(31);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K).rotate_left(31);
    }
    // Final avalanche (SplitMix64's finaliser).
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (h ^ (h >> 31)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn fresh(workload: Workload) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        workload.create_schema(&conn).unwrap();
        (dir, conn)
    }

    #[test]
    fn every_workload_keeps_its_invariant_over_many_commits() {
        for w in Workload::ALL {
            let (_dir, mut conn) = fresh(w);
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            for seq in 1..=200 {
                w.run_transaction(&mut conn, 0, seq, &mut rng).unwrap();
            }
            assert!(w.check_invariants(&conn).unwrap().is_empty(), "{w:?}");
            let got = recovered_commits(&conn).unwrap();
            assert_eq!(
                got[&0],
                WriterCommits {
                    max_seq: 200,
                    count: 200
                }
            );
        }
    }

    #[test]
    fn a_partial_transaction_breaks_each_invariant() {
        // Positive control for the invariant checks: write half a transaction by hand.
        let (_d, c) = fresh(Workload::Inserts);
        c.execute_batch("INSERT INTO txn VALUES (0, 1, 2); INSERT INTO item(writer, seq, payload, digest) VALUES (0, 1, x'00', 0)").unwrap();
        assert!(!Workload::Inserts.check_invariants(&c).unwrap().is_empty());

        let (_d, c) = fresh(Workload::Bank);
        c.execute_batch("UPDATE account SET balance = balance - 5 WHERE id = 3")
            .unwrap();
        assert!(!Workload::Bank.check_invariants(&c).unwrap().is_empty());

        let (_d, c) = fresh(Workload::Mixed);
        c.execute_batch("INSERT INTO kv VALUES (5, x'0102', 1)")
            .unwrap();
        assert!(!Workload::Mixed.check_invariants(&c).unwrap().is_empty());
    }

    #[test]
    fn a_torn_payload_is_caught() {
        let (_d, c) = fresh(Workload::Inserts);
        c.execute("INSERT INTO txn VALUES (0, 1, 1)", []).unwrap();
        c.execute(
            "INSERT INTO item(writer, seq, payload, digest) VALUES (0, 1, x'0102', ?1)",
            [digest(&[1, 3])],
        )
        .unwrap();
        let broken = Workload::Inserts.check_invariants(&c).unwrap();
        assert!(broken[0].contains("digest"), "{broken:?}");
    }

    #[test]
    fn the_digest_sees_a_changed_byte_anywhere() {
        let base: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let d = digest(&base);
        for pos in [0, 7, 8, 500, 995, 999] {
            let mut torn = base.clone();
            torn[pos] ^= 1;
            assert_ne!(digest(&torn), d, "byte {pos}");
        }
        assert_ne!(digest(&base[..999]), d, "a shorter payload");
        assert_ne!(
            digest(&[0; 16]),
            digest(&[0; 8]),
            "zero runs of other lengths"
        );
    }

    #[test]
    fn the_same_seed_writes_the_same_database() {
        let run = || {
            let (_d, mut c) = fresh(Workload::Mixed);
            let mut rng = ChaCha8Rng::seed_from_u64(42);
            for seq in 1..=50 {
                Workload::Mixed
                    .run_transaction(&mut c, 0, seq, &mut rng)
                    .unwrap();
            }
            c.query_row("SELECT rows, bytes FROM counter", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .unwrap()
        };
        assert_eq!(run(), run());
    }
}
