//! One exec trial, as a slot runs it: a fresh folder and database path, the program started (once,
//! or `--instances` times) and SIGKILLed at the kill point drawn from the trial's seed (a time, or
//! K acknowledged commits), every process of it reaped, the database checked, the row built, and
//! the evidence saved when the trial is not intact (or always, with `--keep-evidence`).
//! The calibration run's own kill is concluded here too ([`conclude`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::check::{self, Check, CheckEnv};
use super::child::{self, End, KillOne, Launch, Run, Stop};
use super::evidence::{save_evidence, ExecTrialNote, Snapshot};
use super::{Engine, ExecOptions};
use crate::engine::with_suffix;
use crate::faults::kill_point::{KillPoint, KillPolicy};
use crate::options::RunOptions;
use crate::seed;
use crate::trial::children::SlotFiles;
use crate::trial::record::{self, Found, Judged, Pragmas};
use crate::verify::outcome::{Outcome, TrialRecord, Verdict};
use crate::verify::verdict::Fault;

/// With `--kill one`: the survivors stop after this many more acks, or after `LINGER`.
const MORE_ACKS: u64 = 20;
const LINGER: Duration = Duration::from_secs(1);

/// Runs exec trial `index` of the run and returns its row. `window`: the kill window (given or
/// calibrated); `files.dir` holds the trial's folder, removed afterwards; `files.close_in_writers`
/// are closed in the program. Evidence is saved under `run.out_dir/failures/<index>/` (a trial
/// that is not intact) or `run.out_dir/evidence/<index>/` (`--keep-evidence`).
pub fn run_trial(
    run: &RunOptions,
    exec: &ExecOptions,
    window: (Duration, Duration),
    index: u64,
    files: &SlotFiles,
    // The lab's own SQLite is no label for the program's files: unused since the header says it.
    _sqlite_version: &str,
) -> TrialRecord {
    let started = Instant::now();
    let trial_seed = seed::trial_seed(run.seed, index);
    let mut rng = seed::rng_for(trial_seed, seed::KILL_STREAM);
    let (stop, kill_point, kill_at) = match exec.kill_acks {
        Some(commits) => {
            let point = KillPolicy::AfterAcks {
                commits,
                delay: exec.kill_delay,
            }
            .draw(&mut rng);
            let KillPoint::AfterAcks { acks, delay } = point else {
                unreachable!("an ack policy draws an ack point")
            };
            let cap = run.trial_timeout.saturating_sub(Duration::from_secs(1));
            (
                Stop::AfterAcks { acks, delay, cap },
                point.to_string(),
                delay,
            )
        }
        None => {
            let at = match (KillPolicy::AfterTime { window }).draw(&mut rng) {
                KillPoint::AfterTime { after } => after,
                KillPoint::AfterAcks { .. } => window.0,
            };
            let stop = match exec.anchor {
                Some(anchor) => Stop::Anchored { at, anchor },
                None => Stop::At(at),
            };
            (stop, format!("t={}us", at.as_micros()), at)
        }
    };
    let kill_one = (exec.kill_one && exec.instances > 1).then(|| {
        use rand::RngExt;
        KillOne {
            victim: rng.random_range(0..exec.instances),
            more_acks: MORE_ACKS,
            linger: LINGER,
        }
    });
    let t = Trial {
        run,
        exec,
        index,
        seed: trial_seed,
        dir: files.dir.join(format!("exec-{index}")),
        close_fds: &files.close_in_writers,
        window,
        evidence: None,
    };
    let (db, stderr) = (t.db(), t.stderr());
    let launched: Result<Run, String> = fresh_folder(&t.dir, &t.db_dir())
        .and_then(|()| match &exec.seed_db {
            Some(seed) => copy_seed(seed, &db),
            None => Ok(()),
        })
        .and_then(|()| child::run(&t.launch_with(&db, &stderr, kill_one), stop, None));
    let record = conclude(&t, launched, kill_point, kill_at, started);
    let _ = std::fs::remove_dir_all(&t.dir);
    record
}

/// One run of the program to conclude: a trial, or the calibration run.
pub(crate) struct Trial<'a> {
    pub run: &'a RunOptions,
    pub exec: &'a ExecOptions,
    pub index: u64,
    pub seed: u64,
    /// The trial's folder: `db/` (the database), `stderr.txt`, the helpers' scratch files.
    pub dir: PathBuf,
    pub close_fds: &'a [std::os::fd::RawFd],
    pub window: (Duration, Duration),
    /// Where the evidence goes instead of `failures/<index>` (the calibration's folder).
    pub evidence: Option<PathBuf>,
}

