//! Scenario `backup` (seeds 001, 002): while a writer commits, a second process takes one backup —
//! a raw copy of the database file alone, of the database and its -wal, the seed's own
//! `wal_checkpoint(TRUNCATE)` then copy, `VACUUM INTO`, or the online backup API — and the backup is
//! checked like a crashed database: integrity_check, the workload's invariant, and every commit
//! acknowledged before the backup began must be in it, with no gap (a consistent prefix).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::RngExt;
use rusqlite::{ffi, Connection};
use torture_workloads::{JournalMode, Synchronous};

use super::engine::{self, code_name, record, word, Children, Ctx, Ending, Env, Metrics};
use super::{base_profile, Kind, Scenario, Variant};
use crate::trial::evidence::{with_suffix, Snapshot};
use crate::trial::outcome::{Outcome, TrialRecord};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    CopyDb,
    CopyDbWal,
    CheckpointThenCopy,
    VacuumInto,
    BackupApi,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::CopyDb => "copy-db",
            Method::CopyDbWal => "copy-db-wal",
            Method::CheckpointThenCopy => "checkpoint-then-copy",
            Method::VacuumInto => "vacuum-into",
            Method::BackupApi => "backup-api",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Method::CopyDb => "cp db (the file alone)",
            Method::CopyDbWal => "cp db, then cp db-wal",
            Method::CheckpointThenCopy => {
                "PRAGMA wal_checkpoint(TRUNCATE), then cp db (seed 002's backup)"
            }
            Method::VacuumInto => "VACUUM INTO (seed 002's fix)",
            Method::BackupApi => "sqlite3_backup_init/step(-1)/finish (seed 001's advice)",
        }
    }

    /// SQLite documents these as consistent online copies; the raw copies it warns against
    /// (howtocorrupt.html §1.2).
    fn is_safe(self) -> bool {
        matches!(self, Method::VacuumInto | Method::BackupApi)
    }
}

pub(crate) struct Params {
    pub method: Method,
}

/// The backup starts after K acknowledged commits, K uniform in this window: late enough that
/// checkpoints have moved data into the database file (wal_autocheckpoint=100).
const ACKS: (u64, u64) = (10, 150);

/// Writer id used on the error channel for the backup process.
pub(crate) const BACKUP_ID: u32 = 9999;

pub(crate) fn scenario() -> Scenario {
    let mut variants = Vec::new();
    let wal_methods = [
        Method::CopyDb,
        Method::CopyDbWal,
        Method::CheckpointThenCopy,
        Method::VacuumInto,
        Method::BackupApi,
    ];
    let delete_methods = [Method::CopyDb, Method::VacuumInto, Method::BackupApi];
    for (journal, methods) in [
        (JournalMode::Wal, &wal_methods[..]),
        (JournalMode::Delete, &delete_methods[..]),
    ] {
        for &method in methods {
            let mut profile = base_profile(journal, Synchronous::Normal);
            profile.wal_autocheckpoint = 100;
            let ckpt = if journal == JournalMode::Wal {
                " wal_autocheckpoint=100"
            } else {
                ""
            };
            variants.push(Variant::new(
                "backup",
                format!("{}-{}", journal.as_str(), method.as_str()),
                format!(
                    "journal_mode={} synchronous=normal{ckpt} backup={} during_writes=yes",
                    journal.as_str(),
                    method.describe()
                ),
                profile,
                Kind::Backup(Params { method }),
            ));
        }
    }
    Scenario {
        name: "backup",
        summary: "a backup taken while a writer commits: raw copy of db, db+wal, checkpoint-then-copy, VACUUM INTO, backup API",
        claim: "002: the backup \"uses file copy which is NOT safe for SQLite\" (after `wal_checkpoint(TRUNCATE)`; \
                \"another goroutine can write during copy\", \"WAL file is NOT copied\"); replace it with `VACUUM INTO` \
                (\"atomic, consistent backups\") and verify the backup with integrity_check. 001: use the SQLite backup \
                API for online backups.",
        seeds: "001, 002",
        variants,
    }
}

