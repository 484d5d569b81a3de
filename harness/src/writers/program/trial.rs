//! One exec trial, as a slot runs it: a fresh folder and database path, the program started and
//! SIGKILLed at a time drawn from the trial's seed, the database checked, the row built, and the
//! evidence saved when the trial is not intact.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::check::{self, Check, CheckEnv};
use super::child::{self, End, Launch, Run, Stop};
use super::{Engine, ExecOptions};
use crate::lab::seed;
use crate::options::RunOptions;
use crate::trial::evidence::with_suffix;
use crate::trial::kill_point::{KillPoint, KillPolicy};
use crate::trial::outcome::{Outcome, TrialRecord, Verdict};
use crate::trial::SlotFiles;
use crate::verify::verdict::{self, Fault};

/// What `OUT/failures/<iteration>/trial.json` holds for an exec trial. `torture replay` does not
/// re-run exec trials; `reproduce` says how to run the program by hand on the same path and seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecTrialNote {
    /// Always `exec`: tells this note from the core's.
    pub kind: String,
    pub record: TrialRecord,
    pub master_seed: u64,
    pub exec: ExecOptions,
    /// The kill window the trial's time was drawn from, in microseconds.
    pub kill_window_us: (u64, u64),
    /// The command as it ran, `{db}` substituted.
    pub argv: Vec<String>,
    pub command_line: String,
    pub reproduce: String,
}

