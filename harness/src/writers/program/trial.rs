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
mod tests {
    use std::collections::BTreeMap;
    use std::sync::OnceLock;

    use clap::Parser;

    use super::*;
    use crate::writers::program::calibrate_report;
    use crate::writers::program::AfterKill;

    const EXEC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../workloads/exec");

    struct Lab {
        _tmp: tempfile::TempDir,
        run: RunOptions,
        files: SlotFiles,
        work: PathBuf,
    }

    fn lab(seed: u64) -> Lab {
        let tmp = tempfile::tempdir_in(crate::options::default_work_base()).unwrap();
        let out = tmp.path().join("out");
        let cli = crate::cli::Cli::try_parse_from([
            "torture",
            "--seed",
            &seed.to_string(),
            "--out",
            out.to_str().unwrap(),
            "--trial-timeout",
            "60s",
        ])
        .unwrap();
        let run = RunOptions::validate(cli.run, "torture exec (test)".into()).unwrap();
        let dir = tmp.path().join("slot-0");
        std::fs::create_dir_all(&dir).unwrap();
        let files = SlotFiles::new(dir, 1, Vec::new()).unwrap();
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        Lab {
            _tmp: tmp,
            run,
            files,
            work,
        }
    }

    impl Lab {
        fn trials(
            &self,
            exec: &ExecOptions,
            window: (Duration, Duration),
            n: u64,
        ) -> Vec<TrialRecord> {
            (0..n)
                .map(|i| run_trial(&self.run, exec, window, i, &self.files, "3.x"))
                .collect()
        }

        /// The options with a calibrated (and anchored) kill window, as the run saves them.
        fn calibrated(&self, exec: ExecOptions) -> (ExecOptions, (Duration, Duration)) {
            let c = calibrate_report(&exec, &self.work, Duration::from_secs(60)).unwrap();
            eprintln!("{}: {c}", exec.profile_name());
            (exec.with_calibration(&c), c.window)
        }
    }

    fn counts(records: &[TrialRecord]) -> BTreeMap<Outcome, usize> {
        let mut m = BTreeMap::new();
        for r in records {
            *m.entry(r.outcome).or_insert(0) += 1;
        }
        m
    }

    fn report(name: &str, records: &[TrialRecord], secs: f64) {
        let writing = records.iter().filter(|r| r.acked_commits > 0).count();
        eprintln!(
            "{name}: {} trials in {secs:.1}s ({:.1}/s), {writing} killed after an ack, {:?}",
            records.len(),
            records.len() as f64 / secs,
            counts(records)
        );
        for r in records
            .iter()
            .filter(|r| r.outcome != Outcome::Intact)
            .take(3)
        {
            eprintln!(
                "  {} {} {}: {}",
                r.iteration, r.kill_point, r.outcome, r.detail
            );
        }
    }