pub(crate) fn run(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    let at: u64 = ctx.rng(0).random_range(ACKS.0..=ACKS.1);
    let backup = ctx.path("backup.db");
    let mut end = Ending::new("sigkill");
    end.kill_point = format!("backup after {at} acks, then SIGKILL");
    let mut run = match start(ctx, at, p.method, &backup) {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed("sigkill", e),
    };
    let backup_pid = run.pids[1];
    let finished = run
        .wait_exit(backup_pid, Instant::now() + Duration::from_secs(5))
        .is_some();
    run.stop_all();
    let t = &run.tally;
    let (start_ack, end_ack) = (t.get(word::BACKUP_ACK_START), t.get(word::BACKUP_ACK_END));
    let failed = t.get(word::BACKUP_DONE) != 1;
    end.measure("backup_us", t.get(word::BACKUP_US));
    end.measure("backup_busy_retries", t.get(word::BACKUP_RETRIES));
    end.measure("backup_failed", u64::from(failed));

    // The live database first: a SIGKILL must not have hurt it, whatever the backup did.
    let main = end.verify(ctx.db(), ctx.workload, &run.events.acked);
    if main.outcome.is_damage() || failed || !finished {
        end.measures.push(if failed || !finished {
            "backup: failed (the backup process reported an error or did not finish)".to_string()
        } else {
            "the live database itself is damaged".to_string()
        });
        end.verification = main;
        return record(ctx, Some(&run), end);
    }
    let snapshot = Snapshot::before_recovery(&backup);
    let acked_before = BTreeMap::from([(0u32, start_ack)]);
    let mut v = crate::verify::oracle::recover_and_verify(&backup, ctx.workload, &acked_before);
    end.evidence = Some((snapshot, backup.clone()));
    // Commits in the backup beyond the last one acknowledged when it ended cannot have happened
    // yet (one may be in flight: committed, not yet acknowledged).
    if v.outcome == Outcome::Intact && v.recovered_commits > end_ack + 1 {
        v.outcome = Outcome::Atomicity;
        v.detail = format!(
            "the backup holds {} commits, only {end_ack} were acknowledged when it ended",
            v.recovered_commits
        );
    }
    end.measure("backup_commits", v.recovered_commits);
    end.measure("acked_at_backup_start", start_ack);
    end.measure(
        "backup_missing_commits",
        start_ack.saturating_sub(v.recovered_commits),
    );
    end.measures.push(format!(
        "backup: acked {start_ack} at its start, {end_ack} at its end; holds {} commits; live database intact",
        v.recovered_commits
    ));
    end.expected_damage = !p.method.is_safe();
    if !v.detail.is_empty() {
        v.detail = format!("backup: {}", v.detail);
    }
    end.verification = v;
    record(ctx, Some(&run), end)
}

fn start<'a>(
    ctx: &Ctx<'a>,
    at: u64,
    method: Method,
    backup: &Path,
) -> Result<Children<'a>, String> {
    ctx.fresh_database()?;
    let mut run = Children::new(ctx.files, 1, None, ctx.opts.trial_timeout)?;
    let spec = ctx.writer_spec();
    run.spawn(&[], |env| {
        engine::writer_process(env, &spec, 1, &engine::never);
        0
    })?;
    let db = ctx.db();
    run.spawn(&[], |env| {
        backup_process(env, db, backup, method, at);
        0
    })?;
    Ok(run)
}

/// The backup process: waits for `at` acknowledged commits, takes the backup, records when.
fn backup_process(env: &Env<'_>, db: &Path, backup: &Path, method: Method, at: u64) {
    let t = env.tally;
    while env.board.total() < at {
        std::thread::sleep(Duration::from_micros(20));
    }
    t.set(word::BACKUP_ACK_START, env.board.acked(0));
    let started = Instant::now();
    let result = take_backup(env, db, backup, method);
    t.set(word::BACKUP_US, started.elapsed().as_micros() as u64);
    t.set(word::BACKUP_ACK_END, env.board.acked(0));
    match result {
        Ok(()) => t.set(word::BACKUP_DONE, 1),
        Err((code, text)) => env.sender().error(BACKUP_ID, &code, &text),
    }
}

type BackupError = (String, String);

fn sqlite_err(e: rusqlite::Error) -> BackupError {
    (code_name(&e), e.to_string())
}

fn io_err(e: std::io::Error) -> BackupError {
    ("IO".to_string(), e.to_string())
}

