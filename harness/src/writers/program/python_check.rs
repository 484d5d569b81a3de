//! The engines checked through their Python packages: DuckDB (`duckdb`) and libSQL (`libsql`).
//! Each check is a short `python -c` program that prints one JSON line; this file reads it.

use super::*;

/// The DuckDB check, run as `python3 -c CHECK DB RECOVERED_SQL VERIFY_SQL`. It reopens the database
/// read-write as an application would (DuckDB replays the WAL on open), counts every table's rows,
/// runs the SQL and prints one JSON line. Exception classes stand in for result codes.
const DUCKDB_CHECK: &str = r#"
import json, sys
out = {}
def number(v):
    return v if v is None or isinstance(v, (int, float, str)) else repr(v)
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
    # Its bar writes to fd 1 after two seconds, whatever fd 1 is.
    con.execute("SET enable_progress_bar = false")
except Exception:
    pass
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
        out["recovered"] = [[number(r[0]), number(r[1])] if len(r) == 2 else number(r[0]) for r in con.execute(rec).fetchall()]
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

/// Runs an engine's check program (`python -c PROGRAM db recovered_sql verify_sql`) and returns the
/// JSON object it printed last; `label` names it in errors, `stem` its output files in `scratch`.
/// Under `--fault` a trial checks hundreds of crash states: there the program runs in a
/// long-lived interpreter of the slot ([`server`]) instead, which imports the engine once.
fn python_check(
    env: &CheckEnv<'_>,
    program: &str,
    label: &str,
    stem: &str,
    envs: &[(&str, &OsStr)],
) -> Result<serde_json::Value, Check> {
    let args = [
        env.db.to_string_lossy().into_owned(),
        env.exec.recovered_sql.clone().unwrap_or_default(),
        env.exec.verify_sql.clone().unwrap_or_default(),
    ];
    let last_json = |out: &str| {
        out.lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    };
    if env.exec.fault.is_some() {
        let answer = server::ask(&env.exec.python, program, &args, envs, env.timeout)
            .map_err(|e| Check::new(Outcome::WorkerError, format!("the {label} check: {e}")))?;
        return last_json(&answer.out).ok_or_else(|| {
            Check::new(
                Outcome::WorkerError,
                format!(
                    "the {label} check printed no answer: {}",
                    tail(answer.err.as_bytes(), 300)
                ),
            )
        });
    }
    let mut argv: Vec<String> = vec![env.exec.python.clone(), "-c".into(), program.into()];
    argv.extend(args);
    let out_path = env.scratch.join(format!("{stem}.out"));
    let err_path = env.scratch.join(format!("{stem}.err"));
    let status = run_helper(&argv, envs, &out_path, &err_path, env)
        .map_err(|e| Check::new(Outcome::WorkerError, format!("the {label} check: {e}")))?;
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    last_json(&out).ok_or_else(|| {
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

/// A long-lived Python interpreter per slot that runs check programs on request: one JSON line in
/// (`program`, `argv`, `env`), one JSON line out (what the program printed, and a traceback if it
/// raised). Each program runs in fresh globals, which are cleared (and garbage-collected, closing
/// any connection it left open) before the answer is sent, so no state passes from one check to
/// the next but the imported modules. A check that overruns its timeout, or an interpreter that
/// dies (a crash in the engine's C code), is killed with its group and started afresh next time.
mod server {
    use std::ffi::OsStr;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use nix::poll::{PollFd, PollFlags};
    use nix::sys::time::TimeSpec;
    use nix::unistd::Pid;

    const SERVE: &str = r#"
import contextlib, gc, io, json, os, sys, traceback
# The answers go out on a copy of fd 1; fd 1 itself now points at stderr, so whatever an engine's
# C code prints there (DuckDB's progress bar) cannot break the protocol.
answer = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
for line in sys.stdin:
    req = json.loads(line)
    for k in req["unset"]:
        os.environ.pop(k, None)
    os.environ.update(req["env"])
    sys.argv = ["-c"] + req["argv"]
    buf, err, g = io.StringIO(), "", {"__name__": "__main__"}
    try:
        with contextlib.redirect_stdout(buf):
            exec(compile(req["program"], "<check>", "exec"), g)
    except SystemExit:
        pass
    except BaseException:
        err = traceback.format_exc()
    g.clear()
    gc.collect()
    answer.write(json.dumps({"out": buf.getvalue(), "err": err}) + "\n")
    answer.flush()
"#;

    /// The start of the error when the interpreter was already gone before a request.
    const GONE: &str = "the checker is gone";

    /// Variables a check may set; each request sets its own and unsets the others.
    const KNOWN_ENV: [&str; 1] = ["TORTURE_KEY"];

    pub(super) struct Answer {
        pub out: String,
        pub err: String,
    }

    struct Server {
        python: String,
        child: Child,
        stdin: ChildStdin,
        stdout: ChildStdout,
        pending: Vec<u8>,
        /// Its stderr (an unlinked file: nothing is left behind however the slot ends), for the
        /// message when it dies.
        stderr: std::fs::File,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let group = Pid::from_raw(self.child.id() as i32);
            crate::process::kill_group(group);
            let _ = self.child.wait();
        }
    }

    static SERVER: Mutex<Option<Server>> = Mutex::new(None);

    fn start(python: &str) -> Result<Server, String> {
        let stderr = tempfile::tempfile()
            .map_err(|e| format!("cannot make the checker's stderr file: {e}"))?;
        let err = stderr
            .try_clone()
            .map_err(|e| format!("cannot open the checker's stderr file: {e}"))?;
        let mut cmd = Command::new(python);
        cmd.args(["-u", "-c", SERVE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .env_remove("TORTURE_KEY");
        let mut child = crate::process::spawn_program(&mut cmd)
            .map_err(|e| format!("cannot start `{python}`: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        Ok(Server {
            python: python.to_string(),
            child,
            stdin,
            stdout,
            pending: Vec::new(),
            stderr,
        })
    }

    impl Server {
        fn ask(&mut self, request: &[u8], timeout: Duration) -> Result<Answer, String> {
            self.stdin
                .write_all(request)
                .map_err(|e| format!("{GONE} ({e})"))?;
            let deadline = Instant::now() + timeout;
            let mut buf = [0u8; 65536];
            loop {
                if let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.pending.drain(..=nl).collect();
                    let v: serde_json::Value = serde_json::from_slice(&line)
                        .map_err(|e| format!("the checker answered garbage ({e})"))?;
                    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                    return Ok(Answer {
                        out: s("out"),
                        err: s("err"),
                    });
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!(
                        "`{}` did not finish within {timeout:?}",
                        self.python
                    ));
                }
                let mut fds = [PollFd::new(self.stdout.as_fd(), PollFlags::POLLIN)];
                let _ = nix::poll::ppoll(&mut fds, Some(TimeSpec::from_duration(left)), None);
                if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                    match self.stdout.read(&mut buf) {
                        Ok(0) => {
                            let status = self.child.wait().map(|s| s.to_string());
                            let mut said = Vec::new();
                            let _ =
                                std::io::Seek::seek(&mut self.stderr, std::io::SeekFrom::Start(0));
                            let _ = self.stderr.read_to_end(&mut said);
                            return Err(format!(
                                "the checker died ({}): {}",
                                status.unwrap_or_else(|e| e.to_string()),
                                super::tail(&said, 300)
                            ));
                        }
                        Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(format!("reading the checker: {e}")),
                    }
                }
            }
        }
    }

    /// Runs `program` with `argv` in the slot's interpreter `python` (started on first use).
    pub(super) fn ask(
        python: &str,
        program: &str,
        argv: &[String],
        envs: &[(&str, &OsStr)],
        timeout: Duration,
    ) -> Result<Answer, String> {
        let env: serde_json::Map<String, serde_json::Value> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string_lossy().into_owned().into()))
            .collect();
        let unset: Vec<&str> = KNOWN_ENV
            .iter()
            .copied()
            .filter(|k| !env.contains_key(*k))
            .collect();
        let mut request = serde_json::to_vec(&serde_json::json!({
            "program": program,
            "argv": argv,
            "env": env,
            "unset": unset,
        }))
        .map_err(|e| e.to_string())?;
        request.push(b'\n');
        let mut slot = SERVER.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|s| s.python != python) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(start(python)?);
        }
        let mut answer = slot.as_mut().map(|s| s.ask(&request, timeout));
        if matches!(&answer, Some(Err(e)) if e.starts_with(GONE)) {
            // It died between checks (not in this one): one retry on a fresh interpreter.
            *slot = Some(start(python)?);
            answer = slot.as_mut().map(|s| s.ask(&request, timeout));
        }
        match answer {
            Some(Ok(a)) => Ok(a),
            Some(Err(e)) => {
                // Killed with its group; the next check starts a fresh one.
                *slot = None;
                Err(e)
            }
            None => Err("no checker".into()),
        }
    }
}