    fn python_has(module: &str) -> bool {
        std::process::Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn python_writer(args: &[&str]) -> ExecOptions {
        let mut cmd = vec![
            "python3".to_string(),
            format!("{EXEC_DIR}/python_writer.py"),
            "{db}".to_string(),
        ];
        cmd.extend(args.iter().map(|a| a.to_string()));
        let mut o = ExecOptions::new(cmd);
        o.recovered_sql = Some("SELECT max(seq) FROM t".into());
        o.verify_sql = Some(check::tests::verify_sql());
        o
    }

    #[test]
    fn the_python_sqlite3_writer_in_wal_mode_survives_every_kill() {
        if !python_has("sqlite3") {
            eprintln!("SKIPPED: python3 with its sqlite3 module is not on this machine");
            return;
        }
        let lab = lab(11);
        let exec = python_writer(&["--commits", "2000"]);
        let (exec, window) = lab.calibrated(exec);
        let t = Instant::now();
        let records = lab.trials(&exec, window, 12);
        report("python_writer.py wal", &records, t.elapsed().as_secs_f64());
        for r in &records {
            assert_eq!(r.outcome, Outcome::Intact, "{r:?}");
            assert_eq!(r.verdict, Verdict::Ok);
            assert!(r.recovered_commits >= r.acked_commits, "{r:?}");
            assert_eq!(r.profile, "exec:python_writer.py");
            assert_eq!(r.workload, "exec");
            assert_eq!(r.fault, "sigkill");
            assert!(r.kill_point.starts_with("t="), "{}", r.kill_point);
        }
        let writing: Vec<_> = records.iter().filter(|r| r.acked_commits > 0).collect();
        assert!(
            writing.len() >= 7,
            "most kills should land while the program writes: {records:?}"
        );
        assert!(writing.iter().all(|r| r.journal_mode == "wal"));
        assert!(writing.iter().all(|r| r.synchronous == "full"));
        assert!(
            !lab.files.dir.join("exec-0").exists(),
            "trial folders are removed"
        );
    }

    #[test]
    fn a_program_that_acks_before_committing_is_caught_losing_commits() {
        if !python_has("sqlite3") {
            eprintln!("SKIPPED: python3 with its sqlite3 module is not on this machine");
            return;
        }
        let lab = lab(12);
        // Big transactions: the lie (the ack of commit N printed before N is made) is exposed
        // whenever the kill lands inside one. DELETE mode: in WAL mode a kill during the
        // checkpoint that follows some COMMITs lands after the commit point and hides the lie.
        let exec = python_writer(&[
            "--lie",
            "--journal-mode",
            "delete",
            "--commits",
            "600",
            "--rows",
            "20..40",
        ]);
        let (exec, window) = lab.calibrated(exec);
        let t = Instant::now();
        let records = lab.trials(&exec, window, 14);
        report(
            "python_writer.py --lie",
            &records,
            t.elapsed().as_secs_f64(),
        );
        let lost: Vec<_> = records
            .iter()
            .filter(|r| r.outcome == Outcome::LostCommit)
            .collect();
        assert!(lost.len() >= 4, "{:?}", counts(&records));
        for r in &lost {
            assert_eq!(r.verdict, Verdict::Violation);
            assert!(r.recovered_commits < r.acked_commits, "{r:?}");
            assert!(r.detail.contains("acknowledged up to"), "{}", r.detail);
        }
        let failure = lab
            .run
            .out_dir
            .join("failures")
            .join(lost[0].iteration.to_string());
        for f in ["trial.json", "trial.db", "stderr.txt", "stdout-tail.txt"] {
            assert!(failure.join(f).is_file(), "{f} missing in {failure:?}");
        }
        let note: ExecTrialNote =
            serde_json::from_str(&std::fs::read_to_string(failure.join("trial.json")).unwrap())
                .unwrap();
        assert_eq!(note.kind, "exec");
        assert_eq!(note.record.outcome, Outcome::LostCommit);
        assert!(note.argv.iter().any(|a| a.ends_with("trial.db")));
    }

    #[test]
    fn journal_mode_off_with_big_transactions_breaks_as_documented() {
        if !python_has("sqlite3") {
            eprintln!("SKIPPED: python3 with its sqlite3 module is not on this machine");
            return;
        }
        let lab = lab(13);
        // A tiny page cache writes half-done transfers over pages in use before COMMIT; without a
        // journal nothing can take them back.
        let exec = python_writer(&[
            "--journal-mode",
            "off",
            "--synchronous",
            "off",
            "--commits",
            "300",
            "--transfers",
            "30",
            "--cache-size",
            "8",
        ]);
        let (exec, window) = lab.calibrated(exec);
        let t = Instant::now();
        let records = lab.trials(&exec, window, 16);
        report("python_writer.py off", &records, t.elapsed().as_secs_f64());
        let damaged: Vec<_> = records.iter().filter(|r| r.outcome.is_damage()).collect();
        assert!(damaged.len() >= 3, "{:?}", counts(&records));
        for r in &damaged {
            assert_eq!(r.journal_mode, "off");
            assert_eq!(
                r.verdict,
                Verdict::Expected,
                "the program read back journal_mode=off: SQLite promises nothing"
            );
        }
    }

    #[test]
    fn the_sqlite3_shell_fed_a_script_survives_every_kill() {
        let cli = ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3"]
            .into_iter()
            .find(|p| Path::new(p).is_file());
        if cli.is_none() {
            eprintln!("SKIPPED: no sqlite3 command-line shell on this machine");
            return;
        }
        let lab = lab(14);
        let mut exec = ExecOptions::new(vec![
            "sh".into(),
            format!("{EXEC_DIR}/sqlite3_cli_writer.sh"),
            "{db}".into(),
            "1500".into(),
        ]);
        exec.recovered_sql = Some("SELECT max(seq) FROM t".into());
        exec.verify_sql = Some(check::tests::verify_sql());
        let (exec, window) = lab.calibrated(exec);
        let t = Instant::now();
        let records = lab.trials(&exec, window, 10);
        report("sqlite3_cli_writer.sh", &records, t.elapsed().as_secs_f64());
        for r in &records {
            assert_eq!(r.outcome, Outcome::Intact, "{r:?}");
            assert!(r.recovered_commits >= r.acked_commits, "{r:?}");
            assert_eq!(r.profile, "exec:sqlite3_cli_writer.sh");
        }
        let writing: Vec<_> = records.iter().filter(|r| r.acked_commits > 0).collect();
        assert!(writing.len() >= 6, "{records:?}");
        assert!(writing
            .iter()
            .all(|r| r.journal_mode == "wal" && r.sqlite_version.starts_with("3.")));
    }

    #[test]
    fn trials_start_from_the_seed_database() {
        if !python_has("sqlite3") {
            eprintln!("SKIPPED: python3 with its sqlite3 module is not on this machine");
            return;
        }
        let lab = lab(15);
        let seed_db = lab.work.join("seed.db");
        check::tests::writer_db(&seed_db, 50);
        let mut exec = python_writer(&["--commits", "1000"]);
        exec.seed_db = Some(seed_db.clone());
        // Killed before the interpreter could even start: the database is the seed, untouched.
        let early = lab.trials(
            &exec,
            (Duration::from_micros(1), Duration::from_micros(1)),
            1,
        );
        assert_eq!(early[0].outcome, Outcome::Intact, "{:?}", early[0]);
        assert_eq!(
            (early[0].acked_commits, early[0].recovered_commits),
            (0, 50)
        );
        // Killed while writing: the program carried on after the seed's 50 commits.
        let (exec, window) = lab.calibrated(exec);
        let late = run_trial(&lab.run, &exec, (window.1, window.1), 1, &lab.files, "3.x");
        assert_eq!(late.outcome, Outcome::Intact, "{late:?}");
        assert!(late.acked_commits > 50, "{late:?}");
        assert!(late.recovered_commits >= late.acked_commits);
        let seed_max: i64 = rusqlite::Connection::open(&seed_db)
            .unwrap()
            .query_row("SELECT max(seq) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seed_max, 50, "the seed itself is only copied");
    }

    #[test]
    fn kills_follow_a_start_up_slower_than_calibrated() {
        if !python_has("sqlite3") {
            eprintln!("SKIPPED: python3 with its sqlite3 module is not on this machine");
            return;
        }
        let lab = lab(19);
        let (fast, window) =
            lab.calibrated(python_writer(&["--start-delay", "0.1", "--commits", "600"]));
        // The same program on a busy day: it sleeps past the end of the calibrated window before
        // it even opens the database, so kills counted from its start alone all land in start-up.
        let delay = format!("{:.3}", window.1.as_secs_f64() + 0.2);
        let mut slow = python_writer(&["--start-delay", &delay, "--commits", "600"]);
        slow.kill_window = fast.kill_window;
        slow.anchor = fast.anchor;
        let records = lab.trials(&slow, window, 5);
        let writing = records.iter().filter(|r| r.acked_commits > 0).count();
        assert!(writing >= 3, "{records:?}");
        for r in &records {
            assert_eq!(r.outcome, Outcome::Intact, "{r:?}");
        }
        slow.anchor = None;
        for r in lab.trials(&slow, window, 2) {
            assert_eq!(r.acked_commits, 0, "{r:?}");
        }
    }

    #[test]
    fn a_program_that_fails_by_itself_is_a_worker_error_with_its_stderr() {
        let lab = lab(16);
        let exec = ExecOptions::new(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo 'ModuleNotFoundError: no module named app' >&2; exit 1".into(),
        ]);
        let r = &lab.trials(&exec, (Duration::from_secs(5), Duration::from_secs(5)), 1)[0];
        assert_eq!(r.outcome, Outcome::WorkerError, "{r:?}");
        assert_eq!(r.verdict, Verdict::LabError);
        assert!(r.detail.contains("status 1") && r.detail.contains("ModuleNotFoundError"));
        assert!(r.kill_point.contains("not reached"), "{}", r.kill_point);
        assert!(
            r.duration_us < 4_000_000,
            "the lab did not wait for the kill time"
        );
        let missing = ExecOptions::new(vec!["/nonexistent/app".into()]);
        let r = &lab.trials(&missing, (Duration::ZERO, Duration::ZERO), 1)[0];
        assert_eq!(r.outcome, Outcome::WorkerError);
        assert!(r.detail.contains("cannot start"), "{}", r.detail);
    }

    /// `module` from PyPI, installed with pip if it is missing.
    fn pip_ready(module: &str) -> Result<(), String> {
        if python_has(module) {
            return Ok(());
        }
        let pip = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", module])
            .output()
            .map_err(|e| format!("cannot run python3 -m pip: {e}"))?;
        if python_has(module) {
            Ok(())
        } else {
            Err(format!(
                "`python3 -m pip install {module}` failed ({}): {}",
                pip.status,
                check::tail(&pip.stderr, 400)
            ))
        }
    }

    /// DuckDB through its PyPI wheel: installed once per test run if it is missing.
    fn duckdb_ready() -> Result<(), String> {
        static READY: OnceLock<Result<(), String>> = OnceLock::new();
        READY.get_or_init(|| pip_ready("duckdb")).clone()
    }

    fn require_duckdb() {
        if let Err(e) = duckdb_ready() {
            panic!("DUCKDB TEST NOT RUN (and failed so you see it): {e}");
        }
    }

    /// `duckdb_writer.py`, 80 commits of 1..50 rows, checked by DuckDB with `--recovered-sql`.
    fn duckdb_writer() -> ExecOptions {
        let mut exec = ExecOptions::new(vec![
            "python3".into(),
            format!("{EXEC_DIR}/duckdb_writer.py"),
            "{db}".into(),
            "--commits".into(),
            "80".into(),
            "--rows".into(),
            "1..50".into(),
        ]);
        exec.engine = Engine::Duckdb;
        exec.recovered_sql = Some("SELECT max(seq) FROM t".into());
        exec
    }

    #[test]
    fn the_python_duckdb_writer_is_checked_by_reopening_with_duckdb() {
        require_duckdb();
        let lab = lab(17);
        let mut exec = duckdb_writer();
        exec.verify_sql =
            Some(std::fs::read_to_string(format!("{EXEC_DIR}/verify_duckdb.sql")).unwrap());
        let (exec, window) = lab.calibrated(exec);
        let t = Instant::now();
        let records = lab.trials(&exec, window, 6);
        report("duckdb_writer.py", &records, t.elapsed().as_secs_f64());
        for r in &records {
            assert_ne!(r.outcome, Outcome::WorkerError, "{r:?}");
            assert!(r.sqlite_version.starts_with("duckdb "), "{r:?}");
            assert_eq!(r.profile, "exec:duckdb_writer.py");
            if r.outcome == Outcome::Intact {
                assert!(r.recovered_commits >= r.acked_commits, "{r:?}");
            }
        }
        assert!(records.iter().filter(|r| r.acked_commits > 0).count() >= 3);
    }

    #[test]
    fn deleting_duckdbs_wal_after_the_kill_loses_what_was_acknowledged() {
        // Seed 004's operator fix ("delete the WAL, DuckDB will rebuild"), measured.
        require_duckdb();
        let lab = lab(19);
        let mut exec = duckdb_writer();
        exec.after_kill = Some(AfterKill::DeleteWal);
        let (exec, window) = lab.calibrated(exec);
        let records = lab.trials(&exec, window, 6);
        for r in &records {
            assert_eq!(r.profile, "exec:duckdb_writer.py+delete-wal");
            assert_ne!(r.verdict, Verdict::Violation, "the operator's doing: {r:?}");
        }
        let acked: Vec<_> = records.iter().filter(|r| r.acked_commits > 0).collect();
        assert!(acked.len() >= 3, "{records:?}");
        // DuckDB checkpoints its WAL into the database now and then and removes it; a kill right
        // after that leaves no WAL to delete, and then nothing is lost.
        let mut deleted = 0;
        for r in acked {
            if r.detail.contains("deleted trial.db.wal") {
                deleted += 1;
                assert_eq!(r.outcome, Outcome::LostCommit, "{r:?}");
            } else {
                assert!(r.detail.contains("nothing to delete"), "{}", r.detail);
                assert_eq!(r.outcome, Outcome::Intact, "{r:?}");
            }
        }
        assert!(deleted >= 2, "{records:?}");
    }

    #[test]
    fn operator_actions_delete_the_engines_own_sidecars() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("x.db");
        for f in ["x.db", "x.db-wal", "x.db-shm", "x.db-journal", "x.db.wal"] {
            std::fs::write(d.path().join(f), b"abc").unwrap();
        }
        let (note, deleted) = AfterKill::DeleteWal.apply(Engine::Duckdb, &db);
        assert_eq!(note, "operator delete-wal: deleted x.db.wal (3 bytes)");
        assert!(deleted);
        assert!(d.path().join("x.db-wal").exists());
        AfterKill::DeleteWal.apply(Engine::Sqlite, &db);
        assert!(!d.path().join("x.db-wal").exists());
        assert!(d.path().join("x.db-journal").exists());
        let (note, _) = AfterKill::DbOnly.apply(Engine::Sqlite, &db);
        assert!(
            note.contains("x.db-shm") && note.contains("x.db-journal"),
            "{note}"
        );
        assert!(d.path().join("x.db").exists());
        assert_eq!(
            AfterKill::DeleteJournal.apply(Engine::Libsql, &db),
            (
                "operator delete-journal: nothing to delete".to_string(),
                false
            )
        );
        let mut o = ExecOptions::new(vec!["x".into()]);
        o.engine = Engine::Duckdb;
        o.after_kill = Some(AfterKill::DeleteJournal);
        assert!(o.validate().unwrap_err().contains("no rollback journal"));
    }

