//! One run of the user's program: start it in its own process group with the trial's database path,
//! read its `ack N` lines as they come, SIGKILL the whole group at the kill time (or wait for it to
//! end, when calibrating), and reap it.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::{killpg, Signal};
use nix::sys::time::TimeSpec;
use nix::unistd::Pid;

use crate::trial::process::die_with_parent;

/// Everything needed to start the program for one trial (or the calibration run).
pub(crate) struct Launch<'a> {
    pub command: &'a [String],
    pub shell: bool,
    /// The database path: `{db}` in the arguments and `TORTURE_DB`.
    pub db: &'a Path,
    /// `TORTURE_SEED` and `TORTURE_TRIAL`, so a program can vary what it writes per trial.
    pub seed: u64,
    pub trial: String,
    /// Where the program's stderr goes.
    pub stderr: &'a Path,
    /// Descriptors of the lab the program must not inherit (the slot's pipes to the parent).
    pub close_fds: &'a [RawFd],
    /// `--key`: the program gets it as `TORTURE_KEY`.
    pub key: Option<&'a str>,
}

/// When the lab stops the program.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stop {
    /// SIGKILL this long after the start, unless it ended before.
    At(Duration),
    /// SIGKILL at `at` counted with its start-up measured: before `anchor` (the calibrated first
    /// ack) a time since the start; past it, the program's own first ack + (`at` − `anchor`). A
    /// program with no ack by `at` + max(3 × `anchor`, 1 s) — a start-up four times slower than
    /// calibrated — is killed then.
    Anchored { at: Duration, anchor: Duration },
    /// Let it run to its end; SIGKILL it after `timeout` (calibration).
    Exit { timeout: Duration },
}

/// How the program's life ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Our SIGKILL at the kill time.
    Killed,
    /// It exited by itself with this status before the kill time.
    Exited(i32),
    /// It died of a signal that was not ours.
    Signaled(i32),
    /// `Stop::Exit` ran out of time and the lab killed it.
    TimedOut,
}

/// What the program said on stdout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Said {
    /// The highest N of an `ack N` line (0 when none).
    pub max_ack: u64,
    pub ack_lines: u64,
    /// Since the start: when the first and the last `ack` line arrived.
    pub first_ack: Option<Duration>,
    pub last_ack: Option<Duration>,
    pub journal_mode: Option<String>,
    pub synchronous: Option<String>,
    pub sqlite_version: Option<String>,
}

/// Splits the program's stdout into lines and keeps what the protocol says, plus a short tail of
/// everything for the evidence folder.
#[derive(Debug, Default)]
pub(crate) struct LineParser {
    pub said: Said,
    partial: Vec<u8>,
    /// A line longer than this is not a protocol line: drop it rather than grow without bound.
    skipping: bool,
    tail: Vec<u8>,
}

const MAX_LINE: usize = 4096;
const TAIL: usize = 16 * 1024;

impl LineParser {
    pub fn feed(&mut self, bytes: &[u8], at: Duration) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
        for &b in bytes {
            if b == b'\n' {
                if !self.skipping {
                    let line = std::mem::take(&mut self.partial);
                    self.line(&String::from_utf8_lossy(&line), at);
                }
                self.partial.clear();
                self.skipping = false;
            } else if !self.skipping {
                self.partial.push(b);
                if self.partial.len() > MAX_LINE {
                    self.partial.clear();
                    self.skipping = true;
                }
            }
        }
    }

    /// The program is dead: its last line counts even without a newline. Python's `print` writes
    /// the text and the newline in two calls, and a kill between them must not hide the ack. The
    /// text itself arrives whole (one write of less than PIPE_BUF bytes); were it ever cut, the
    /// number could only be smaller, which can hide a loss but never invent one.
    pub fn finish(&mut self, at: Duration) {
        if !self.skipping && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&String::from_utf8_lossy(&line), at);
        }
    }

    /// One line without its newline.
    fn line(&mut self, line: &str, at: Duration) {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            return;
        };
        match key {
            "ack" => {
                if let Ok(n) = value.parse::<u64>() {
                    self.said.max_ack = self.said.max_ack.max(n);
                    self.said.ack_lines += 1;
                    self.said.first_ack.get_or_insert(at);
                    self.said.last_ack = Some(at);
                }
            }
            "journal_mode" => self.said.journal_mode = Some(value.to_ascii_lowercase()),
            "synchronous" => self.said.synchronous = Some(value.to_ascii_lowercase()),
            "sqlite_version" => self.said.sqlite_version = Some(value.to_string()),
            _ => {}
        }
    }

    /// The last few KiB the program printed.
    pub fn tail(&self) -> &[u8] {
        let start = self.tail.len().saturating_sub(TAIL);
        &self.tail[start..]
    }
}

