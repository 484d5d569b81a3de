//! The check after a kill: reopen the program's database fresh with its engine's own library, let it
//! recover, and decide what survived — `open-failed`, `corrupt`, `atomicity` (the user's invariant),
//! `lost-commit` (fewer commits than acknowledged) or `intact`.
//!
//! SQLite is checked in this process with the bundled library, as `oracle.rs` checks the core's
//! trials. DuckDB is checked by a short Python program using the `duckdb` package: the lab does not
//! link DuckDB (its bundled build takes most of an hour here), and the wheel is the library the
//! postmortem's app used. libSQL is checked the same way with the `libsql` package: linked into
//! the lab, its C symbols would silently replace the bundled SQLite.

use std::ffi::OsStr;
use std::os::fd::RawFd;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::child::{argv, guarded};
use super::{Engine, ExecOptions};
use crate::trial::outcome::Outcome;
use crate::verify::sqlite_error;

/// What the check concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Check {
    pub outcome: Outcome,
    pub detail: String,
    /// What `--recovered-sql` answered (0 without it, or when it could not run).
    pub recovered: u64,
    /// The library that checked, when it is not the lab's SQLite: `duckdb 2.0.0`, `libsql 3.45.1`.
    pub engine_version: Option<String>,
}

impl Check {
    pub(crate) fn new(outcome: Outcome, detail: impl Into<String>) -> Check {
        Check {
            outcome,
            detail: detail.into(),
            recovered: 0,
            engine_version: None,
        }
    }
}

/// What one check needs.
pub(crate) struct CheckEnv<'a> {
    pub exec: &'a ExecOptions,
    pub db: &'a Path,
    /// The highest acknowledged commit (0: none).
    pub acked: u64,
    /// For each helper process (the DuckDB check, `--verify-cmd`).
    pub timeout: Duration,
    /// A folder for the helpers' output, outside the database's folder.
    pub scratch: &'a Path,
    pub close_fds: &'a [RawFd],
}

/// What the engine-specific part found, before the user's command and the verdict on durability.
#[derive(Debug, Default)]
struct Findings {
    recovered: Option<u64>,
    /// The user's invariant, broken: what it said.
    broken: Vec<String>,
    /// Why the database is judged as not made yet (nothing acknowledged, no schema): no failure.
    not_yet: Option<String>,
}

/// Checks the database after the program died.
pub(crate) fn verify(env: &CheckEnv<'_>) -> Check {
    if !env.db.exists() {
        return if env.acked == 0 {
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
        };
    }
    let mut version = None;
    let found = match env.exec.engine {
        Engine::Sqlite => verify_sqlite(env),
        Engine::Duckdb => verify_duckdb(env, &mut version),
        Engine::Libsql => verify_libsql(env, &mut version),
    };
    let mut check = match found {
        Ok(f) => decide(env, f),
        Err(c) => c,
    };
    check.engine_version = version;
    check
}

/// Runs the user's command, then weighs the findings: a broken invariant first, then durability.
fn decide(env: &CheckEnv<'_>, mut f: Findings) -> Check {
    if let Some(why) = f.not_yet {
        return Check::new(Outcome::Intact, why);
    }
    if let Some(cmd) = &env.exec.verify_cmd {
        match run_verify_cmd(env, cmd) {
            Ok(None) => {}
            Ok(Some(said)) => f.broken.push(said),
            Err(e) => return Check::new(Outcome::WorkerError, e),
        }
    }
    let recovered = f.recovered.unwrap_or(0);
    let lost = (f.recovered.is_some() && recovered < env.acked).then(|| {
        format!(
            "acknowledged up to {}, recovered up to {recovered}",
            env.acked
        )
    });
    let mut check = match (f.broken.is_empty(), lost) {
        (false, lost) => {
            let mut d = f.broken.join("; ");
            if let Some(l) = lost {
                d.push_str(&format!("; also lost: {l}"));
            }
            Check::new(Outcome::Atomicity, d)
        }
        (true, Some(l)) => Check::new(Outcome::LostCommit, l),
        (true, None) => Check::new(Outcome::Intact, ""),
    };
    check.recovered = recovered;
    check
}