impl Trial<'_> {
    pub(crate) fn db_dir(&self) -> PathBuf {
        self.dir.join("db")
    }

    pub(crate) fn db(&self) -> PathBuf {
        self.db_dir().join(self.exec.db_file_name())
    }

    pub(crate) fn stderr(&self) -> PathBuf {
        self.dir.join("stderr.txt")
    }

    /// How to start the program for this trial; the paths live as long as `self`.
    pub(crate) fn launch_with<'b>(
        &'b self,
        db: &'b Path,
        stderr: &'b Path,
        kill_one: Option<KillOne>,
    ) -> Launch<'b> {
        Launch {
            command: &self.exec.command,
            shell: self.exec.shell,
            db,
            seed: self.seed,
            trial: if self.evidence.is_some() {
                "calibration".into()
            } else {
                self.index.to_string()
            },
            stderr,
            close_fds: self.close_fds,
            key: self.exec.key.as_deref(),
            instances: self.exec.instances.max(1),
            kill_one,
            ack_log: None,
        }
    }
}

/// After the program is gone (every process of it): the operator's action, the check, the row,
/// and the evidence. `kill_point` is the drawn point in words, `kill_at` its time (or delay).
pub(crate) fn conclude(
    t: &Trial<'_>,
    launched: Result<Run, String>,
    kill_point: String,
    kill_at: Duration,
    started: Instant,
) -> TrialRecord {
    let exec = t.exec;
    let (db_dir, db) = (t.db_dir(), t.db());
    let wal_header = header_says_wal(&db, exec.engine == Engine::Libsql);
    let header_version = header_sqlite_version(&db);
    let mut snapshot = Snapshot::before_check(exec, &db_dir, &db);
    let said = launched
        .as_ref()
        .map(|r| r.said.clone())
        .unwrap_or_default();
    let acks: Vec<Vec<u64>> = launched
        .as_ref()
        .map(|r| r.instances.iter().map(|(s, _)| s.acks.clone()).collect())
        .unwrap_or_default();
    let acked = said.max_ack;
    let operator = match (&launched, exec.after_kill) {
        (Ok(_), Some(a)) => Some(a.apply(exec.engine, &db)),
        _ => None,
    };
    let check = match &launched {
        Ok(r) if r.lingering.is_some() => Check::new(Outcome::WorkerError, ""),
        Ok(_) => check::verify(&CheckEnv {
            exec,
            db: &db,
            acked,
            acks: &acks,
            timeout: t.run.trial_timeout,
            scratch: &t.dir,
            close_fds: t.close_fds,
        }),
        Err(_) => Check::new(Outcome::WorkerError, ""),
    };

    // The program's own failure only decides the outcome when the database itself is fine.
    let mut kill_point = kill_point;
    let (problems, program_problems) = run_problems(t, &launched, kill_at, &mut kill_point);
    let outcome = record::outcome_of(check.outcome, &problems);
    let detail = record::detail_with_lab(check.outcome, outcome, &check.detail, &problems);
    let operator_deleted = operator.as_ref().is_some_and(|(_, deleted)| *deleted);
    let mut detail = match operator {
        Some((note, _)) if detail.is_empty() => note,
        Some((note, _)) => format!("{detail}; {note}"),
        None => detail,
    };
    let garbled = launched.as_ref().ok().and_then(|r| r.said.garbled_note());
    let kill_one = launched.as_ref().ok().and_then(|r| r.kill_one_note.clone());
    let escaped = launched.as_ref().ok().and_then(|r| r.escaped_note());
    for note in [kill_one, garbled, escaped].into_iter().flatten() {
        detail = if detail.is_empty() {
            note
        } else {
            format!("{detail}; {note}")
        };
    }
    let (journal_mode, fallback) = journal_mode(exec, said.journal_mode.as_deref(), wal_header);
    let synchronous = said
        .synchronous
        .clone()
        .or_else(|| exec.synchronous.clone())
        .unwrap_or_else(|| "?".into());
    let pragmas = Pragmas {
        journal_mode,
        synchronous,
        fallback,
    };
    // Deleting a hot journal or WAL breaks what SQLite assumes (howtocorrupt §1.3-1.4): the damage
    // that follows is the operator's doing, documented, so expected.
    let judged = Judged {
        expected_damage: operator_deleted,
        ..Judged::crash()
    };
    let profile = exec.profile_name();
    let sqlite_version = program_version(exec, &check, &said, header_version);
    let row = record::Trial {
        iteration: t.index,
        seed: t.seed,
        profile: &profile,
        connections: 1,
        processes: exec.instances.max(1),
        workload: "exec",
        fault: Fault::Sigkill.as_str(),
        sqlite_version: &sqlite_version,
        started,
    };
    let mut record = row.row(Found {
        outcome,
        verdict: match record::verdict_of(outcome, &pragmas, judged) {
            // The program's own failure, and nothing of the lab's: say whose it is.
            Verdict::LabError if program_problems > 0 && program_problems == problems.len() => {
                Verdict::ProgramError
            }
            v => v,
        },
        pragmas,
        kill_point,
        acked_commits: acked,
        recovered_commits: check.recovered,
        busy_errors: 0,
        detail,
    });
    // The calibration's files only when its check found something; a trial's with --keep-evidence.
    if outcome != Outcome::Intact || (exec.keep_evidence && t.evidence.is_none()) {
        keep_evidence(t, &mut record, &launched, acks, &mut snapshot, kill_at);
    }
    record
}

