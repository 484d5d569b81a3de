//! The default kill window, measured: run the program once, uninterrupted, and kill later trials in
//! the span where it was acknowledging commits. A program that takes a second to boot (an
//! interpreter, a server) then dies while it writes, not while it is still loading its libraries.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use std::path::PathBuf;
use std::time::Instant;

use super::check;
use super::child::{self, End, Stop};
use super::trial::{conclude, copy_seed, fresh_folder, Trial};
use super::ExecOptions;
use crate::options::RunOptions;
use crate::verify::outcome::{Outcome, TrialRecord, Verdict};

/// What the uninterrupted run showed, and the kill window derived from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Kill times for the trials, measured from the program's start.
    pub window: (Duration, Duration),
    /// When the first and the last `ack N` line arrived.
    pub first_ack: Option<Duration>,
    pub last_ack: Option<Duration>,
    /// The highest commit acknowledged, and how many `ack` lines came.
    pub acked: u64,
    pub ack_lines: u64,
    /// When the database files were first and last seen to change.
    pub writes: Option<(Duration, Duration)>,
    pub ran_for: Duration,
    /// False when the lab stopped the program (it had seen enough, or the timeout): then the kill
    /// was a crash like any trial's, and `finding` is what the check found.
    pub exited: bool,
    pub finding: Option<TrialRecord>,
    /// Where the calibration's files are kept when its check did not find the database intact
    /// (`OUT/calibration`), and where they wait until the run made OUT (`after_run` moves them).
    pub evidence: PathBuf,
    pub held: Option<PathBuf>,
    /// Garbled ack lines seen (`Said::garbled_note`).
    pub garbled: Option<String>,
}

impl Calibration {
    /// One line on the calibration's own kill when its check found damage (None: intact, or the
    /// program exited by itself).
    pub fn finding_line(&self) -> Option<String> {
        let r = self
            .finding
            .as_ref()
            .filter(|r| r.outcome != Outcome::Intact)?;
        Some(format!(
            "the calibration run's kill (after {:.0}ms, {} acknowledged) found {} ({}{}): {}; its files are in {}",
            self.ran_for.as_secs_f64() * 1e3,
            r.acked_commits,
            r.outcome,
            r.verdict.as_str(),
            if r.verdict == Verdict::Violation { ", counted in the exit code" } else { "" },
            r.detail,
            self.evidence.display()
        ))
    }
}

impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| format!("{:.0}ms", d.as_secs_f64() * 1e3);
        write!(f, "calibrated on one uninterrupted run: ")?;
        match (self.first_ack, self.last_ack) {
            (Some(a), Some(b)) => write!(
                f,
                "first ack after {}, last after {} ({} acks, highest {})",
                ms(a),
                ms(b),
                self.ack_lines,
                self.acked
            )?,
            _ => match self.writes {
                Some((a, b)) => write!(
                    f,
                    "no acks; the database changed from {} to {}",
                    ms(a),
                    ms(b)
                )?,
                None => write!(f, "no acks")?,
            },
        }
        write!(
            f,
            ", {} after {}; kill window {}..{}",
            if self.exited {
                "exited"
            } else {
                "stopped (killed: a crash like any trial's)"
            },
            ms(self.ran_for),
            ms(self.window.0),
            ms(self.window.1)
        )?;
        if self.window.1 - self.window.0 < self.window.0 / 4 {
            write!(
                f,
                " (short next to the start-up: its jitter will move kills outside the writing; make the program write longer or give --kill-after)"
            )?;
        }
        if let Some(g) = &self.garbled {
            write!(f, "; WARNING: {g}")?;
        }
        Ok(())
    }
}

/// Runs the program once without killing it, in a fresh folder under `work_dir`, until it exits,
/// or `--calibrate-for` has passed, or it has shown enough of its writing (100 acks over a span as
/// long as its start-up and at least a second), or `timeout`; and returns the kill window: the
/// span where it acknowledged commits (or, for a program that prints no acks, where its database
/// changed), starting a little before the first ack so some kills land in its schema creation and
/// first transaction.
///
/// A program the lab had to stop was SIGKILLed like any trial: what its check found is the
/// calibration's `finding`, judged like a trial, its files kept in `OUT/calibration/` when it is
/// not intact; the run goes on. Only a program that exits by itself and leaves a database that
/// fails the check is refused (a check that fails without any crash would blame SQLite for a
/// wrong query); its files are kept in `OUT/calibration/` too, named in the message.
pub fn calibrate(
    opts: &ExecOptions,
    work_dir: &Path,
    timeout: Duration,
    run: &RunOptions,
) -> Result<(Duration, Duration), String> {
    calibrate_report(opts, work_dir, timeout, run).map(|c| c.window)
}