fn not_yet(what: &str) -> String {
    format!(
        "killed before the program made its schema ({what}; nothing acknowledged): not a failure"
    )
}

fn verify_sqlite(env: &CheckEnv<'_>) -> Result<Findings, Check> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(env.db, flags).map_err(|e| classify(&e, "open"))?;
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
                "integrity_check: {} error(s); first: {first}",
                problems.len()
            ),
        );
        if let Some(sql) = &env.exec.recovered_sql {
            c.recovered = recovered_value(&conn, sql).unwrap_or(0);
        }
        return Err(c);
    }
    let mut f = Findings::default();
    if tables == 0 && env.acked == 0 {
        f.not_yet = Some(not_yet("no table yet"));
        return Ok(f);
    }
    if let Some(sql) = &env.exec.recovered_sql {
        match recovered_value(&conn, sql) {
            Ok(n) => f.recovered = Some(n),
            Err(SqlError::Sqlite(e)) if sqlite_error::is_corrupt(&e) => {
                return Err(classify(&e, "--recovered-sql"))
            }
            Err(e) => {
                if failed_sql_stage("recovered", &e.to_string(), false, env, &mut f)? {
                    return Ok(f);
                }
            }
        }
    }
    if let Some(sql) = &env.exec.verify_sql {
        match answers(&conn, sql) {
            Ok(rows) if is_ok(&rows) => {}
            Ok(rows) => f
                .broken
                .push(format!("--verify-sql answered: {}", rows.join(" | "))),
            Err(e) if sqlite_error::is_corrupt(&e) => return Err(classify(&e, "--verify-sql")),
            Err(e) if env.acked == 0 => {
                f.not_yet = Some(not_yet(&format!(
                    "--verify-sql failed: {}",
                    sqlite_error::describe(&e)
                )));
                return Ok(f);
            }
            Err(e) => f.broken.push(format!(
                "--verify-sql failed: {}",
                sqlite_error::describe(&e)
            )),
        }
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

/// The first column of the first row as a commit number; no row or NULL is 0 (an empty table).
fn recovered_value(conn: &Connection, sql: &str) -> Result<u64, SqlError> {
    let mut stmt = conn.prepare(sql).map_err(SqlError::Sqlite)?;
    let mut rows = stmt.query([]).map_err(SqlError::Sqlite)?;
    let Some(row) = rows.next().map_err(SqlError::Sqlite)? else {
        return Ok(0);
    };
    let v = row.get_ref(0).map_err(SqlError::Sqlite)?;
    match v {
        ValueRef::Null => Ok(0),
        ValueRef::Integer(i) => Ok(i.max(0) as u64),
        ValueRef::Real(r) if r.is_finite() => Ok(r.max(0.0) as u64),
        other => {
            let t = text(other);
            t.trim()
                .parse()
                .map_err(|_| SqlError::NotANumber(t.clone()))
        }
    }
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

/// An invariant holds when its query answers exactly one row, `ok`.
fn is_ok(rows: &[String]) -> bool {
    matches!(rows, [one] if one.trim().eq_ignore_ascii_case("ok"))
}

/// The DuckDB check, run as `python3 -c CHECK DB RECOVERED_SQL VERIFY_SQL`. It reopens the database
/// read-write as an application would (DuckDB replays the WAL on open), counts every table's rows,
/// runs the SQL and prints one JSON line. Exception classes stand in for result codes.
const DUCKDB_CHECK: &str = r#"
import json, sys
out = {}
def done(**kw):
    out.update(kw)
    print(json.dumps(out))
    sys.exit(0)
def fail(stage, e):
    done(stage=stage, kind=type(e).__name__, error=" ".join(str(e).split()))
try:
    import duckdb
except Exception as e:
    fail("import", e)
out["version"] = duckdb.__version__
db, rec, ver = sys.argv[1:4]
try:
    con = duckdb.connect(db)
except Exception as e:
    fail("open", e)
try:
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal").fetchall()
    out["tables"] = len(tables)
    for s, t in tables:
        q = '"' + s.replace('"', '""') + '"."' + t.replace('"', '""') + '"'
        # count(*) alone can be answered from metadata: hash every row so each block is read.
        con.execute(f"SELECT count(*), sum(hash(x)) FROM {q} AS x").fetchone()
except Exception as e:
    fail("read", e)
if rec:
    try:
        r = con.execute(rec).fetchone()
        out["recovered"] = None if r is None or r[0] is None else int(r[0])
    except Exception as e:
        fail("recovered", e)
if ver:
    try:
        out["verify"] = [str(r[0]) for r in con.execute(ver).fetchmany(20)]
    except Exception as e:
        fail("verify", e)
con.close()
done(stage="ok")
"#;

/// DuckDB exceptions that say the SQL or the schema does not fit, not that the file is damaged.
const DUCKDB_SQL_ERRORS: [&str; 4] = [
    "CatalogException",
    "BinderException",
    "ParserException",
    "ConversionException",
];

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

/// Runs an engine's check program (`python -c PROGRAM db recovered_sql verify_sql`) and returns the
/// JSON object it printed last; `label` names it in errors, `stem` its output files in `scratch`.
fn python_check(
    env: &CheckEnv<'_>,
    program: &str,
    label: &str,
    stem: &str,
    envs: &[(&str, &OsStr)],
) -> Result<serde_json::Value, Check> {
    let argv: Vec<String> = vec![
        env.exec.python.clone(),
        "-c".into(),
        program.into(),
        env.db.to_string_lossy().into_owned(),
        env.exec.recovered_sql.clone().unwrap_or_default(),
        env.exec.verify_sql.clone().unwrap_or_default(),
    ];
    let out_path = env.scratch.join(format!("{stem}.out"));
    let err_path = env.scratch.join(format!("{stem}.err"));
    let status = run_helper(&argv, envs, &out_path, &err_path, env)
        .map_err(|e| Check::new(Outcome::WorkerError, format!("the {label} check: {e}")))?;
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    out.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            Check::new(
                Outcome::WorkerError,
                format!(
                    "the {label} check ({}) printed no answer: {}",
                    describe_status(status),
                    tail(&std::fs::read(&err_path).unwrap_or_default(), 300)
                ),
            )
        })
}

