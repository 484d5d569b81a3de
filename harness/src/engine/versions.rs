//! Engine versions: `--sqlite VERSION|PATH` (any command) and `--engine-version V` (`exec` with
//! `--engine duckdb|libsql`), handled before the command line is parsed.
//!
//! `--sqlite` re-executes a *variant* of this binary linked against that SQLite, so the built-in
//! profiles, scenarios, faults and the oracle all run on it: `scripts/sqlite-variant` takes the
//! amalgamation from a registry package that bundles it (checked against its own `SQLITE_VERSION`),
//! builds `libsqlite3.so.0` and `libsqlite3.a` into the cache, and the variant into
//! `target/sqlite-<version>` (first time only; it says how long that took). The variant runs with
//! `LD_LIBRARY_PATH` on that library, so a program under `torture exec` that links SQLite
//! dynamically (Python's `sqlite3`) runs the same version. The variant checks that the SQLite it
//! links is the one asked for.
//!
//! `--engine-version V` makes (once) a virtual environment `…/torture/venv/<engine>-<V>` with
//! `pip install <engine>==V` and puts its `bin/` first on `PATH`: the program's `python3` and the
//! check's (`--python`'s default) are then that environment's.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::exit_code;

/// Set in the variant's environment: the SQLite version it must be running.
pub const VARIANT_ENV: &str = "TORTURE_SQLITE_VARIANT";

/// What the pre-parse decided.
pub enum Prepared {
    /// Go on with these arguments (the version flags removed).
    Continue(Vec<OsString>),
    /// Stop with this exit code (an error was printed, or the variant ran and exited).
    Exit(i32),
}

/// The cache root: `$XDG_CACHE_HOME/torture` or `~/.cache/torture`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("torture"),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache/torture"),
    }
}

/// Removes `--NAME VALUE` / `--NAME=VALUE` (before a `--`) from `args`; the value if it was there.
/// `Err` when the flag has no value.
fn take_flag(args: &mut Vec<OsString>, name: &str) -> Result<Option<String>, String> {
    let long = format!("--{name}");
    let prefix = format!("--{name}=");
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        if a == "--" {
            break;
        }
        if a == long {
            if i + 1 >= args.len() || args[i + 1] == "--" {
                return Err(format!("{long} needs a value"));
            }
            let v = args[i + 1].to_string_lossy().into_owned();
            args.drain(i..=i + 1);
            return Ok(Some(v));
        }
        if let Some(v) = a.strip_prefix(&prefix) {
            let v = v.to_string();
            args.remove(i);
            return Ok(Some(v));
        }
        i += 1;
    }
    Ok(None)
}

/// The value of `--NAME` (before a `--`), without removing it.
fn peek_flag(args: &[OsString], name: &str) -> Option<String> {
    let mut copy = args.to_vec();
    take_flag(&mut copy, name).ok().flatten()
}

/// The arguments as the user typed them: in a variant, `torture` for the variant's path and the
/// `--sqlite=V` it was given (the user's), so a reproduce line re-runs the same version.
pub fn as_typed(args: &[OsString]) -> Vec<OsString> {
    let mut a = args.to_vec();
    if std::env::var_os(VARIANT_ENV).is_some() && !a.is_empty() {
        a[0] = OsString::from("torture");
    }
    a
}

/// Handles `--sqlite` and `--engine-version`; called first by `main_with_args`.
pub fn prepare(args: Vec<OsString>) -> Prepared {
    let mut args = args;
    let sqlite = match take_flag(&mut args, "sqlite") {
        Ok(v) => v,
        Err(e) => {
            return usage(&format!(
                "{e}: a version (3.51.2) or a path to sqlite3.c or libsqlite3.so"
            ))
        }
    };
    let engine_version = match take_flag(&mut args, "engine-version") {
        Ok(v) => v,
        Err(e) => {
            return usage(&format!(
                "{e}: the engine package's version, e.g. --engine-version 1.5.6"
            ))
        }
    };
    // Nothing is installed or built for a command line that is bad anyway: its own parse says
    // why, in one line, before any pip install or compile (issue 20, R9).
    if (sqlite.is_some() || engine_version.is_some()) && !parses(&args) {
        return Prepared::Continue(args);
    }
    if let Some(v) = engine_version {
        if let Err(code) = engine_venv(&args, &v) {
            return Prepared::Exit(code);
        }
    }
    match sqlite {
        None => Prepared::Continue(args),
        Some(want) => match std::env::var(VARIANT_ENV) {
            // We are the variant: check that the SQLite we link is the one asked for.
            Ok(expected) => {
                let running = rusqlite::version();
                if running != expected {
                    eprintln!(
                        "torture: this variant links SQLite {running}, not {expected} ({want}): rebuild it with scripts/sqlite-variant {want}"
                    );
                    return Prepared::Exit(exit_code::LAB_ERROR);
                }
                Prepared::Continue(args)
            }
            Err(_) => Prepared::Exit(run_variant(&want, &args)),
        },
    }
}

