//! `torture exec`: torture any program — run a user command with a fresh database path, kill it at seeded points, verify with integrity_check and the acknowledgement protocol.
//!
//! The program is the user's own (a Python script, the sqlite3 shell, a Go or Rust service). Each trial
//! gets a fresh folder; the database path in it reaches the program as `{db}` in its arguments and as
//! `TORTURE_DB`. The program prints `ack N` on stdout once its commit N returned; the lab SIGKILLs its
//! process group at a time drawn from the trial's seed, reopens the database fresh and checks it:
//! integrity_check (SQLite, or libSQL through its Python package, with `--key` for an encrypted
//! file) or a reopen that replays the WAL (DuckDB), then `--recovered-sql` (the
//! highest surviving commit, compared with the highest acknowledged one) and the user's own invariant
//! (`--verify-sql`, `--verify-cmd`). The row is the core's `TrialRecord`, so the CSV, the summary and
//! the verdicts are the same.
//!
//! The stdout protocol, one line each, anything else ignored:
//!
//! ```text
//! ack N                 commit N returned (N need not start at 1 or be contiguous; the highest counts)
//! journal_mode MODE     optional: what PRAGMA journal_mode read back, for the verdict
//! synchronous LEVEL     optional: what PRAGMA synchronous read back
//! sqlite_version V      optional: the SQLite library the program runs on, for the CSV
//! ```
//!
//! Files: `child.rs` starts, watches, kills and reaps the program; `check.rs` verifies the database
//! after the kill; `calibrate.rs` derives the default kill window from an uninterrupted run;
//! `trial.rs` is one trial and its evidence.

mod calibrate;
mod check;
mod child;
mod evidence;
mod fault;
mod judge;
mod recorded;
pub(crate) mod states;
mod trial;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use calibrate::move_dir;
pub use calibrate::{calibrate, calibrate_report, Calibration};
pub use check::python_ready;
pub(crate) use check::BAD_RECOVERED_SQL;
pub use evidence::{recheck, recheck_folder, ExecTrialNote, Named, Recheck};
pub use fault::{CrashStates, ExecFault};
pub use recorded::{probe as probe_recording, run_trial as run_recorded};
pub use states::summary as crash_states_summary;
pub use trial::run_trial;

/// The database engine the program writes: decides how the lab checks the database after a kill.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// Reopened with the lab's bundled SQLite: recovery, `PRAGMA integrity_check`, then the SQL checks.
    #[default]
    Sqlite,
    /// Reopened with the `duckdb` Python package (`python3 -c`, a prebuilt PyPI wheel): WAL replay,
    /// a count over every table, then the SQL checks. A failed replay is `open-failed`.
    Duckdb,
    /// Reopened with the `libsql` Python package (Turso's SQLite fork; never linked into the lab, its
    /// C symbols would replace the bundled SQLite), with `--key` when the file is encrypted: recovery,
    /// `PRAGMA integrity_check`, then the SQL checks. A key that does not open the file is `wrong-key`.
    Libsql,
}

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Sqlite, Engine::Duckdb, Engine::Libsql];

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Duckdb => "duckdb",
            Engine::Libsql => "libsql",
        }
    }

    /// The Python package the engine's check imports, if it is checked through Python.
    pub fn python_module(self) -> Option<&'static str> {
        match self {
            Engine::Sqlite => None,
            Engine::Duckdb => Some("duckdb"),
            Engine::Libsql => Some("libsql"),
        }
    }

    pub fn parse(s: &str) -> Option<Engine> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether `path` starts like a database of this engine: SQLite's magic string (or libSQL's
    /// encrypted layout), DuckDB's `DUCK` at offset 8. Err: what it is instead.
    pub fn is_database_file(self, path: &Path) -> Result<(), String> {
        use std::io::Read;
        let mut h = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(100).read_to_end(&mut h))
            .map_err(|e| format!("cannot read it ({e})"))?;
        if h.is_empty() {
            // SQLite and libSQL treat an empty file as an empty database.
            return match self {
                Engine::Duckdb => Err("an empty file is not a DuckDB database".into()),
                _ => Ok(()),
            };
        }
        let ok = match self {
            Engine::Sqlite => h.starts_with(b"SQLite format 3\0"),
            Engine::Libsql => h.starts_with(b"SQLite format 3\0") || check::encrypted_header(&h),
            Engine::Duckdb => h.len() >= 12 && &h[8..12] == b"DUCK",
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "not a {} database (its first bytes are not a {} header)",
                self.as_str(),
                self.as_str()
            ))
        }
    }
}