fn verify_duckdb(env: &CheckEnv<'_>, version: &mut Option<String>) -> Result<Findings, Check> {
    let json = python_check(env, DUCKDB_CHECK, "DuckDB", "duckdb-check", &[])?;
    let s = |k: &str| json.get(k).and_then(|v| v.as_str()).unwrap_or("");
    if !s("version").is_empty() {
        *version = Some(format!("duckdb {}", s("version")));
    }
    let error = format!("{}: {}", s("kind"), s("error"));
    let sql_error = DUCKDB_SQL_ERRORS.contains(&s("kind"));
    let mut f = Findings::default();
    match s("stage") {
        "ok" => {}
        "import" => {
            return Err(Check::new(
                Outcome::WorkerError,
                format!(
                    "the DuckDB check cannot import duckdb with `{}` ({error}); `pip install duckdb` or pass --python",
                    env.exec.python
                ),
            ))
        }
        // DuckDB's characteristic failure: "Failure while replaying WAL file ...".
        "open" => {
            return Err(Check::new(
                Outcome::OpenFailed,
                format!("reopen with DuckDB: {error}"),
            ))
        }
        "read" => {
            return Err(Check::new(
                Outcome::Corrupt,
                format!("reading every table: {error}"),
            ))
        }
        stage @ ("recovered" | "verify") => {
            if failed_sql_stage(stage, &error, !sql_error, env, &mut f)? {
                return Ok(f);
            }
        }
        other => {
            return Err(Check::new(
                Outcome::WorkerError,
                format!("the DuckDB check answered an unknown stage `{other}`"),
            ))
        }
    }
    if json.get("tables").and_then(|t| t.as_u64()) == Some(0) && env.acked == 0 {
        f.not_yet = Some(not_yet("no table yet"));
        return Ok(f);
    }
    if env.exec.recovered_sql.is_some() && f.broken.is_empty() {
        f.recovered = Some(
            json.get("recovered")
                .and_then(|r| r.as_i64())
                .map_or(0, |r| r.max(0) as u64),
        );
    }
    if env.exec.verify_sql.is_some() && f.broken.is_empty() {
        let rows: Vec<String> = json
            .get("verify")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        if !is_ok(&rows) {
            f.broken
                .push(format!("--verify-sql answered: {}", rows.join(" | ")));
        }
    }
    Ok(f)
}