fn take_backup(env: &Env<'_>, db: &Path, backup: &Path, method: Method) -> Result<(), BackupError> {
    let open = || -> Result<Connection, BackupError> {
        let c = Connection::open(db).map_err(sqlite_err)?;
        c.busy_timeout(Duration::from_secs(5)).map_err(sqlite_err)?;
        Ok(c)
    };
    match method {
        Method::CopyDb => std::fs::copy(db, backup).map(drop).map_err(io_err),
        Method::CopyDbWal => {
            std::fs::copy(db, backup).map_err(io_err)?;
            let wal = with_suffix(db, "-wal");
            match std::fs::copy(&wal, with_suffix(backup, "-wal")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(e)),
                _ => Ok(()),
            }
        }
        Method::CheckpointThenCopy => {
            // As the seed's Go code: the checkpoint's answer is not looked at, only its error.
            let conn = open()?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(sqlite_err)?;
            std::fs::copy(db, backup).map(drop).map_err(io_err)
        }
        Method::VacuumInto => {
            let conn = open()?;
            conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])
                .map(drop)
                .map_err(sqlite_err)
        }
        Method::BackupApi => {
            let src = open()?;
            let dest = Connection::open(backup).map_err(sqlite_err)?;
            online_backup(env, &src, &dest)
        }
    }
}

/// `sqlite3_backup_step(-1)` copies every page under one read transaction; BUSY/LOCKED (a writer holds
/// the lock) is retried, as the documentation's example does.
fn online_backup(env: &Env<'_>, src: &Connection, dest: &Connection) -> Result<(), BackupError> {
    // SAFETY: both handles are open connections owned by this function's caller for its whole run;
    // the backup object is finished before returning.
    unsafe {
        let b = ffi::sqlite3_backup_init(
            dest.handle(),
            c"main".as_ptr(),
            src.handle(),
            c"main".as_ptr(),
        );
        if b.is_null() {
            let code = ffi::sqlite3_extended_errcode(dest.handle());
            return Err((
                crate::verify::sqlite_error::primary_name(code).to_string(),
                "sqlite3_backup_init failed".into(),
            ));
        }
        let rc = loop {
            let rc = ffi::sqlite3_backup_step(b, -1);
            if rc == ffi::SQLITE_BUSY || rc == ffi::SQLITE_LOCKED {
                env.tally.add(word::BACKUP_RETRIES, 1);
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            break rc;
        };
        let finish = ffi::sqlite3_backup_finish(b);
        if rc != ffi::SQLITE_DONE || finish != ffi::SQLITE_OK {
            let code = if rc != ffi::SQLITE_DONE { rc } else { finish };
            return Err((
                crate::verify::sqlite_error::primary_name(code).to_string(),
                format!("sqlite3_backup_step returned {rc}, finish {finish}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::engine::testing::{damaged, lab, no_lab_errors, serial};
    use crate::trial::outcome::{Outcome, Verdict};

    #[test]
    fn safe_backups_hold_a_consistent_prefix_and_a_lone_db_copy_in_wal_mode_does_not() {
        let _g = serial();
        let lab = lab(&[]);
        for v in ["wal-vacuum-into", "wal-backup-api", "delete-backup-api"] {
            let rows = lab.run("backup", v, 3);
            no_lab_errors(&rows);
            assert_eq!(damaged(&rows), 0, "{v}: {:?}", rows[0].0.detail);
            // A backup that failed or did not finish in 5 s (a loaded CI machine) has nothing to
            // check; at least one of the three must have.
            let mut checked = 0;
            for (r, m) in &rows {
                if let (Some(got), Some(acked)) =
                    (m.get("backup_commits"), m.get("acked_at_backup_start"))
                {
                    checked += 1;
                    assert!(got >= acked, "{}", r.detail);
                }
            }
            assert!(
                checked >= 1,
                "{v}: no backup finished: {:?}",
                rows[0].0.detail
            );
        }
        // The file alone misses every commit still in the WAL: caught as lost commits, expected.
        let rows = lab.run("backup", "wal-copy-db", 4);
        no_lab_errors(&rows);
        assert!(
            damaged(&rows) >= 1,
            "{:?}",
            rows.iter().map(|(r, _)| &r.detail).collect::<Vec<_>>()
        );
        for (r, _) in &rows {
            if r.outcome != Outcome::Intact {
                assert_eq!(r.verdict, Verdict::Expected);
            }
        }
    }
}
