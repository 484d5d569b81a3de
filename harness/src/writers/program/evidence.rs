//! What an exec trial leaves behind and how it is re-checked: the database files as the program
//! left them, its stderr and stdout tail, and `trial.json` (the row, the options, every acknowledged
//! commit per instance). `torture replay FOLDER` runs the trial's check again on a copy of those
//! files ([`recheck`]) and says whether it reaches the verdict the run recorded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use torture_preload::Variant;

use super::check::{self, CheckEnv};
use super::child;
use super::judge;
use super::{Engine, ExecOptions};
use crate::engine::with_suffix;
use crate::exit_code;
use crate::fsio::write_no_follow;
use crate::reproduce::{quote as shell_quote, shell_words_str};
use crate::trial::record::{self, Judged, Pragmas};
use crate::verify::outcome::{Outcome, TrialRecord, Verdict};

/// The folder inside the evidence that holds the recording's starting files, and the file that
/// names their inodes (the log follows files by inode).
pub const START_DIR: &str = "recording-start";
pub const START_INODES: &str = "recording-start.json";

/// What `trial.json` holds for an exec trial (in `OUT/failures/<i>/`, `OUT/evidence/<i>/` or
/// `OUT/calibration/`). `reproduce` says how to run the program by hand on the same path and seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecTrialNote {
    /// Always `exec`: tells this note from the core's.
    pub kind: String,
    pub record: TrialRecord,
    pub master_seed: u64,
    pub exec: ExecOptions,
    /// The kill window the trial's time was drawn from, in microseconds (SIGKILL trials).
    #[serde(default)]
    pub kill_window_us: (u64, u64),
    /// The command as it ran, `{db}` substituted (SIGKILL trials).
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default)]
    pub command_line: String,
    pub reproduce: String,
    /// Every acknowledged commit number, per instance, in the order the lines came (under
    /// `--fault`: those acknowledged before the saved state's cut, all instances together).
    #[serde(default)]
    pub acks: Vec<Vec<u64>>,
    /// Under `--fault`: the saved crash state (its files are in `crash-state/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_state: Option<CrashStateNote>,
}

/// Which crash state of a recorded trial the evidence holds, and how it was judged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CrashStateNote {
    /// The cut: after this operation of the recording.
    pub cut: u64,
    /// `keep-all`, `lose-all`, `tear-last` or `random:<seed>`.
    pub variant: String,
    pub state_hash: String,
    /// The disk kept the promises SQLite assumes (no `--lying-disk`, powersafe overwrite).
    pub hardware_as_documented: bool,
    /// The state was cut after an injected failure of a directory fsync SQLite ignores: its
    /// damage was judged `expected` (`faults::recorded::excuse_after_failed_directory_sync`).
    #[serde(default)]
    pub excused_after_failed_directory_sync: bool,
    /// Each instance's leader pid in the recording, to tell the instances' acks apart.
    #[serde(default)]
    pub instance_leaders: Vec<u32>,
    /// The run's cause of the state's lost commit (`judge::Cause`), re-derived by replay from the
    /// saved recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The folder inside a fault trial's evidence that holds the crash state's files.
pub const CRASH_STATE_DIR: &str = "crash-state";

/// The database folder as the program left it. SQLite's check changes only `-shm` and a hot
/// journal with its database, so only those are read before it, and the rest only for a failed
/// trial (as `evidence::Snapshot` does for the core). DuckDB's reopen replays and checkpoints its
/// WAL, and a `--verify-cmd` may do anything: then everything is read before the check.
pub(crate) struct Snapshot {
    files: Vec<(String, Vec<u8>)>,
}