/// One finished run of the program.
#[derive(Debug)]
pub(crate) struct Run {
    pub said: Said,
    pub end: End,
    /// From the start to the kill or the exit.
    pub ran_for: Duration,
    /// The command as executed, after `{db}` was substituted.
    pub argv: Vec<String>,
    pub stdout_tail: Vec<u8>,
    /// When the database files were first and last seen to change (only when watched).
    pub writes: Option<(Duration, Duration)>,
    /// `Stop::Anchored` past the anchor: the program's own first ack the kill was counted from.
    pub anchored_on: Option<Duration>,
}

/// The argument vector: `{db}` replaced everywhere; with `shell`, one `/bin/sh -c` string.
pub(crate) fn argv(command: &[String], shell: bool, db: &Path) -> Vec<String> {
    let mut db = db.to_string_lossy().into_owned();
    // For `sh -c`, a path the shell would read as code (`$(…)`, spaces, quotes) is single-quoted.
    if shell
        && !db
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@=%".contains(c))
    {
        db = format!("'{}'", db.replace('\'', "'\\''"));
    }
    let words: Vec<String> = command.iter().map(|a| a.replace("{db}", &db)).collect();
    if shell {
        vec!["/bin/sh".into(), "-c".into(), words.join(" ")]
    } else {
        words
    }
}

/// A command whose child asks to die with the lab, leads its own process group (so one `killpg`
/// reaches everything it started that stayed in the group) and drops the lab's descriptors.
pub(crate) fn guarded(argv: &[String], close_fds: &[RawFd]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null()).process_group(0);
    let lab = nix::unistd::getpid();
    let fds = close_fds.to_vec();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid, _exit, close); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            die_with_parent(lab);
            for &fd in &fds {
                libc::close(fd);
            }
            Ok(())
        });
    }
    cmd
}

/// Starts the program, follows it until `stop`, kills its process group and reaps it. `watch`: a
/// database whose files to watch for changes (calibration of programs that print no acks).
pub(crate) fn run(launch: &Launch<'_>, stop: Stop, watch: Option<&Path>) -> Result<Run, String> {
    let argv = argv(launch.command, launch.shell, launch.db);
    let stderr = File::create(launch.stderr)
        .map_err(|e| format!("creating {}: {e}", launch.stderr.display()))?;
    let mut cmd = guarded(&argv, launch.close_fds);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .env("TORTURE_DB", launch.db)
        .env("TORTURE_SEED", launch.seed.to_string())
        .env("TORTURE_TRIAL", &launch.trial);
    // Only the run's own --key: a TORTURE_KEY inherited from the user's shell would encrypt with
    // a key run.json never recorded.
    match launch.key {
        Some(key) => cmd.env("TORTURE_KEY", key),
        None => cmd.env_remove("TORTURE_KEY"),
    };
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
    let group = Pid::from_raw(child.id() as i32);
    let mut out = child.stdout.take();
    if let Some(o) = &out {
        set_nonblocking(o);
    }
    let mut parser = LineParser::default();
    let mut watcher = watch.map(Watcher::new);
    let mut exited: Option<ExitStatus> = None;
    loop {
        let now = Instant::now();
        let deadline = started + kill_time(stop, parser.said.first_ack);
        if now >= deadline {
            break;
        }
        // Wake at least every 20 ms: a program may exit while a process it started still holds
        // the pipe, and then no hang-up arrives.
        let wait = (deadline - now).min(Duration::from_millis(20));
        match &out {
            Some(o) => wait_readable(o, wait),
            None => std::thread::sleep(wait),
        }
        if let Some(o) = &mut out {
            if !drain(o, &mut parser, started.elapsed()) {
                out = None;
            }
        }
        if let Some(w) = &mut watcher {
            w.look(started.elapsed());
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                exited = Some(status);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                kill_group(group);
                let _ = child.wait();
                return Err(format!("waiting for the program: {e}"));
            }
        }
    }
    let ran_for = started.elapsed();
    // Always sweep the group: after the program's own exit, whatever it left running in the group
    // must not write while the lab checks the database.
    kill_group(group);
    let status = match exited {
        Some(s) => s,
        None => reap(&mut child)?,
    };
    // The pipe keeps what the program wrote before it died: those acks were printed after their
    // commits returned, so they count. A process that left the group may still hold the pipe open,
    // so read what is there without waiting for an end of file.
    if let Some(o) = &mut out {
        drain(o, &mut parser, ran_for);
    }
    parser.finish(ran_for);
    if let Some(w) = &mut watcher {
        w.look(ran_for);
    }
    let ours = exited.is_none() && status.signal() == Some(libc::SIGKILL);
    let end = match (status.code(), status.signal()) {
        _ if ours && matches!(stop, Stop::Exit { .. }) => End::TimedOut,
        _ if ours => End::Killed,
        (Some(code), _) => End::Exited(code),
        (None, Some(sig)) => End::Signaled(sig),
        (None, None) => End::Killed,
    };
    let anchored_on = match stop {
        Stop::Anchored { at, anchor } if at >= anchor => parser.said.first_ack,
        _ => None,
    };
    Ok(Run {
        anchored_on,
        said: parser.said.clone(),
        end,
        ran_for,
        argv,
        stdout_tail: parser.tail().to_vec(),
        writes: watcher.and_then(|w| w.span()),
    })
}

