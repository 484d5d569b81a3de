//! The check after a kill: reopen the program's database fresh with its engine's own library, let it
//! recover, and decide what survived — `open-failed`, `corrupt`, `atomicity` (the user's invariant),
//! `lost-commit` (fewer commits than acknowledged) or `intact`.
//!
//! SQLite is checked in this process with the bundled library, as `oracle.rs` checks the core's
//! trials. DuckDB is checked by a short Python program using the `duckdb` package: the lab does not
//! link DuckDB (its bundled build takes most of an hour here), and the wheel is the library the
//! postmortem's app used. libSQL is checked the same way with the `libsql` package: linked into
//! the lab, its C symbols would silently replace the bundled SQLite.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::child::{argv, guarded};
use super::{Engine, ExecOptions};
use crate::verify::memory_vfs::MemoryFolder;
use crate::verify::outcome::Outcome;
use crate::verify::sqlite_error;

#[path = "python_check.rs"]
mod python;
pub(crate) use python::encrypted_header;
pub use python::python_ready;
use python::{verify_duckdb, verify_libsql};

/// What the check concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Check {
    pub outcome: Outcome,
    pub detail: String,
    /// What `--recovered-sql` answered (0 without it, or when it could not run).
    pub recovered: u64,
    /// The library that checked, when it is not the lab's SQLite: `duckdb 2.0.0`, `libsql 3.45.1`.
    pub engine_version: Option<String>,
    /// `lost-commit`: the first acknowledged commit missing of each instance that lost one.
    pub missing: Missing,
}

impl Check {
    pub(crate) fn new(outcome: Outcome, detail: impl Into<String>) -> Check {
        Check {
            outcome,
            detail: detail.into(),
            recovered: 0,
            engine_version: None,
            missing: Vec::new(),
        }
    }
}

/// What one check needs.
pub(crate) struct CheckEnv<'a> {
    pub exec: &'a ExecOptions,
    pub db: &'a Path,
    /// The highest acknowledged commit (0: none).
    pub acked: u64,
    /// Every acknowledged commit number, per instance (empty: only `acked` is known). With a
    /// `--recovered-sql` that answers several rows, each of them must be among the rows.
    pub acks: &'a [Vec<u64>],
    /// For each helper process (the DuckDB check, `--verify-cmd`).
    pub timeout: Duration,
    /// A folder for the helpers' output, outside the database's folder.
    pub scratch: &'a Path,
    pub close_fds: &'a [RawFd],
}

/// What the engine-specific part found, before the user's command and the verdict on durability.
#[derive(Debug, Default)]
struct Findings {
    recovered: Option<Recovered>,
    /// The user's invariant, broken: what it said.
    broken: Vec<String>,
    /// Why the database is judged as not made yet (nothing acknowledged, no schema): no failure.
    not_yet: Option<String>,
}

/// What `--recovered-sql` answered: one row is the highest surviving commit; several rows (or
/// none) are the set of surviving commit numbers; rows of two columns are (instance, commit):
/// each instance's surviving commits, for programs that number their acks per instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recovered {
    Highest(u64),
    Set(std::collections::BTreeSet<u64>),
    PerInstance(std::collections::BTreeMap<u64, std::collections::BTreeSet<u64>>),
}

/// The first acknowledged commit missing of each instance that lost one: (instance, commit).
pub(crate) type Missing = Vec<(usize, u64)>;

impl Recovered {
    pub(crate) fn from_rows(rows: Vec<u64>) -> Recovered {
        match rows[..] {
            [one] => Recovered::Highest(one),
            _ => Recovered::Set(rows.into_iter().collect()),
        }
    }

    /// Rows of one column (a commit) or two (instance, commit); two columns in every row make the
    /// answer per instance.
    pub(crate) fn from_answers(rows: Vec<(Option<u64>, u64)>) -> Recovered {
        if !rows.is_empty() && rows.iter().all(|(i, _)| i.is_some()) {
            let mut m = std::collections::BTreeMap::<u64, std::collections::BTreeSet<u64>>::new();
            for (i, n) in rows {
                m.entry(i.unwrap_or(0)).or_default().insert(n);
            }
            return Recovered::PerInstance(m);
        }
        Recovered::from_rows(rows.into_iter().map(|(_, n)| n).collect())
    }

