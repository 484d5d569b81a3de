//! One `torture exec --fault …` trial: record once, crash everywhere. The program runs once under
//! the file-operation recorder (`libtorture_preload.so`), to its end or to the trial's kill time;
//! every distinct crash state of that recording is rebuilt, checked with exec's own check
//! (`check::verify`: integrity_check, the acks made before the cut, `--verify-sql`,
//! `--recovered-sql`) and judged against SQLite's documented matrix. The trial's row is its worst
//! state, with the counts in `detail`; every state is a row of `OUT/crash-states.csv`
//! (`states.rs`). See `docs/exec-faults.md`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use torture_preload::{
    build_state, read_log, snapshot, Coverage, CrashState, KeyedState, Log, OpKind, Variant, Writer,
};

use super::check::{self, Check, CheckEnv, SqliteSeen};
use super::child::{self, End, Launch, Run, Stop};
use super::fault::ExecFault;
use super::judge::{self, Causes};
use super::states::{self, StateRow};
use super::trial::{copy_seed, journal_mode};
use super::{Engine, ExecOptions};
use crate::faults::kill_point::{KillPoint, KillPolicy};
use crate::faults::preload::{self as recorder, RecorderEnv};
use crate::faults::recorded::{sweep, CrashStateCheck, Judged, Sweep, WorstRank};
use crate::options::RunOptions;
use crate::seed;
use crate::trial::children::SlotFiles;
use crate::verify::outcome::{Finished, Outcome, TrialRecord, Verdict};
use crate::verify::verdict;

/// What one recorded run of the program left.
pub(crate) struct Recording {
    pub run: Run,
    pub log: Log,
    pub start: torture_preload::Snapshot,
    /// Where the stop came from, for the row: `end` or `t=…us`.
    pub stop: String,
}

/// Who the recorded run is for: the trial's seed and name, the injected I/O error (if any), the
/// lab's descriptors the program must not inherit.
pub(crate) struct RunFor<'a> {
    pub trial_seed: u64,
    pub trial: &'a str,
    pub fail_at: Option<String>,
    pub close_fds: &'a [std::os::fd::RawFd],
}

/// Runs the program once under the recorder in `db_dir` (already prepared).
pub(crate) fn record_run(
    exec: &ExecOptions,
    db_dir: &Path,
    work: &Path,
    stop: Stop,
    who: RunFor<'_>,
) -> Result<Recording, String> {
    let RunFor {
        trial_seed,
        trial,
        fail_at,
        close_fds,
    } = who;
    let library = recorder::library()?;
    let db = db_dir.join(exec.db_file_name());
    let start = snapshot(db_dir).map_err(|e| format!("snapshot of {}: {e}", db_dir.display()))?;
    let log_path = recorder::fresh_log(work);
    let env = RecorderEnv {
        library,
        dir: db_dir.to_path_buf(),
        log: log_path.clone(),
        seed: trial_seed,
        fail_at,
    };
    let run = {
        let _guard = env.apply();
        child::run(
            &Launch {
                command: &exec.command,
                shell: exec.shell,
                db: &db,
                seed: trial_seed,
                trial: trial.to_string(),
                stderr: &work.join("stderr.txt"),
                close_fds,
                key: exec.key.as_deref(),
                // Every instance under the one recorder: one total order, one power cut for all.
                instances: exec.instances,
                kill_one: None,
                ack_log: Some(&log_path),
            },
            stop,
            None,
        )?
    };
    let log = match read_log(&log_path) {
        Ok(l) => l,
        // No process loaded the recorder: no log at all.
        Err(_) if !log_path.exists() => Log::default(),
        Err(e) => return Err(format!("reading the recorder's log: {e:?}")),
    };
    let stop = match stop {
        Stop::Calibrate { .. } => "end".to_string(),
        Stop::At(t) | Stop::Anchored { at: t, .. } => format!("t={}us", t.as_micros()),
        Stop::AfterAcks { acks, .. } => format!("after {acks} acks"),
    };
    Ok(Recording {
        run,
        log,
        start,
        stop,
    })
}

