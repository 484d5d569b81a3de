//! One run of the user's program: start it in its own process group with the trial's database path,
//! read its `ack N` lines as they come, SIGKILL the whole group at the kill time (or wait for it to
//! end, when calibrating), and reap it.

use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::Pid;

use crate::process;

/// Everything needed to start the program for one trial (or the calibration run).
pub(crate) struct Launch<'a> {
    pub command: &'a [String],
    pub shell: bool,
    /// The database path: `{db}` in the arguments and `TORTURE_DB`.
    pub db: &'a Path,
    /// `TORTURE_SEED` and `TORTURE_TRIAL`, so a program can vary what it writes per trial.
    pub seed: u64,
    pub trial: String,
    /// Where the program's stderr goes (every instance appends to it).
    pub stderr: &'a Path,
    /// Descriptors of the lab the program must not inherit (the slot's pipes to the parent).
    pub close_fds: &'a [RawFd],
    /// `--key`: the program gets it as `TORTURE_KEY`.
    pub key: Option<&'a str>,
    /// `--instances`: copies of the program started together on the one database, each in its own
    /// process group, told its number (0..N) in `TORTURE_INSTANCE`, with its own stdout.
    pub instances: u32,
    /// `--kill one`: at the kill time only this instance is killed; the others go on (see
    /// [`KillOne`]) and are killed after.
    pub kill_one: Option<KillOne>,
    /// Under the recorder: the log each `ack N` line is appended to as soon as the lab reads it,
    /// so acks the recorder cannot see written (Go's runtime, C stdio) still take their place in
    /// the total order (a little late, which can hide a loss, never invent one).
    pub ack_log: Option<&'a Path>,
}

/// `--kill one`: which instance dies first, and how long the others may go on after it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KillOne {
    pub victim: u32,
    /// The survivors are killed once they acknowledged this many more commits…
    pub more_acks: u64,
    /// …or this long after the victim's kill, whichever comes first.
    pub linger: Duration,
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
    /// SIGKILL `delay` after the `acks`-th `ack N` line arrived (over every instance), as the core
    /// kills after K acknowledged commits; a program that never gets there is killed at `cap`.
    AfterAcks {
        acks: u64,
        delay: Duration,
        cap: Duration,
    },
    /// Calibration: let it run until it exits, or `run_for` has passed when given; else until it
    /// has shown enough ([`enough`]) or `timeout` — then SIGKILL it.
    Calibrate {
        timeout: Duration,
        run_for: Option<Duration>,
        /// The program is to print `ack N` (`--recovered-sql`): only acks show enough, not the
        /// database changing (a program's set-up can write for seconds before its first ack).
        acks_expected: bool,
        /// Enough is not judged before this: a program that exits within it runs to its end.
        min_run: Duration,
    },
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
    /// `Stop::Calibrate` had seen enough (or ran out of time) and the lab killed it.
    TimedOut,
}

/// What the program said on stdout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Said {
    /// The highest N of an `ack N` line (0 when none).
    pub max_ack: u64,
    pub ack_lines: u64,
    /// Every acknowledged N, in the order the lines came.
    pub acks: Vec<u64>,
    /// Since the start: when the first and the last `ack` line arrived.
    pub first_ack: Option<Duration>,
    pub last_ack: Option<Duration>,
    pub journal_mode: Option<String>,
    pub synchronous: Option<String>,
    pub sqlite_version: Option<String>,
    /// Lines that were not one protocol line but held `ack N` in them (two writers sharing
    /// stdout: `ack 218ack 1775`): each `ack N` found was counted.
    pub garbled_lines: u64,
    /// Lines that mention `ack` but hold no `ack N` the lab could read: not counted.
    pub unread_lines: u64,
    /// The first such line, for the note.
    pub garbled_example: Option<String>,
}

impl Said {
    /// A note for the row when some ack lines were garbled: never dropped silently.
    pub fn garbled_note(&self) -> Option<String> {
        (self.garbled_lines + self.unread_lines > 0).then(|| {
            format!(
                "{} garbled ack line(s) read by their `ack N` parts, {} unreadable and not counted (e.g. {:?}): give each process its own line, written at once",
                self.garbled_lines,
                self.unread_lines,
                self.garbled_example.as_deref().unwrap_or("")
            )
        })
    }