pub(super) fn verify_duckdb(
    env: &CheckEnv<'_>,
    version: &mut Option<String>,
) -> Result<Findings, Check> {
    let json = python_check(env, DUCKDB_CHECK, "DuckDB", "duckdb-check", &[])?;
    let s = |k: &str| json.get(k).and_then(|v| v.as_str()).unwrap_or("");
    if !s("version").is_empty() {
        *version = Some(format!("duckdb {}", s("version")));
    }
    // An internal error carries DuckDB's stack trace (kilobytes of addresses): the row keeps the
    // message.
    let message = s("error");
    let message = message
        .split("Stack Trace:")
        .next()
        .unwrap_or(message)
        .trim_end();
    let error = format!("{}: {message}", s("kind"));
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
        f.recovered = Some(recovered_json(&json).map_err(|t| bad_recovered(&t))?);
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
        if !invariant_holds(&rows) {
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
def number(v):
    return v if v is None or isinstance(v, (int, float, str)) else repr(v)
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
        out["recovered"] = [[number(r[0]), number(r[1])] if len(r) == 2 else number(r[0]) for r in con.execute(rec).fetchall()]
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

pub(super) fn verify_libsql(
    env: &CheckEnv<'_>,
    version: &mut Option<String>,
) -> Result<Findings, Check> {
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
                integrity
                    .first()
                    .map_or("(no answer)".into(), |s| flat(s, 300))
            ),
        );
        c.recovered = recovered_json(&json).map_or(0, |r| r.highest());
        return Err(c);
    }
    if json.get("tables").and_then(|t| t.as_u64()) == Some(0) && env.acked == 0 {
        f.not_yet = Some(not_yet("no table yet"));
        return Ok(f);
    }
    if env.exec.recovered_sql.is_some() && f.broken.is_empty() {
        f.recovered = Some(recovered_json(&json).map_err(|t| bad_recovered(&t))?);
    }
    if env.exec.verify_sql.is_some() && f.broken.is_empty() {
        let rows = strings("verify");
        if !invariant_holds(&rows) {
            f.broken
                .push(format!("--verify-sql answered: {}", rows.join(" | ")));
        }
    }
    Ok(f)
}