/// Processes seen (distinct pids; an `exec` keeps its pid; the lab's own ack records are pid 0).
fn pids(log: &Log) -> usize {
    log.ops
        .iter()
        .map(|o| o.pid)
        .filter(|&p| p != 0)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// How long a probe lets a program run before it may judge that it has seen enough of a program
/// that does not exit (a server); `--calibrate-for` fixes the span instead.
const PROBE_SPAN: Duration = Duration::from_secs(5);

/// Why a recording holds nothing to crash: one line for the user (exit 2 before a run). A program
/// that failed before its first write (a bad flag, a missing module) is told its exit status and
/// stderr (`work/stderr.txt`), not to take a `{db}` it may well have had (issue 20 R18); one that
/// was given `{db}` and exited cleanly without writing is told it had it.
pub(crate) fn coverage_problem(
    rec: &Recording,
    db: &Path,
    exec: &ExecOptions,
    work: &Path,
) -> Option<String> {
    let log = &rec.log;
    let failed = match rec.run.end {
        End::Exited(code) if code != 0 => Some(format!("exited with status {code}")),
        End::Signaled(sig) => Some(format!("died of signal {sig}")),
        _ => None,
    };
    let said = || {
        let stderr = check::tail(
            &std::fs::read(work.join("stderr.txt")).unwrap_or_default(),
            300,
        );
        if stderr.is_empty() {
            "(its stderr is empty)".to_string()
        } else {
            format!("its stderr: {stderr}")
        }
    };
    if let (Some(how), Coverage::NoFileOps) = (&failed, log.coverage()) {
        return Some(format!(
            "the program {how} before it wrote a file in {}: {}",
            db.parent().map_or(db, |p| p).display(),
            said()
        ));
    }
    let given_db = exec.command.iter().any(|a| a.contains("{db}"));
    match log.coverage() {
        // The recorder never loaded: its writes were unseen, not absent (a static binary that
        // failed is still one the recorder cannot follow); how it ended is added.
        Coverage::NoProcessSeen => Some(format!(
            "the program shows no file operations to the recorder: no process of it loaded libtorture_preload.so \
             (a static binary, or Go without cgo, makes its I/O without libc's functions); power-loss, kill-at-op, \
             io-error and disk-full need a dynamically linked program — run it with plain `torture exec` (SIGKILL){}",
            failed.as_ref().map_or(String::new(), |how| format!("; it {how}: {}", said()))
        )),
        Coverage::NoFileOps if given_db => Some(format!(
            "the program loaded the recorder and exited without writing a file in {}, though its command line gave it the database path as {{db}} ({}): make it write its database at that path",
            db.parent().map_or(db, |p| p).display(),
            db.display()
        )),
        Coverage::NoFileOps => Some(format!(
            "the program loaded the recorder but wrote no file in {}: give it the database path as {{db}} or TORTURE_DB",
            db.parent().map_or(db, |p| p).display()
        )),
        Coverage::FileOps => None,
    }
}

/// What the recorder could not follow, for the row's detail: mmap writes, unsupported calls.
fn blind_spots(log: &Log) -> Vec<String> {
    let mut out = Vec::new();
    let mmaps: Vec<String> = log
        .mmap_writes()
        .filter_map(|o| match &o.kind {
            OpKind::MmapWrite { path, .. } => Some(path.display().to_string()),
            _ => None,
        })
        .collect();
    if !mmaps.is_empty() {
        out.push(format!(
            "NOT MODELLED: {} shared writable mapping(s) of {} — writes through them are not in the crash states",
            mmaps.len(),
            mmaps.join(", ")
        ));
    }
    let mut unsupported: Vec<&str> = log.unsupported().collect();
    unsupported.dedup();
    for u in unsupported.into_iter().take(3) {
        out.push(format!("recorder: {u}"));
    }
    out
}

/// Runs recorded exec trial `index` and returns its row (the worst crash state, with the counts)
/// and the rows of its crash states (`crash-states.csv`, written by the parent): prepare and
/// record the run, read the program's settings from it, check its crash states, then the row and
/// the evidence.
pub fn run_trial(
    run: &RunOptions,
    exec: &ExecOptions,
    fault: &ExecFault,
    index: u64,
    files: &SlotFiles,
    sqlite_version: &str,
) -> Finished {
    let started = Instant::now();
    let trial_seed = seed::trial_seed(run.seed, index);
    let dir = files.dir.join(format!("exec-{index}"));
    let profile = exec.profile_name();
    let mut record = blank_row(index, trial_seed, &profile, fault, sqlite_version, started);
    let (rec, fail_at) = match record_trial(run, exec, fault, files, trial_seed, index, &dir) {
        Ok(r) => r,
        Err(e) => {
            record.detail = e;
            return finish(record, started, &dir).into();
        }
    };
    settings_from_recording(exec, &rec, &mut record);
    let db = dir.join("db").join(exec.db_file_name());
    if let Some(why) = coverage_problem(&rec, &db, exec, &dir) {
        record.kill_point = rec.stop;
        // The probe run proved the program shows its writes to the recorder; a cut that fell
        // before its first one (a slow start, a loaded machine) leaves the folder as it was: nothing
        // was acknowledged, nothing can be lost. As `torture exec` says for an early SIGKILL.
        if rec.run.end == End::Killed && rec.run.said.max_ack == 0 && rec.run.said.ack_lines == 0 {
            record.outcome = Outcome::Intact;
            record.verdict = Verdict::Ok;
            record.detail = "cut before the program's first file operation (nothing acknowledged): not a failure".into();
        } else {
            record.detail = why;
        }
        return finish(record, started, &dir).into();
    }
    let (notes, problems) = run_notes(&rec, fail_at.as_deref(), &dir);
    record.acked_commits = rec.run.said.max_ack;
    let trial = TrialOf {
        run,
        exec,
        fault,
        files,
        index,
        trial_seed,
        dir: &dir,
        rec: &rec,
    };
    let mode = match dedupe_mode(exec) {
        Ok(m) => m,
        Err(err) => {
            record.detail = err;
            return finish(record, started, &dir).into();
        }
    };
    let mut checked = match check_states(&trial, &record, mode != Dedupe::Off) {
        Ok(c) => c,
        Err(err) => {
            record.detail = format!("crash states: {err}");
            return finish(record, started, &dir).into();
        }
    };
    let mut notes = notes;
    if mode == Dedupe::Compare {
        let plain = match check_states(&trial, &record, false) {
            Ok(c) => c,
            Err(err) => {
                record.detail = format!("crash states: {err}");
                return finish(record, started, &dir).into();
            }
        };
        if let Some(diff) = differing_rows(&checked.rows, &plain.rows) {
            record.detail = format!(
                "lab: a crash state's row differs with its check reused by effective key ({EFFECTIVE_DEDUPE}=compare): {diff}"
            );
            return finish(record, started, &dir).into();
        }
        notes.push(format!(
            "{EFFECTIVE_DEDUPE}=compare: each of the {} states' rows is the same with every state opened",
            plain.rows.len()
        ));
    }
    conclude(&mut record, &trial, &mut checked, notes, problems);
    if record.outcome != Outcome::Intact {
        save_worst(&mut record, &trial, &checked);
    }
    Finished {
        record: finish(record, started, &dir),
        states: checked.rows,
    }
}

/// One recorded trial as its steps see it.
struct TrialOf<'a> {
    run: &'a RunOptions,
    exec: &'a ExecOptions,
    fault: &'a ExecFault,
    files: &'a SlotFiles,
    index: u64,
    trial_seed: u64,
    dir: &'a Path,
    rec: &'a Recording,
}

