//! Scenario `backup` (seeds 001, 002): while a writer commits, a second process takes one backup —
//! a raw copy of the database file alone, of the database and its -wal, the seed's own
//! `wal_checkpoint(TRUNCATE)` then copy, `VACUUM INTO`, or the online backup API — and the backup is
//! checked like a crashed database: integrity_check, the workload's invariant, and every commit
//! acknowledged before the backup began must be in it, with no gap (a consistent prefix).
//!
//! The `-power` variants cut the power instead (`power.rs`): the writer (WAL+FULL) and the backup
//! process (`VACUUM INTO` or the backup API into the recorded folder) run under one recording; the
//! backup process marks in the log when its backup is done (after an fsync of the backup file and
//! of the folder in the `-synced` variants). Every crash state is checked twice: the live database
//! as always, and — where the cut came after the mark — the backup file as the state left it: it
//! must exist and hold a consistent prefix with every commit acknowledged before the backup began.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::RngExt;
use rusqlite::{ffi, Connection};
use torture_workloads::{JournalMode, Synchronous};

use super::engine::{
    self, code_name, record, word, Children, Ctx, Ending, Env, Metrics, BACKUP_ID,
};
use super::{base_profile, power, Kind, Scenario, Variant};
use crate::engine::with_suffix;
use crate::faults::recorded;
use crate::trial::evidence::Snapshot;
use crate::verify::oracle::Verification;
use crate::verify::outcome::{Outcome, TrialRecord, Verdict};
use torture_workloads::Workload;

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
    /// A power cut on the recorder; `Some(true)`: the backup file and its folder are fsynced before
    /// the backup counts as done.
    pub power: Option<bool>,
}

/// Commits the writer of a `-power` variant makes; the backup starts after [`POWER_ACKS`] of them.
const POWER_COMMITS: u64 = 60;
const POWER_ACKS: (u64, u64) = (10, 40);
/// The backup's name in the recorded folder, and its mark in the recorder's log.
const POWER_BACKUP: &str = "trial.backup.db";
const MARK: &str = "backup";