    /// The highest surviving commit, for the CSV's `recovered_commits`.
    pub(crate) fn highest(&self) -> u64 {
        match self {
            Recovered::Highest(n) => *n,
            Recovered::Set(s) => s.last().copied().unwrap_or(0),
            Recovered::PerInstance(m) => m
                .values()
                .filter_map(|s| s.last())
                .copied()
                .max()
                .unwrap_or(0),
        }
    }

    /// What is lost of the acknowledged commits, in words, and the first commit missing of each
    /// instance; None when nothing is.
    pub(crate) fn lost(&self, acked: u64, acks: &[Vec<u64>]) -> Option<(String, Missing)> {
        let empty = std::collections::BTreeSet::new();
        let fallback = [if acked > 0 { vec![acked] } else { vec![] }];
        let acks = if acks.iter().all(Vec::is_empty) {
            &fallback[..]
        } else {
            acks
        };
        let survivors = |i: usize| -> &std::collections::BTreeSet<u64> {
            match self {
                Recovered::Set(s) => s,
                Recovered::PerInstance(m) => m.get(&(i as u64)).unwrap_or(&empty),
                Recovered::Highest(_) => &empty,
            }
        };
        if let Recovered::Highest(n) = self {
            return (*n < acked).then(|| {
                (
                    format!("acknowledged up to {acked}, recovered up to {n}"),
                    vec![(0, n + 1)],
                )
            });
        }
        let several = acks.len() > 1;
        let mut parts = Vec::new();
        let mut missing = Vec::new();
        for (i, mine) in acks.iter().enumerate() {
            let mut acked: Vec<u64> = mine.clone();
            acked.sort_unstable();
            acked.dedup();
            let set = survivors(i);
            let lost: Vec<u64> = acked.iter().copied().filter(|n| !set.contains(n)).collect();
            if let Some(&first) = lost.first() {
                missing.push((i, first));
                parts.push(format!(
                    "{}{} of {} acknowledged commit(s) missing, first {first}",
                    if several {
                        format!("instance {i}: ")
                    } else {
                        String::new()
                    },
                    lost.len(),
                    acked.len()
                ));
            }
        }
        let survived = match self {
            Recovered::Set(s) => s.len(),
            Recovered::PerInstance(m) => m.values().map(|s| s.len()).sum(),
            Recovered::Highest(_) => 0,
        };
        (!parts.is_empty()).then(|| {
            (
                format!(
                    "{} ({survived} commit(s) survived, the highest {})",
                    parts.join("; "),
                    self.highest()
                ),
                missing,
            )
        })
    }
}

/// The start of the detail of a trial whose `--recovered-sql` answered something that is not a
/// commit number: the query is wrong, not the database (`after_run` makes it exit 2).
pub(crate) const BAD_RECOVERED_SQL: &str = "--recovered-sql answered";

fn bad_recovered(what: &str) -> Check {
    Check::new(
        Outcome::WorkerError,
        format!(
            "{BAD_RECOVERED_SQL} `{what}`, not a commit number; make it answer numbers: one row, the highest surviving commit, or one row per surviving commit"
        ),
    )
}

/// Checks the database after the program died.
pub(crate) fn verify(env: &CheckEnv<'_>) -> Check {
    if env.exec.engine == Engine::Sqlite {
        return verify_seen(env, &observe_sqlite(env.db, env.exec));
    }
    if !env.db.exists() {
        return no_database(env);
    }
    let mut version = None;
    let found = match env.exec.engine {
        Engine::Sqlite => unreachable!("checked above"),
        Engine::Duckdb => verify_duckdb(env, &mut version),
        Engine::Libsql => verify_libsql(env, &mut version),
    };
    let mut check = conclude(env, found);
    check.engine_version = version;
    check
}

/// Checks a SQLite database from what SQLite showed of it: observed just now, or of another crash
/// state whose files recover to the same database (`recorded.rs`, the effective key). Everything
/// that depends on the acks — and the user's `--verify-cmd`, which is given them — is weighed
/// here, for this state.
pub(crate) fn verify_seen(env: &CheckEnv<'_>, seen: &SqliteSeen) -> Check {
    let found = match seen {
        SqliteSeen::NoDb => return no_database(env),
        SqliteSeen::Failed(c) => Err(c.clone()),
        SqliteSeen::Read {
            tables,
            recovered,
            verify,
        } => findings_of(env, *tables, recovered.as_ref(), verify.as_ref()),
    };
    conclude(env, found)
}