/// Where the recording stops: `--kill-after` in acks or time (drawn from the trial's seed, as a
/// SIGKILL trial draws its kill point), anchored at the first ack when calibrated, else the end.
fn draw_stop(run: &RunOptions, exec: &ExecOptions, trial_seed: u64) -> Stop {
    match (exec.kill_acks, exec.kill_window) {
        // `--kill-after 1..20`: stop the recording --kill-delay after the K-th ack, as a SIGKILL
        // trial would kill there.
        (Some(commits), _) => {
            match (KillPolicy::AfterAcks {
                commits,
                delay: exec.kill_delay,
            })
            .draw(&mut seed::rng_for(trial_seed, seed::KILL_STREAM))
            {
                KillPoint::AfterAcks { acks, delay } => Stop::AfterAcks {
                    acks,
                    delay,
                    cap: run.trial_timeout.saturating_sub(Duration::from_secs(1)),
                },
                KillPoint::AfterTime { after } => Stop::At(after),
            }
        }
        (None, Some(window)) => {
            let at = match (KillPolicy::AfterTime { window })
                .draw(&mut seed::rng_for(trial_seed, seed::KILL_STREAM))
            {
                KillPoint::AfterTime { after } => after,
                KillPoint::AfterAcks { .. } => window.0,
            };
            match exec.anchor {
                Some(anchor) => Stop::Anchored { at, anchor },
                None => Stop::At(at),
            }
        }
        // To its end (or the timeout): the whole recording.
        (None, None) => Stop::Calibrate {
            timeout: run.trial_timeout,
            run_for: Some(run.trial_timeout),
            acks_expected: false,
            min_run: Duration::ZERO,
        },
    }
}

/// The row before anything is known: a lab error until the states are checked.
fn blank_row(
    index: u64,
    trial_seed: u64,
    profile: &str,
    fault: &ExecFault,
    sqlite_version: &str,
    started: Instant,
) -> TrialRecord {
    crate::trial::record::Trial {
        iteration: index,
        seed: trial_seed,
        profile,
        connections: 1,
        processes: 1,
        workload: "exec",
        fault: fault.fault.as_str(),
        sqlite_version,
        started,
    }
    .row(crate::trial::record::Found {
        outcome: Outcome::WorkerError,
        verdict: Verdict::LabError,
        pragmas: crate::trial::record::Pragmas {
            journal_mode: "?".into(),
            synchronous: "?".into(),
            fallback: String::new(),
        },
        kill_point: String::new(),
        acked_commits: 0,
        recovered_commits: 0,
        busy_errors: 0,
        detail: String::new(),
    })
}

/// A fresh folder (with `--seed-db`'s copy), the failing operation drawn, the program recorded.
fn record_trial(
    run: &RunOptions,
    exec: &ExecOptions,
    fault: &ExecFault,
    files: &SlotFiles,
    trial_seed: u64,
    index: u64,
    dir: &Path,
) -> Result<(Recording, Option<String>), String> {
    let db_dir = dir.join("db");
    let db = db_dir.join(exec.db_file_name());
    let fail_at = fault.fail_spec(trial_seed)?;
    std::fs::remove_dir_all(dir)
        .or(Ok(()))
        .and_then(|()| std::fs::create_dir_all(&db_dir))
        .map_err(|e| format!("creating {}: {e}", db_dir.display()))?;
    if let Some(s) = &exec.seed_db {
        copy_seed(s, &db)?;
    }
    let rec = record_run(
        exec,
        &db_dir,
        dir,
        draw_stop(run, exec, trial_seed),
        RunFor {
            trial_seed,
            trial: &index.to_string(),
            fail_at: fail_at.clone(),
            close_fds: &files.close_in_writers,
        },
    )?;
    Ok((rec, fail_at))
}

/// The settings the verdict uses, read from what the program printed and what it did: journal
/// mode, `synchronous`, the SQLite version, the instances.
fn settings_from_recording(exec: &ExecOptions, rec: &Recording, record: &mut TrialRecord) {
    let said = &rec.run.said;
    // No `journal_mode` line and no --journal-mode: a `-wal` the program opened says WAL.
    let opened_wal = rec.log.ops.iter().any(|o| match &o.kind {
        OpKind::Open { path, .. } => path.to_string_lossy().ends_with("-wal"),
        _ => false,
    });
    let (jm, fallback) = journal_mode(exec, said.journal_mode.as_deref(), opened_wal);
    record.journal_mode = jm;
    record.pragma_fallback = fallback;
    let durable_syncs = rec
        .log
        .ops
        .iter()
        .filter(|o| o.errno == 0 && matches!(&o.kind, OpKind::Sync { how, .. } if how.is_durable()))
        .count();
    let (synchronous, sync_note) = synchronous_of(exec, said.synchronous.as_deref(), durable_syncs);
    record.synchronous = synchronous;
    if let Some(n) = sync_note {
        if !record.pragma_fallback.is_empty() {
            record.pragma_fallback.push_str("; ");
        }
        record.pragma_fallback.push_str(&n);
    }
    // As for a SIGKILL exec trial: the instances; the processes the recorder saw are in `detail`.
    record.processes = exec.instances.max(1);
    if exec.engine == Engine::Sqlite {
        if let Some(v) = &said.sqlite_version {
            record.sqlite_version = v.clone();
        }
    }
}

/// What the run itself says, before any state is checked: notes for the row (what the recorder
/// could not follow, garbled acks, the injected failure, how the run ended, acks placed late) and
/// problems (the program failed on its own).
fn run_notes(rec: &Recording, fail_at: Option<&str>, dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut notes = blind_spots(&rec.log);
    notes.extend(rec.run.said.garbled_note());
    let injected = rec.log.ops.iter().filter(|o| o.injected).count();
    if let Some(spec) = fail_at {
        notes.push(match injected {
            0 => format!(
                "injected: {} — not reached (the program made fewer)",
                ExecFault::describe_fail(spec)
            ),
            n => format!(
                "injected: {} ({n} op(s) failed)",
                ExecFault::describe_fail(spec)
            ),
        });
    }
    let stderr_tail = || {
        check::tail(
            &std::fs::read(dir.join("stderr.txt")).unwrap_or_default(),
            200,
        )
    };
    let mut problems = Vec::new();
    match rec.run.end {
        // A stop the program outran (it finished first): its whole run is recorded; say so.
        End::Exited(0) if rec.stop != "end" => notes.push(format!(
            "the program ended by itself before the stop ({}): the whole run was recorded",
            rec.stop
        )),
        End::Exited(0) | End::Killed => {}
        End::TimedOut => notes.push(
            "the program did not end within --trial-timeout; the recording stops there".into(),
        ),
        End::Exited(code) if injected > 0 => notes.push(format!(
            "the program exited with status {code} after the injected error"
        )),
        End::Exited(code) => problems.push(format!(
            "the program exited with status {code}: {}",
            stderr_tail()
        )),
        End::Signaled(sig) => problems.push(format!(
            "the program died of signal {sig}: {}",
            stderr_tail()
        )),
    }
    // Acks the recorder did not see written (Go's runtime, C stdio's `printf`, raw syscalls) took
    // their place in the order when the lab read them: a little late (fewer cuts count them,
    // never more), and the row says so. Any the lab could not place count at the end of the run.
    let parsed = torture_preload::parse_before(&rec.log.ops, u64::MAX);
    if parsed.lab_read_only > 0 {
        notes.push(format!(
            "{} of the {} ack line(s) were placed when the lab read them, not when written (the program writes stdout without libc's write: Go, C stdio): each counts from a little later than it was made",
            parsed.lab_read_only, rec.run.said.ack_lines
        ));
    }
    let logged = parsed.acks.total() as u64;
    if logged < rec.run.said.ack_lines {
        notes.push(format!(
            "{} of the {} ack line(s) have no place in the order; they count only at the end of the run",
            rec.run.said.ack_lines - logged,
            rec.run.said.ack_lines
        ));
    }
    (notes, problems)
}