/// When to stop, since the start, given the first ack seen so far.
fn kill_time(stop: Stop, first_ack: Option<Duration>) -> Duration {
    match stop {
        Stop::At(t) => t,
        Stop::Exit { timeout } => timeout,
        Stop::Anchored { at, anchor } if at < anchor => at,
        Stop::Anchored { at, anchor } => match first_ack {
            Some(first) => first + (at - anchor),
            None => at + (anchor * 3).max(Duration::from_secs(1)),
        },
    }
}

fn kill_group(group: Pid) {
    // ESRCH: the group is already empty, which is fine.
    let _ = killpg(group, Signal::SIGKILL);
}

fn reap(child: &mut Child) -> Result<ExitStatus, String> {
    loop {
        match child.wait() {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reaping the program: {e}")),
        }
    }
}

fn set_nonblocking(o: &ChildStdout) {
    if let Ok(flags) = fcntl(o, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(o, FcntlArg::F_SETFL(flags));
    }
}

/// Waits until the pipe is readable or `wait` has passed, with microsecond resolution (the kill time
/// is drawn in microseconds).
fn wait_readable(o: &ChildStdout, wait: Duration) {
    let mut fds = [PollFd::new(o.as_fd(), PollFlags::POLLIN)];
    let _ = nix::poll::ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None);
}

/// Reads everything available now. False at the end of the pipe.
fn drain(o: &mut ChildStdout, parser: &mut LineParser, at: Duration) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match o.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => parser.feed(&buf[..n], at),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// Watches a database's files (size and modification time) to see when a program that prints no
/// acks writes.
struct Watcher {
    files: Vec<PathBuf>,
    last: Vec<Option<(u64, SystemTime)>>,
    first_change: Option<Duration>,
    last_change: Option<Duration>,
}

impl Watcher {
    fn new(db: &Path) -> Watcher {
        let files: Vec<PathBuf> = ["", "-wal", "-journal", ".wal"]
            .iter()
            .map(|s| crate::trial::evidence::with_suffix(db, s))
            .collect();
        let last = files.iter().map(|f| stamp(f)).collect();
        Watcher {
            files,
            last,
            first_change: None,
            last_change: None,
        }
    }

    fn look(&mut self, at: Duration) {
        for (f, last) in self.files.iter().zip(self.last.iter_mut()) {
            let now = stamp(f);
            if now != *last {
                *last = now;
                self.first_change.get_or_insert(at);
                self.last_change = Some(at);
            }
        }
    }

    fn span(&self) -> Option<(Duration, Duration)> {
        Some((self.first_change?, self.last_change?))
    }
}