/// No database file: nothing lost before the first ack, else every acknowledged commit.
fn no_database(env: &CheckEnv<'_>) -> Check {
    if env.acked == 0 {
        Check::new(
            Outcome::Intact,
            "killed before the program created the database (nothing acknowledged): not a failure",
        )
    } else {
        Check::new(
            Outcome::OpenFailed,
            format!(
                "the database file is gone although commits up to {} were acknowledged",
                env.acked
            ),
        )
    }
}

/// The verdict from the engine's findings: the user's command and the acks weighed.
fn conclude(env: &CheckEnv<'_>, found: Result<Findings, Check>) -> Check {
    let mut check = match found {
        Ok(f) => decide(env, f),
        Err(c) => c,
    };
    // Lost without an answer to compare (the table is gone): every acknowledged commit is missing,
    // the first of each instance first.
    if check.outcome == Outcome::LostCommit && check.missing.is_empty() {
        check.missing = env
            .acks
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.iter().min().map(|&n| (i, n)))
            .collect();
        if check.missing.is_empty() && env.acked > 0 {
            check.missing = vec![(0, env.acked)];
        }
    }
    check
}

/// Runs the user's command, then weighs the findings: a broken invariant first, then durability.
fn decide(env: &CheckEnv<'_>, mut f: Findings) -> Check {
    if let Some(why) = f.not_yet {
        return Check::new(Outcome::Intact, why);
    }
    // Before the program's first ack it may not have established its invariant yet (a row its
    // start-up inserts): such a state is held only to what the database guarantees — it opened
    // and passed its integrity check.
    if env.acked == 0 && env.acks.iter().all(Vec::is_empty) {
        let mut c = Check::new(Outcome::Intact, "");
        c.recovered = f.recovered.as_ref().map_or(0, Recovered::highest);
        if !f.broken.is_empty() || env.exec.verify_cmd.is_some() {
            c.detail = format!(
                "{BEFORE_FIRST_ACK}{}",
                if f.broken.is_empty() {
                    String::new()
                } else {
                    format!(" (it said: {})", f.broken.join("; "))
                }
            );
        }
        return c;
    }
    if let Some(cmd) = &env.exec.verify_cmd {
        match run_verify_cmd(env, cmd) {
            Ok(None) => {}
            Ok(Some(said)) => f.broken.push(said),
            Err(e) => return Check::new(Outcome::WorkerError, e),
        }
    }
    let recovered = f.recovered.as_ref().map_or(0, Recovered::highest);
    let lost = f
        .recovered
        .as_ref()
        .and_then(|r| r.lost(env.acked, env.acks));
    let mut check = match (f.broken.is_empty(), &lost) {
        (false, lost) => {
            let mut d = f.broken.join("; ");
            if let Some((l, _)) = lost {
                d.push_str(&format!("; also lost: {l}"));
            }
            Check::new(Outcome::Atomicity, d)
        }
        (true, Some((l, _))) => Check::new(Outcome::LostCommit, l.clone()),
        (true, None) => Check::new(Outcome::Intact, ""),
    };
    if let Some((_, missing)) = lost {
        check.missing = missing;
    }
    check.recovered = recovered;
    check
}

/// The detail of a state before the first ack whose invariant was not applied.
pub(crate) const BEFORE_FIRST_ACK: &str =
    "before the program's first ack: held to opening and integrity only, the invariant is not applied yet";

fn not_yet(what: &str) -> String {
    format!(
        "killed before the program made its schema ({what}; nothing acknowledged): not a failure"
    )
}

/// What SQLite showed of a database, before any ack is weighed: the same for every crash state
/// whose files recover to the same database.
#[derive(Debug, Clone)]
pub(crate) enum SqliteSeen {
    /// No database file.
    NoDb,
    /// Open, recovery or integrity_check failed: the check's result whatever was acknowledged.
    Failed(Check),
    /// It opened and passed integrity_check: the tables, and what the user's queries answered.
    Read {
        tables: i64,
        recovered: Option<Answer<RecoveredRows>>,
        verify: Option<Answer<Vec<String>>>,
    },
}

/// What `--recovered-sql` answered: (instance, commit) per row.
pub(crate) type RecoveredRows = Vec<(Option<u64>, u64)>;

/// What one of the user's queries got.
#[derive(Debug, Clone)]
pub(crate) enum Answer<T> {
    Rows(T),
    /// `--recovered-sql` answered something that is not a commit number.
    NotANumber(String),
    /// SQLITE_CORRUPT: the check's result.
    Corrupt(Check),
    /// Any other failure, in SQLite's words.
    Failed(String),
}