    /// The counts and times of several instances' acks, without copying the acks themselves (the
    /// loop that waits for the kill asks for it after every line).
    pub fn summary<'a>(all: impl Iterator<Item = &'a Said>) -> Said {
        let mut m = Said::default();
        for s in all {
            m.max_ack = m.max_ack.max(s.max_ack);
            m.ack_lines += s.ack_lines;
            m.first_ack = match (m.first_ack, s.first_ack) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            m.last_ack = m.last_ack.max(s.last_ack);
        }
        m
    }

    /// What several instances said, as one: every ack, the earliest first and latest last ack, the
    /// first instance's labels that said any.
    pub fn merged(all: &[Said]) -> Said {
        let mut m = Said::default();
        for s in all {
            m.max_ack = m.max_ack.max(s.max_ack);
            m.ack_lines += s.ack_lines;
            m.acks.extend_from_slice(&s.acks);
            m.first_ack = match (m.first_ack, s.first_ack) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            m.last_ack = m.last_ack.max(s.last_ack);
            if m.journal_mode.is_none() {
                m.journal_mode.clone_from(&s.journal_mode);
            }
            if m.synchronous.is_none() {
                m.synchronous.clone_from(&s.synchronous);
            }
            if m.sqlite_version.is_none() {
                m.sqlite_version.clone_from(&s.sqlite_version);
            }
            m.garbled_lines += s.garbled_lines;
            m.unread_lines += s.unread_lines;
            if m.garbled_example.is_none() {
                m.garbled_example.clone_from(&s.garbled_example);
            }
        }
        m
    }
}

/// Splits the program's stdout into lines and keeps what the protocol says, plus a short tail of
/// everything for the evidence folder.
#[derive(Debug, Default)]
pub(crate) struct LineParser {
    pub said: Said,
    ack_log: Option<AckLog>,
    /// The pid the lab's ack records carry: the instance's leader, so each ack stays its
    /// instance's (the recorder's own records carry the writing process).
    leader: u32,
    /// Acks read but not yet appended to the recording: the recorder held its lock (the program
    /// was inside a hooked call). The lab never waits for that lock: it would stall behind the
    /// program it watches, and miss its stop time.
    unplaced: Vec<u64>,
    partial: Vec<u8>,
    /// A line longer than this is not a protocol line: drop it rather than grow without bound.
    skipping: bool,
    tail: Vec<u8>,
}

/// The recorder's log, open for the lab's ack records.
struct AckLog(torture_preload::LogAppender);

impl std::fmt::Debug for AckLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckLog")
    }
}

const MAX_LINE: usize = 4096;
const TAIL: usize = 16 * 1024;

impl LineParser {
    /// A parser that appends every ack line to the recorder's log at `log`.
    pub fn with_ack_log(log: &Path, leader: u32) -> Result<LineParser, String> {
        let a = torture_preload::LogAppender::open(log)
            .map_err(|e| format!("opening the recorder's log {}: {e}", log.display()))?;
        Ok(LineParser {
            ack_log: Some(AckLog(a)),
            leader,
            ..LineParser::default()
        })
    }

    /// Appends the acks read so far to the recording, as far as its lock is free now.
    pub fn place_acks(&mut self) {
        let Some(AckLog(log)) = &mut self.ack_log else {
            return;
        };
        while let Some(&n) = self.unplaced.first() {
            match log.try_append_ack(self.leader, format!("ack {n}\n").as_bytes()) {
                Ok(Some(_)) => {
                    self.unplaced.remove(0);
                }
                Ok(None) => return,
                // Best effort: an ack not placed counts only at the end of the run.
                Err(_) => {
                    self.unplaced.clear();
                    return;
                }
            }
        }
    }