    #[test]
    fn a_duckdb_wal_that_fails_to_replay_is_open_failed_with_duckdbs_words() {
        require_duckdb();
        let lab = lab(18);
        let db = lab.work.join("d.db");
        // A committed WAL that was never checkpointed, then damaged in the middle.
        let make = std::process::Command::new("python3")
            .args([
                "-c",
                "import duckdb, shutil, sys
c = duckdb.connect(sys.argv[1] + '.src')
c.execute(\"SET checkpoint_threshold = '1GB'\")
c.execute('CREATE TABLE t(seq INTEGER)')
c.execute('CHECKPOINT')
for i in range(1, 51): c.execute('INSERT INTO t VALUES (?)', [i])
shutil.copy(sys.argv[1] + '.src', sys.argv[1])
shutil.copy(sys.argv[1] + '.src.wal', sys.argv[1] + '.wal')",
                db.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            make.status.success(),
            "{}",
            String::from_utf8_lossy(&make.stderr)
        );
        let wal = with_suffix(&db, ".wal");
        let mut bytes = std::fs::read(&wal).unwrap();
        assert!(bytes.len() > 600, "the WAL holds the inserts");
        for b in &mut bytes[200..400] {
            *b = 0x5A;
        }
        std::fs::write(&wal, bytes).unwrap();
        let mut exec = ExecOptions::new(vec!["x".into()]);
        exec.engine = Engine::Duckdb;
        exec.recovered_sql = Some("SELECT max(seq) FROM t".into());
        let c = check::verify(&CheckEnv {
            exec: &exec,
            db: &db,
            acked: 50,
            timeout: Duration::from_secs(30),
            scratch: &lab.work,
            close_fds: &[],
        });
        assert_eq!(c.outcome, Outcome::OpenFailed, "{c:?}");
        assert!(
            c.detail.contains("Failure while replaying WAL"),
            "{}",
            c.detail
        );
        assert!(c.engine_version.is_some_and(|v| v.starts_with("duckdb ")));
    }

    /// libSQL through its PyPI wheel (`libsql`, prebuilt): installed once per test run if missing.
    fn require_libsql() {
        static READY: OnceLock<Result<(), String>> = OnceLock::new();
        if let Err(e) = READY.get_or_init(|| pip_ready("libsql")) {
            panic!("LIBSQL TEST NOT RUN (and failed so you see it): {e}");
        }
    }

    fn libsql_writer(args: &[&str]) -> ExecOptions {
        let mut cmd = vec![
            "python3".to_string(),
            format!("{EXEC_DIR}/libsql_writer.py"),
            "{db}".to_string(),
        ];
        cmd.extend(args.iter().map(|a| a.to_string()));
        let mut o = ExecOptions::new(cmd);
        o.engine = Engine::Libsql;
        o.recovered_sql = Some("SELECT max(seq) FROM t".into());
        o.verify_sql = Some(check::tests::verify_sql());
        o
    }

    /// The negative control: libSQL in WAL + FULL keeps every acknowledged commit, plaintext or
    /// encrypted, and the CSV names libSQL's SQLite.
    fn libsql_survives_every_kill(seed: u64, key: Option<&str>) {
        require_libsql();
        let lab = lab(seed);
        let mut exec = libsql_writer(&["--commits", "2000"]);
        exec.key = key.map(str::to_string);
        let (exec, window) = lab.calibrated(exec);
        let t = Instant::now();
        let records = lab.trials(&exec, window, 12);
        let name = format!("libsql_writer.py wal key={key:?}");
        report(&name, &records, t.elapsed().as_secs_f64());
        for r in &records {
            assert_eq!(r.outcome, Outcome::Intact, "{r:?}");
            assert!(r.recovered_commits >= r.acked_commits, "{r:?}");
            assert_eq!(r.profile, "exec:libsql_writer.py");
        }
        let writing: Vec<_> = records.iter().filter(|r| r.acked_commits > 0).collect();
        assert!(writing.len() >= 8, "{:?}", counts(&records));
        for r in writing {
            assert!(r.sqlite_version.starts_with("libsql 3."), "{r:?}");
            assert_eq!((&*r.journal_mode, &*r.synchronous), ("wal", "full"));
        }
    }

    #[test]
    fn the_libsql_writer_in_wal_mode_survives_every_kill() {
        libsql_survives_every_kill(21, None);
    }

    #[test]
    fn the_encrypted_libsql_writer_survives_every_kill() {
        libsql_survives_every_kill(22, Some("torture-test-key"));
    }

    /// Runs libsql_writer.py to its end on `db` with `key` (as `TORTURE_KEY`).
    fn write_with_libsql(db: &Path, key: Option<&str>, args: &[&str]) {
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(format!("{EXEC_DIR}/libsql_writer.py"))
            .arg(db)
            .args(args)
            .stdout(std::process::Stdio::null());
        if let Some(k) = key {
            cmd.env("TORTURE_KEY", k);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn libsql_check(exec: &ExecOptions, db: &Path, acked: u64, scratch: &Path) -> Check {
        check::verify(&CheckEnv {
            exec,
            db,
            acked,
            timeout: Duration::from_secs(30),
            scratch,
            close_fds: &[],
        })
    }

    #[test]
    fn an_encrypted_libsql_file_opens_with_its_key_only() {
        require_libsql();
        let lab = lab(23);
        let db = lab.work.join("enc.db");
        write_with_libsql(&db, Some("right"), &["--commits", "30"]);
        // Really encrypted: no magic, the bundled SQLite cannot read it, libSQL's layout is seen.
        let bytes = std::fs::read(&db).unwrap();
        assert_ne!(&bytes[..16], b"SQLite format 3\0");
        assert!(check::encrypted_header(&bytes[..24]));
        let plain = rusqlite::Connection::open(&db).unwrap();
        let e = plain
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap_err();
        assert!(crate::verify::sqlite_error::is_notadb(&e), "{e}");
        drop(plain);

        let mut exec = libsql_writer(&[]);
        exec.key = Some("right".into());
        let c = libsql_check(&exec, &db, 30, &lab.work);
        assert_eq!((c.outcome, c.recovered), (Outcome::Intact, 30), "{c:?}");
        assert!(c.engine_version.is_some_and(|v| v.starts_with("libsql 3.")));
        // The positive controls: another key, no key, a key on a plaintext file.
        exec.key = Some("wrong".into());
        let c = libsql_check(&exec, &db, 30, &lab.work);
        assert_eq!(c.outcome, Outcome::WrongKey, "{c:?}");
        assert!(c.detail.contains("not a database"), "{}", c.detail);
        exec.key = None;
        let c = libsql_check(&exec, &db, 30, &lab.work);
        assert_eq!(c.outcome, Outcome::WrongKey, "{c:?}");
        assert!(c.detail.contains("no --key"), "{}", c.detail);
        let plain_db = lab.work.join("plain.db");
        write_with_libsql(&plain_db, None, &["--commits", "5"]);
        assert_eq!(
            &std::fs::read(&plain_db).unwrap()[..16],
            b"SQLite format 3\0"
        );
        exec.key = Some("right".into());
        let c = libsql_check(&exec, &plain_db, 5, &lab.work);
        assert_eq!(c.outcome, Outcome::WrongKey, "{c:?}");
        assert!(c.detail.contains("plaintext"), "{}", c.detail);
        // The right key on a file whose plaintext header bytes are damaged: not a key problem.
        let mut damaged = bytes.clone();
        damaged[16..24].fill(0xA5);
        std::fs::write(&db, &damaged).unwrap();
        let c = libsql_check(&exec, &db, 30, &lab.work);
        assert_eq!(c.outcome, Outcome::OpenFailed, "{c:?}");
        // Pages past the first damaged, with the right key: integrity_check or a read says so.
        let mut damaged = bytes;
        for b in &mut damaged[10 * 4096..14 * 4096] {
            *b ^= 0x5A;
        }
        std::fs::write(&db, &damaged).unwrap();
        let c = libsql_check(&exec, &db, 30, &lab.work);
        assert!(
            matches!(c.outcome, Outcome::Corrupt | Outcome::Atomicity),
            "{c:?}"
        );
    }

    #[test]
    fn libsql_with_journal_mode_off_breaks_as_documented() {
        require_libsql();
        let lab = lab(24);
        let mut exec = libsql_writer(&[
            "--journal-mode",
            "off",
            "--synchronous",
            "off",
            "--commits",
            "300",
            "--transfers",
            "30",
            "--cache-size",
            "8",
        ]);
        exec.key = Some("k".into());
        let (exec, window) = lab.calibrated(exec);
        let t = Instant::now();
        let records = lab.trials(&exec, window, 16);
        report("libsql_writer.py off", &records, t.elapsed().as_secs_f64());
        let damaged: Vec<_> = records.iter().filter(|r| r.outcome.is_damage()).collect();
        assert!(damaged.len() >= 3, "{:?}", counts(&records));
        for r in &damaged {
            assert_ne!(r.outcome, Outcome::WrongKey, "{r:?}");
            assert_eq!(r.journal_mode, "off");
            assert_eq!(r.verdict, Verdict::Expected, "{r:?}");
        }
    }

    #[test]
    fn a_python_without_the_libsql_package_is_one_line_naming_pip_install() {
        let lab = lab(25);
        // python3 -S skips site-packages, where pip puts libsql.
        let py = lab.work.join("python-without-site");
        std::fs::write(&py, "#!/bin/sh\nexec python3 -S \"$@\"\n").unwrap();
        std::fs::set_permissions(&py, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let mut exec = libsql_writer(&[]);
        exec.python = py.to_string_lossy().into_owned();
        let e = check::python_ready(&exec).unwrap_err();
        assert!(e.contains("pip install libsql"), "{e}");
        assert!(e.contains("No module named 'libsql'"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        // The check itself says the same if the package goes missing mid-run.
        let db = lab.work.join("x.db");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t(seq)")
            .unwrap();
        let c = libsql_check(&exec, &db, 1, &lab.work);
        assert_eq!(c.outcome, Outcome::WorkerError, "{c:?}");
        assert!(c.detail.contains("pip install libsql"), "{}", c.detail);
        exec.engine = Engine::Sqlite;
        assert!(check::python_ready(&exec).is_ok(), "SQLite needs no Python");
    }

    #[test]
    fn the_journal_mode_judged_is_the_one_read_back_then_declared_then_seen() {
        let mut o = ExecOptions::new(vec!["x".into()]);
        assert_eq!(journal_mode(&o, None, false).0, "?");
        assert_eq!(journal_mode(&o, None, true).0, "wal");
        assert_eq!(journal_mode(&o, Some("off"), true).0, "off");
        o.journal_mode = Some("delete".into());
        assert_eq!(journal_mode(&o, None, true).0, "delete");
        let (m, note) = journal_mode(&o, Some("wal"), false);
        assert_eq!(m, "wal");
        assert!(note.contains("declared"), "{note}");
        o.engine = Engine::Duckdb;
        assert_eq!(journal_mode(&o, Some("wal"), true).0, "?");
    }
}