/// Runs exec trial `index` of the run and returns its row. `window`: the kill window (given or
/// calibrated); `files.dir` holds the trial's folder, removed afterwards; `files.close_in_writers`
/// are closed in the program. Failure evidence is saved under `run.out_dir/failures/<index>/`.
pub fn run_trial(
    run: &RunOptions,
    exec: &ExecOptions,
    window: (Duration, Duration),
    index: u64,
    files: &SlotFiles,
    sqlite_version: &str,
) -> TrialRecord {
    let started = Instant::now();
    let trial_seed = seed::trial_seed(run.seed, index);
    let kill_at = match (KillPolicy::AfterTime { window })
        .draw(&mut seed::rng_for(trial_seed, seed::KILL_STREAM))
    {
        KillPoint::AfterTime { after } => after,
        KillPoint::AfterAcks { .. } => window.0,
    };
    let dir = files.dir.join(format!("exec-{index}"));
    let db_dir = dir.join("db");
    let db = db_dir.join(exec.db_file_name());
    let stderr = dir.join("stderr.txt");
    let launched: Result<Run, String> = fresh_folder(&dir, &db_dir)
        .and_then(|()| match &exec.seed_db {
            Some(seed) => copy_seed(seed, &db),
            None => Ok(()),
        })
        .and_then(|()| {
            child::run(
                &Launch {
                    command: &exec.command,
                    shell: exec.shell,
                    db: &db,
                    seed: trial_seed,
                    trial: index.to_string(),
                    stderr: &stderr,
                    close_fds: &files.close_in_writers,
                    key: exec.key.as_deref(),
                },
                match exec.anchor {
                    Some(anchor) => Stop::Anchored {
                        at: kill_at,
                        anchor,
                    },
                    None => Stop::At(kill_at),
                },
                None,
            )
        });
    let wal_header = header_says_wal(&db, exec.engine == Engine::Libsql);
    let mut snapshot = Snapshot::before_check(exec, &db_dir, &db);
    let acked = launched.as_ref().map_or(0, |r| r.said.max_ack);
    let operator = match (&launched, exec.after_kill) {
        (Ok(_), Some(a)) => Some(a.apply(exec.engine, &db)),
        _ => None,
    };
    let check = match &launched {
        Ok(_) => check::verify(&CheckEnv {
            exec,
            db: &db,
            acked,
            timeout: run.trial_timeout,
            scratch: &dir,
            close_fds: &files.close_in_writers,
        }),
        Err(_) => Check::new(Outcome::WorkerError, ""),
    };

    // The program's own failure only decides the outcome when the database itself is fine.
    let stderr_tail = || check::tail(&std::fs::read(&stderr).unwrap_or_default(), 300);
    let mut problems: Vec<String> = Vec::new();
    let mut kill_point = format!("t={}us", kill_at.as_micros());
    match &launched {
        Err(e) => problems.push(e.clone()),
        Ok(r) => match r.end {
            End::Killed | End::TimedOut => {
                // Counted from the program's own first ack: say when the kill really came.
                match (r.anchored_on, exec.anchor) {
                    (Some(first), Some(anchor)) => {
                        kill_point = format!(
                            "t={}us (first ack at {}us + {}us)",
                            r.ran_for.as_micros(),
                            first.as_micros(),
                            kill_at.saturating_sub(anchor).as_micros()
                        )
                    }
                    (None, Some(anchor)) if kill_at >= anchor => {
                        kill_point = format!("t={}us (no ack by then)", r.ran_for.as_micros())
                    }
                    _ => {}
                }
            }
            End::Exited(0) => kill_point.push_str(" (not reached: the program exited)"),
            End::Exited(code) => {
                kill_point.push_str(" (not reached)");
                problems.push(format!(
                    "the program exited with status {code} before the kill: {}",
                    stderr_tail()
                ));
            }
            End::Signaled(sig) => {
                kill_point.push_str(" (not reached)");
                problems.push(format!(
                    "the program died of signal {sig} before the kill: {}",
                    stderr_tail()
                ));
            }
        },
    }
    let (outcome, detail) = if check.outcome == Outcome::WorkerError {
        let mut all = problems.clone();
        if !check.detail.is_empty() {
            all.insert(0, check.detail.clone());
        }
        (Outcome::WorkerError, all.join("; "))
    } else if check.outcome == Outcome::Intact && !problems.is_empty() {
        (Outcome::WorkerError, problems.join("; "))
    } else if problems.is_empty() {
        (check.outcome, check.detail.clone())
    } else {
        (
            check.outcome,
            format!("{}; also: {}", check.detail, problems.join("; ")),
        )
    };

    let operator_deleted = operator.as_ref().is_some_and(|(_, deleted)| *deleted);
    let detail = match operator {
        Some((note, _)) if detail.is_empty() => note,
        Some((note, _)) => format!("{detail}; {note}"),
        None => detail,
    };
    let said = launched
        .as_ref()
        .map(|r| r.said.clone())
        .unwrap_or_default();
    let (journal_mode, fallback) = journal_mode(exec, said.journal_mode.as_deref(), wal_header);
    let synchronous = said.synchronous.clone().unwrap_or_else(|| "?".into());
    let mut record = TrialRecord {
        iteration: index,
        seed: trial_seed,
        profile: exec.profile_name(),
        journal_mode: journal_mode.clone(),
        synchronous: synchronous.clone(),
        connections: 1,
        processes: 1,
        workload: "exec".into(),
        fault: Fault::Sigkill.as_str().into(),
        kill_point,
        acked_commits: acked,
        recovered_commits: check.recovered,
        outcome,
        // Deleting a hot journal or WAL breaks what SQLite assumes (howtocorrupt §1.3-1.4): the
        // damage that follows is the operator's doing, documented, so expected.
        verdict: if operator_deleted && outcome.is_damage() && outcome != Outcome::WrongKey {
            Verdict::Expected
        } else {
            verdict::judge(outcome, &journal_mode, &synchronous, Fault::Sigkill, true)
        },
        detail,
        busy_errors: 0,
        pragma_fallback: fallback,
        duration_us: 0,
        // The library that matters is the program's: DuckDB's or libSQL's version from the check,
        // or the SQLite version the program printed; else the lab's own.
        sqlite_version: match exec.engine {
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
                .unwrap_or_else(|| sqlite_version.to_string()),
        },
    };
    record.duration_us = started.elapsed().as_micros() as u64;
    if outcome != Outcome::Intact {
        let note = ExecTrialNote {
            kind: "exec".into(),
            record: record.clone(),
            master_seed: run.seed,
            exec: exec.clone(),
            kill_window_us: (window.0.as_micros() as u64, window.1.as_micros() as u64),
            argv: launched
                .as_ref()
                .map(|r| r.argv.clone())
                .unwrap_or_else(|_| child::argv(&exec.command, exec.shell, &db)),
            command_line: run.command_line.clone(),
            reproduce: String::new(),
        };
        let out = launched.as_ref().map_or(&[][..], |r| &r.stdout_tail[..]);
        if let Err(e) = save_evidence(run, note, &mut snapshot, &db_dir, &stderr, out, kill_at) {
            record
                .detail
                .push_str(&format!("; evidence not saved: {e}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    record
}

/// The journal mode the verdict uses, and what the `pragma_fallback` column says about it. The
/// program's own read-back wins, then the user's `--journal-mode`, then a WAL header on disk.
fn journal_mode(exec: &ExecOptions, said: Option<&str>, wal_header: bool) -> (String, String) {
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

fn fresh_folder(dir: &Path, db_dir: &Path) -> Result<(), String> {
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

/// The database folder as the program left it. SQLite's check changes only `-shm` and a hot
/// journal with its database, so only those are read before it, and the rest only for a failed
/// trial (as `evidence::Snapshot` does for the core). DuckDB's reopen replays and checkpoints its
/// WAL, and a `--verify-cmd` may do anything: then everything is read before the check.
struct Snapshot {
    files: Vec<(String, Vec<u8>)>,
}

impl Snapshot {
    fn before_check(exec: &ExecOptions, db_dir: &Path, db: &Path) -> Snapshot {
        let mut s = Snapshot { files: Vec::new() };
        // The libSQL check is a Python program: it checkpoints the WAL when it closes; an operator
        // action deletes files the evidence must keep.
        if exec.engine != Engine::Sqlite || exec.verify_cmd.is_some() || exec.after_kill.is_some() {
            s.complete(db_dir);
            return s;
        }
        let hot = std::fs::metadata(with_suffix(db, "-journal")).is_ok_and(|m| m.len() > 0);
        let mut wanted = vec![with_suffix(db, "-shm")];
        if hot {
            wanted.push(db.to_path_buf());
            wanted.push(with_suffix(db, "-journal"));
        }
        for p in wanted {
            s.add(&p);
        }
        s
    }

    fn add(&mut self, path: &Path) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if self.files.iter().any(|(n, _)| *n == name) {
            return;
        }
        if let Ok(bytes) = std::fs::read(path) {
            self.files.push((name, bytes));
        }
    }

    /// Adds every file of the folder not read yet.
    fn complete(&mut self, db_dir: &Path) {
        let Ok(entries) = std::fs::read_dir(db_dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for p in paths {
            self.add(&p);
        }
    }
}

fn save_evidence(
    run: &RunOptions,
    mut note: ExecTrialNote,
    snapshot: &mut Snapshot,
    db_dir: &Path,
    stderr: &Path,
    stdout_tail: &[u8],
    kill_at: Duration,
) -> std::io::Result<PathBuf> {
    let dir = run
        .out_dir
        .join("failures")
        .join(note.record.iteration.to_string());
    std::fs::create_dir_all(&dir)?;
    snapshot.complete(db_dir);
    for (name, bytes) in &snapshot.files {
        std::fs::write(dir.join(name), bytes)?;
    }
    if stderr.is_file() {
        std::fs::copy(stderr, dir.join("stderr.txt"))?;
    }
    std::fs::write(dir.join("stdout-tail.txt"), stdout_tail)?;
    // Kill timing depends on the machine, so a trial cannot be replayed exactly: say how to run the
    // same program with the same seed and kill it at the same time, and where the files are.
    let scratch = Path::new("/tmp/torture-exec-replay.db");
    let argv = child::argv(&note.exec.command, note.exec.shell, scratch).join(" ");
    let key = note
        .exec
        .key
        .as_deref()
        .map(|k| format!("TORTURE_KEY='{}' ", k.replace('\'', r"'\''")))
        .unwrap_or_default();
    note.reproduce = format!(
        "inspect {files} (the files as the program left them); to run it again: {key}TORTURE_DB={db} TORTURE_SEED={seed} {argv} & sleep {secs:.6}; kill -9 $!  (the whole run: {line})",
        files = dir.display(),
        db = scratch.display(),
        seed = note.record.seed,
        secs = kill_at.as_secs_f64(),
        line = run.command_line,
    );
    let json = serde_json::to_string_pretty(&note).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("trial.json"), json)?;
    Ok(dir)
}

#[cfg(test)]
#[path = "trial_tests.rs"]
mod tests;