fn stamp(f: &Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(f).ok()?;
    Some((m.len(), m.modified().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_the_highest_n_of_complete_lines_only() {
        let mut p = LineParser::default();
        let t = Duration::from_millis(1);
        p.feed(b"starting up\nack 1\nack 3\r\nack", t);
        p.feed(b" 2\nack two\nack 4 5\njournal_mode WAL\nack 12", t * 2);
        assert_eq!(
            p.said.max_ack, 3,
            "`ack 12` is not finished while the program lives"
        );
        assert_eq!(p.said.ack_lines, 3);
        assert_eq!(p.said.first_ack, Some(t));
        assert_eq!(p.said.last_ack, Some(t * 2));
        assert_eq!(p.said.journal_mode.as_deref(), Some("wal"));
        p.finish(t * 3);
        assert_eq!(
            p.said.max_ack, 12,
            "killed between `ack 12` and its newline"
        );
        let mut p = LineParser::default();
        p.feed(&vec![b'x'; MAX_LINE * 3], t);
        p.feed(b"ack 99\nack 7\n", t);
        assert_eq!(
            p.said.max_ack, 7,
            "the end of an overlong line is not a protocol line"
        );
    }

    #[test]
    fn db_is_substituted_in_every_argument_and_shell_mode_joins_them() {
        let db = Path::new("/w/slot-0/exec-3/db/trial.db");
        let cmd: Vec<String> = ["./app", "--db={db}", "{db}", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            argv(&cmd, false, db),
            [
                "./app",
                "--db=/w/slot-0/exec-3/db/trial.db",
                "/w/slot-0/exec-3/db/trial.db",
                "x"
            ]
        );
        let sh = argv(&["app {db} | tee log".to_string()], true, db);
        assert_eq!(
            sh,
            [
                "/bin/sh",
                "-c",
                "app /w/slot-0/exec-3/db/trial.db | tee log"
            ]
        );
        let odd = Path::new("/w/a$(touch x)'b/trial.db");
        let sh = argv(&["app {db}".to_string()], true, odd);
        assert_eq!(sh[2], "app '/w/a$(touch x)'\\''b/trial.db'");
    }

    #[test]
    fn anchored_kills_follow_the_programs_own_first_ack() {
        let ms = Duration::from_millis;
        let stop = Stop::Anchored {
            at: ms(700),
            anchor: ms(500),
        };
        assert_eq!(kill_time(stop, Some(ms(900))), ms(1100), "a slow start");
        assert_eq!(kill_time(stop, Some(ms(300))), ms(500), "a fast start");
        assert_eq!(
            kill_time(stop, None),
            ms(2200),
            "no ack yet: wait three more start-ups"
        );
        let early = Stop::Anchored {
            at: ms(450),
            anchor: ms(500),
        };
        assert_eq!(
            kill_time(early, Some(ms(100))),
            ms(450),
            "the lead-in is a time"
        );
    }

    fn launch<'a>(cmd: &'a [String], db: &'a Path, err: &'a Path) -> Launch<'a> {
        Launch {
            command: cmd,
            shell: false,
            db,
            seed: 42,
            trial: "7".into(),
            stderr: err,
            close_fds: &[],
            key: None,
        }
    }

    #[test]
    fn the_program_gets_the_path_as_db_and_as_torture_db() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("trial.db");
        let err = d.path().join("stderr.txt");
        let cmd: Vec<String> = [
            "/bin/sh",
            "-c",
            r#"printf '%s\n%s\n%s\n%s\n' "$1" "$2" "$TORTURE_DB" "$TORTURE_SEED" > "$TORTURE_DB.seen"; echo ack 1; echo oops >&2"#,
            "sh",
            "{db}",
            "--db={db}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let run = run(
            &launch(&cmd, &db, &err),
            Stop::Exit {
                timeout: Duration::from_secs(10),
            },
            None,
        )
        .unwrap();
        assert_eq!(run.end, End::Exited(0));
        assert_eq!(run.said.max_ack, 1);
        let seen = std::fs::read_to_string(d.path().join("trial.db.seen")).unwrap();
        let p = db.display();
        assert_eq!(seen, format!("{p}\n--db={p}\n{p}\n42\n"));
        assert_eq!(std::fs::read_to_string(&err).unwrap(), "oops\n");
    }

    #[test]
    fn the_whole_group_dies_at_the_kill_time_and_acks_in_the_pipe_count() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("trial.db");
        let err = d.path().join("stderr.txt");
        // A child of the program in the same group keeps writing acks; it must die too.
        let cmd: Vec<String> = [
            "/bin/sh",
            "-c",
            "(i=0; while true; do i=$((i+1)); echo ack $i; sleep 0.005; done) & echo $! > \"$TORTURE_DB.pid\"; wait",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let t0 = Instant::now();
        let run = run(
            &launch(&cmd, &db, &err),
            Stop::At(Duration::from_millis(200)),
            None,
        )
        .unwrap();
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert_eq!(run.end, End::Killed);
        assert!(run.said.max_ack >= 3, "{:?}", run.said);
        let pid: i32 = std::fs::read_to_string(d.path().join("trial.db.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // The grandchild was in the group: it is dead (a zombie at most, re-parented to init).
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = state
            .rsplit(')')
            .next()
            .is_some_and(|s| !s.trim_start().starts_with('Z'));
        assert!(!alive, "grandchild {pid} still running: {state}");
    }

    #[test]
    fn a_program_that_cannot_start_is_an_error_not_a_hang() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("trial.db");
        let err = d.path().join("stderr.txt");
        let cmd = vec!["/nonexistent/program".to_string()];
        let e = run(
            &launch(&cmd, &db, &err),
            Stop::At(Duration::from_millis(10)),
            None,
        )
        .unwrap_err();
        assert!(e.contains("cannot start"), "{e}");
    }
}