impl Snapshot {
    pub(crate) fn before_check(exec: &ExecOptions, db_dir: &Path, db: &Path) -> Snapshot {
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

/// Writes the evidence folder `dir`: the files, stderr, each instance's stdout tail, `trial.json`.
pub(crate) fn save_evidence(
    dir: &Path,
    mut note: ExecTrialNote,
    snapshot: &mut Snapshot,
    db_dir: &Path,
    stderr: &Path,
    stdout_tails: &[Vec<u8>],
    kill_at: Duration,
) -> std::io::Result<()> {
    // Owner only: the files may hold a user's data, and the calibration's folder waits in the
    // scratch disk (`/dev/shm`) until the run moves it to OUT.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)?;
    snapshot.complete(db_dir);
    // Written without following a link planted in OUT.
    for (name, bytes) in &snapshot.files {
        write_no_follow(&dir.join(name), bytes)?;
    }
    if stderr.is_file() {
        write_no_follow(&dir.join("stderr.txt"), &std::fs::read(stderr)?)?;
    }
    for (i, tail) in stdout_tails.iter().enumerate() {
        let name = match i {
            0 => "stdout-tail.txt".to_string(),
            i => format!("stdout-tail-{i}.txt"),
        };
        write_no_follow(&dir.join(name), tail)?;
    }
    // Kill timing depends on the machine, so a trial cannot be replayed exactly: say how to run the
    // same program with the same seed and kill it at the same time, and where the files are.
    let scratch = Path::new("/tmp/torture-exec-replay.db");
    // Every word quoted: a path or a key with shell syntax in it stays one word.
    let argv = shell_words_str(&child::argv(&note.exec.command, note.exec.shell, scratch));
    let key = note
        .exec
        .key
        .as_deref()
        .map(|k| format!("TORTURE_KEY={} ", shell_quote(k)))
        .unwrap_or_default();
    note.reproduce = format!(
        "inspect {files} (the files as the program left them; `torture replay {files}` checks them again); to run it again: {key}TORTURE_DB={db} TORTURE_SEED={seed} {argv} & sleep {secs:.6}; kill -9 $!  (the whole run: {line})",
        files = shell_quote(&dir.to_string_lossy()),
        db = scratch.display(),
        seed = note.record.seed,
        secs = kill_at.as_secs_f64(),
        line = note.command_line,
    );
    let json = serde_json::to_string_pretty(&note).map_err(std::io::Error::other)?;
    // Whole or absent: a full OUT never leaves a torn note that looks like evidence.
    crate::fsio::write_whole(&dir.join("trial.json"), json.as_bytes())
}

/// What the user named on `torture replay`'s command line: the only commands a re-check runs.
/// An evidence folder is data; what its `trial.json` asks to execute runs only with `trust_folder`.
#[derive(Clone, Debug, Default)]
pub struct Named {
    /// `--trust-folder`: run the `--verify-cmd` and `--python` the folder names.
    pub trust_folder: bool,
    /// `--verify-cmd`: the invariant command, instead of the folder's.
    pub verify_cmd: Option<String>,
    /// `--python`: the interpreter of a DuckDB or libSQL check, instead of the folder's.
    pub python: Option<String>,
}

impl Named {
    /// The options the re-check runs with: the folder's, with every command in them either named
    /// again by the user or allowed by `--trust-folder`; else the one line that refuses.
    fn resolve(&self, mut exec: ExecOptions, note_path: &Path) -> Result<ExecOptions, String> {
        match (&self.verify_cmd, &exec.verify_cmd) {
            (Some(mine), _) => exec.verify_cmd = Some(mine.clone()),
            (None, Some(theirs)) if !self.trust_folder => {
                return Err(format!(
                    "{} asks to run a command (--verify-cmd {}); replay runs nothing a folder names: name it again with --verify-cmd, or pass --trust-folder if you trust this folder",
                    note_path.display(),
                    shell_quote(theirs)
                ))
            }
            (None, _) => {}
        }
        let default_python = ExecOptions::new(Vec::new()).python;
        match &self.python {
            Some(mine) => exec.python = mine.clone(),
            None if exec.engine.python_module().is_some()
                && exec.python != default_python
                && !self.trust_folder =>
            {
                return Err(format!(
                    "{} asks to check with the interpreter {}; replay runs nothing a folder names: name it again with --python, or pass --trust-folder if you trust this folder",
                    note_path.display(),
                    shell_quote(&exec.python)
                ))
            }
            None if exec.engine.python_module().is_none() => exec.python = default_python,
            None => {}
        }
        if let Some(cmd) = &exec.verify_cmd {
            child::check_shell_syntax(cmd, "--verify-cmd")?;
        }
        Ok(exec)
    }
}

/// Refuses a folder with anything but regular files and folders in it (a symlink could make the
/// re-check read outside it, a FIFO or a device would never end).
fn check_plain_folder(folder: &Path, depth: u32) -> Result<(), String> {
    let entries = std::fs::read_dir(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    for e in entries.flatten() {
        let path = e.path();
        let kind = e
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if kind.is_dir() && depth > 0 {
            check_plain_folder(&path, depth - 1)?;
        } else if !kind.is_file() {
            return Err(format!(
                "{} is {}; an evidence folder holds only regular files: give a folder a run wrote",
                path.display(),
                if kind.is_symlink() {
                    "a symlink"
                } else {
                    "not a regular file"
                }
            ));
        }
    }
    Ok(())
}

/// Files of an evidence folder that are not the database's.
const NOT_DB_FILES: [&str; 2] = ["trial.json", "stderr.txt"];

/// What a re-check found, next to what the run recorded.
#[derive(Debug)]
pub struct Recheck {
    pub note: ExecTrialNote,
    pub outcome: Outcome,
    pub verdict: Verdict,
    pub recovered: u64,
    pub detail: String,
}

impl Recheck {
    /// The re-check reaches the recorded outcome, verdict and surviving commits. A trial recorded
    /// as `worker-error` because the program itself failed is compared on its database only.
    pub fn agrees(&self) -> bool {
        let r = &self.note.record;
        let recorded_db_outcome =
            if r.outcome == Outcome::WorkerError && self.outcome == Outcome::Intact {
                Outcome::Intact
            } else {
                r.outcome
            };
        self.outcome == recorded_db_outcome
            && (r.outcome == Outcome::WorkerError || self.verdict == r.verdict)
            && self.recovered == r.recovered_commits
    }
}

/// Runs the check of the trial saved in `folder` again, on a copy of its files, running only the
/// commands `named` allows.
pub fn recheck_folder(folder: &Path, named: &Named) -> Result<Recheck, String> {
    let note_path = folder.join("trial.json");
    let mut note: ExecTrialNote = crate::fsio::read_data_text(&note_path, crate::fsio::MAX_NOTE_BYTES)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| {
            format!(
                "cannot read {} ({e}); give an exec evidence folder (OUT/failures/<i>, OUT/evidence/<i> or OUT/calibration)",
                note_path.display()
            )
        })?;
    check_plain_folder(folder, 2)?;
    note.exec = named.resolve(note.exec, &note_path)?;
    let work = tempfile::Builder::new()
        .prefix("torture-recheck-")
        .permissions(crate::fsio::private_dir())
        .tempdir()
        .map_err(|e| format!("cannot make a folder: {e}"))?;
    let db_dir = work.path().join("db");
    std::fs::create_dir_all(&db_dir).map_err(|e| e.to_string())?;
    let db = db_dir.join(note.exec.db_file_name());
    // A fault trial's files are the crash state's, in their own folder.
    let files_dir = match note.crash_state {
        Some(_) => folder.join(CRASH_STATE_DIR),
        None => folder.to_path_buf(),
    };
    let entries =
        std::fs::read_dir(&files_dir).map_err(|e| format!("{}: {e}", files_dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if NOT_DB_FILES.contains(&name.as_str())
            || name.starts_with("stdout-tail")
            || !e.path().is_file()
        {
            continue;
        }
        std::fs::copy(e.path(), db_dir.join(&name)).map_err(|e| format!("copying {name}: {e}"))?;
    }
    let exec = &note.exec;
    let operator = exec.after_kill.map(|a| a.apply(exec.engine, &db));
    let acked = note.record.acked_commits;
    let c = check::verify(&CheckEnv {
        exec,
        db: &db,
        acked,
        acks: &note.acks,
        timeout: Duration::from_secs(120),
        scratch: work.path(),
        close_fds: &[],
    });
    let deleted = operator.as_ref().is_some_and(|(_, d)| *d);
    // The same verdict call as the run's own row.
    let pragmas = Pragmas {
        journal_mode: note.record.journal_mode.clone(),
        synchronous: note.record.synchronous.clone(),
        fallback: String::new(),
    };
    let judged = Judged {
        expected_damage: deleted,
        ..Judged::crash()
    };
    let verdict = match (&note.crash_state, exec.fault.as_ref()) {
        // The same call as the recorded trial's for each of its states.
        (Some(s), Some(f)) => {
            let v = crate::verify::verdict::judge(
                c.outcome,
                &pragmas.journal_mode,
                &pragmas.synchronous,
                f.fault
                    .judged_as(super::judge::variant_class(&s.variant) == Variant::KeepAll),
                s.hardware_as_documented,
            );
            // The excuse, derived again from the saved recording when it is there (else the run's).
            let spans = match torture_preload::read_log(&folder.join("faultfs.log")) {
                Ok(log) if exec.engine == Engine::Sqlite && !f.fsync_commits_names => {
                    crate::faults::recorded::ignored_directory_sync_failures(&log)
                }
                Ok(_) => Vec::new(),
                Err(_) if s.excused_after_failed_directory_sync => vec![(0, u64::MAX)],
                Err(_) => Vec::new(),
            };
            let variant = super::judge::variant_class(&s.variant);
            // A lost commit: judged by its cause, re-derived from the saved recording.
            let v = rejudge(folder, &note, s, &c, work.path()).unwrap_or(v);
            crate::faults::recorded::excuse_after_failed_directory_sync(&spans, s.cut, variant, v)
                .unwrap_or(v)
        }
        _ => record::verdict_of(c.outcome, &pragmas, judged),
    };
    Ok(Recheck {
        outcome: c.outcome,
        verdict,
        recovered: c.recovered,
        detail: c.detail,
        note,
    })
}

/// `torture replay FOLDER` for an exec trial: re-checks the saved files and prints both verdicts.
/// Exit 0 when the re-check agrees with the recorded verdict, 1 when it does not (the recorded
/// verdict is not confirmed: look at it), 2 for a folder that is not exec evidence, 3 when the
/// check itself could not run (a missing Python package).
pub fn recheck(folder: &Path, named: &Named) -> i32 {
    let r = match recheck_folder(folder, named) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("torture: replay: {}", crate::reproduce::printable(&e));
            return exit_code::USAGE;
        }
    };
    let rec = &r.note.record;
    println!(
        "trial {} ({}, seed {}): recorded {} ({}, recovered {}) — re-checked {} ({}, recovered {})",
        rec.iteration,
        rec.profile,
        rec.seed,
        rec.outcome,
        rec.verdict.as_str(),
        rec.recovered_commits,
        r.outcome,
        r.verdict.as_str(),
        r.recovered
    );
    println!("  recorded:   {}", rec.detail);
    println!("  re-checked: {}", r.detail);
    if r.outcome == Outcome::WorkerError && rec.outcome != Outcome::WorkerError {
        println!("  the re-check could not run: {}", r.detail);
        return exit_code::LAB_ERROR;
    }
    if r.agrees() {
        println!("  confirmed: the saved files give the recorded verdict");
        exit_code::CLEAN
    } else {
        println!("  NOT CONFIRMED: the saved files give another verdict than the run recorded");
        exit_code::VIOLATION
    }
}

/// `torture replay` of a saved crash state that lost a commit: the cause, derived again from the
/// saved recording (`faultfs.log`) and its starting files, and its verdict. None when the folder
/// does not hold them (older evidence) or the state lost nothing.
pub(crate) fn rejudge(
    folder: &Path,
    note: &ExecTrialNote,
    state: &CrashStateNote,
    c: &check::Check,
    scratch: &Path,
) -> Option<Verdict> {
    let fault = note.exec.fault.as_ref()?;
    let crash_safe = torture_workloads::JournalMode::parse(&note.record.journal_mode)
        .is_none_or(|m| m.is_crash_safe());
    if c.outcome != Outcome::LostCommit || !crash_safe {
        return None;
    }
    let log = torture_preload::read_log(&folder.join("faultfs.log")).ok()?;
    let start = load_start(folder)?;
    let instance_of = judge::instances_of(&log, &state.instance_leaders);
    let instances = note.exec.instances.max(1) as usize;
    let dir = scratch.join("cause");
    let mut causes = judge::Causes::new(
        &start,
        &log,
        fault.model(),
        &note.exec,
        judge::ack_positions(&log, &instance_of),
        instances,
        &dir,
        scratch,
        Duration::from_secs(120),
        &[],
    );
    let power_cut = judge::variant_class(&state.variant) != Variant::KeepAll
        && fault.fault.judged_as(false) == crate::verify::verdict::Fault::PowerLoss;
    let (cause, ..) = causes.of(&c.missing, power_cut)?;
    let declared = judge::promises_durability(
        note.exec.engine,
        &note.record.journal_mode,
        &note.record.synchronous,
    );
    Some(judge::verdict_of(cause, power_cut, state.hardware_as_documented, declared, "").0)
}

/// The recording's starting folder as saved by [`save_start`], with its original inodes.
pub fn load_start(folder: &Path) -> Option<torture_preload::Snapshot> {
    let inodes: std::collections::BTreeMap<String, u64> =
        serde_json::from_slice(&std::fs::read(folder.join(START_INODES)).ok()?).ok()?;
    let mut snap = torture_preload::snapshot(&folder.join(START_DIR)).ok()?;
    for (p, f) in snap.files.iter_mut() {
        f.ino = *inodes.get(p.to_string_lossy().as_ref())?;
    }
    (snap.files.len() == inodes.len()).then_some(snap)
}
