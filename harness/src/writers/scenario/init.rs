//! Scenario `wal-init` (seed 003): eight threads, or eight processes, start at the same instant on a
//! database that does not exist yet. Each serves three "requests" the way the seed's FastAPI app did:
//! open a connection, `PRAGMA journal_mode=WAL`, `CREATE TABLE IF NOT EXISTS`, one transaction,
//! close. Counts failures by phase and result code, pragmas that answered another mode without an
//! error (a silent fallback), and checks the database after. busy_timeout is set before the pragma,
//! after it, or not at all; the seed's proposed fix initialises the database once before the workers
//! start.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::engine::{
    code_name, header_says_wal, primary, record, word, Children, Ctx, Ending, Env, Metrics,
};
use super::{base_profile, Kind, Scenario, Variant};
use crate::verify::outcome::TrialRecord;
use crate::verify::sqlite_error;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// No busy_timeout at all: a lock held by another connection fails at once.
    None,
    /// `busy_timeout=5000` right after open, before the pragma (what Python's `sqlite3.connect`,
    /// which the seed used, does by default with `timeout=5.0`).
    Before,
    /// `busy_timeout=5000` only after the pragma: the pragma itself runs without one.
    After,
}

pub(crate) struct Params {
    pub processes: u32,
    pub threads: u32,
    pub busy: Busy,
    /// The fix: the slot creates the database, switches it to WAL and creates the schema before the
    /// workers start (they still run the same statements, which are then no-ops).
    pub init_once: bool,
}

const WORKERS: u32 = 8;
const REQUESTS: u64 = 3;

/// Phases of a request, for counting failures (`word::PHASE + phase * 32 + code`).
const PHASES: [&str; 4] = ["open", "pragma", "create", "txn"];

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS txn(writer INTEGER NOT NULL, seq INTEGER NOT NULL, \
                      rows INTEGER NOT NULL, PRIMARY KEY(writer, seq)) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS item(id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, \
                      seq INTEGER NOT NULL, payload BLOB NOT NULL, digest INTEGER NOT NULL);
     CREATE INDEX IF NOT EXISTS item_txn ON item(writer, seq);";

pub(crate) fn scenario() -> Scenario {
    let mut variants = Vec::new();
    for (processes, threads, shape) in [(1, WORKERS, "threads8"), (WORKERS, 1, "procs8")] {
        for (busy, init_once, name) in [
            (Busy::None, false, "nobusy"),
            (Busy::After, false, "busy-after"),
            (Busy::Before, false, "busy-before"),
            (Busy::None, true, "init-once-nobusy"),
            (Busy::Before, true, "init-once-busy-before"),
        ] {
            let mut profile = base_profile(
                torture_workloads::JournalMode::Wal,
                torture_workloads::Synchronous::Full,
            );
            profile.processes = processes;
            profile.connections = threads;
            profile.busy_timeout_ms = if busy == Busy::None { 0 } else { 5000 };
            let busy_text = match busy {
                Busy::None => "none",
                Busy::Before => "5000ms before the pragma",
                Busy::After => "5000ms after the pragma",
            };
            variants.push(Variant::new(
                "wal-init",
                format!("{shape}-{name}"),
                format!(
                    "processes={processes} threads={threads} requests_per_worker={REQUESTS} \
                     (open, PRAGMA journal_mode=WAL, CREATE TABLE IF NOT EXISTS, 1 txn, close) \
                     busy_timeout={busy_text} database={}",
                    if init_once {
                        "created, WAL and schema once before the workers start"
                    } else {
                        "does not exist when the workers start"
                    }
                ),
                profile,
                Kind::Init(Params {
                    processes,
                    threads,
                    busy,
                    init_once,
                }),
            ));
        }
    }
    Scenario {
        name: "wal-init",
        summary: "8 threads or processes open a fresh database at once: PRAGMA journal_mode=WAL + CREATE TABLE IF NOT EXISTS per request",
        claim: "003: when several threads open a new database at once, each running `PRAGMA journal_mode = WAL` \
                and `CREATE TABLE IF NOT EXISTS`, \"SQLite's WAL file gets corrupted\": `disk I/O error` and \
                `database disk image is malformed`. Proposed fixes: initialise the databases once before \
                requests are served; a large busy_timeout.",
        seeds: "003",
        variants,
    }
}