/// The libSQL check, run as `python3 -c CHECK DB RECOVERED_SQL VERIFY_SQL` with the key (if any)
/// in `TORTURE_KEY`. It reopens the database read-write as an application would (recovery: WAL
/// index rebuilt, hot journal rolled back), runs `PRAGMA integrity_check` and the SQL, and prints
/// one JSON line. libSQL raises ValueError for everything: its message is the result code.
const LIBSQL_CHECK: &str = r#"
import json, os, sys
out = {}
def done(**kw):
    out.update(kw)
    print(json.dumps(out))
    sys.exit(0)
def words(e):
    return " ".join(str(e).split())
def fail(stage, e):
    done(stage=stage, kind=type(e).__name__, error=words(e))
try:
    import libsql
except Exception as e:
    fail("import", e)
try:
    out["version"] = libsql.connect(":memory:").execute("SELECT sqlite_version()").fetchone()[0]
except Exception:
    pass
db, rec, ver = sys.argv[1:4]
key = os.environ.get("TORTURE_KEY") or None
try:
    con = libsql.connect(db, isolation_level=None, timeout=2, encryption_key=key)
    out["tables"] = con.execute(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table'").fetchone()[0]
except Exception as e:
    if key and "not a database" in str(e):
        # Does the file open as plaintext, without the key?
        try:
            plain = libsql.connect(db, isolation_level=None, timeout=2)
            plain.execute("SELECT count(*) FROM sqlite_schema").fetchone()
            out["plaintext"] = True
        except Exception:
            out["plaintext"] = False
    fail("open", e)
try:
    out["integrity"] = [str(r[0]) for r in con.execute("PRAGMA integrity_check(100)").fetchall()]
except Exception as e:
    fail("integrity", e)
if rec:
    try:
        r = con.execute(rec).fetchone()
        out["recovered"] = None if r is None or r[0] is None else r[0]
    except Exception as e:
        fail("recovered", e)
if ver:
    try:
        out["verify"] = [str(r[0]) for r in con.execute(ver).fetchall()[:20]]
    except Exception as e:
        fail("verify", e)
con.close()
done(stage="ok")
"#;

/// SQLite's words for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB), as libSQL's exceptions say them.
fn libsql_says_damaged(error: &str) -> bool {
    error.contains("malformed") || error.contains("not a database")
}

/// A libSQL (SQLite3 Multiple Ciphers) encrypted page 1: no `SQLite format 3` magic, but bytes
/// 16..23 of the header, which the cipher leaves in plaintext, are a valid SQLite header: a page
/// size, file format versions 1 or 2, and the fixed payload fractions 64, 32, 32.
pub(crate) fn encrypted_header(h: &[u8]) -> bool {
    if h.len() < 24 || h[..16] == *b"SQLite format 3\0" {
        return false;
    }
    let page = u32::from(u16::from_be_bytes([h[16], h[17]]));
    let page = if page == 1 { 65536 } else { page };
    page.is_power_of_two()
        && (512..=65536).contains(&page)
        && matches!(h[18], 1 | 2)
        && matches!(h[19], 1 | 2)
        && h[21..24] == [64, 32, 32]
}

/// Why libSQL's "file is not a database" is a key that does not open the file, or `None` when the
/// file looks damaged instead. libSQL's cipher (aes256cbc) authenticates nothing, so a wrong key
/// and a first page damaged where it is encrypted read the same: the rule goes by what is left in
/// plaintext.
fn libsql_key_mismatch(db: &Path, key: Option<&str>, plaintext: bool) -> Option<String> {
    use std::io::Read;
    let mut h = [0u8; 24];
    let read = std::fs::File::open(db)
        .and_then(|mut f| f.read_exact(&mut h))
        .is_ok();
    let encrypted = read && encrypted_header(&h);
    match key {
        Some(_) if plaintext => {
            Some("the file is a plaintext SQLite database: the key was never applied".into())
        }
        Some(_) if encrypted => Some(
            "the file is encrypted (the plaintext header bytes 16..23 are intact) but the key does not decrypt page 1; libSQL's cipher has no MAC, so a wrong key and page 1 damaged elsewhere read the same"
                .into(),
        ),
        None if encrypted => {
            Some("the file is encrypted (libSQL's layout) and no --key was given".into())
        }
        _ => None,
    }
}

fn verify_libsql(env: &CheckEnv<'_>, version: &mut Option<String>) -> Result<Findings, Check> {
    let key = env.exec.key.as_deref();
    let envs: Vec<(&str, &OsStr)> = key
        .map(|k| ("TORTURE_KEY", OsStr::new(k)))
        .into_iter()
        .collect();
    let json = python_check(env, LIBSQL_CHECK, "libSQL", "libsql-check", &envs)?;
    let s = |k: &str| json.get(k).and_then(|v| v.as_str()).unwrap_or("");
    if !s("version").is_empty() {
        *version = Some(format!("libsql {}", s("version")));
    }
    let error = s("error").to_string();
    let mut f = Findings::default();
    match s("stage") {
        "ok" => {}
        "import" => {
            return Err(Check::new(
                Outcome::WorkerError,
                format!(
                    "the libSQL check cannot import libsql with `{}` ({}: {error}); `pip install libsql` or pass --python",
                    env.exec.python,
                    s("kind")
                ),
            ))
        }
        "open" | "integrity" => {
            let during = if s("stage") == "open" {
                "reopen with libSQL"
            } else {
                "integrity_check"
            };
            let described = format!("{during}: {error}");
            if error.contains("not a database") {
                let plaintext = json.get("plaintext").and_then(|p| p.as_bool()) == Some(true);
                return Err(match libsql_key_mismatch(env.db, key, plaintext) {
                    Some(why) => Check::new(Outcome::WrongKey, format!("{described}; {why}")),
                    None => Check::new(Outcome::OpenFailed, described),
                });
            }
            let outcome = if error.contains("malformed") {
                Outcome::Corrupt
            } else {
                Outcome::OpenFailed
            };
            return Err(Check::new(outcome, described));
        }
        stage @ ("recovered" | "verify") => {
            if failed_sql_stage(stage, &error, libsql_says_damaged(&error), env, &mut f)? {
                return Ok(f);
            }
        }
        other => {
            return Err(Check::new(
                Outcome::WorkerError,
                format!("the libSQL check answered an unknown stage `{other}`"),
            ))
        }
    }
    let strings = |k: &str| -> Vec<String> {
        json.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let integrity = strings("integrity");
    if !is_ok(&integrity) {
        let mut c = Check::new(
            Outcome::Corrupt,
            format!(
                "integrity_check: {} error(s); first: {}",
                integrity.len(),
                integrity.first().map_or("(no answer)", |s| s.as_str())
            ),
        );
        c.recovered = recovered_json(&json).unwrap_or(0);
        return Err(c);
    }
    if json.get("tables").and_then(|t| t.as_u64()) == Some(0) && env.acked == 0 {
        f.not_yet = Some(not_yet("no table yet"));
        return Ok(f);
    }
    if env.exec.recovered_sql.is_some() && f.broken.is_empty() {
        match recovered_json(&json) {
            Ok(n) => f.recovered = Some(n),
            Err(e) => {
                if failed_sql_stage("recovered", &e.to_string(), false, env, &mut f)? {
                    return Ok(f);
                }
            }
        }
    }
    if env.exec.verify_sql.is_some() && f.broken.is_empty() {
        let rows = strings("verify");
        if !is_ok(&rows) {
            f.broken
                .push(format!("--verify-sql answered: {}", rows.join(" | ")));
        }
    }
    Ok(f)
}

/// What `--recovered-sql` answered in a Python check's JSON: a number, NULL (0) or a numeric text.
fn recovered_json(json: &serde_json::Value) -> Result<u64, String> {
    match json.get("recovered") {
        None | Some(serde_json::Value::Null) => Ok(0),
        Some(serde_json::Value::Number(n)) => Ok(n
            .as_i64()
            .map(|i| i.max(0) as u64)
            .or_else(|| n.as_f64().map(|r| r.max(0.0) as u64))
            .unwrap_or(0)),
        Some(serde_json::Value::String(t)) => t
            .trim()
            .parse()
            .map_err(|_| format!("it must answer a number, it answered `{t}`")),
        Some(other) => Err(format!("it must answer a number, it answered `{other}`")),
    }
}

/// Whether `python` can import the engine's Python package, checked once before a run so a missing
/// package is one line naming the fix rather than a run of worker errors.
pub fn python_ready(exec: &ExecOptions) -> Result<(), String> {
    let Some(module) = exec.engine.python_module() else {
        return Ok(());
    };
    let out = std::process::Command::new(&exec.python)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "--engine {}: cannot run `{}` ({e}); pass --python with an interpreter that has `pip install {module}`",
                exec.engine.as_str(),
                exec.python
            )
        })?;
    if out.status.success() {
        return Ok(());
    }
    // The traceback's last line says why: `ModuleNotFoundError: No module named 'libsql'`.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    let why = tail(last.unwrap_or("no message").as_bytes(), 200);
    Err(format!(
        "--engine {}: `{} -c 'import {module}'` failed ({why}); `pip install {module}` or pass --python",
        exec.engine.as_str(),
        exec.python
    ))
}