/// The operator's "fix" after a crash (seed 004, SQLite's howtocorrupt §1.3–1.4), applied between
/// the kill and the check: what a team does when the database "looks corrupted".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AfterKill {
    /// Delete the write-ahead log: `-wal` (SQLite, libSQL) or `.wal` (DuckDB).
    DeleteWal,
    /// Delete the rollback journal (`-journal`; SQLite and libSQL only).
    DeleteJournal,
    /// Keep only the database file: every `-wal`, `-shm`, `-journal`, `.wal` goes.
    DbOnly,
}

impl AfterKill {
    pub const ALL: [AfterKill; 3] = [
        AfterKill::DeleteWal,
        AfterKill::DeleteJournal,
        AfterKill::DbOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AfterKill::DeleteWal => "delete-wal",
            AfterKill::DeleteJournal => "delete-journal",
            AfterKill::DbOnly => "db-only",
        }
    }

    pub fn parse(s: &str) -> Option<AfterKill> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The sidecar files this action deletes for `engine`'s database `db`.
    pub fn targets(self, engine: Engine, db: &Path) -> Vec<PathBuf> {
        let with = |suffix: &str| {
            let mut s = db.as_os_str().to_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        let wal = match engine {
            Engine::Duckdb => ".wal",
            Engine::Sqlite | Engine::Libsql => "-wal",
        };
        match self {
            AfterKill::DeleteWal => vec![with(wal)],
            AfterKill::DeleteJournal => vec![with("-journal")],
            AfterKill::DbOnly => ["-wal", "-shm", "-journal", ".wal"]
                .iter()
                .map(|s| with(s))
                .collect(),
        }
    }

    /// Deletes the targets that exist; says what went, for the CSV's `detail`, and whether anything
    /// did (only then is the damage that follows the operator's).
    pub fn apply(self, engine: Engine, db: &Path) -> (String, bool) {
        let mut gone = Vec::new();
        for t in self.targets(engine, db) {
            if let Ok(meta) = std::fs::metadata(&t) {
                if std::fs::remove_file(&t).is_ok() {
                    let name = t.file_name().map(|n| n.to_string_lossy().into_owned());
                    gone.push(format!(
                        "{} ({} bytes)",
                        name.unwrap_or_default(),
                        meta.len()
                    ));
                }
            }
        }
        if gone.is_empty() {
            (
                format!("operator {}: nothing to delete", self.as_str()),
                false,
            )
        } else {
            let note = format!("operator {}: deleted {}", self.as_str(), gone.join(", "));
            (note, true)
        }
    }
}