/// What `--recovered-sql` answered in a Python check's JSON: a list of rows (each a number, NULL
/// or a numeric text), or one value from an older check. Err: the text that is not a number.
fn recovered_json(json: &serde_json::Value) -> Result<Recovered, String> {
    use serde_json::Value;
    let one = |v: &Value| -> Result<u64, String> {
        match v {
            Value::Null => Ok(0),
            Value::Number(n) => Ok(n
                .as_i64()
                .map(|i| i.max(0) as u64)
                .or_else(|| n.as_f64().map(|r| r.max(0.0) as u64))
                .unwrap_or(0)),
            Value::String(t) => t.trim().parse().map_err(|_| t.clone()),
            other => Err(other.to_string()),
        }
    };
    let row = |v: &Value| -> Result<(Option<u64>, u64), String> {
        match v {
            Value::Array(pair) if pair.len() == 2 => Ok((Some(one(&pair[0])?), one(&pair[1])?)),
            v => Ok((None, one(v)?)),
        }
    };
    let rows = match json.get("recovered") {
        None => vec![(None, 0)],
        Some(Value::Array(rows)) => rows
            .iter()
            .map(row)
            .collect::<Result<Vec<(Option<u64>, u64)>, String>>()?,
        Some(v) => vec![(None, one(v)?)],
    };
    Ok(Recovered::from_answers(rows))
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

#[cfg(test)]
mod tests {
    use super::server;
    use std::time::Duration;

    /// The long-lived checker: answers, keeps nothing between checks but imports, and a check that
    /// overruns its timeout is killed — the next one gets a fresh interpreter.
    #[test]
    fn the_checker_answers_forgets_and_survives_a_hung_check() {
        let py = "python3";
        let t = Duration::from_secs(20);
        let a = server::ask(
            py,
            "import sys; x = 1; print(sys.argv[1])",
            &["db".into()],
            &[],
            t,
        )
        .unwrap();
        assert_eq!(a.out.trim(), "db");
        let a = server::ask(py, "print('x' in globals())", &[], &[], t).unwrap();
        assert_eq!(a.out.trim(), "False", "globals leaked from the last check");
        let key = std::ffi::OsStr::new("k");
        let a = server::ask(
            py,
            "import os; print(os.environ.get('TORTURE_KEY'))",
            &[],
            &[("TORTURE_KEY", key)],
            t,
        )
        .unwrap();
        assert_eq!(a.out.trim(), "k");
        let a = server::ask(
            py,
            "import os; print(os.environ.get('TORTURE_KEY'))",
            &[],
            &[],
            t,
        )
        .unwrap();
        assert_eq!(a.out.trim(), "None", "a key stayed set for the next check");
        let a = server::ask(py, "raise ValueError('boom')", &[], &[], t).unwrap();
        assert!(a.err.contains("ValueError: boom"), "{}", a.err);
        let e = server::ask(
            py,
            "import time; time.sleep(30)",
            &[],
            &[],
            Duration::from_millis(300),
        )
        .err()
        .unwrap();
        assert!(e.contains("did not finish"), "{e}");
        let a = server::ask(py, "print('again')", &[], &[], t).unwrap();
        assert_eq!(a.out.trim(), "again");
        let e = server::ask(py, "import os; os._exit(3)", &[], &[], t)
            .err()
            .unwrap();
        assert!(e.contains("died"), "{e}");
        let a = server::ask(py, "print('back')", &[], &[], t).unwrap();
        assert_eq!(a.out.trim(), "back");
        // C code writing to fd 1 (DuckDB's progress bar) does not reach the protocol.
        let a = server::ask(
            py,
            "import os; os.write(1, b'\\r 50%\\n'); print('ok')",
            &[],
            &[],
            t,
        )
        .unwrap();
        assert_eq!(a.out.trim(), "ok");
        // An interpreter that dies between checks: the next check retries on a fresh one.
        let a = server::ask(py, "import os; print(os.getpid())", &[], &[], t).unwrap();
        let pid: i32 = a.out.trim().parse().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
        // Dead (a zombie until the checker's owner reaps it): its pipes are closed.
        let stat = format!("/proc/{pid}/stat");
        let gone = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
            assert!(std::time::Instant::now() < gone, "the checker did not die");
            std::thread::sleep(Duration::from_millis(5));
        }
        let a = server::ask(py, "import os; print(os.getpid())", &[], &[], t).unwrap();
        assert_ne!(
            a.out.trim(),
            pid.to_string(),
            "answered by the dead interpreter"
        );
        let a = server::ask(py, "print('fresh')", &[], &[], t).unwrap();
        assert_eq!(a.out.trim(), "fresh");
    }
}