/// What went wrong beside the database: the lab's (a launch failure, a process the check would
/// race) and the program's own (an exit or a signal before the kill), with how many are the
/// program's. Completes `kill_point` with what happened.
fn run_problems(
    t: &Trial<'_>,
    launched: &Result<Run, String>,
    kill_at: Duration,
    kill_point: &mut String,
) -> (Vec<String>, usize) {
    let stderr = t.stderr();
    let stderr_tail = || match check::tail(&std::fs::read(&stderr).unwrap_or_default(), 300) {
        // Its words were lost with a full scratch disk: say so, and the run stops (exit 3).
        s if s.trim().is_empty() => crate::fsio::silent_failure_note(&t.dir).unwrap_or(s),
        s => s,
    };
    let mut problems: Vec<String> = Vec::new();
    // Problems of the program itself (its exit, a signal), as opposed to the lab's.
    let mut program_problems = 0;
    match launched {
        Err(e) => problems.push(e.clone()),
        Ok(r) => {
            if let Some(l) = &r.lingering {
                problems.push(format!("{l}: the check would race it, so it was not run"));
            }
            describe_kill(t.exec, r, kill_at, kill_point);
            let several = r.instances.len() > 1;
            for (i, (_, end)) in r.instances.iter().enumerate() {
                let who = if several {
                    format!("instance {i}")
                } else {
                    "the program".to_string()
                };
                match end {
                    End::Exited(code) if *code != 0 => {
                        program_problems += 1;
                        problems.push(format!(
                            "{who} exited with status {code} before the kill: {}",
                            stderr_tail()
                        ))
                    }
                    End::Signaled(sig) => {
                        program_problems += 1;
                        problems.push(format!(
                            "{who} died of signal {sig} before the kill: {}",
                            stderr_tail()
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    (problems, program_problems)
}

/// The library that matters is the program's: DuckDB's or libSQL's version from the check, the
/// SQLite version the program printed, else the one that last wrote the file (its header); the
/// lab's own never.
fn program_version(
    exec: &ExecOptions,
    check: &Check,
    said: &child::Said,
    header_version: Option<String>,
) -> String {
    match exec.engine {
        Engine::Duckdb => check
            .engine_version
            .clone()
            .unwrap_or_else(|| "duckdb ?".into()),
        Engine::Libsql => check
            .engine_version
            .clone()
            .or_else(|| said.sqlite_version.clone())
            .unwrap_or_else(|| "libsql ?".into()),
        Engine::Sqlite => said
            .sqlite_version
            .clone()
            .or(header_version)
            .unwrap_or_else(|| "?".into()),
    }
}

/// A failed trial's evidence (every trial's with `--keep-evidence`): the files before the check,
/// `trial.json` with every ack, the stdout tails.
fn keep_evidence(
    t: &Trial<'_>,
    record: &mut TrialRecord,
    launched: &Result<Run, String>,
    acks: Vec<Vec<u64>>,
    snapshot: &mut Snapshot,
    kill_at: Duration,
) {
    let exec = t.exec;
    let (db_dir, db, stderr) = (t.db_dir(), t.db(), t.stderr());
    let folder = match &t.evidence {
        Some(f) => f.clone(),
        None if record.outcome == Outcome::Intact => {
            t.run.out_dir.join("evidence").join(t.index.to_string())
        }
        None => t.run.out_dir.join("failures").join(t.index.to_string()),
    };
    let note = ExecTrialNote {
        kind: "exec".into(),
        record: record.clone(),
        master_seed: t.run.seed,
        exec: exec.clone(),
        kill_window_us: (t.window.0.as_micros() as u64, t.window.1.as_micros() as u64),
        argv: launched
            .as_ref()
            .map(|r| r.argv.clone())
            .unwrap_or_else(|_| child::argv(&exec.command, exec.shell, &db)),
        command_line: t.run.command_line.clone(),
        reproduce: String::new(),
        acks,
        crash_state: None,
    };
    let tails = launched
        .as_ref()
        .map(|r| r.stdout_tails.clone())
        .unwrap_or_default();
    if let Err(e) = save_evidence(&folder, note, snapshot, &db_dir, &stderr, &tails, kill_at) {
        record
            .detail
            .push_str(&format!("; evidence not saved: {e}"));
    }
}

/// The `kill_point` column: what the kill was drawn as, and what happened.
fn describe_kill(exec: &ExecOptions, r: &Run, kill_at: Duration, kill_point: &mut String) {
    match r.end {
        End::Killed | End::TimedOut => {
            if exec.kill_acks.is_some() {
                match r.kth_ack_at {
                    Some(k) => kill_point.push_str(&format!(
                        " (ack K at {}us; killed at {}us)",
                        k.as_micros(),
                        r.ran_for.as_micros()
                    )),
                    None => kill_point.push_str(&format!(
                        " (K acks never came: killed at the cap, {}us)",
                        r.ran_for.as_micros()
                    )),
                }
                return;
            }
            // Counted from the program's own first ack: say when the kill really came.
            match (r.anchored_on, exec.anchor) {
                (Some(first), Some(anchor)) => {
                    *kill_point = format!(
                        "t={}us (first ack at {}us + {}us)",
                        r.ran_for.as_micros(),
                        first.as_micros(),
                        kill_at.saturating_sub(anchor).as_micros()
                    )
                }
                (None, Some(anchor)) if kill_at >= anchor => {
                    *kill_point = format!("t={}us (no ack by then)", r.ran_for.as_micros())
                }
                _ => {}
            }
        }
        End::Exited(0) => kill_point.push_str(" (not reached: the program exited)"),
        End::Exited(_) | End::Signaled(_) => kill_point.push_str(" (not reached)"),
    }
}

/// The journal mode the verdict uses, and what the `pragma_fallback` column says about it. The
/// program's own read-back wins, then the user's `--journal-mode`, then a WAL header on disk.
pub(super) fn journal_mode(
    exec: &ExecOptions,
    said: Option<&str>,
    wal_header: bool,
) -> (String, String) {
    if exec.engine == Engine::Duckdb {
        return ("?".into(), String::new());
    }
    match (said, exec.journal_mode.as_deref()) {
        (Some(s), Some(d)) if !s.eq_ignore_ascii_case(d) => (
            s.into(),
            format!("--journal-mode {d} declared, the program read back {s}"),
        ),
        (Some(s), _) => (s.into(), String::new()),
        (None, Some(d)) => (d.into(), String::new()),
        (None, None) if wal_header => ("wal".into(), String::new()),
        (None, None) => (
            "?".into(),
            "unknown: the program printed no `journal_mode MODE` and gave no --journal-mode; damage is held to the strict promise".into(),
        ),
    }
}

/// Bytes 18 and 19 of the header are 2 once a database was put in WAL mode. libSQL's encrypted
/// files keep bytes 16..23 of the header in plaintext (`encrypted`: accept that layout too).
fn header_says_wal(db: &Path, encrypted: bool) -> bool {
    use std::io::Read;
    let mut h = [0u8; 24];
    std::fs::File::open(db)
        .and_then(|mut f| f.read_exact(&mut h))
        .is_ok()
        && (h[..16] == *b"SQLite format 3\0" || encrypted && check::encrypted_header(&h))
        && h[18] == 2
        && h[19] == 2
}

/// The SQLite library that last wrote the file: the header's version number at offset 96
/// (`3045001` → `3.45.1`), when the file has SQLite's header.
pub(crate) fn header_sqlite_version(db: &Path) -> Option<String> {
    use std::io::Read;
    let mut h = [0u8; 100];
    std::fs::File::open(db).ok()?.read_exact(&mut h).ok()?;
    if h[..16] != *b"SQLite format 3\0" {
        return None;
    }
    let v = u32::from_be_bytes([h[96], h[97], h[98], h[99]]);
    (v >= 3_000_000).then(|| format!("{}.{}.{}", v / 1_000_000, v / 1000 % 1000, v % 1000))
}

pub(crate) fn fresh_folder(dir: &Path, db_dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(db_dir).map_err(|e| format!("creating {}: {e}", db_dir.display()))
}

/// Copies a starting database to `db`, with the files that belong to it (a WAL, a hot journal).
pub(crate) fn copy_seed(seed: &Path, db: &Path) -> Result<(), String> {
    std::fs::copy(seed, db).map_err(|e| format!("--seed-db {}: {e}", seed.display()))?;
    for suffix in ["-wal", "-journal", ".wal"] {
        let from = with_suffix(seed, suffix);
        if from.is_file() {
            std::fs::copy(&from, with_suffix(db, suffix))
                .map_err(|e| format!("--seed-db {}: {e}", from.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "trial_tests.rs"]
pub(crate) mod tests;