/// What `torture exec` runs and how it checks the result. Saved in `run.json`, so `--resume` and a
/// failure's `trial.json` know exactly which program was tortured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecOptions {
    /// The program and its arguments; `{db}` anywhere in them becomes the trial's database path.
    pub command: Vec<String>,
    /// Run `command` (joined with spaces) through `/bin/sh -c` instead of executing it directly.
    #[serde(default)]
    pub shell: bool,
    /// A database copied to the trial's path (with its `-wal`/`.wal`/`-journal` if present) before
    /// the program starts.
    #[serde(default)]
    pub seed_db: Option<PathBuf>,
    /// A query whose first column is the highest commit number that survived (`SELECT max(seq) FROM t`):
    /// compared with the highest `ack N`; less is `lost-commit`.
    #[serde(default)]
    pub recovered_sql: Option<String>,
    /// The user's invariant as a query that must answer one row, `ok`; anything else is `atomicity`.
    #[serde(default)]
    pub verify_sql: Option<String>,
    /// The user's invariant as a shell command (`{db}` and `TORTURE_DB` as for the program), run after
    /// the lab's own checks; a non-zero exit is `atomicity`.
    #[serde(default)]
    pub verify_cmd: Option<String>,
    #[serde(default)]
    pub engine: Engine,
    /// When to kill, measured from the program's start; `None` means calibrate (see `calibrate`).
    #[serde(default)]
    pub kill_window: Option<(Duration, Duration)>,
    /// The calibrated run's first ack (set by `with_calibration`). A kill time past it is then
    /// counted from each trial's own first ack — own first ack + (time − anchor) — so a start-up
    /// slowed by load (an interpreter importing its libraries on a busy machine) does not move the
    /// kills back into the start-up. Kill times before it stay times since the start.
    #[serde(default)]
    pub anchor: Option<Duration>,
    /// The journal mode the program runs in, for the verdict, when it does not print
    /// `journal_mode MODE` itself. Unknown (`?`) holds any damage to the strict promise: a violation.
    #[serde(default)]
    pub journal_mode: Option<String>,
    /// `--synchronous`: the program's setting, for the verdict, when it does not print
    /// `synchronous MODE` itself.
    #[serde(default)]
    pub synchronous: Option<String>,
    /// The name in the CSV's `profile` column is `exec:<name>`; by default the script or program name.
    #[serde(default)]
    pub name: Option<String>,
    /// The interpreter that runs the DuckDB or libSQL check (needs `import duckdb` / `import libsql`).
    #[serde(default = "default_python")]
    pub python: String,
    /// libSQL's encryption key: given to the program as `TORTURE_KEY`, and the check opens the file
    /// with it. Saved in `run.json` like every option: use a test key.
    #[serde(default)]
    pub key: Option<String>,
    /// The operator's "fix" applied after each kill, before the check; damage it causes is
    /// judged `expected` (SQLite documents that deleting a hot journal or WAL corrupts).
    #[serde(default)]
    pub after_kill: Option<AfterKill>,
    /// `--kill-after K1..K2` in commits: kill after K acknowledged commits (the `ack N` lines of
    /// every instance counted together), K drawn from the window, then `kill_delay`; instead of a
    /// time. The core's kill point, for programs.
    #[serde(default)]
    pub kill_acks: Option<(u64, u64)>,
    /// `--kill-delay`: with `kill_acks`, a delay drawn from this window after the K-th ack.
    #[serde(default)]
    pub kill_delay: (Duration, Duration),
    /// `--instances N`: copies of the program on the one database, each told its number in
    /// `TORTURE_INSTANCE`; their acks are kept apart and every instance's are checked.
    #[serde(default = "one_instance")]
    pub instances: u32,
    /// `--kill one`: at the kill point only one instance (drawn from the seed) dies; the others go
    /// on for a while (up to 20 more acks or a second), then the lab kills them too.
    #[serde(default)]
    pub kill_one: bool,
    /// `--keep-evidence`: save every trial's files, not only a failed one's, so each verdict can be
    /// re-checked (`torture replay OUT/failures/<i>`; the folder is `OUT/evidence/<i>` then).
    #[serde(default)]
    pub keep_evidence: bool,
    /// `--calibrate-for`: the calibration run lasts this long (or until the program exits), instead
    /// of stopping once it has seen enough.
    #[serde(default)]
    pub calibrate_for: Option<Duration>,
    /// `--fault power-loss|kill-at-op|io-error|disk-full`: record the program once, check every
    /// crash state of the recording (`recorded.rs`); `None`: SIGKILL trials.
    #[serde(default)]
    pub fault: Option<ExecFault>,
}

fn one_instance() -> u32 {
    1
}

fn default_python() -> String {
    "python3".into()
}

