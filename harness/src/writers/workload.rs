//! The writer: what runs in a forked child. It opens the database only after the fork, applies the
//! profile, reads the pragmas back, and runs the workload until it is killed, acknowledging each
//! commit to its slot only after COMMIT returned.

use std::os::fd::RawFd;

use std::path::Path;

use torture_workloads::{Profile, Workload};

use crate::faults::recorded::{self, RecordingPlan};
use crate::seed;
use rusqlite::Connection;

use crate::faults::CrashAt;
use crate::process::exit_now;
use crate::trial::ack::{AckBoard, AckSender};
use crate::trial::children::Env;
use crate::verify::sqlite_error;

/// Everything a writer process needs, fixed before the fork.
pub struct WriterPlan<'a> {
    pub db: &'a Path,
    pub profile: &'a Profile,
    pub workload: Workload,
    pub trial_seed: u64,
    pub max_commits: u64,
    pub board: &'a AckBoard,
    /// After the last commit, wait to be killed instead of closing (a bounded workload that ends in
    /// a crash, not a clean shutdown that would checkpoint).
    pub hold_when_done: bool,
    /// Count non-busy errors (injected I/O errors) and go on, as an application would.
    pub carry_on_errors: bool,
    /// Op-indexed faults on the file-operation recorder: started in the child right after the fork, and
    /// every commit acknowledged in its log too.
    pub recording: Option<&'a RecordingPlan>,
}

/// Makes the database every trial of a profile starts from: schema, starting rows, page size and
/// (for WAL) the persistent journal mode, closed cleanly. Trials copy it, which is cheaper than
/// creating a database and means each trial starts from a database that already exists.
pub fn make_starting_database(
    path: &Path,
    profile: &Profile,
    workload: Workload,
) -> rusqlite::Result<()> {
    for suffix in crate::engine::SIDECARS {
        let _ = std::fs::remove_file(crate::engine::with_suffix(path, suffix));
    }
    let conn = crate::engine::open(path, rusqlite::OpenFlags::default(), None)?;
    profile.prepare_new_database(&conn)?;
    workload.create_schema(&conn)?;
    conn.close().map_err(|(_, e)| e)
}

/// Runs writer process `process_index` (its threads are writers `process_index * connections + t`)
/// and exits the process. Never returns: a forked child must not unwind into its parent's code.
pub fn run_writer_process(plan: &WriterPlan<'_>, process_index: u32, env: &Env<'_>) -> ! {
    let ack = env.ack;
    let log_ack = match plan
        .recording
        .map(|r| recorded::start_in_writer(r, process_index))
    {
        None => None,
        Some(Ok(fd)) => Some(fd),
        Some(Err(e)) => {
            AckSender::new(ack).error(0, "RECORDER_SETUP", &e);
            exit_now(0);
        }
    };
    let conns = plan.profile.connections;
    let first = process_index * conns;
    if conns == 1 {
        run_connection(plan, first, env, log_ack);
    } else {
        std::thread::scope(|s| {
            for t in 0..conns {
                s.spawn(move || run_connection(plan, first + t, env, log_ack));
            }
        });
    }
    if plan.hold_when_done {
        // The slot kills us; an open connection must not be closed (and checkpointed) first.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    exit_now(0)
}

/// One connection's life: open, configure, then commit until killed or capped — through the one
/// writer loop the scenarios use too.
fn run_connection(plan: &WriterPlan<'_>, writer: u32, env: &Env<'_>, log_ack: Option<RawFd>) {
    let spec = WriterSpec {
        db: plan.db,
        profile: plan.profile,
        workload: plan.workload,
        trial_seed: plan.trial_seed,
        id: writer,
        max_commits: plan.max_commits,
        crash_at: None,
    };
    if let Some(mut conn) = open_writer(env, &spec) {
        let on_error = if plan.carry_on_errors {
            OnError::Count
        } else {
            OnError::Report
        };
        commit_loop_with(env, &spec, &mut conn, 1, &never, on_error, log_ack);
    }
    env.sender().done(writer);
}

/// Never stop: the writer runs until it is killed or capped.
pub fn never() -> bool {
    false
}

/// One acknowledging writer's settings (a connection of a writer process).
#[derive(Clone, Copy)]
pub struct WriterSpec<'a> {
    pub db: &'a Path,
    pub profile: &'a Profile,
    pub workload: Workload,
    pub trial_seed: u64,
    pub id: u32,
    pub max_commits: u64,
    /// Open through the fault shim and SIGKILL this process just before this operation (one writer
    /// per process: the shim's configuration is per process).
    pub crash_at: Option<CrashAt>,
}