    /// The program is gone: place what is left, waiting a little for the lock (a process of the
    /// program that outlived it may still hold it); what cannot be placed counts at the end.
    pub fn place_remaining_acks(&mut self) {
        let until = std::time::Instant::now() + Duration::from_secs(1);
        while !self.unplaced.is_empty() && self.ack_log.is_some() {
            self.place_acks();
            if self.unplaced.is_empty() || std::time::Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

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
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            self.garbled(line, at);
            return;
        };
        // `ack N ID` (a writer's id after the number) is an ack; any other third word is not a
        // protocol line.
        let rest = words.next();
        if rest.is_some() && (key != "ack" || words.next().is_some()) {
            self.garbled(line, at);
            return;
        }
        match key {
            "ack" => match value.parse::<u64>() {
                Ok(n) => self.ack(n, at),
                Err(_) => self.garbled(line, at),
            },
            "journal_mode" => self.said.journal_mode = Some(value.to_ascii_lowercase()),
            "synchronous" => self.said.synchronous = Some(value.to_ascii_lowercase()),
            "sqlite_version" => self.said.sqlite_version = Some(value.to_string()),
            _ => {}
        }
    }

    fn ack(&mut self, n: u64, at: Duration) {
        if self.ack_log.is_some() {
            self.unplaced.push(n);
            self.place_acks();
        }
        self.said.max_ack = self.said.max_ack.max(n);
        self.said.acks.push(n);
        self.said.ack_lines += 1;
        self.said.first_ack.get_or_insert(at);
        self.said.last_ack = Some(at);
    }

    /// A line that is not one protocol line: every `ack N` in it counts (`ack 218ack 1775` is two
    /// writers' lines run together); a line that mentions `ack` and holds none is counted unread.
    fn garbled(&mut self, line: &str, at: Duration) {
        if !line.contains("ack") {
            return;
        }
        let found = scan_acks(line);
        if found.is_empty() {
            self.said.unread_lines += 1;
        } else {
            self.said.garbled_lines += 1;
            for n in found {
                self.ack(n, at);
            }
        }
        if self.said.garbled_example.is_none() {
            self.said.garbled_example = Some(line.chars().take(80).collect());
        }
    }

    /// The last few KiB the program printed.
    pub fn tail(&self) -> &[u8] {
        let start = self.tail.len().saturating_sub(TAIL);
        &self.tail[start..]
    }
}

/// Every `ack N` in a line: `ack`, at least one blank, digits, then the end or a non-digit.
pub(crate) fn scan_acks(line: &str) -> Vec<u64> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(k) = line[i..].find("ack") {
        let mut j = i + k + 3;
        let blanks = j;
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
            j += 1;
        }
        let digits = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > digits && digits > blanks {
            if let Ok(n) = line[digits..j].parse() {
                out.push(n);
            }
        }
        i = (i + k + 3).max(j.min(b.len()));
        if i >= b.len() {
            break;
        }
    }
    out
}

/// One finished run of the program.
#[derive(Debug)]
pub(crate) struct Run {
    /// What every instance said, as one.
    pub said: Said,
    /// Each instance: what it said and how it ended (one entry without `--instances`).
    pub instances: Vec<(Said, End)>,
    /// How the run ended: a failure of any instance first, then the lab's kill, then a clean exit.
    pub end: End,
    /// From the start to the kill or the exit.
    pub ran_for: Duration,
    /// The command as executed, after `{db}` was substituted.
    pub argv: Vec<String>,
    /// The last few KiB each instance printed.
    pub stdout_tails: Vec<Vec<u8>>,
    /// Each instance's first process (its group's leader), in instance order.
    pub leaders: Vec<u32>,
    /// When the database files were first and last seen to change (only when watched).
    pub writes: Option<(Duration, Duration)>,
    /// `Stop::Anchored` past the anchor: the program's own first ack the kill was counted from.
    pub anchored_on: Option<Duration>,
    /// `Stop::AfterAcks`: when the K-th ack arrived (None: never, killed at the cap or exited).
    pub kth_ack_at: Option<Duration>,
    /// `--kill one`: what the survivors did after the victim's kill.
    pub kill_one_note: Option<String>,
    /// A process of the run still alive after the reaping gave up (uninterruptible sleep).
    pub lingering: Option<String>,
    /// Processes that had left the program's process groups (`setsid()`), found alive and
    /// killed before the check (issue 20 R12).
    pub escaped: usize,
}

impl Run {
    /// The row's words for processes that left the program's process group, if any did.
    pub fn escaped_note(&self) -> Option<String> {
        (self.escaped > 0).then(|| {
            format!(
                "{} process(es) of the program had left its process group (setsid) and were killed before the check",
                self.escaped
            )
        })
    }
}