/// Runs `--verify-cmd` through the shell. `Ok(None)`: it passed; `Ok(Some(what it said))`: it failed.
fn run_verify_cmd(env: &CheckEnv<'_>, cmd: &str) -> Result<Option<String>, String> {
    let argv = argv(&[cmd.to_string()], true, env.db);
    let out = env.scratch.join("verify-cmd.out");
    let status = run_helper(
        &argv,
        &[("TORTURE_DB", env.db.as_os_str())],
        &out,
        &out,
        env,
    )
    .map_err(|e| format!("--verify-cmd: {e}"))?;
    if status.success() {
        return Ok(None);
    }
    let said = tail(&std::fs::read(&out).unwrap_or_default(), 300);
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
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
    let group = Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + env.timeout;
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => {
                let _ = killpg(group, Signal::SIGKILL);
                return Ok(s);
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait();
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
pub(crate) mod tests {
    use super::*;

    /// A database as `workloads/exec/python_writer.py` makes it, with `commits` commits.
    pub(crate) fn writer_db(path: &Path, commits: u64) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "CREATE TABLE t(seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
             CREATE TABLE item(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB);
             CREATE INDEX item_seq ON item(seq);
             CREATE TABLE counter(id INTEGER PRIMARY KEY CHECK (id = 0), items INTEGER NOT NULL);
             INSERT INTO counter VALUES (0, 0);
             CREATE TABLE account(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, pad BLOB);
             INSERT INTO account WITH RECURSIVE a(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM a WHERE i < 1000)
               SELECT i, 100, zeroblob(400) FROM a;",
        )
        .unwrap();
        for seq in 1..=commits {
            c.execute_batch(&format!(
                "BEGIN; INSERT INTO item(seq, payload) VALUES ({seq}, randomblob(500)), ({seq}, randomblob(90));
                 INSERT INTO t VALUES ({seq}, 2); UPDATE counter SET items = items + 2;
                 UPDATE account SET balance = balance - 5 WHERE id = {seq};
                 UPDATE account SET balance = balance + 5 WHERE id = 1001 - {seq}; COMMIT;"
            ))
            .unwrap();
        }
    }

    pub(crate) fn verify_sql() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../workloads/exec/verify.sql"
        ))
        .unwrap()
    }

    fn check(exec: &ExecOptions, db: &Path, acked: u64) -> Check {
        let scratch = db.parent().unwrap();
        verify(&CheckEnv {
            exec,
            db,
            acked,
            timeout: Duration::from_secs(20),
            scratch,
            close_fds: &[],
        })
    }

    fn writer_opts() -> ExecOptions {
        let mut o = ExecOptions::new(vec!["x".into()]);
        o.recovered_sql = Some("SELECT max(seq) FROM t".into());
        o.verify_sql = Some(verify_sql());
        o
    }

    #[test]
    fn durability_and_the_invariant_are_checked_as_for_built_in_workloads() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("trial.db");
        writer_db(&db, 10);
        let o = writer_opts();
        let c = check(&o, &db, 10);
        assert_eq!((c.outcome, c.recovered), (Outcome::Intact, 10), "{c:?}");
        let c = check(&o, &db, 11);
        assert_eq!(c.outcome, Outcome::LostCommit);
        assert!(c.detail.contains("acknowledged up to 11"), "{}", c.detail);
        Connection::open(&db)
            .unwrap()
            .execute_batch("DELETE FROM item WHERE id = 3")
            .unwrap();
        let c = check(&o, &db, 10);
        assert_eq!(c.outcome, Outcome::Atomicity, "{c:?}");
        assert!(c.detail.contains("half a transaction"), "{}", c.detail);
    }

    #[test]
    fn no_database_or_no_schema_with_nothing_acknowledged_is_not_a_failure() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("trial.db");
        let o = writer_opts();
        let c = check(&o, &db, 0);
        assert_eq!(c.outcome, Outcome::Intact);
        assert!(c.detail.contains("before the program created"), "{c:?}");
        assert_eq!(check(&o, &db, 3).outcome, Outcome::OpenFailed);
        // An empty database, and one with a table but not yet the acknowledged one.
        Connection::open(&db)
            .unwrap()
            .execute_batch("PRAGMA user_version = 1")
            .unwrap();
        let c = check(&o, &db, 0);
        assert_eq!(c.outcome, Outcome::Intact);
        assert!(
            c.detail.contains("before the program made its schema"),
            "{c:?}"
        );
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE other(x)")
            .unwrap();
        let c = check(&o, &db, 0);
        assert_eq!(c.outcome, Outcome::Intact, "{c:?}");
        assert!(c.detail.contains("no such table"), "{c:?}");
        let c = check(&o, &db, 2);
        assert_eq!(c.outcome, Outcome::LostCommit, "{c:?}");
    }

    #[test]
    fn a_damaged_file_is_corrupt_or_open_failed() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("trial.db");
        writer_db(&db, 40);
        let o = writer_opts();
        let mut bytes = std::fs::read(&db).unwrap();
        let page = 4096;
        for b in &mut bytes[2 * page + 8..2 * page + 1200] {
            *b = 0x5A;
        }
        std::fs::write(&db, &bytes).unwrap();
        assert_eq!(check(&o, &db, 40).outcome, Outcome::Corrupt);
        bytes[..100].fill(0xAB);
        std::fs::write(&db, &bytes).unwrap();
        let c = check(&o, &db, 40);
        assert_eq!(c.outcome, Outcome::OpenFailed, "{c:?}");
        assert!(c.detail.contains("SQLITE_NOTADB"), "{}", c.detail);
    }

    #[test]
    fn verify_cmd_sees_the_database_and_a_non_zero_exit_is_atomicity() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("trial.db");
        writer_db(&db, 3);
        let mut o = writer_opts();
        o.verify_cmd = Some(r#"test -s {db} && test "$TORTURE_DB" = {db}"#.into());
        assert_eq!(check(&o, &db, 3).outcome, Outcome::Intact);
        o.verify_cmd = Some("echo 'balance is off by 7'; exit 3".into());
        let c = check(&o, &db, 3);
        assert_eq!(c.outcome, Outcome::Atomicity);
        assert_eq!(
            c.detail,
            "--verify-cmd exited with status 3: balance is off by 7"
        );
    }
}