/// The words of the `--shell` command that name the program it runs: the pipeline stage that is
/// given `{db}` (else the first), without leading variable assignments and wrappers (`echo … |
/// sqlite3 {db}` is named `sqlite3`).
fn shell_stage(command: &str) -> Vec<&str> {
    let stages: Vec<&str> = command
        .split(['|', ';', '&'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let stage = stages
        .iter()
        .find(|s| s.contains("{db}"))
        .or(stages.first())
        .copied()
        .unwrap_or("");
    let mut words: Vec<&str> = stage.split_whitespace().collect();
    while let Some(w) = words.first() {
        if w.contains('=') || ["exec", "env", "time", "nice", "command"].contains(w) {
            words.remove(0);
        } else {
            break;
        }
    }
    words
}

/// Interpreters whose first plain argument is the program worth naming (`python3 app.py` → `app.py`).
const INTERPRETERS: [&str; 12] = [
    "python", "python3", "sh", "bash", "dash", "zsh", "node", "ruby", "perl", "php", "java", "uv",
];

impl ExecOptions {
    /// Options for `command` with every other setting at its default.
    pub fn new(command: Vec<String>) -> ExecOptions {
        ExecOptions {
            command,
            shell: false,
            seed_db: None,
            recovered_sql: None,
            verify_sql: None,
            verify_cmd: None,
            engine: Engine::Sqlite,
            kill_window: None,
            anchor: None,
            journal_mode: None,
            synchronous: None,
            name: None,
            python: default_python(),
            key: None,
            after_kill: None,
            kill_acks: None,
            kill_delay: (Duration::ZERO, Duration::ZERO),
            instances: 1,
            kill_one: false,
            keep_evidence: false,
            calibrate_for: None,
            fault: None,
        }
    }

    /// Checks what can be checked before anything runs; the message names the fix.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.command.first(), Some(c) if !c.trim().is_empty()) {
            return Err(
                "exec needs a command after `--`, e.g. `torture exec -- python3 app.py {db}`"
                    .into(),
            );
        }
        if let Some(seed) = &self.seed_db {
            if !seed.is_file() {
                return Err(format!(
                    "--seed-db {}: not a file; give an existing database to start every trial from",
                    seed.display()
                ));
            }
            if let Err(why) = self.engine.is_database_file(seed) {
                return Err(format!(
                    "--seed-db {}: {why}; give a database made by the program (or drop --seed-db)",
                    seed.display()
                ));
            }
        }
        if let Some(s) = &self.synchronous {
            if !matches!(s.as_str(), "off" | "normal" | "full" | "extra") {
                return Err(format!(
                    "--synchronous {s}: give off, normal, full or extra (as PRAGMA synchronous names them)"
                ));
            }
        }
        // A script the shell cannot parse would fail every trial's check as a verdict.
        if let Some(cmd) = &self.verify_cmd {
            child::check_shell_syntax(cmd, "--verify-cmd")?;
        }
        if self.shell {
            child::check_shell_syntax(&self.command.join(" "), "--shell")?;
        }
        if self.instances == 0 {
            return Err(
                "--instances 0: give the number of copies of the program to run, 1 or more".into(),
            );
        }
        if self.instances > 256 {
            return Err(format!(
                "--instances {}: at most 256 copies of the program on one database",
                self.instances
            ));
        }
        if self.kill_one && self.instances < 2 {
            return Err(format!(
                "--kill one needs other instances to go on: add --instances 2 (or more), or use --kill all (now --instances {})",
                self.instances
            ));
        }
        if let Some((lo, hi)) = self.kill_acks {
            if lo > hi || lo == 0 {
                return Err(
                    "--kill-after: the commit window is empty or starts at 0; write it like 1..20"
                        .into(),
                );
            }
        }
        for (flag, sql) in [
            ("--recovered-sql", &self.recovered_sql),
            ("--verify-sql", &self.verify_sql),
            ("--verify-cmd", &self.verify_cmd),
        ] {
            if sql.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return Err(format!("{flag} is empty; give a query or drop the flag"));
            }
        }
        if let Some((lo, hi)) = self.kill_window {
            if lo > hi {
                return Err("--kill-after: the window is empty; write it low..high".into());
            }
        }
        if let Some(m) = &self.journal_mode {
            if m != "?" && torture_workloads::JournalMode::parse(m).is_none() {
                return Err(format!(
                    "--journal-mode {m}: not a journal mode; give delete, truncate, persist, wal, memory or off"
                ));
            }
        }
        if let Some(module) = self.engine.python_module() {
            if self.python.trim().is_empty() {
                return Err(format!(
                    "--python is empty; give the interpreter that can `import {module}`"
                ));
            }
        }
        match (&self.key, self.engine) {
            (Some(k), _) if k.is_empty() => {
                return Err("--key is empty; give the encryption key or drop the flag".into())
            }
            (Some(_), e) if e != Engine::Libsql => {
                return Err(format!(
                "--key is for --engine libsql (the check opens the file with it), not --engine {}",
                e.as_str()
            ))
            }
            _ => {}
        }
        if let Some(f) = &self.fault {
            f.validate()?;
            if self.after_kill.is_some() {
                return Err("--after-kill acts after a SIGKILL; drop it or drop --fault".into());
            }
            if self.kill_one {
                return Err(
                    "--kill one lets the other instances go on, but a power cut stops every process at once; use --kill all with --fault".into(),
                );
            }
        }
        if (self.after_kill, self.engine) == (Some(AfterKill::DeleteJournal), Engine::Duckdb) {
            return Err(
                "--after-kill delete-journal: DuckDB has no rollback journal; use delete-wal or db-only"
                    .into(),
            );
        }
        Ok(())
    }

    /// The short name of the target in the CSV's `profile` column: `exec:python_writer.py`, with
    /// `+delete-wal` (…) when an operator action follows each kill.
    pub fn profile_name(&self) -> String {
        match self.after_kill {
            Some(a) => format!("{}+{}", self.target_name(), a.as_str()),
            None => self.target_name(),
        }
    }

    fn target_name(&self) -> String {
        if let Some(n) = &self.name {
            return format!("exec:{n}");
        }
        let joined = self.command.join(" ");
        let words: Vec<&str> = if self.shell {
            shell_stage(&joined)
        } else {
            self.command.iter().map(String::as_str).collect()
        };
        let base = |w: &str| {
            Path::new(w)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| w.to_string())
        };
        let Some(first) = words.first() else {
            return "exec:?".into();
        };
        let program = base(first);
        let interpreter = INTERPRETERS.iter().any(|i| {
            program == *i
                || program
                    .strip_prefix(i)
                    .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        });
        let named = if interpreter {
            // `python3 -u app.py`: skip the interpreter's own flags; `-c`/`-m` name no file.
            words[1..]
                .iter()
                .find(|w| !w.starts_with('-'))
                .map(|w| base(w))
                .unwrap_or(program)
        } else {
            program
        };
        format!("exec:{named}")
    }

    /// These options with the kill window (and its anchor, the first ack) a calibration measured:
    /// what to save in `run.json` and hand to `run_trial`.
    pub fn with_calibration(mut self, c: &Calibration) -> ExecOptions {
        self.kill_window = Some(c.window);
        self.anchor = c.first_ack;
        self
    }

    /// The database's file name inside the trial folder.
    pub(crate) fn db_file_name(&self) -> &'static str {
        "trial.db"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(words: &[&str]) -> ExecOptions {
        ExecOptions::new(words.iter().map(|w| w.to_string()).collect())
    }

    #[test]
    fn the_profile_is_named_after_the_script_not_the_interpreter() {
        assert_eq!(
            cmd(&["python3", "-u", "workloads/exec/python_writer.py", "{db}"]).profile_name(),
            "exec:python_writer.py"
        );
        assert_eq!(
            cmd(&["sh", "workloads/exec/sqlite3_cli_writer.sh", "{db}"]).profile_name(),
            "exec:sqlite3_cli_writer.sh"
        );
        assert_eq!(
            cmd(&["./target/release/myapp", "--db", "{db}"]).profile_name(),
            "exec:myapp"
        );
        assert_eq!(cmd(&["python3.11", "app.py"]).profile_name(), "exec:app.py");
        let mut shell = cmd(&["go run ./cmd/server --db {db}"]);
        shell.shell = true;
        assert_eq!(shell.profile_name(), "exec:go");
        shell.name = Some("server".into());
        assert_eq!(shell.profile_name(), "exec:server");
        let mut pipeline = cmd(&["echo 'INSERT …' | FOO=1 sqlite3 {db}"]);
        pipeline.shell = true;
        assert_eq!(
            pipeline.profile_name(),
            "exec:sqlite3",
            "the stage given {{db}}"
        );
        let mut script = cmd(&["sh workloads/exec/sqlite3_cli_writer.sh {db}"]);
        script.shell = true;
        assert_eq!(script.profile_name(), "exec:sqlite3_cli_writer.sh");
    }

    #[test]
    fn options_round_trip_through_json_and_old_files_still_load() {
        let mut o = cmd(&["python3", "a.py", "{db}"]);
        o.kill_window = Some((Duration::from_millis(40), Duration::from_millis(400)));
        o.engine = Engine::Libsql;
        o.key = Some("k".into());
        o.recovered_sql = Some("SELECT max(seq) FROM t".into());
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<ExecOptions>(&json).unwrap(), o);
        let minimal: ExecOptions = serde_json::from_str(r#"{"command": ["x"]}"#).unwrap();
        assert_eq!(minimal, cmd(&["x"]));
    }

    #[test]
    fn bad_options_are_refused_with_the_fix() {
        assert!(cmd(&[]).validate().unwrap_err().contains("--"));
        let mut o = cmd(&["x"]);
        o.seed_db = Some("/nonexistent/seed.db".into());
        assert!(o.validate().unwrap_err().contains("--seed-db"));
        let mut o = cmd(&["x"]);
        o.journal_mode = Some("wall".into());
        assert!(o.validate().unwrap_err().contains("--journal-mode"));
        let mut o = cmd(&["x"]);
        o.kill_window = Some((Duration::from_secs(2), Duration::from_secs(1)));
        assert!(o.validate().is_err());
        assert!(cmd(&["x"]).validate().is_ok());
        assert_eq!(Engine::parse("DuckDB"), Some(Engine::Duckdb));
        assert_eq!(Engine::parse("postgres"), None);
        assert_eq!(Engine::parse("libSQL"), Some(Engine::Libsql));
        let mut o = cmd(&["x"]);
        o.key = Some("k".into());
        assert!(o.validate().unwrap_err().contains("--engine libsql"));
        o.engine = Engine::Libsql;
        assert!(o.validate().is_ok());
        o.key = Some(String::new());
        assert!(o.validate().unwrap_err().contains("--key is empty"));
    }
}