/// The argument vector: `{db}` replaced everywhere; with `shell`, one `/bin/sh -c` string.
pub(crate) fn argv(command: &[String], shell: bool, db: &Path) -> Vec<String> {
    let db = db.to_string_lossy().into_owned();
    // A path of these characters reads the same in every quoting of `sh -c` and holds no code.
    let plain = db
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@=%".contains(c));
    if shell {
        let script = command.join(" ");
        let script = if plain {
            script.replace("{db}", &db)
        } else {
            db_as_variable(&script)
        };
        vec!["/bin/sh".into(), "-c".into(), script]
    } else {
        command.iter().map(|a| a.replace("{db}", &db)).collect()
    }
}

/// Every `{db}` of a `sh -c` script as the shell's own expansion of `TORTURE_DB` (set for the
/// program, the `--verify-cmd` and in the reproduce line), written for the quoting in force where
/// it stands, so the path's bytes never enter the script: no path is read as code, in any quoting.
pub(crate) fn db_as_variable(script: &str) -> String {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut out = String::with_capacity(script.len());
    let mut quote = Quote::None;
    let mut rest = script;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{db}") {
            out.push_str(match quote {
                Quote::None => "\"${TORTURE_DB}\"",
                Quote::Double => "${TORTURE_DB}",
                Quote::Single => "'\"${TORTURE_DB}\"'",
            });
            rest = &rest["{db}".len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
        match (&quote, c) {
            (Quote::None | Quote::Double, '\\') => {
                // The escaped character is taken as it is.
                if let Some(next) = rest.chars().next() {
                    out.push(next);
                    rest = &rest[next.len_utf8()..];
                }
            }
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
            _ => {}
        }
    }
    out
}

/// Refuses a `sh -c` script the shell cannot parse (`sh -n`), before any trial: a syntax error
/// would otherwise fail every check and read as a verdict.
pub(crate) fn check_shell_syntax(script: &str, what: &str) -> Result<(), String> {
    let script = db_as_variable(script);
    let out = Command::new("/bin/sh")
        .args(["-n", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{what}: cannot start /bin/sh to check it ({e})"))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
    Err(format!(
        "{what}: the shell cannot parse it ({}); fix its quoting",
        said.trim()
    ))
}

/// A command that drops the lab's descriptors; start it with [`process::spawn_program`], which
/// makes it lead its own process group (so one kill reaches everything it started that stayed in
/// the group) and die with the lab.
pub(crate) fn guarded(argv: &[String], close_fds: &[RawFd]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null());
    let fds = close_fds.to_vec();
    // SAFETY: the closure runs between fork and exec and only calls close; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                libc::close(fd);
            }
            Ok(())
        });
    }
    cmd
}

/// One started instance.
struct Proc {
    child: Child,
    group: Pid,
    out: Option<ChildStdout>,
    parser: LineParser,
    status: Option<ExitStatus>,
    /// The lab SIGKILLed its group while it still ran.
    killed: bool,
}

impl Proc {
    fn kill(&mut self) {
        if self.status.is_none() {
            self.killed = true;
        }
        process::kill_group(self.group);
    }
}