/// Opens the database, lets SQLite recover it, runs integrity_check and the user's queries. The
/// queries run in every database that passed (also one without a table yet, where their failure
/// is weighed only after the first ack); `--verify-sql` only after `--recovered-sql` answered.
pub(crate) fn observe_sqlite(db: &Path, exec: &ExecOptions) -> SqliteSeen {
    if !db.exists() {
        return SqliteSeen::NoDb;
    }
    match read_sqlite(db, exec) {
        Ok(seen) => seen,
        Err(c) => SqliteSeen::Failed(c),
    }
}

/// [`observe_sqlite`] of a crash state's files held in memory (`db`: the database's name among
/// them), through the lab's in-memory VFS: the same SQLite findings without writing the files.
pub(crate) fn observe_sqlite_in_memory(
    state: BTreeMap<PathBuf, Vec<u8>>,
    db: &Path,
    exec: &ExecOptions,
) -> SqliteSeen {
    if !state.contains_key(db) {
        return SqliteSeen::NoDb;
    }
    let folder = match MemoryFolder::new(state) {
        Ok(f) => f,
        Err(e) => {
            return SqliteSeen::Failed(Check::new(
                Outcome::WorkerError,
                format!("lab: the in-memory VFS: {e}"),
            ))
        }
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let opened = folder.open(db, flags).and_then(|conn| {
        // No shared memory in memory: a WAL is read with its index in SQLite's heap. Set before
        // the first read, or SQLite refuses the WAL.
        conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE")?;
        Ok(conn)
    });
    match opened
        .map_err(|e| classify(&e, "open"))
        .and_then(|conn| read_sqlite_from(conn, exec))
    {
        Ok(seen) => seen,
        Err(c) => SqliteSeen::Failed(c),
    }
}

fn read_sqlite(db: &Path, exec: &ExecOptions) -> Result<SqliteSeen, Check> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags).map_err(|e| classify(&e, "open"))?;
    read_sqlite_from(conn, exec)
}

fn read_sqlite_from(conn: Connection, exec: &ExecOptions) -> Result<SqliteSeen, Check> {
    // The check only reads: no checkpoint at close, so the files stay as the program left them.
    let _ = conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    );
    // A process that escaped the program's group could still hold a lock for a moment.
    let _ = conn.busy_timeout(Duration::from_secs(2));
    // The first read runs recovery: hot-journal rollback, or rebuilding the WAL index.
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| classify(&e, "recovery"))?;
    let problems = crate::verify::oracle::integrity_problems(&conn)
        .map_err(|e| classify(&e, "integrity_check"))?;
    if let Some(first) = problems.first() {
        let mut c = Check::new(
            Outcome::Corrupt,
            format!(
                "integrity_check: {} error(s); first: {}",
                problems.len(),
                flat(first, 300)
            ),
        );
        if let Some(sql) = &exec.recovered_sql {
            c.recovered =
                recovered_rows(&conn, sql).map_or(0, |r| Recovered::from_answers(r).highest());
        }
        return Err(c);
    }
    let recovered = exec
        .recovered_sql
        .as_ref()
        .map(|sql| match recovered_rows(&conn, sql) {
            Ok(rows) => Answer::Rows(rows),
            Err(SqlError::NotANumber(t)) => Answer::NotANumber(t),
            Err(SqlError::Sqlite(e)) if sqlite_error::is_corrupt(&e) => {
                Answer::Corrupt(classify(&e, "--recovered-sql"))
            }
            Err(e) => Answer::Failed(e.to_string()),
        });
    let verify = match recovered {
        None | Some(Answer::Rows(_)) => {
            exec.verify_sql
                .as_ref()
                .map(|sql| match answers(&conn, sql) {
                    Ok(rows) => Answer::Rows(rows),
                    Err(e) if sqlite_error::is_corrupt(&e) => {
                        Answer::Corrupt(classify(&e, "--verify-sql"))
                    }
                    Err(e) => Answer::Failed(sqlite_error::describe(&e)),
                })
        }
        Some(_) => None,
    };
    Ok(SqliteSeen::Read {
        tables,
        recovered,
        verify,
    })
}