/// Every checked state of a trial: its rows, the worst one, and what the row's summary counts.
struct Checked {
    rows: Vec<StateRow>,
    /// (rank, row index, check, state) of the worst state (its files built only when it was
    /// opened: `save_worst` builds them for the evidence).
    worst: Option<(WorstRank, usize, Check, KeyedState)>,
    /// Per row: judged expected after an ignored directory-sync failure; the cause of its loss.
    excused_rows: Vec<bool>,
    row_causes: Vec<Option<&'static str>>,
    cause_counts: std::collections::BTreeMap<&'static str, usize>,
    engine_version: Option<String>,
    /// The enumeration's counts and the WAL checkpoints, for `detail`.
    cut_points: usize,
    candidates: usize,
    distinct: usize,
    sampled: bool,
    checkpoints: usize,
    /// SQLite WAL states keyed by what recovery reads: how many SQLite opened (the others
    /// recover to the same database as one of those). None: every state was opened.
    opened: Option<usize>,
}

/// Whether a SQLite crash state's check is reused for the later states with its effective key:
/// `TORTURE_EFFECTIVE_DEDUPE=off` opens every distinct state, as before; `=compare` checks every
/// trial both ways and makes any difference in a state's row a lab error (exit 3): the proof
/// that the two agree on the same recording (`exec_faults.rs`).
pub const EFFECTIVE_DEDUPE: &str = "TORTURE_EFFECTIVE_DEDUPE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dedupe {
    Keyed,
    Off,
    Compare,
}

fn dedupe_mode(exec: &ExecOptions) -> Result<Dedupe, String> {
    // A `--verify-cmd` may read the raw files, which differ between an opened state (SQLite
    // rebuilt its `-shm`, rolled back a hot journal) and a reused one: every state is opened.
    if exec.engine != Engine::Sqlite || exec.verify_cmd.is_some() {
        return Ok(Dedupe::Off);
    }
    match std::env::var(EFFECTIVE_DEDUPE).as_deref() {
        Err(_) | Ok("" | "on") => Ok(Dedupe::Keyed),
        Ok("off") => Ok(Dedupe::Off),
        Ok("compare") => Ok(Dedupe::Compare),
        Ok(other) => Err(format!(
            "{EFFECTIVE_DEDUPE}={other}: give on, off or compare"
        )),
    }
}

/// What SQLite showed of the last effective keys checked. Bounded: a state's key recurs in the
/// states next to it (the same cut's variants, the next cut's lose-all), and each entry holds the
/// rows `--recovered-sql` answered (2,000 rows of the README's writer, 48 KB); a key no longer
/// held is only opened again.
#[derive(Default)]
struct SeenKeys {
    map: HashMap<u64, SqliteSeen>,
    order: VecDeque<u64>,
}

impl SeenKeys {
    const KEEP: usize = 64;

    fn contains(&self, key: u64) -> bool {
        self.map.contains_key(&key)
    }

    fn get(&self, key: u64) -> Option<&SqliteSeen> {
        self.map.get(&key)
    }