/// Starts the program (every instance), follows it until `stop`, kills every process group and
/// waits until no process of them is left. `watch`: a database whose files to watch for changes
/// (calibration of programs that print no acks).
pub(crate) fn run(launch: &Launch<'_>, stop: Stop, watch: Option<&Path>) -> Result<Run, String> {
    let argv = argv(launch.command, launch.shell, launch.db);
    // Grandchildren whose parent dies (the sqlite3 shell of a killed pipeline) come back to us, so
    // the lab can wait for them before it looks at the files.
    process::become_subreaper();
    // Children the program has no part in (a checker the slot keeps): never the program's escapees.
    let known = Escapees::before_the_run(launch.db);
    let started = Instant::now();
    let mut procs: Vec<Proc> = Vec::new();
    for i in 0..launch.instances.max(1) {
        match spawn(launch, &argv, i) {
            Ok(p) => procs.push(p),
            Err(e) => {
                for p in &mut procs {
                    p.kill();
                }
                finish_all(&mut procs, &known);
                return Err(e);
            }
        }
    }
    let mut watcher = watch.map(Watcher::new);
    let mut kth_ack_at = None;
    // `--kill one`: after the victim's kill, the survivors' deadline and the acks they stood at.
    let mut lingering: Option<(Instant, u64)> = None;
    let mut kill_one_note = None;
    loop {
        let now = Instant::now();
        let said = Said::summary(procs.iter().map(|p| &p.parser.said));
        if let Stop::AfterAcks { acks, .. } = stop {
            if kth_ack_at.is_none() && said.ack_lines >= acks {
                kth_ack_at = Some(started.elapsed());
            }
        }
        let deadline = match lingering {
            Some((until, _)) => until,
            None => started + kill_time(stop, &said, kth_ack_at),
        };
        let enough = lingering.is_none()
            && match stop {
                Stop::Calibrate {
                    run_for: None,
                    acks_expected,
                    min_run,
                    ..
                } => {
                    started.elapsed() >= min_run
                        && enough(
                            &said,
                            watcher
                                .as_ref()
                                .and_then(Watcher::span)
                                .filter(|_| !acks_expected),
                        )
                }
                _ => false,
            };
        let survivors_done = lingering.is_some_and(|(_, at)| {
            launch
                .kill_one
                .is_some_and(|k| said.ack_lines >= at + k.more_acks)
        });
        if now >= deadline || enough || survivors_done {
            match (lingering, launch.kill_one) {
                (None, Some(k)) if procs.len() > 1 => {
                    let v = (k.victim as usize).min(procs.len() - 1);
                    procs[v].kill();
                    lingering = Some((Instant::now() + k.linger, said.ack_lines));
                    continue;
                }
                (Some((_, at)), Some(k)) => {
                    kill_one_note = Some(format!(
                        "instance {} killed first; the others then acknowledged {} more commit(s){}",
                        k.victim,
                        said.ack_lines - at,
                        if survivors_done { "" } else { " before the lab stopped them" }
                    ));
                    break;
                }
                _ => break,
            }
        }
        // Wake at least every 20 ms: a program may exit while a process it started still holds
        // the pipe, and then no hang-up arrives.
        let wait = (deadline.saturating_duration_since(now)).min(Duration::from_millis(20));
        wait_readable(&procs, wait);
        let at = started.elapsed();
        for p in &mut procs {
            if let Some(o) = &mut p.out {
                if drain(o, &mut p.parser, at) == Drained::Eof {
                    p.out = None;
                }
            }
            p.parser.place_acks();
        }
        if let Some(w) = &mut watcher {
            w.look(started.elapsed());
        }
        for p in &mut procs {
            if p.status.is_none() {
                match p.child.try_wait() {
                    Ok(Some(status)) => p.status = Some(status),
                    Ok(None) => {}
                    Err(e) => {
                        for p in &mut procs {
                            p.kill();
                        }
                        finish_all(&mut procs, &known);
                        return Err(format!("waiting for the program: {e}"));
                    }
                }
            }
        }
        if procs.iter().all(|p| p.status.is_some()) {
            break;
        }
    }
    let ran_for = started.elapsed();
    // Always sweep every group: after the program's own exit, whatever it left running in the
    // group must not write while the lab checks the database.
    for p in &mut procs {
        p.kill();
    }
    let (leftover, escaped) = finish_all(&mut procs, &known);
    if let Some(w) = &mut watcher {
        w.look(ran_for);
    }
    let e = ended(&mut procs, stop, ran_for);
    Ok(Run {
        anchored_on: e.anchored_on,
        said: e.said,
        instances: e.instances,
        end: e.end,
        ran_for,
        argv,
        stdout_tails: e.tails,
        leaders: e.leaders,
        writes: watcher.and_then(|w| w.span()),
        kth_ack_at,
        kill_one_note,
        lingering: leftover,
        escaped,
    })
}

/// What every instance of a finished run said and how it ended (its processes reaped).
struct Ended {
    instances: Vec<(Said, End)>,
    tails: Vec<Vec<u8>>,
    leaders: Vec<u32>,
    /// The run's end: a failure of any instance first, then a kill, else a clean exit.
    end: End,
    said: Said,
    anchored_on: Option<Duration>,
}