/// The findings of a database that opened and passed integrity_check, for this state's acks: no
/// table and nothing acknowledged is "not yet"; a query's failure before the first ack too.
fn findings_of(
    env: &CheckEnv<'_>,
    tables: i64,
    recovered: Option<&Answer<RecoveredRows>>,
    verify: Option<&Answer<Vec<String>>>,
) -> Result<Findings, Check> {
    let mut f = Findings::default();
    if tables == 0 && env.acked == 0 {
        f.not_yet = Some(not_yet("no table yet"));
        return Ok(f);
    }
    match recovered {
        None => {}
        Some(Answer::Rows(rows)) => f.recovered = Some(Recovered::from_answers(rows.clone())),
        Some(Answer::NotANumber(t)) => return Err(bad_recovered(t)),
        Some(Answer::Corrupt(c)) => return Err(c.clone()),
        Some(Answer::Failed(e)) if failed_sql_stage("recovered", e, false, env, &mut f)? => {
            return Ok(f)
        }
        Some(Answer::Failed(_)) => {}
    }
    match verify {
        None => {}
        Some(Answer::Rows(rows)) if invariant_holds(rows) => {}
        Some(Answer::Rows(rows)) => f
            .broken
            .push(format!("--verify-sql answered: {}", rows.join(" | "))),
        Some(Answer::Corrupt(c)) => return Err(c.clone()),
        Some(Answer::NotANumber(_)) => {}
        Some(Answer::Failed(e)) if env.acked == 0 => {
            f.not_yet = Some(not_yet(&format!("--verify-sql failed: {e}")));
            return Ok(f);
        }
        Some(Answer::Failed(e)) => f.broken.push(format!("--verify-sql failed: {e}")),
    }
    Ok(f)
}

/// Same classification as the core's oracle: SQLITE_CORRUPT is `corrupt`, any other failure to open
/// or recover is `open-failed`.
fn classify(e: &rusqlite::Error, during: &str) -> Check {
    let outcome = if sqlite_error::is_corrupt(e) {
        Outcome::Corrupt
    } else {
        Outcome::OpenFailed
    };
    Check::new(outcome, format!("{during}: {}", sqlite_error::describe(e)))
}

enum SqlError {
    Sqlite(rusqlite::Error),
    NotANumber(String),
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlError::Sqlite(e) => f.write_str(&sqlite_error::describe(e)),
            SqlError::NotANumber(v) => write!(f, "it must answer a number, it answered `{v}`"),
        }
    }
}

/// The first column of every row as commit numbers; a NULL row (`max()` of an empty table) is 0.
fn recovered_rows(conn: &Connection, sql: &str) -> Result<Vec<(Option<u64>, u64)>, SqlError> {
    let mut stmt = conn.prepare(sql).map_err(SqlError::Sqlite)?;
    let two = stmt.column_count() == 2;
    let mut rows = stmt.query([]).map_err(SqlError::Sqlite)?;
    let number = |v: ValueRef<'_>| -> Result<u64, SqlError> {
        Ok(match v {
            ValueRef::Null => 0,
            ValueRef::Integer(i) => i.max(0) as u64,
            ValueRef::Real(r) if r.is_finite() => r.max(0.0) as u64,
            other => {
                let t = text(other);
                t.trim()
                    .parse()
                    .map_err(|_| SqlError::NotANumber(t.clone()))?
            }
        })
    };
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(SqlError::Sqlite)? {
        if two {
            let i = number(row.get_ref(0).map_err(SqlError::Sqlite)?)?;
            let n = number(row.get_ref(1).map_err(SqlError::Sqlite)?)?;
            out.push((Some(i), n));
        } else {
            out.push((None, number(row.get_ref(0).map_err(SqlError::Sqlite)?)?));
        }
    }
    Ok(out)
}

/// The first column of every row, as text.
fn answers(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(text(r.get_ref(0)?));
        if out.len() >= 20 {
            break;
        }
    }
    Ok(out)
}

fn text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!("<{} byte blob>", b.len()),
    }
}

/// An invariant holds when its query answers exactly one row, `ok`, `1` or `true` (a boolean check).
pub(crate) fn invariant_holds(rows: &[String]) -> bool {
    matches!(rows, [one] if ["ok", "1", "true"].iter().any(|w| one.trim().eq_ignore_ascii_case(w)))
}

/// `PRAGMA integrity_check` passed: exactly one row, `ok`.
fn is_ok(rows: &[String]) -> bool {
    matches!(rows, [one] if one.trim().eq_ignore_ascii_case("ok"))
}