/// Whether this worker already reported its pragmas (slot 4 of `seen`); marks it reported.
fn seen_ready(seen: &mut [bool; 5]) -> bool {
    std::mem::replace(&mut seen[4], true)
}

/// One request: open, (busy_timeout), pragma, (busy_timeout), schema, one transaction, close.
/// Returns true when the transaction committed.
fn request(
    env: &Env<'_>,
    db: &Path,
    p: &Params,
    writer: u32,
    seq: u64,
    rng: &mut rand_chacha::ChaCha8Rng,
    seen: &mut [bool; 5],
) -> bool {
    let fail = |phase: usize, e: &rusqlite::Error, seen: &mut [bool; 5]| {
        env.tally.add(word::PHASE + phase * 32 + primary(e), 1);
        if sqlite_error::is_busy(e) {
            env.board.record_busy();
        }
        if !seen[phase] {
            seen[phase] = true;
            env.sender()
                .error(writer, &code_name(e), &format!("{}: {e}", PHASES[phase]));
        }
    };
    let busy = Duration::from_millis(5000);
    let mut conn = match Connection::open(db) {
        Ok(c) => c,
        Err(e) => {
            fail(0, &e, seen);
            return false;
        }
    };
    if p.busy == Busy::Before {
        let _ = conn.busy_timeout(busy);
    }
    let answered = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0));
    let first_answer = answered.is_ok() && !seen_ready(seen);
    if let (Ok(mode), true) = (&answered, first_answer) {
        // The pragmas in force, once per worker, like a core writer's `ready` line.
        let level: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap_or(-1);
        env.sender().ready(
            writer,
            &torture_workloads::InForce {
                journal_mode: mode.to_ascii_lowercase(),
                synchronous: torture_workloads::Synchronous::from_level(level)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| level.to_string()),
                locking_mode: "normal".into(),
                mmap_size: 0,
            },
        );
    }
    match answered {
        Ok(mode) if mode.eq_ignore_ascii_case("wal") => {}
        Ok(mode) => {
            env.tally.add(word::FALLBACK, 1);
            env.sender().error(
                writer,
                "SQLITE_FALLBACK",
                &format!("PRAGMA journal_mode=WAL answered {mode}"),
            );
        }
        Err(e) => {
            fail(1, &e, seen);
            return false;
        }
    }
    if p.busy == Busy::After {
        let _ = conn.busy_timeout(busy);
    }
    if let Err(e) = conn.execute_batch(SCHEMA) {
        fail(2, &e, seen);
        return false;
    }
    match torture_workloads::Workload::Inserts.run_transaction(&mut conn, writer, seq, rng) {
        Ok(()) => {
            env.ack(writer, seq);
            env.tally.add(word::REQUESTS_OK, 1);
        }
        Err(e) => {
            fail(3, &e, seen);
            return false;
        }
    }
    if let Err((_, e)) = conn.close() {
        fail(0, &e, seen);
    }
    true
}

fn worker(env: &Env<'_>, db: &Path, p: &Params, go: BorrowedFd<'_>, first: u32, seed: u64) {
    let one = |writer: u32| {
        // Everyone blocks here until the slot closes the write end: they start at the same instant.
        env.tally.add(word::AT_START, 1);
        let _ = nix::unistd::read(go, &mut [0u8; 1]);
        let mut rng =
            crate::seed::rng_for(seed, crate::seed::WRITER_STREAM_BASE + u64::from(writer));
        let mut seen = [false; 5];
        let mut seq = 1;
        for _ in 0..REQUESTS {
            if request(env, db, p, writer, seq, &mut rng, &mut seen) {
                seq += 1;
            }
        }
        env.sender().done(writer);
    };
    if p.threads == 1 {
        one(first);
    } else {
        std::thread::scope(|s| {
            for t in 0..p.threads {
                let one = &one;
                s.spawn(move || one(first + t));
            }
        });
    }
}