    fn insert(&mut self, key: u64, seen: SqliteSeen) {
        if self.map.insert(key, seen).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > Self::KEEP {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// The first state whose row differs between two checks of the same states, in words.
fn differing_rows(keyed: &[StateRow], plain: &[StateRow]) -> Option<String> {
    if keyed.len() != plain.len() {
        return Some(format!(
            "{} states checked by effective key, {} opened one by one",
            keyed.len(),
            plain.len()
        ));
    }
    keyed.iter().zip(plain).find(|(a, b)| a != b).map(|(a, b)| {
        format!(
            "{} ({}): by effective key {} {} {} recovered, \"{}\"; opened: {} {} {} recovered, \"{}\"",
            a.cut,
            a.state_hash,
            a.outcome.as_str(),
            a.verdict.as_str(),
            a.recovered_commits,
            a.detail,
            b.outcome.as_str(),
            b.verdict.as_str(),
            b.recovered_commits,
            b.detail
        )
    })
}

/// The seeded sample of the recording's crash states, each rebuilt, checked with exec's check
/// and judged (a lost commit by its cause in the recording), through the one crash-state loop
/// (`faults::recorded::sweep`).
fn check_states(t: &TrialOf<'_>, record: &TrialRecord, keyed: bool) -> Result<Checked, String> {
    let (rec, exec, fault) = (t.rec, t.exec, t.fault);
    let instance_of = judge::instances_of(&rec.log, &rec.run.leaders);
    let instances = (exec.instances.max(1)) as usize;
    let cause_dir = t.dir.join("cause");
    let mut causes = Causes::new(
        &rec.start,
        &rec.log,
        fault.model(),
        exec,
        judge::ack_positions(&rec.log, &instance_of),
        instances,
        &cause_dir,
        t.dir,
        t.run.trial_timeout,
        &t.files.close_in_writers,
    );
    let judging = Judging {
        journal_crash_safe: torture_workloads::JournalMode::parse(&record.journal_mode)
            .is_none_or(|m| m.is_crash_safe()),
        durable_declared: judge::promises_durability(
            exec.engine,
            &record.journal_mode,
            &record.synchronous,
        ),
        settings: if exec.engine == Engine::Duckdb {
            "DuckDB (it syncs its WAL at every commit)".into()
        } else {
            format!(
                "journal_mode={} synchronous={}",
                record.journal_mode, record.synchronous
            )
        },
        journal_mode: &record.journal_mode,
        synchronous: &record.synchronous,
        instances,
        state_db: t.dir.join("state").join(exec.db_file_name()),
        end_seq: rec.log.ops.last().map_or(0, |o| o.seq),
    };
    // SQLite: what it showed of each effective key (the state's files, each `-wal` only as far as
    // recovery reads it), reused for every later state with that key: equal keys recover to the
    // same database, and each state is still judged with its own acks. A state whose key was seen
    // is not even built, unless `--verify-cmd` is to see its own files.
    let seen: RefCell<SeenKeys> = RefCell::new(SeenKeys::default());
    let needs_files = exec.verify_cmd.is_some();
    let build = |key: u64| needs_files || !seen.borrow().contains(key);
    let plan = Sweep {
        crash: fault.plan(t.trial_seed),
        fixed: None,
        // SQLite's own `unixSync` ignores a failed directory fsync; another engine, or a file
        // system whose file fsync makes names durable anyway (--fsync-commits-names), is owed no
        // excuse.
        excuse_ignored_dir_syncs: exec.engine == Engine::Sqlite && !fault.fsync_commits_names,
        build: keyed.then_some(&build as &dyn Fn(u64) -> bool),
    };
    let mut check = ExecCheck {
        t,
        j: &judging,
        causes: &mut causes,
        seen: keyed.then_some(&seen),
        instance_of: &instance_of,
        instances,
        rows: Vec::new(),
        row_causes: Vec::new(),
        cause_counts: Default::default(),
        engine_version: None,
        opened: 0,
    };
    let swept =
        crate::process::at_normal_priority(|| sweep(&rec.start, &rec.log, &plan, &mut check))?;
    let mut rows = check.rows;
    for (row, mark) in rows.iter_mut().zip(&swept.marks) {
        row.verdict = mark.verdict;
        row.in_checkpoint = mark.in_checkpoint;
    }
    Ok(Checked {
        rows,
        excused_rows: swept.marks.iter().map(|m| m.excused).collect(),
        row_causes: check.row_causes,
        cause_counts: check.cause_counts,
        engine_version: check.engine_version,
        cut_points: swept.cut_points,
        candidates: swept.candidates,
        distinct: swept.distinct,
        sampled: swept.sampled,
        checkpoints: swept.checkpoints,
        opened: keyed.then_some(check.opened),
        worst: swept
            .worst
            .map(|w| (w.rank, w.index, w.judged.found, w.state)),
    })
}

/// exec's check of one crash state, for the one crash-state loop: each state's row, the cause of
/// its loss, the engine that checked it.
struct ExecCheck<'a, 'c> {
    t: &'a TrialOf<'a>,
    j: &'a Judging<'a>,
    causes: &'a mut Causes<'c>,
    seen: Option<&'a RefCell<SeenKeys>>,
    instance_of: &'a dyn Fn(&Writer) -> usize,
    instances: usize,
    rows: Vec<StateRow>,
    row_causes: Vec<Option<&'static str>>,
    cause_counts: std::collections::BTreeMap<&'static str, usize>,
    engine_version: Option<String>,
    /// States whose database was opened (the others reused an earlier state's findings).
    opened: usize,
}

impl CrashStateCheck for ExecCheck<'_, '_> {
    type Found = Check;

    fn check(&mut self, keyed: &mut KeyedState, cut: &str) -> Result<Judged<Check>, String> {
        let acks = acks_of(&keyed.state.acks, &self.instance_of, self.instances);
        let (row, check, cause, fresh) =
            check_state(self.t, self.j, self.causes, keyed, &acks, self.seen, cut);
        self.opened += usize::from(fresh);
        self.row_causes.push(cause);
        if let Some(c) = cause {
            *self.cause_counts.entry(c).or_default() += 1;
        }
        // The engine that checked (DuckDB, libSQL), from any state whose check reached it: a
        // state cut before the program made its database reaches none.
        if check.engine_version.is_some() {
            self.engine_version.clone_from(&check.engine_version);
        }
        let judged = Judged {
            outcome: check.outcome,
            verdict: row.verdict,
            acked: row.acked_commits,
            found: check,
        };
        self.rows.push(row);
        Ok(judged)
    }
}

/// What every state of a trial is judged by.
struct Judging<'a> {
    journal_crash_safe: bool,
    durable_declared: bool,
    settings: String,
    journal_mode: &'a str,
    synchronous: &'a str,
    instances: usize,
    state_db: PathBuf,
    end_seq: u64,
}

/// One crash state: written out, checked, judged (a lost commit by its cause), its row (its
/// verdict before the loop's directory-sync excuse); the cause of its loss, and whether its
/// database was opened (false: SQLite's findings of an earlier state with its effective key were
/// reused).
fn check_state(
    t: &TrialOf<'_>,
    j: &Judging<'_>,
    causes: &mut Causes<'_>,
    keyed: &mut KeyedState,
    acks_before: &[Vec<u64>],
    seen: Option<&RefCell<SeenKeys>>,
    cut: &str,
) -> (StateRow, Check, Option<&'static str>, bool) {
    let (rec, fault) = (t.rec, t.fault);
    // A SQLite state checked by its effective key, with no `--verify-cmd` to read its files, is
    // opened in memory (`verify/memory_vfs.rs`): its files are handed over, never written, and
    // built again only if it becomes the trial's evidence.
    let in_memory = match seen {
        Some(_) if keyed.built && t.exec.verify_cmd.is_none() => {
            keyed.built = false;
            Some(std::mem::take(&mut keyed.state.files))
        }
        _ => None,
    };
    let keyed = &*keyed;
    let state = &keyed.state;
    let hardware = fault.hardware_as_documented();
    let mut acked = state.acks.all().map(|(_, n)| n).max().unwrap_or(0);
    if state.cut.after >= j.end_seq {
        acked = acked.max(rec.run.said.max_ack);
    }
    // Every commit acknowledged before the cut (the recorder's ack records), per instance, for
    // the set check: equal numbers of different instances are never merged.
    let written = if keyed.built && in_memory.is_none() {
        state.write_to(&t.dir.join("state"))
    } else {
        Ok(())
    };
    let env = CheckEnv {
        exec: t.exec,
        db: &j.state_db,
        acked,
        acks: acks_before,
        timeout: t.run.trial_timeout,
        scratch: t.dir,
        close_fds: &t.files.close_in_writers,
    };
    let mut opened = false;
    let mut check = match (written, seen) {
        (Err(err), _) => Check::new(
            Outcome::WorkerError,
            format!("writing the crash state: {err}"),
        ),
        (Ok(()), None) => {
            opened = true;
            check::verify(&env)
        }
        (Ok(()), Some(seen)) => {
            let known = seen.borrow().get(keyed.effective).cloned();
            match known {
                Some(found) => check::verify_seen(&env, &found),
                None if in_memory.is_some() => {
                    opened = true;
                    let found = check::observe_sqlite_in_memory(
                        in_memory.unwrap_or_default(),
                        Path::new(t.exec.db_file_name()),
                        t.exec,
                    );
                    let check = check::verify_seen(&env, &found);
                    seen.borrow_mut().insert(keyed.effective, found);
                    check
                }
                // Only a state whose key was seen goes unbuilt.
                None if !keyed.built => Check::new(
                    Outcome::WorkerError,
                    "lab: a crash state was not built although no state of its content was checked",
                ),
                None => {
                    opened = true;
                    let found = check::observe_sqlite(&j.state_db, t.exec);
                    let check = check::verify_seen(&env, &found);
                    seen.borrow_mut().insert(keyed.effective, found);
                    check
                }
            }
        }
    };
    let mut verdict = verdict::judge(
        check.outcome,
        j.journal_mode,
        j.synchronous,
        fault.fault.judged_as(state.variant == Variant::KeepAll),
        hardware,
    );
    // A lost commit is judged by its cause in the recording, not by a guess at the settings.
    let mut row_cause = None;
    if check.outcome == Outcome::LostCommit && j.journal_crash_safe {
        let power_cut = state.variant != Variant::KeepAll
            && fault.fault.judged_as(false) == crate::verify::verdict::Fault::PowerLoss;
        if let Some((cause, instance, n)) = causes.of(&check.missing, power_cut) {
            let (v, why) =
                judge::verdict_of(cause, power_cut, hardware, j.durable_declared, &j.settings);
            verdict = v;
            row_cause = Some(cause.as_str());
            let whose = if j.instances > 1 {
                format!("instance {instance}'s ")
            } else {
                String::new()
            };
            check.detail = format!(
                "[{}] {whose}commit {n}: {why}; {}",
                cause.as_str(),
                check.detail
            );
        }
    }
    let row = StateRow {
        iteration: t.index,
        seed: t.trial_seed,
        fault: fault.fault.as_str().into(),
        cut: cut.to_string(),
        state_hash: format!("{:016x}", state.hash),
        in_checkpoint: false,
        acked_commits: acked,
        recovered_commits: check.recovered,
        outcome: check.outcome,
        verdict,
        detail: check.detail.clone(),
    };
    (row, check, row_cause, opened)
}

/// The trial's row from its checked states: the worst state decides; the counts, the causes and
/// the run's notes go in `detail`; a recording with writes the recorder could not follow is not
/// judged.
fn conclude(
    record: &mut TrialRecord,
    t: &TrialOf<'_>,
    c: &mut Checked,
    mut notes: Vec<String>,
    problems: Vec<String>,
) {
    let (rec, fault) = (t.rec, t.fault);
    let rows = &c.rows;
    let counts = states::count(rows);
    let inside = rows.iter().filter(|r| r.in_checkpoint).count();
    let mut detail = format!(
        "{} crash states ({}, {} cuts, {} candidates, {} distinct{}{}): {counts}; {inside} cut inside one of {} WAL checkpoint(s); recording: {} ops, {} process(es), stop {}",
        rows.len(),
        fault.crash_states.as_str(),
        c.cut_points,
        c.candidates,
        c.distinct,
        if c.sampled { ", sampled" } else { "" },
        c.opened
            .map_or(String::new(), |n| format!(", {n} opened by SQLite")),
        c.checkpoints,
        rec.log.ops.last().map_or(0, |o| o.seq),
        pids(&rec.log),
        rec.stop,
    );
    if !c.cause_counts.is_empty() {
        let parts: Vec<String> = c
            .cause_counts
            .iter()
            .map(|(c, n)| format!("{n} {c}"))
            .collect();
        notes.push(format!("lost commits by cause: {}", parts.join(", ")));
    }
    let excused = c.excused_rows.iter().filter(|e| **e).count();
    if excused > 0 {
        notes.push(format!(
            "{excused} damaged power-cut state(s) judged expected: cut after the injected failure of a directory fsync that SQLite ignores by design and before the next one, so nothing was promised of the names it should have made durable"
        ));
    }
    for n in &notes {
        detail.push_str("; ");
        detail.push_str(n);
    }
    match &c.worst {
        Some((_, i, check, _)) => {
            let row = &rows[*i];
            record.kill_point = row.cut.clone();
            record.recovered_commits = check.recovered;
            record.outcome = check.outcome;
            record.verdict = row.verdict;
            if check.outcome != Outcome::Intact {
                // The row's numbers are the worst state's: what the verdict rests on.
                record.acked_commits = row.acked_commits;
                detail.push_str(&format!("; worst: {} {}", row.cut, check.detail));
            } else {
                // Nothing to single out: the row names what was covered.
                record.kill_point = format!(
                    "{} states, {} (last {})",
                    rows.len(),
                    fault.crash_states.as_str(),
                    rows.last().map_or("", |r| r.cut.as_str())
                );
            }
            if let Some(v) = check.engine_version.as_ref().or(c.engine_version.as_ref()) {
                record.sqlite_version = v.clone();
            }
        }
        None => record.outcome = Outcome::Intact,
    }
    if record.outcome == Outcome::Intact {
        record.verdict = Verdict::Ok;
        if !problems.is_empty() {
            record.outcome = Outcome::WorkerError;
            record.verdict = Verdict::ProgramError;
        }
    }
    if !blind_spots(&rec.log).is_empty() && record.verdict != Verdict::ProgramError {
        // Writes the recorder could not follow are missing from every state: what the states
        // showed, intact or damaged, may be the lab's omission, so the trial is not judged (the
        // states' rows say what they showed).
        record.outcome = Outcome::WorkerError;
        record.verdict = Verdict::LabError;
        detail = format!(
            "not judged: the recording misses writes the program made, so its crash states are not what a power cut leaves; run it with plain `torture exec` (SIGKILL); {detail}"
        );
        for r in c
            .rows
            .iter_mut()
            .filter(|r| r.verdict == Verdict::Violation)
        {
            r.verdict = Verdict::LabError;
        }
    }
    if !problems.is_empty() {
        detail.push_str(&format!("; also: {}", problems.join("; ")));
    }
    record.detail = detail;
    record.crash_states = c.rows.len() as u64;
    record.damaged_states = c
        .rows
        .iter()
        .filter(|r| r.outcome != Outcome::Intact)
        .count() as u64;
    record.cuts_in_checkpoint = inside as u64;
}

/// A failed trial's evidence: the worst state's files, its acks per instance, the recording.
fn save_worst(record: &mut TrialRecord, t: &TrialOf<'_>, c: &Checked) {
    let Some((_, i, _, keyed)) = &c.worst else {
        return;
    };
    let rec = t.rec;
    // A state checked by its effective key was never built: build it now, from the start.
    let rebuilt;
    let state = if keyed.built {
        &keyed.state
    } else {
        match build_state(
            &rec.start,
            &rec.log,
            keyed.state.cut,
            keyed.state.variant,
            &t.fault.model(),
        ) {
            Ok(files) => {
                rebuilt = CrashState {
                    files,
                    ..keyed.state.clone()
                };
                &rebuilt
            }
            Err(err) => {
                record.detail.push_str(&format!(
                    "; evidence not saved: rebuilding the state: {err}"
                ));
                return;
            }
        }
    };
    let instance_of = judge::instances_of(&rec.log, &rec.run.leaders);
    let instances = (t.exec.instances.max(1)) as usize;
    let acks_by_instance = acks_of(&state.acks, &instance_of, instances);
    let recording = states::Recorded {
        start: &rec.start,
        leaders: &rec.run.leaders,
        acks: &acks_by_instance,
        cause: c.row_causes.get(*i).copied().flatten(),
    };
    let excused = c.excused_rows.get(*i).copied().unwrap_or(false);
    if let Err(err) =
        states::save_evidence(t.run, record, t.exec, state, excused, t.dir, &recording)
    {
        record
            .detail
            .push_str(&format!("; evidence not saved: {err}"));
    }
}

/// The `synchronous` the verdict uses: `--synchronous`, else what the program printed, else — for
/// a recording without a single sync — `off` (nothing the program wrote was ever made durable),
/// else unknown (`?`: lost commits are judged by their cause; other damage by the strict rule).
/// With a note for the row's `pragma_fallback` when it was not declared.
fn synchronous_of(
    exec: &ExecOptions,
    said: Option<&str>,
    durable_syncs: usize,
) -> (String, Option<String>) {
    match (said, exec.synchronous.as_deref()) {
        (Some(s), Some(d)) if !s.eq_ignore_ascii_case(d) => (
            s.to_ascii_lowercase(),
            Some(format!("--synchronous {d} declared, the program read back {s}")),
        ),
        (Some(s), _) => (s.to_ascii_lowercase(), None),
        (None, Some(d)) => (d.to_string(), None),
        (None, None) if durable_syncs == 0 => (
            "off".into(),
            Some("synchronous inferred off: the recording has no sync".into()),
        ),
        (None, None) => (
            "?".into(),
            Some("synchronous unknown (give --synchronous, or print `synchronous MODE`): lost commits judged by their cause in the recording".into()),
        ),
    }
}

/// The acks of a state, per instance.
fn acks_of(
    acks: &torture_preload::AckedCommits,
    instance_of: &impl Fn(&Writer) -> usize,
    instances: usize,
) -> Vec<Vec<u64>> {
    let mut out: Vec<Vec<u64>> = vec![Vec::new(); instances.max(1)];
    for (w, n) in acks.all() {
        let i = instance_of(w).min(out.len() - 1);
        out[i].push(n);
    }
    out
}

fn finish(mut record: TrialRecord, started: Instant, dir: &Path) -> TrialRecord {
    record.duration_us = started.elapsed().as_micros() as u64;
    let _ = std::fs::remove_dir_all(dir);
    record
}

/// Before a run: the recorder can be found (else `Err((3, …))`, a lab failure) and the program
/// shows file operations to it (else `Err((2, …))`). Runs it once, to its end or `timeout`.
/// Returns a one-line account of the recording. io-error and disk-full without `--fail-at` draw
/// their failing operation from as many as the probe made (`ExecFault::fail_range`).
pub fn probe(
    exec: &mut ExecOptions,
    work: &Path,
    timeout: Duration,
) -> Result<String, (i32, String)> {
    recorder::library().map_err(|e| (crate::exit_code::LAB_ERROR, e))?;
    let db_dir: PathBuf = work.join("db");
    std::fs::create_dir_all(&db_dir).map_err(|e| {
        (
            crate::exit_code::USAGE,
            format!("creating {}: {e}", db_dir.display()),
        )
    })?;
    if let Some(s) = &exec.seed_db {
        copy_seed(s, &db_dir.join(exec.db_file_name()))
            .map_err(|e| (crate::exit_code::USAGE, e))?;
    }
    let who = RunFor {
        trial_seed: 0,
        trial: "probe",
        fail_at: None,
        close_fds: &[],
    };
    // The probe records what trials will reach: up to --kill-after's end when given, else until
    // the program exits — a finite program is then recorded whole in every trial — or, for one
    // still running after PROBE_SPAN (a server never exits), until it has shown enough of its
    // writing, as a calibration does (never before its acks when --recovered-sql expects them,
    // however slow a loaded machine makes its start): its trials stop at a point drawn from the
    // acks it made, so a recording stays as short as its calibration.
    let stop = match (exec.kill_acks, exec.kill_window) {
        (Some((_, most)), _) => Stop::AfterAcks {
            acks: most,
            delay: exec.kill_delay.1,
            cap: timeout,
        },
        (None, Some((_, last))) => Stop::At(last),
        (None, None) => Stop::Calibrate {
            timeout,
            run_for: exec.calibrate_for,
            acks_expected: exec.recovered_sql.is_some(),
            min_run: PROBE_SPAN,
        },
    };
    let rec =
        record_run(exec, &db_dir, work, stop, who).map_err(|e| (crate::exit_code::USAGE, e))?;
    // Stopped at --kill-after's end before it wrote: every trial will stop there too, each a crash
    // before the program's first file operation, and the run says NOTHING TESTED. Only a program
    // that ran its course (or long enough) without writing is the user's mistake.
    let stopped_early = rec.run.end == End::Killed;
    let blind = coverage_problem(&rec, &db_dir.join(exec.db_file_name()), exec, work);
    if let Some(why) = blind.as_ref().filter(|_| !stopped_early) {
        return Err((crate::exit_code::USAGE, why.clone()));
    }
    // Writes the recorder cannot follow (a shared writable mapping, stdio streams) would be
    // missing from every crash state: refused, not judged.
    let unseen = blind_spots(&rec.log);
    if !unseen.is_empty() {
        return Err((
            crate::exit_code::USAGE,
            format!(
                "the recorder cannot follow every write of the program, so its crash states would not be what a power cut leaves ({}); run it with plain `torture exec` (SIGKILL), which needs no recording",
                unseen.join("; ")
            ),
        ));
    }
    let syncs = rec
        .log
        .ops
        .iter()
        .filter(|o| matches!(&o.kind, OpKind::Sync { how, .. } if how.is_durable()))
        .count();
    if let Some(f) = exec.fault.as_mut() {
        if let Some(kind) = f.drawn_kind() {
            let filter = torture_preload::OpFilter {
                kind,
                file: torture_preload::FileFilter::Any,
            };
            let n = rec.log.ops.iter().filter(|o| filter.matches(o)).count() as u64;
            f.fail_range = Some(n.max(1));
        }
    }
    let mut line = format!(
        "recorded a probe run: {} ops ({syncs} syncs), {} process(es), {} ack(s), {:.2}s",
        rec.log.ops.last().map_or(0, |o| o.seq),
        pids(&rec.log),
        rec.run.said.ack_lines,
        rec.run.ran_for.as_secs_f64(),
    );
    // A program that did not exit by itself (a server): each trial's recording stops at a point
    // drawn from the window where it acknowledged commits, as a SIGKILL trial's kill is drawn.
    if rec.run.end == End::TimedOut && exec.kill_acks.is_none() && exec.kill_window.is_none() {
        let window = match (rec.run.said.first_ack, rec.run.said.last_ack) {
            (Some(a), Some(b)) => super::calibrate::span(a, b),
            _ => (Duration::ZERO, rec.run.ran_for),
        };
        exec.kill_window = Some(window);
        exec.anchor = rec.run.said.first_ack;
        line.push_str(&format!(
            "; it did not exit, so each trial stops its recording at a point drawn from {:.0}ms..{:.0}ms (give --kill-after to choose)",
            window.0.as_secs_f64() * 1e3,
            window.1.as_secs_f64() * 1e3
        ));
    } else if stopped_early {
        line.push_str(" (stopped at --kill-after's end");
        if blind.is_some() {
            line.push_str(", before it wrote a file in the database folder");
        }
        line.push(')');
    }
    if let Some(f) = exec.fault.as_ref().filter(|f| f.drawn_kind().is_some()) {
        if let Ok(Some(spec)) = f.fail_spec(0) {
            let kind = spec.split(':').next().unwrap_or("");
            line.push_str(&format!(
                "; each trial fails a seeded one of its {} {kind} op(s)",
                f.fail_range.unwrap_or(0)
            ));
        }
    }
    if let Some(g) = rec.run.said.garbled_note() {
        line.push_str(&format!("; WARNING: {g}"));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cut: &str, outcome: Outcome, acked: u64) -> StateRow {
        StateRow {
            iteration: 0,
            seed: 1,
            fault: "power-loss".into(),
            cut: cut.into(),
            state_hash: "00".into(),
            in_checkpoint: false,
            acked_commits: acked,
            recovered_commits: 3,
            outcome,
            verdict: Verdict::Ok,
            detail: String::new(),
        }
    }

    #[test]
    fn the_comparison_names_the_first_state_whose_row_differs() {
        let a = vec![
            row("cut=1", Outcome::Intact, 3),
            row("cut=2", Outcome::Intact, 4),
        ];
        assert_eq!(differing_rows(&a, &a.clone()), None);
        let mut b = a.clone();
        b[1].outcome = Outcome::LostCommit;
        let d = differing_rows(&a, &b).unwrap();
        assert!(d.starts_with("cut=2") && d.contains("lost-commit"), "{d}");
        assert!(differing_rows(&a, &a[..1]).unwrap().contains("2 states"));
    }

    #[test]
    fn the_seen_keys_keep_the_latest_ones() {
        let mut k = SeenKeys::default();
        for key in 0..(SeenKeys::KEEP as u64 + 10) {
            k.insert(key, SqliteSeen::NoDb);
            k.insert(key, SqliteSeen::NoDb);
        }
        assert_eq!(k.map.len(), SeenKeys::KEEP);
        assert!(!k.contains(9) && k.contains(10) && k.get(SeenKeys::KEEP as u64 + 9).is_some());
    }
}