/// Reads what is left in each instance's pipe and judges how each ended (a kill of the lab's own
/// is `Killed`, or `TimedOut` when calibrating).
fn ended(procs: &mut [Proc], stop: Stop, ran_for: Duration) -> Ended {
    let mut instances = Vec::new();
    let mut tails = Vec::new();
    let mut leaders = Vec::new();
    for p in procs.iter_mut() {
        // The pipe keeps what the program wrote before it died: those acks were printed after
        // their commits returned, so they count. A process that left the group may still hold the
        // pipe open, so read what is there without waiting for an end of file.
        if let Some(o) = &mut p.out {
            drain_all(o, &mut p.parser, ran_for);
        }
        p.parser.finish(ran_for);
        p.parser.place_remaining_acks();
        let status = p.status.expect("every instance was reaped");
        let ours = p.killed && status.signal() == Some(libc::SIGKILL);
        let end = match (status.code(), status.signal()) {
            _ if ours && matches!(stop, Stop::Calibrate { .. }) => End::TimedOut,
            _ if ours => End::Killed,
            (Some(code), _) => End::Exited(code),
            (None, Some(sig)) => End::Signaled(sig),
            (None, None) => End::Killed,
        };
        instances.push((p.parser.said.clone(), end));
        tails.push(p.parser.tail().to_vec());
        leaders.push(p.group.as_raw() as u32);
    }
    let ends: Vec<End> = instances.iter().map(|(_, e)| *e).collect();
    let end = ends
        .iter()
        .find(|e| matches!(e, End::Exited(c) if *c != 0) || matches!(e, End::Signaled(_)))
        .or_else(|| {
            ends.iter()
                .find(|e| matches!(e, End::Killed | End::TimedOut))
        })
        .copied()
        .unwrap_or(End::Exited(0));
    let said = Said::merged(&instances.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>());
    let anchored_on = match stop {
        Stop::Anchored { at, anchor } if at >= anchor => said.first_ack,
        _ => None,
    };
    Ended {
        instances,
        tails,
        leaders,
        end,
        said,
        anchored_on,
    }
}

/// Starts instance `i`.
fn spawn(launch: &Launch<'_>, argv: &[String], i: u32) -> Result<Proc, String> {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(launch.stderr)
        .map_err(|e| format!("creating {}: {e}", launch.stderr.display()))?;
    let mut cmd = guarded(argv, launch.close_fds);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .env("TORTURE_DB", launch.db)
        .env("TORTURE_SEED", launch.seed.to_string())
        .env("TORTURE_TRIAL", &launch.trial)
        .env("TORTURE_INSTANCE", i.to_string());
    // Only the run's own --key: a TORTURE_KEY inherited from the user's shell would encrypt with
    // a key run.json never recorded.
    match launch.key {
        Some(key) => cmd.env("TORTURE_KEY", key),
        None => cmd.env_remove("TORTURE_KEY"),
    };
    let mut child =
        process::spawn_program(&mut cmd).map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
    let group = Pid::from_raw(child.id() as i32);
    let out = child.stdout.take();
    if let Some(o) = &out {
        set_nonblocking(o);
    }
    let parser = match launch.ack_log {
        Some(log) => LineParser::with_ack_log(log, child.id())?,
        None => LineParser::default(),
    };
    Ok(Proc {
        child,
        group,
        out,
        parser,
        status: None,
        killed: false,
    })
}

/// How the processes that leave the program's process groups are told from the lab's own
/// children: not among the children before the run (a checker the slot keeps), and out of this
/// process's session or with the trial's `TORTURE_DB` in their environment.
struct Escapees {
    children: Vec<Pid>,
    env: Vec<u8>,
}

impl Escapees {
    fn before_the_run(db: &Path) -> Escapees {
        let mut env = b"TORTURE_DB=".to_vec();
        env.extend_from_slice(db.as_os_str().as_encoded_bytes());
        Escapees {
            children: process::children().into_iter().map(|c| c.pid).collect(),
            env,
        }
    }
}