pub(crate) fn run(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    let mut end = Ending::new("none");
    let workers = p.processes * p.threads;
    let started = (|| -> Result<Children<'_>, String> {
        if p.init_once {
            ctx.fresh_database()?;
        } else {
            ctx.clear();
        }
        let mut run = Children::new(ctx.files, workers, None, ctx.opts.trial_timeout)?;
        let (go_r, go_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let db = ctx.db();
        for proc in 0..p.processes {
            let go = go_r.as_fd();
            run.spawn(&[go_w.as_raw_fd()], |env| {
                worker(env, db, p, go, proc * p.threads, ctx.seed);
                0
            })?;
        }
        // The start line: every worker has arrived (and a moment later sits in its read), then go.
        run.wait_until(Instant::now() + Duration::from_secs(2), |r| {
            r.tally.get(word::AT_START) >= u64::from(workers)
        });
        run.pause(Duration::from_micros(500));
        drop(go_w);
        Ok(run)
    })();
    let mut run = match started {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed("none", e),
    };
    let finished = run.wait_until(Instant::now() + Duration::from_secs(8), |r| {
        r.writers_done()
    });
    end.kill_point = if finished {
        "none (the workers finished and closed)".into()
    } else {
        "none (workers still running after 8s: SIGKILLed)".into()
    };
    // Let them exit on their own; the SIGKILL only reaches one still running.
    for pid in run.pids.clone() {
        run.wait_exit(pid, Instant::now() + Duration::from_secs(1));
    }
    run.stop_all();
    let mut failed = Vec::new();
    for (i, phase) in PHASES.iter().enumerate() {
        for (code, n) in run.tally.codes(word::PHASE + i * 32) {
            end.measure(&format!("{phase}:{code}"), n);
            failed.push(format!("{phase}:{code}={n}"));
        }
    }
    let ok = run.tally.get(word::REQUESTS_OK);
    let fallback = run.tally.get(word::FALLBACK);
    end.measure("requests_ok", ok);
    end.measure(
        "requests_failed",
        u64::from(workers) * REQUESTS - ok.min(u64::from(workers) * REQUESTS),
    );
    end.measure("silent_fallback", fallback);
    let wal = header_says_wal(ctx.db());
    end.measure("db_not_wal_after", u64::from(wal == Some(false)));
    let severe = failed
        .iter()
        .any(|f| f.contains("IOERR") || f.contains("CORRUPT") || f.contains("NOTADB"));
    end.measure("trials_with_ioerr_or_corrupt", u64::from(severe));
    end.measures.push(format!(
        "requests ok {ok}/{}; failed: {}; pragma answered another mode: {fallback}; database header after: {}",
        u64::from(workers) * REQUESTS,
        if failed.is_empty() { "none".to_string() } else { failed.join(" ") },
        match wal {
            Some(true) => "wal",
            Some(false) => "rollback (not wal)",
            None => "missing",
        }
    ));
    end.verification = end.verify(ctx.db(), ctx.workload, &run.events.acked);
    record(ctx, Some(&run), end)
}

#[cfg(test)]
mod tests {
    use super::super::engine::testing::{damaged, lab, no_lab_errors, serial};

    #[test]
    fn concurrent_wal_initialisation_never_corrupts_and_initialising_once_fails_no_request() {
        let _g = serial();
        let lab = lab(&[]);
        for v in ["threads8-nobusy", "procs8-busy-after"] {
            let rows = lab.run("wal-init", v, 3);
            no_lab_errors(&rows);
            assert_eq!(damaged(&rows), 0, "{v}");
            for (r, m) in &rows {
                assert_eq!(m["requests_ok"] + m["requests_failed"], 24, "{}", r.detail);
                assert_eq!(m["db_not_wal_after"], 0, "{}", r.detail);
                assert_eq!(r.fault, "none");
            }
        }
        for v in ["procs8-init-once-nobusy", "threads8-init-once-busy-before"] {
            let rows = lab.run("wal-init", v, 3);
            no_lab_errors(&rows);
            assert_eq!(damaged(&rows), 0, "{v}");
            for (r, m) in &rows {
                assert_eq!(m["requests_ok"], 24, "{v}: {}", r.detail);
                assert_eq!(r.journal_mode, "wal");
            }
        }
    }
}