/// Opens the database, applies the profile (retrying while another connection holds the lock), reads
/// the pragmas back and reports them. None (after reporting the error) when that failed.
pub fn open_writer(env: &Env<'_>, w: &WriterSpec<'_>) -> Option<Connection> {
    let mut tx = env.sender();
    if let Some(c) = w.crash_at {
        let cfg = crate::faults::FaultConfig {
            crash_at: Some(c),
            ..Default::default()
        };
        if let Err(e) = crate::faults::configure(cfg) {
            tx.error(w.id, "FAULT_SETUP", &e.to_string());
            return None;
        }
    }
    // Through the lab's engine (SQLCipher gets its key), on the fault shim when asked.
    let vfs = w.crash_at.is_some().then_some(crate::faults::VFS_NAME);
    let opened = crate::engine::open(w.db, rusqlite::OpenFlags::default(), vfs);
    let conn = match opened {
        Ok(c) => c,
        Err(e) => {
            tx.error(w.id, &sqlite_error::extended_name(&e), &e.to_string());
            return None;
        }
    };
    let mut tries = 0u32;
    let in_force = loop {
        match w.profile.apply(&conn) {
            Ok(f) => break f,
            // Several connections switching modes at once: the losers are told BUSY.
            Err(e) if sqlite_error::is_busy(&e) && tries < 100_000 => {
                tries += 1;
                env.board.record_busy();
                std::thread::yield_now();
            }
            Err(e) => {
                tx.error(w.id, &sqlite_error::extended_name(&e), &e.to_string());
                return None;
            }
        }
    };
    tx.ready(w.id, &in_force);
    Some(conn)
}

/// Commits transactions `first..` until `stop()` says so, the cap, or 100 non-busy failures in a row.
/// Each commit is acknowledged after COMMIT returned. Busy failures are counted and retried (the
/// same `seq`, as an application retries a request); other failures are counted, the first three
/// reported. Returns the next `seq`.
pub fn commit_loop(
    env: &Env<'_>,
    w: &WriterSpec<'_>,
    conn: &mut Connection,
    first: u64,
    stop: &dyn Fn() -> bool,
) -> u64 {
    commit_loop_with(env, w, conn, first, stop, OnError::Report, None)
}

/// What a writer does with a failed transaction that is not busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Report the first three (`error` lines: the trial's lab problems) and go on.
    Report,
    /// An injected fault: count it (`io_errors`) and go on, as an application retries.
    Count,
}

/// The one commit loop of every writer, the built-in workload's and the scenarios': transactions
/// `first..` until `stop()`, the cap, or 100 non-busy failures in a row; each commit acknowledged
/// after COMMIT returned (in the recorder's log first when `log_ack`). Busy failures are counted and
/// retried with the same `seq`; other failures follow `on_error`. Returns the next `seq`.
pub fn commit_loop_with(
    env: &Env<'_>,
    w: &WriterSpec<'_>,
    conn: &mut Connection,
    first: u64,
    stop: &dyn Fn() -> bool,
    on_error: OnError,
    log_ack: Option<RawFd>,
) -> u64 {
    let mut tx = env.sender();
    let mut rng = seed::rng_for(w.trial_seed, seed::WRITER_STREAM_BASE + u64::from(w.id));
    let mut seq = first;
    let mut failures_in_a_row = 0;
    let mut reported = 0;
    while seq <= w.max_commits && !stop() {
        match w.workload.run_transaction(conn, w.id, seq, &mut rng) {
            Ok(()) => {
                if let Some(log_fd) = log_ack {
                    recorded::log_ack(log_fd, w.id, seq);
                }
                env.ack(w.id, seq);
                seq += 1;
                failures_in_a_row = 0;
            }
            Err(e) => {
                env.tally.fail(&e);
                if sqlite_error::is_busy(&e) {
                    env.board.record_busy();
                    std::thread::yield_now();
                    continue;
                }
                match on_error {
                    OnError::Count => env.board.record_io_error(),
                    OnError::Report if reported < 3 => {
                        reported += 1;
                        tx.error(w.id, &sqlite_error::extended_name(&e), &e.to_string());
                    }
                    OnError::Report => {}
                }
                if sqlite_error::primary(&e) == rusqlite::ffi::SQLITE_CONSTRAINT as usize {
                    // Only our own `(writer, seq)` row can collide: an earlier attempt whose COMMIT
                    // reported an error did land. Not acknowledged (the application was told it
                    // failed), but present, so the next transaction takes the next number.
                    seq += 1;
                }
                failures_in_a_row += 1;
                if failures_in_a_row >= 100 {
                    break;
                }
            }
        }
    }
    seq
}

/// A writer process: `threads` connections (writers `first..first+threads`), each committing until
/// killed or `stop()`. Returns when every connection has finished.
pub fn writer_process(
    env: &Env<'_>,
    spec: &WriterSpec<'_>,
    threads: u32,
    stop: &(dyn Fn() -> bool + Sync),
) {
    let one = |id: u32| {
        let w = WriterSpec { id, ..*spec };
        if let Some(mut conn) = open_writer(env, &w) {
            commit_loop(env, &w, &mut conn, 1, stop);
        }
        env.sender().done(id);
    };
    if threads == 1 {
        one(spec.id);
    } else {
        std::thread::scope(|s| {
            for t in 0..threads {
                let one = &one;
                s.spawn(move || one(spec.id + t));
            }
        });
    }
}
