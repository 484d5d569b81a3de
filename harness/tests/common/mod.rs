//! Helpers shared by the end-to-end tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn torture() -> Command {
    Command::new(env!("CARGO_BIN_EXE_torture"))
}

pub fn run(args: &[&str]) -> Output {
    torture().args(args).output().expect("torture runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One CSV row, keyed by its header.
pub type Row = std::collections::HashMap<String, String>;

/// Reads a trials.csv into header-keyed rows.
pub fn rows(out: &Path) -> Vec<Row> {
    csv_rows(&out.join("trials.csv"))
}

/// A program's stdout and stderr, for an assertion's message.
pub fn say(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", text(&o.stdout), text(&o.stderr))
}

/// Reads any of the lab's CSV files (`trials.csv`, `crash-states.csv`) into header-keyed rows.
pub fn csv_rows(path: &Path) -> Vec<Row> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.expect("every row is complete");
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

pub fn out_dir(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    tmp.path().join(name)
}

/// Processes whose environment carries `marker`: this test's parent, slots and writers.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(e.path().join("environ")) {
            if env.split(|&b| b == 0).any(|kv| kv == marker.as_bytes()) {
                out.push(pid);
            }
        }
    }
    out
}

pub fn wait_for_rows(out: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(t) = std::fs::read_to_string(out.join("trials.csv")) {
            if t.lines().count() > n {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no rows appeared");
}

pub fn assert_no_orphans(marker: &str) {
    // Generous: on a loaded machine the kernel may take a while to deliver the parent-death signals.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        let states: Vec<String> = left
            .iter()
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default())
            .collect();
        assert!(Instant::now() < deadline, "orphans left: {states:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a fault over profiles and returns the rows.
pub fn fault_run(
    tmp: &tempfile::TempDir,
    name: &str,
    fault: &str,
    profiles: &str,
    n: &str,
    extra: &[&str],
) -> (Output, Vec<std::collections::HashMap<String, String>>) {
    let out = out_dir(tmp, name);
    let o = torture()
        .args([
            "--fault",
            fault,
            "--profile",
            profiles,
            "--iterations",
            n,
            "--seed",
            "3",
        ])
        .args(["--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    let rows = if out.join("trials.csv").exists() {
        rows(&out)
    } else {
        Vec::new()
    };
    (o, rows)
}

pub fn count(
    rows: &[std::collections::HashMap<String, String>],
    profile: &str,
    outcome: &str,
) -> usize {
    rows.iter()
        .filter(|r| r["profile"] == profile && r["outcome"] == outcome)
        .count()
}

pub fn one_line_exit(o: &std::process::Output, code: i32) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{}{err}", text(&o.stdout));
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

/// Runs the binary with a time limit; `None` when it was still running (a valid run, killed).
pub fn run_bounded(cwd: &Path, args: &[String], limit: Duration) -> Option<std::process::Output> {
    let mut child = torture()
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A command run by [`run_measured`]: its output, and its peak memory.
pub struct Measured {
    /// `None` when it was still running at the limit (it was killed then).
    pub output: Option<Output>,
    /// The peak resident set of the process, or of any child it waited for, in KiB.
    pub max_rss_kib: u64,
}

/// Runs `cmd` (stdin closed, stdout and stderr read) for at most `limit`, and measures its peak
/// resident memory (`wait4`'s `ru_maxrss`): the fuzz tests' bound on time and memory alike.
pub fn run_measured(mut cmd: Command, limit: Duration) -> Measured {
    use std::io::Read;
    // Reaped by `wait4` below, which std's `wait` cannot do (it gives no rusage).
    #[allow(clippy::zombie_processes)]
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            b
        })
    }
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: pid is this test's own unreaped child; both out-pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert_eq!(r, 0, "wait4: {}", std::io::Error::last_os_error());
        if !killed && Instant::now() > deadline {
            // Not reaped yet, so the pid is still this child's.
            let _ = child.kill();
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let max_rss_kib = usage.ru_maxrss as u64;
    if killed {
        // Its pipes may stay open in a straggler: the readers are left to end with them.
        return Measured {
            output: None,
            max_rss_kib,
        };
    }
    Measured {
        output: Some(Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(status),
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }),
        max_rss_kib,
    }
}

/// The peak memory any fuzzed input may take (a real invocation takes tens of MiB).
pub const FUZZ_MAX_RSS_KIB: u64 = 1 << 20;