/// The backup starts after K acknowledged commits, K uniform in this window: late enough that
/// checkpoints have moved data into the database file (wal_autocheckpoint=100).
const ACKS: (u64, u64) = (10, 150);

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
                Kind::Backup(Params {
                    method,
                    power: None,
                }),
            ));
        }
    }
    // Power cuts on the recorder: the live database in WAL+FULL, a safe backup with and without
    // making it durable (fsync of the file and of its folder) before calling it done.
    for (method, synced) in [
        (Method::VacuumInto, true),
        (Method::BackupApi, true),
        (Method::VacuumInto, false),
    ] {
        let mut profile = base_profile(JournalMode::Wal, Synchronous::Full);
        profile.wal_autocheckpoint = 100;
        variants.push(Variant::new(
            "backup",
            format!(
                "wal-full-{}{}-power",
                method.as_str(),
                if synced { "-synced" } else { "" }
            ),
            format!(
                "journal_mode=wal synchronous=full wal_autocheckpoint=100 backup={}{} fault=power-loss commits={POWER_COMMITS} \
                 (backup after {}-{} acks; every crash state checks the database and, once the backup is done, the backup)",
                method.describe(),
                if synced {
                    ", then fsync of the backup and of its folder"
                } else {
                    ", done when it returns (no fsync of its folder)"
                },
                POWER_ACKS.0,
                POWER_ACKS.1
            ),
            profile,
            Kind::Backup(Params {
                method,
                power: Some(synced),
            }),
        ));
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
    if let Some(synced) = p.power {
        return run_power_loss(ctx, p.method, synced);
    }
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

/// The writer and the backup process under one recording; every crash state checks the live
/// database and, once the backup was marked done, the backup file.
fn run_power_loss(ctx: &Ctx<'_>, method: Method, synced: bool) -> (TrialRecord, Metrics) {
    let at: u64 = ctx.rng(0).random_range(POWER_ACKS.0..=POWER_ACKS.1);
    let mut rec = match power::Recording::new(ctx, 1) {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed(power::FAULT, e),
    };
    let mut end = Ending::new(power::FAULT);
    let (db, backup) = (rec.db.clone(), rec.path(POWER_BACKUP));
    let folder = rec.plan.dir.clone();
    // The backup process says `done` too: the recording ends when both have.
    rec.run.done_reporters = 2;
    let spawned = rec
        .spawn_writers(&ctx.writer_spec(), 1, 1, POWER_COMMITS)
        .and_then(|()| {
            rec.spawn(1, |env, ack| {
                backup_process(env, &db, &backup, method, at);
                if env.tally.get(word::BACKUP_DONE) == 1 {
                    let durable = !synced || sync_file_and_folder(&backup, &folder).is_ok();
                    if durable {
                        recorded::log_mark(ack, MARK, env.tally.get(word::BACKUP_ACK_START));
                    } else {
                        env.sender().error(
                            BACKUP_ID,
                            "IO",
                            "fsync of the backup or its folder failed",
                        );
                    }
                }
                env.sender().done(BACKUP_ID);
            })
        });
    if let Err(e) = spawned {
        end.setup_error = Some(e);
    }
    let tally = &ctx.files.tally;
    let workload = ctx.workload;
    let documented = ctx.opts.faults.hardware_as_documented();
    let (mut states_with_backup, mut backup_damaged) = (0u64, 0u64);
    let mut check_backup =
        |scratch: &Path, state: &torture_preload::CrashState, v: Verification, verdict: Verdict| {
            let Some(start_ack) = state
                .acks
                .all()
                .find(|(w, _)| matches!(w, torture_preload::Writer::Id(id) if id == MARK))
                .map(|(_, n)| n)
            else {
                // The cut came before the backup was done: nothing was promised of it.
                return (v, verdict);
            };
            states_with_backup += 1;
            let b = check_backup_file(
                &scratch.join(POWER_BACKUP),
                workload,
                start_ack,
                tally.get(word::BACKUP_ACK_END),
            );
            if !b.outcome.is_damage() {
                return (v, verdict);
            }
            backup_damaged += 1;
            if v.outcome.is_damage() {
                // The live database's own damage comes first.
                return (v, verdict);
            }
            // Synced file and folder on a disk that keeps its promises: the backup must be there.
            let backup_verdict = if synced && documented {
                Verdict::Violation
            } else {
                Verdict::Expected
            };
            (b, backup_verdict)
        };
    let run = rec.finish_and_check_with(ctx, &mut end, Some(&mut check_backup));
    end.measure("states_with_a_done_backup", states_with_backup);
    end.measure("states_with_a_damaged_backup", backup_damaged);
    end.measures.push(format!(
        "backup: done at {} of the crash states, damaged at {backup_damaged}; acked {} at its start, {} at its end",
        states_with_backup,
        tally.get(word::BACKUP_ACK_START),
        tally.get(word::BACKUP_ACK_END)
    ));
    if end.verification.outcome != Outcome::Intact {
        // The worst state's backup as the state left it (`power.rs` wrote that state last).
        for suffix in ["", "-journal", "-wal"] {
            let name = format!("{POWER_BACKUP}{suffix}");
            let b = ctx.files.dir.join("state").join(&name);
            if b.is_file() {
                end.extra_evidence.push((name, b));
            }
        }
    }
    if tally.get(word::BACKUP_DONE) != 1 && end.setup_error.is_none() {
        end.setup_error = Some("the backup process did not finish its backup".into());
    }
    record(ctx, Some(&run), end)
}

/// An application making its backup durable: fsync of the file, then of the folder that names it.
fn sync_file_and_folder(file: &Path, folder: &Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    std::fs::File::open(folder)?.sync_all()
}

/// A backup file as a crash state left it: it must open, pass the oracle with every commit
/// acknowledged when the backup began, and hold nothing acknowledged after it ended (+1 in flight).
fn check_backup_file(
    backup: &Path,
    workload: Workload,
    start_ack: u64,
    end_ack: u64,
) -> Verification {
    if !backup.exists() {
        return Verification {
            outcome: Outcome::OpenFailed,
            detail:
                "backup: done before the cut, missing after it (its folder entry was not durable)"
                    .into(),
            recovered_commits: 0,
        };
    }
    let mut v = crate::verify::oracle::recover_and_verify(
        backup,
        workload,
        &BTreeMap::from([(0u32, start_ack)]),
    );
    if v.outcome == Outcome::Intact && v.recovered_commits > end_ack + 1 {
        v.outcome = Outcome::Atomicity;
        v.detail = format!(
            "the backup holds {} commits, only {end_ack} were acknowledged when it ended",
            v.recovered_commits
        );
    }
    if !v.detail.is_empty() {
        v.detail = format!("backup: {}", v.detail);
    }
    v
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
    use crate::verify::outcome::{Outcome, Verdict};

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

    #[test]
    fn a_backup_made_durable_survives_every_power_cut_after_it() {
        let _g = serial();
        let lab = lab(&[]);
        for v in [
            "wal-full-vacuum-into-synced-power",
            "wal-full-backup-api-synced-power",
        ] {
            let rows = lab.run("backup", v, 2);
            no_lab_errors(&rows);
            assert_eq!(damaged(&rows), 0, "{v}: {:?}", rows[0].0.detail);
            for (r, m) in &rows {
                assert_eq!((r.fault.as_str(), r.verdict), ("power-loss", Verdict::Ok));
                assert_eq!(r.damaged_states, 0, "{}", r.detail);
                // The backup file itself was checked, in the states cut after it was done.
                assert!(m["states_with_a_done_backup"] > 0, "{v}: {}", r.detail);
                assert_eq!(m["states_with_a_damaged_backup"], 0, "{}", r.detail);
            }
        }
    }

    #[test]
    fn a_vacuum_into_backup_whose_folder_is_not_synced_can_roll_back_to_nothing() {
        let _g = serial();
        let lab = lab(&[]);
        // VACUUM INTO syncs the file but not the folder: under the strict model the unlink of the
        // backup's journal is not durable, the journal comes back hot and rolls the backup back.
        let rows = lab.run("backup", "wal-full-vacuum-into-power", 3);
        no_lab_errors(&rows);
        assert!(damaged(&rows) > 0, "{:?}", rows[0].0.detail);
        for (r, m) in &rows {
            if r.outcome.is_damage() {
                assert_eq!(r.verdict, Verdict::Expected, "{}", r.detail);
                assert!(m["states_with_a_damaged_backup"] > 0, "{}", r.detail);
                assert!(r.detail.contains("backup: "), "{}", r.detail);
            }
        }
    }
}