/// `calibrate` with what it measured, for a one-line report.
pub fn calibrate_report(
    opts: &ExecOptions,
    work_dir: &Path,
    timeout: Duration,
    run: &RunOptions,
) -> Result<Calibration, String> {
    let started = Instant::now();
    // The run refuses an --out that is not empty when it starts, so the calibration's files wait
    // in the work folder and move to OUT/calibration after the run (`after_run`); when the run is
    // refused here, they move there at once.
    let evidence = run.out_dir.join("calibration");
    let held = run.work_base.join(format!(
        "torture-calibration-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    // Removed on every early return (a refused run); kept only when calibration succeeds and
    // `after_run` moves it to OUT/calibration.
    let mut held_guard = RemoveOnDrop(Some(held.clone()));
    let t = Trial {
        run,
        exec: opts,
        index: 0,
        seed: 0,
        dir: work_dir.join("exec-calibration"),
        close_fds: &[],
        window: (Duration::ZERO, Duration::ZERO),
        evidence: Some(held.clone()),
    };
    let (db, stderr) = (t.db(), t.stderr());
    fresh_folder(&t.dir, &t.db_dir())?;
    if let Some(seed) = &opts.seed_db {
        copy_seed(seed, &db)?;
    }
    let stop = Stop::Calibrate {
        timeout,
        run_for: opts.calibrate_for,
        acks_expected: opts.recovered_sql.is_some(),
        min_run: Duration::ZERO,
    };
    let program = child::run(&t.launch_with(&db, &stderr, None), stop, Some(&db))?;
    let stderr_tail = || match check::tail(&std::fs::read(&stderr).unwrap_or_default(), 400) {
        s if s.trim().is_empty() => crate::fsio::silent_failure_note(&t.dir).unwrap_or(s),
        s => s,
    };
    let ms = |d: Duration| format!("{:.0}ms", d.as_secs_f64() * 1e3);
    let argv = program.argv.join(" ");
    let exited = match program.end {
        End::Exited(0) => true,
        // Still running when the calibration had seen enough (a server): the lab killed it.
        End::TimedOut | End::Killed => false,
        End::Exited(code) => {
            return Err(format!(
                "the uninterrupted run of `{argv}` exited with status {code} after {}: {}",
                ms(program.ran_for),
                stderr_tail()
            ))
        }
        End::Signaled(sig) => {
            return Err(format!(
                "the uninterrupted run of `{argv}` died of signal {sig} after {}: {}",
                ms(program.ran_for),
                stderr_tail()
            ))
        }
    };
    let said = program.said.clone();
    let (ran_for, writes) = (program.ran_for, program.writes);
    let window = match (said.first_ack, said.last_ack) {
        (Some(a), Some(b)) => span(a, b),
        _ if opts.recovered_sql.is_some() => {
            return Err(format!(
                "--recovered-sql is set but `{argv}` printed no `ack N` line in {}; print `ack N` on stdout after commit N returns (workloads/exec/README.md), or drop --recovered-sql",
                ms(ran_for)
            ))
        }
        _ => match writes {
            Some((a, b)) => span(a, b),
            None => {
                return Err(format!(
                    "`{argv}` neither printed `ack N` nor wrote {} in {}; pass the window yourself, e.g. --kill-after 200ms..2s",
                    db.display(),
                    ms(ran_for)
                ))
            }
        },
    };
    let record = conclude(&t, Ok(program), "calibration".into(), ran_for, started);
    let _ = std::fs::remove_dir_all(&t.dir);
    if record.detail.starts_with(check::BAD_RECOVERED_SQL) {
        return Err(record.detail);
    }
    if record.outcome == Outcome::WorkerError {
        return Err(format!(
            "the calibration run of `{argv}` could not be checked: {}",
            record.detail
        ));
    }
    if exited && record.outcome != Outcome::Intact {
        if let Err(e) = move_dir(&held, &evidence) {
            return Err(format!(
                "keeping the calibration's files in {}: {e}",
                evidence.display()
            ));
        }
        return Err(format!(
            "the uninterrupted run of `{argv}` exited by itself and already fails the check ({}: {}); fix the program, --recovered-sql, --verify-sql or --verify-cmd (its files are in {})",
            record.outcome,
            record.detail,
            evidence.display()
        ));
    }
    held_guard.0 = None;
    Ok(Calibration {
        window,
        first_ack: said.first_ack,
        last_ack: said.last_ack,
        acked: said.max_ack,
        ack_lines: said.ack_lines,
        writes,
        ran_for,
        exited,
        held: held.is_dir().then_some(held),
        finding: (!exited).then_some(record),
        evidence,
        garbled: said.garbled_note(),
    })
}

/// Moves folder `from` to `to` (a copy and a removal when they are on different file systems).
pub(crate) fn move_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    std::fs::remove_dir_all(from)
}

/// The kill window over a span of activity from `first` to `last`.
pub(crate) fn span(first: Duration, last: Duration) -> (Duration, Duration) {
    let hi = last;
    // About a tenth of the kills land just before the first ack: schema creation, first commit.
    let lead = ((hi - first) / 9).max(first / 10);
    (first.saturating_sub(lead), hi)
}

/// A folder removed when the guard goes, unless it was taken out (`.0 = None`).
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_covers_the_acks_with_a_lead_in() {
        let ms = |m| Duration::from_millis(m);
        let r = |(lo, hi): (Duration, Duration)| (lo.as_millis(), hi.as_millis());
        assert_eq!(r(span(ms(100), ms(1000))), (0, 1000));
        assert_eq!(r(span(ms(2000), ms(2100))), (1800, 2100));
        // A slow program acking once a second until the calibration stopped it: every ack it made
        // is in the window (it used to be capped at twice its boot time, 4 s: 2 of 28 commits).
        assert_eq!(r(span(ms(2000), ms(30_000))), (0, 30_000));
        assert_eq!(r(span(ms(306), ms(6686))), (0, 6686));
        assert_eq!(r(span(ms(50), ms(50))), (45, 50));
    }

    fn run(d: &Path) -> RunOptions {
        crate::writers::program::trial::tests::test_run(1, &d.join("out"))
    }

    fn python() -> bool {
        std::process::Command::new("python3")
            .arg("-c")
            .arg("import sqlite3")
            .status()
            .is_ok_and(|s| s.success())
    }

    fn writer(args: &[&str]) -> ExecOptions {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../workloads/exec/python_writer.py"
        );
        let mut cmd = vec![
            "python3".to_string(),
            script.to_string(),
            "{db}".to_string(),
        ];
        cmd.extend(args.iter().map(|a| a.to_string()));
        let mut o = ExecOptions::new(cmd);
        o.recovered_sql = Some("SELECT max(seq) FROM t".into());
        o.verify_sql = Some(check::tests::verify_sql());
        o
    }

    #[test]
    fn a_program_that_boots_slowly_is_killed_after_it_booted() {
        assert!(
            python(),
            "python3 with its sqlite3 module is needed: install python3"
        );
        let d = tempfile::tempdir().unwrap();
        let o = writer(&["--start-delay", "0.4", "--commits", "300"]);
        let c = calibrate_report(&o, d.path(), Duration::from_secs(30), &run(d.path())).unwrap();
        eprintln!("{c}");
        // On a quiet machine it exits after its 300 commits; on a loaded one the calibration may
        // have seen enough first (ENOUGH_ACKS over a long enough span) and stopped it: either way
        // the window starts after the boot.
        assert!(
            (c.exited && c.acked == 300) || (!c.exited && c.acked >= super::child::ENOUGH_ACKS),
            "{c:?}"
        );
        let (lo, hi) = c.window;
        assert!(lo >= Duration::from_millis(350), "{c}");
        assert!(hi > lo && hi <= c.ran_for, "{c}");
        assert!(!d.path().join("exec-calibration").exists());
    }

    #[test]
    fn calibration_refuses_what_cannot_work() {
        let d = tempfile::tempdir().unwrap();
        let mut quiet = ExecOptions::new(vec!["/bin/sh".into(), "-c".into(), "sleep 0.05".into()]);
        let e = calibrate(&quiet, d.path(), Duration::from_secs(5), &run(d.path())).unwrap_err();
        assert!(e.contains("--kill-after"), "{e}");
        quiet.recovered_sql = Some("SELECT 1".into());
        let e = calibrate(&quiet, d.path(), Duration::from_secs(5), &run(d.path())).unwrap_err();
        assert!(e.contains("printed no `ack N`"), "{e}");
        let failing = ExecOptions::new(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo cannot connect >&2; exit 2".into(),
        ]);
        let e = calibrate(&failing, d.path(), Duration::from_secs(5), &run(d.path())).unwrap_err();
        assert!(
            e.contains("status 2") && e.contains("cannot connect"),
            "{e}"
        );
        if python() {
            let mut wrong = writer(&["--commits", "20"]);
            wrong.recovered_sql = Some("SELECT max(seq) - 5 FROM t".into());
            let e =
                calibrate(&wrong, d.path(), Duration::from_secs(20), &run(d.path())).unwrap_err();
            assert!(e.contains("already fails the check"), "{e}");
        }
    }
}