/// Reaps every instance's leader, then waits until no process of their groups is left (the
/// grandchildren come back to us as their subreaper). Says which group still lived when the lab
/// gave up.
fn finish_all(procs: &mut [Proc], known: &Escapees) -> (Option<String>, usize) {
    let mut left = Vec::new();
    for p in procs.iter_mut() {
        if p.status.is_none() {
            p.status = Some(loop {
                match p.child.wait() {
                    Ok(s) => break s,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // Not ours any more: count it as killed.
                    Err(_) => break ExitStatus::from_raw(libc::SIGKILL),
                }
            });
        }
        if !process::reap_group(p.group, Instant::now() + REAP_PATIENCE) {
            left.push(p.group.to_string());
        }
    }
    // A process that left the group (setsid) came back to us when its parent died: it must not
    // write while the lab checks the database either.
    let (escaped, all_gone) =
        process::kill_escaped(&known.children, &known.env, Instant::now() + REAP_PATIENCE);
    if !all_gone {
        left.push("outside the program's process group (setsid)".to_string());
    }
    let leftover = (!left.is_empty()).then(|| {
        format!(
            "process group(s) {} still had a live process {:?} after the kill",
            left.join(", "),
            REAP_PATIENCE
        )
    });
    (leftover, escaped)
}

/// How long the lab waits for the last process of a killed group to be gone.
const REAP_PATIENCE: Duration = Duration::from_secs(10);

/// When to stop, since the start, given what was said so far.
fn kill_time(stop: Stop, said: &Said, kth_ack_at: Option<Duration>) -> Duration {
    match stop {
        Stop::At(t) => t,
        Stop::Calibrate {
            timeout, run_for, ..
        } => run_for.unwrap_or(timeout),
        Stop::AfterAcks { delay, cap, .. } => kth_ack_at.map_or(cap, |k| (k + delay).min(cap)),
        Stop::Anchored { at, anchor } if at < anchor => at,
        Stop::Anchored { at, anchor } => match said.first_ack {
            Some(first) => first + (at - anchor),
            None => at + (anchor * 3).max(Duration::from_secs(1)),
        },
    }
}

/// Acks seen before a calibration has seen enough, and for how long past the first one: at least
/// as long as the program took to get there, and a second.
pub(crate) const ENOUGH_ACKS: u64 = 100;

/// Whether a calibration run has shown enough of its writing to stop it: `ENOUGH_ACKS` acks over a
/// span at least as long as its start-up (and a second); for a program that prints no acks, its
/// database changing over such a span.
fn enough(said: &Said, writes: Option<(Duration, Duration)>) -> bool {
    let long = |first: Duration, last: Duration| last - first >= first.max(Duration::from_secs(1));
    match (said.first_ack, said.last_ack) {
        (Some(a), Some(b)) => said.ack_lines >= ENOUGH_ACKS && long(a, b),
        _ => writes.is_some_and(|(a, b)| long(a, b)),
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
fn wait_readable(procs: &[Proc], wait: Duration) {
    let mut fds: Vec<PollFd<'_>> = procs
        .iter()
        .filter_map(|p| p.out.as_ref())
        .map(|o| PollFd::new(o.as_fd(), PollFlags::POLLIN))
        .collect();
    if fds.is_empty() {
        std::thread::sleep(wait);
        return;
    }
    let _ = nix::poll::ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None);
}

/// What one [`drain`] found.
#[derive(PartialEq, Eq)]
enum Drained {
    /// The pipe is closed: everything was read.
    Eof,
    /// Nothing more to read now.
    Empty,
    /// More may be waiting: the lab stopped reading to look at the clock.
    Busy,
}

/// Reads what is available now, up to a few reads: a program that writes faster than the lab
/// reads (every ack line appended to a recording takes the recorder's lock) must not keep the lab
/// from checking its stop time.
fn drain(o: &mut ChildStdout, parser: &mut LineParser, at: Duration) -> Drained {
    let mut buf = [0u8; 8192];
    let mut reads = 0;
    while reads < 4 {
        match o.read(&mut buf) {
            Ok(0) => return Drained::Eof,
            Ok(n) => {
                parser.feed(&buf[..n], at);
                reads += 1;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Drained::Empty,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Drained::Eof,
        }
    }
    Drained::Busy
}

/// Reads everything left in the pipe now (the program is gone).
fn drain_all(o: &mut ChildStdout, parser: &mut LineParser, at: Duration) {
    while drain(o, parser, at) == Drained::Busy {}
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
            .map(|s| crate::engine::with_suffix(db, s))
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
#[path = "child_tests.rs"]
mod tests;