/// The command line parses, and an exec program named without `--shell` exists.
fn parses(args: &[OsString]) -> bool {
    use clap::Parser;
    match crate::cli::Cli::try_parse_from(args) {
        Ok(cli) => match cli.command {
            Some(crate::cli::Command::Exec(e)) => match (e.shell, e.command.first()) {
                (false, Some(program)) => crate::process::find_program(program).is_ok(),
                _ => true,
            },
            _ => true,
        },
        // --help and --version print and exit 0 there too.
        Err(_) => false,
    }
}

fn usage(msg: &str) -> Prepared {
    eprintln!("torture: {msg}");
    Prepared::Exit(exit_code::USAGE)
}

/// The checkout this binary was built from (for the scripts), or `TORTURE_SRC`.
fn source_root() -> PathBuf {
    match std::env::var_os("TORTURE_SRC") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
    }
}

/// Builds (or finds) the variant for `want` and runs it with `args` (and `--sqlite` again, so it
/// checks its version); its exit code.
fn run_variant(want: &str, args: &[OsString]) -> i32 {
    let script = source_root().join("scripts/sqlite-variant");
    if !script.is_file() {
        eprintln!(
            "torture: --sqlite needs the torture checkout this binary was built from ({} is missing): run it from there, or set TORTURE_SRC",
            script.display()
        );
        return exit_code::LAB_ERROR;
    }
    let out = match Command::new("bash")
        .arg(&script)
        .arg(want)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("torture: cannot run {}: {e}", script.display());
            return exit_code::LAB_ERROR;
        }
    };
    match out.status.code() {
        Some(0) => {}
        Some(2) => return exit_code::USAGE,
        _ => return exit_code::LAB_ERROR,
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let fields: Vec<&str> = line.split('\t').collect();
    let [_key, version, bin, libdir] = fields[..] else {
        eprintln!("torture: scripts/sqlite-variant said `{line}`, not KEY VERSION BIN LIBDIR");
        return exit_code::LAB_ERROR;
    };
    let mut ld = OsString::from(libdir);
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|o| !o.is_empty()) {
        ld.push(":");
        ld.push(old);
    }
    let mut child_args: Vec<OsString> = args[1..].to_vec();
    child_args.insert(0, OsString::from(format!("--sqlite={want}")));
    use std::os::unix::process::CommandExt;
    // Replaces this process: signals, exit code and Ctrl-C are the variant's own.
    let e = Command::new(bin)
        .args(&child_args)
        .env(VARIANT_ENV, version)
        .env("LD_LIBRARY_PATH", ld)
        .exec();
    eprintln!("torture: cannot run the SQLite {version} variant {bin}: {e}");
    exit_code::LAB_ERROR
}