/// A `--recovered-sql` / `--verify-sql` that failed in an engine checked through Python: damage
/// when the engine's words say so, "not yet" before the first ack (`Ok(true)`: stop here), else a
/// lost commit (`recovered`) or a broken invariant noted in `f` (`verify`).
fn failed_sql_stage(
    stage: &str,
    error: &str,
    damaged: bool,
    env: &CheckEnv<'_>,
    f: &mut Findings,
) -> Result<bool, Check> {
    let flag = format!("--{stage}-sql");
    if damaged {
        return Err(Check::new(
            Outcome::Corrupt,
            format!("{flag} failed: {error}"),
        ));
    }
    if env.acked == 0 {
        f.not_yet = Some(not_yet(&format!("{flag} failed: {error}")));
        return Ok(true);
    }
    if stage == "recovered" {
        return Err(Check::new(
            Outcome::LostCommit,
            format!(
                "{flag} failed ({error}) although commits up to {} were acknowledged",
                env.acked
            ),
        ));
    }
    f.broken.push(format!("{flag} failed: {error}"));
    Ok(false)
}

/// Runs `--verify-cmd` through the shell. `Ok(None)`: it passed; `Ok(Some(what it said))`: it failed.
fn run_verify_cmd(env: &CheckEnv<'_>, cmd: &str) -> Result<Option<String>, String> {
    let argv = argv(&[cmd.to_string()], true, env.db);
    let out = env.scratch.join("verify-cmd.out");
    // Every acknowledged commit number, one per line, for the command to look for.
    let acks_file = env.scratch.join("acks.txt");
    let mut all: Vec<u64> = env.acks.iter().flatten().copied().collect();
    if all.is_empty() && env.acked > 0 {
        all.push(env.acked);
    }
    all.sort_unstable();
    all.dedup();
    let text: String = all.iter().map(|n| format!("{n}\n")).collect();
    std::fs::write(&acks_file, text)
        .map_err(|e| format!("--verify-cmd: writing {}: {e}", acks_file.display()))?;
    let status = run_helper(
        &argv,
        &[
            ("TORTURE_DB", env.db.as_os_str()),
            ("TORTURE_ACKS", acks_file.as_os_str()),
        ],
        &out,
        &out,
        env,
    )
    .map_err(|e| format!("--verify-cmd: {e}"))?;
    if status.success() {
        return Ok(None);
    }
    let said = tail(&std::fs::read(&out).unwrap_or_default(), 300);
    // 126/127: the shell could not run a command of it (not found, not executable): the set-up's
    // failure, never a verdict on the database.
    if matches!(status.code(), Some(126 | 127)) {
        return Err(format!(
            "--verify-cmd: the shell could not run it ({}: {said})",
            describe_status(status)
        ));
    }
    Ok(Some(format!(
        "--verify-cmd {}{}{said}",
        describe_status(status),
        if said.is_empty() { "" } else { ": " }
    )))
}

fn describe_status(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("died of signal {sig}"),
        _ => "ended".into(),
    }
}

/// Runs a helper with its output in files (no pipe to fill up), killed with its group after the
/// timeout.
fn run_helper(
    argv: &[String],
    envs: &[(&str, &OsStr)],
    out: &Path,
    err: &Path,
    env: &CheckEnv<'_>,
) -> Result<ExitStatus, String> {
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| format!("creating {}: {e}", p.display()))
    };
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(err);
    let mut cmd = guarded(argv, env.close_fds);
    cmd.env_remove("TORTURE_KEY");
    cmd.stdout(Stdio::from(open(out)?))
        .stderr(Stdio::from(open(err)?));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = crate::process::spawn_program(&mut cmd)
        .map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
    let group = Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + env.timeout;
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => {
                // Whatever it left in its group must not touch the files after it.
                crate::process::kill_group(group);
                crate::process::reap_group(group, Instant::now() + Duration::from_secs(5));
                return Ok(s);
            }
            Ok(None) if Instant::now() >= deadline => {
                crate::process::kill_group(group);
                let _ = child.wait();
                crate::process::reap_group(group, Instant::now() + Duration::from_secs(5));
                return Err(format!(
                    "`{}` did not finish within {:?}",
                    argv[0], env.timeout
                ));
            }
            Ok(None) => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("waiting for `{}`: {e}", argv[0])),
        }
    }
}

/// The first `max` characters of a message, on one line (integrity_check's first error spans
/// several).
pub(crate) fn flat(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

/// The last `max` characters of some output, on one line.
pub(crate) fn tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = flat.chars().count();
    if n <= max {
        flat
    } else {
        format!("…{}", flat.chars().skip(n - max).collect::<String>())
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
pub(crate) mod tests;