/// Makes (once) the virtual environment for `--engine E --engine-version V` and puts it first on
/// PATH. Err(exit code) after printing one line.
fn engine_venv(args: &[OsString], version: &str) -> Result<(), i32> {
    let fail = |code: i32, msg: String| {
        eprintln!("torture: {msg}");
        Err(code)
    };
    let is_exec = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "exec" || a == "hunt");
    let engine = peek_flag(args, "engine").unwrap_or_default();
    let package = match engine.as_str() {
        "duckdb" => "duckdb",
        "libsql" => "libsql",
        _ => {
            return fail(
                exit_code::USAGE,
                "--engine-version goes with `torture exec --engine duckdb` or `--engine libsql` (for SQLite use --sqlite VERSION)".into(),
            )
        }
    };
    if !is_exec {
        return fail(exit_code::USAGE, "--engine-version is for `torture exec` (e.g. torture exec --engine duckdb --engine-version 1.5.6 -- …)".into());
    }
    if peek_flag(args, "python").is_some() {
        return fail(
            exit_code::USAGE,
            "--engine-version makes its own Python environment: drop --python".into(),
        );
    }
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '+')
    {
        return fail(
            exit_code::USAGE,
            format!(
                "--engine-version {version}: give a release of the `{package}` package, e.g. 1.5.6"
            ),
        );
    }
    let venv = cache_dir()
        .join("venv")
        .join(format!("{package}-{version}"));
    let python = venv.join("bin/python3");
    let ready = venv.join(".torture-ready");
    if !ready.is_file() {
        let started = std::time::Instant::now();
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("python3")
            .args([OsStr::new("-m"), OsStr::new("venv"), venv.as_os_str()])
            .stdin(Stdio::null())
            .output();
        match made {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                return fail(
                    exit_code::LAB_ERROR,
                    format!(
                        "python3 -m venv failed ({}): apt-get install python3-venv",
                        err.lines().last().unwrap_or("")
                    ),
                );
            }
            Err(e) => {
                return fail(
                    exit_code::LAB_ERROR,
                    format!("cannot run python3 ({e}): apt-get install python3 python3-venv"),
                )
            }
        }
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .arg(format!("{package}=={version}"))
            .stdin(Stdio::null())
            .output();
        match pip {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let _ = std::fs::remove_dir_all(&venv);
                let err = String::from_utf8_lossy(&o.stderr);
                if err.contains("No matching distribution")
                    || err.contains("Could not find a version")
                {
                    return fail(exit_code::USAGE, format!("{package} {version} is not on PyPI for this Python: pick a release from `pip index versions {package}`"));
                }
                return fail(
                    exit_code::LAB_ERROR,
                    format!(
                        "pip install {package}=={version} failed: {}",
                        err.lines().last().unwrap_or("")
                    ),
                );
            }
            Err(e) => {
                return fail(
                    exit_code::LAB_ERROR,
                    format!("cannot run {}: {e}", python.display()),
                )
            }
        }
        let _ = std::fs::write(&ready, format!("{package}=={version}\n"));
        eprintln!(
            "torture: {package} {version} installed in {:.0} s (once): {}",
            started.elapsed().as_secs_f64(),
            venv.display()
        );
    }
    let mut path = OsString::from(venv.join("bin"));
    if let Some(old) = std::env::var_os("PATH") {
        path.push(":");
        path.push(old);
    }
    // Single-threaded here: nothing has started yet.
    std::env::set_var("PATH", path);
    std::env::set_var("VIRTUAL_ENV", &venv);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn version_flags_are_taken_before_the_double_dash_only() {
        let mut a = os(&[
            "torture", "exec", "--sqlite", "3.51.2", "-n", "3", "--", "p", "--sqlite", "x",
        ]);
        assert_eq!(
            take_flag(&mut a, "sqlite").unwrap().as_deref(),
            Some("3.51.2")
        );
        assert_eq!(
            a,
            os(&["torture", "exec", "-n", "3", "--", "p", "--sqlite", "x"])
        );
        assert_eq!(take_flag(&mut a, "sqlite").unwrap(), None);
        let mut b = os(&["torture", "--sqlite=/x/sqlite3.c", "--profile", "wal-full"]);
        assert_eq!(
            take_flag(&mut b, "sqlite").unwrap().as_deref(),
            Some("/x/sqlite3.c")
        );
        assert_eq!(b, os(&["torture", "--profile", "wal-full"]));
        assert!(take_flag(&mut os(&["torture", "--sqlite"]), "sqlite").is_err());
    }

    #[test]
    fn engine_version_needs_exec_with_a_python_engine() {
        let r = engine_venv(&os(&["torture", "exec", "--", "p"]), "1.5.6");
        assert_eq!(r, Err(exit_code::USAGE));
        let r = engine_venv(&os(&["torture", "--engine", "duckdb"]), "1.5.6");
        assert_eq!(r, Err(exit_code::USAGE));
        let r = engine_venv(
            &os(&["torture", "exec", "--engine", "duckdb", "--python", "p"]),
            "1.5.6",
        );
        assert_eq!(r, Err(exit_code::USAGE));
        let r = engine_venv(&os(&["torture", "exec", "--engine", "duckdb"]), "1.5;rm");
        assert_eq!(r, Err(exit_code::USAGE));
    }
}
