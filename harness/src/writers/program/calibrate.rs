//! The default kill window, measured: run the program once, uninterrupted, and kill later trials in
//! the span where it was acknowledging commits. A program that takes a second to boot (an
//! interpreter, a server) then dies while it writes, not while it is still loading its libraries.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::check::{self, CheckEnv};
use super::child::{self, End, Launch, Stop};
use super::trial::copy_seed;
use super::ExecOptions;
use crate::trial::outcome::Outcome;

/// What the uninterrupted run showed, and the kill window derived from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calibration {
    /// Kill times for the trials, measured from the program's start.
    pub window: (Duration, Duration),
    /// When the first and the last `ack N` line arrived.
    pub first_ack: Option<Duration>,
    pub last_ack: Option<Duration>,
    /// The highest commit acknowledged.
    pub acked: u64,
    /// When the database files were first and last seen to change.
    pub writes: Option<(Duration, Duration)>,
    pub ran_for: Duration,
    /// False when the program was still running at the timeout (a server) and was killed.
    pub exited: bool,
}

impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| format!("{:.0}ms", d.as_secs_f64() * 1e3);
        write!(f, "calibrated on one uninterrupted run: ")?;
        match (self.first_ack, self.last_ack) {
            (Some(a), Some(b)) => write!(
                f,
                "first ack after {}, last after {} (commit {})",
                ms(a),
                ms(b),
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
                "still running (killed)"
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
        Ok(())
    }
}

/// Runs the program once without killing it (until it exits, or for `timeout`) in a fresh folder
/// under `work_dir`, and returns the kill window: the span where it acknowledged commits (or, for a
/// program that prints no acks, where its database changed), starting a little before the first ack
/// so some kills land in its schema creation and first transaction. The end is capped at the first
/// ack plus the larger of that time and one second, so a server that writes forever does not make
/// every trial wait for the timeout.
///
/// The run's database must pass the check (integrity, `--recovered-sql` ≥ the last ack, the user's
/// invariant): a check that fails without any crash would blame SQLite for a wrong query. Opens and
/// closes one SQLite connection (SQLite engine) before returning.
pub fn calibrate(
    opts: &ExecOptions,
    work_dir: &Path,
    timeout: Duration,
) -> Result<(Duration, Duration), String> {
    calibrate_report(opts, work_dir, timeout).map(|c| c.window)
}

/// `calibrate` with what it measured, for a one-line report.
pub fn calibrate_report(
    opts: &ExecOptions,
    work_dir: &Path,
    timeout: Duration,
) -> Result<Calibration, String> {
    let dir = work_dir.join("exec-calibration");
    let _ = std::fs::remove_dir_all(&dir);
    let db_dir = dir.join("db");
    std::fs::create_dir_all(&db_dir).map_err(|e| format!("creating {}: {e}", db_dir.display()))?;
    let db = db_dir.join(opts.db_file_name());
    if let Some(seed) = &opts.seed_db {
        copy_seed(seed, &db)?;
    }
    let stderr = dir.join("stderr.txt");
    let launch = Launch {
        command: &opts.command,
        shell: opts.shell,
        db: &db,
        seed: 0,
        trial: "calibration".into(),
        stderr: &stderr,
        close_fds: &[],
        key: opts.key.as_deref(),
    };
    let run = child::run(&launch, Stop::Exit { timeout }, Some(&db))?;
    let stderr_tail = || check::tail(&std::fs::read(&stderr).unwrap_or_default(), 400);
    let ms = |d: Duration| format!("{:.0}ms", d.as_secs_f64() * 1e3);
    let exited = match run.end {
        End::Exited(0) => true,
        // Still running at the timeout (a server): the lab killed it.
        End::TimedOut | End::Killed => false,
        End::Exited(code) => {
            return Err(format!(
                "the uninterrupted run of `{}` exited with status {code} after {}: {}",
                run.argv.join(" "),
                ms(run.ran_for),
                stderr_tail()
            ))
        }
        End::Signaled(sig) => {
            return Err(format!(
                "the uninterrupted run of `{}` died of signal {sig} after {}: {}",
                run.argv.join(" "),
                ms(run.ran_for),
                stderr_tail()
            ))
        }
    };
    let said = &run.said;
    let window = match (said.first_ack, said.last_ack) {
        (Some(a), Some(b)) => span(a, b),
        _ if opts.recovered_sql.is_some() => {
            return Err(format!(
                "--recovered-sql is set but `{}` printed no `ack N` line in {}; print `ack N` on stdout after commit N returns (workloads/exec/README.md), or drop --recovered-sql",
                run.argv.join(" "),
                ms(run.ran_for)
            ))
        }
        _ => match run.writes {
            Some((a, b)) => span(a, b),
            None => {
                return Err(format!(
                    "`{}` neither printed `ack N` nor wrote {} in {}; pass the window yourself, e.g. --kill-after 200ms..2s",
                    run.argv.join(" "),
                    db.display(),
                    ms(run.ran_for)
                ))
            }
        },
    };
    let scratch = dir.clone();
    let verdict = check::verify(&CheckEnv {
        exec: opts,
        db: &db,
        acked: said.max_ack,
        timeout,
        scratch: &scratch,
        close_fds: &[],
    });
    if verdict.outcome != Outcome::Intact {
        return Err(format!(
            "the uninterrupted run of `{}` already fails the check ({}: {}); fix the program, --recovered-sql, --verify-sql or --verify-cmd (its files are in {})",
            run.argv.join(" "),
            verdict.outcome,
            verdict.detail,
            dir.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Calibration {
        window,
        first_ack: said.first_ack,
        last_ack: said.last_ack,
        acked: said.max_ack,
        writes: run.writes,
        ran_for: run.ran_for,
        exited,
    })
}

/// The kill window over a span of activity from `first` to `last`.
fn span(first: Duration, last: Duration) -> (Duration, Duration) {
    let hi = last.min(first + first.max(Duration::from_secs(1)));
    // About a tenth of the kills land just before the first ack: schema creation, first commit.
    let lead = ((hi - first) / 9).max(first / 10);
    (first.saturating_sub(lead), hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_covers_the_acks_with_a_lead_in_and_a_cap() {
        let ms = |m| Duration::from_millis(m);
        let r = |(lo, hi): (Duration, Duration)| (lo.as_millis(), hi.as_millis());
        assert_eq!(r(span(ms(100), ms(1000))), (0, 1000));
        assert_eq!(r(span(ms(2000), ms(2100))), (1800, 2100));
        // A server acking until the timeout: capped at twice its boot time, the lead-in measured
        // on the capped window.
        assert_eq!(r(span(ms(2000), ms(30_000))), (1777, 4000));
        // A slow import, then a long run: a second of it.
        assert_eq!(r(span(ms(306), ms(6686))), (194, 1306));
        assert_eq!(r(span(ms(50), ms(50))), (45, 50));
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
        if !python() {
            eprintln!("SKIPPED: python3 with sqlite3 is not on this machine");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let o = writer(&["--start-delay", "0.4", "--commits", "300"]);
        let c = calibrate_report(&o, d.path(), Duration::from_secs(30)).unwrap();
        eprintln!("{c}");
        assert!(c.exited && c.acked == 300, "{c:?}");
        let (lo, hi) = c.window;
        assert!(lo >= Duration::from_millis(350), "{c}");
        assert!(hi > lo && hi <= c.ran_for, "{c}");
        assert!(!d.path().join("exec-calibration").exists());
    }

    #[test]
    fn calibration_refuses_what_cannot_work() {
        let d = tempfile::tempdir().unwrap();
        let mut quiet = ExecOptions::new(vec!["/bin/sh".into(), "-c".into(), "sleep 0.05".into()]);
        let e = calibrate(&quiet, d.path(), Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("--kill-after"), "{e}");
        quiet.recovered_sql = Some("SELECT 1".into());
        let e = calibrate(&quiet, d.path(), Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("printed no `ack N`"), "{e}");
        let failing = ExecOptions::new(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo cannot connect >&2; exit 2".into(),
        ]);
        let e = calibrate(&failing, d.path(), Duration::from_secs(5)).unwrap_err();
        assert!(
            e.contains("status 2") && e.contains("cannot connect"),
            "{e}"
        );
        if python() {
            let mut wrong = writer(&["--commits", "20"]);
            wrong.recovered_sql = Some("SELECT max(seq) - 5 FROM t".into());
            let e = calibrate(&wrong, d.path(), Duration::from_secs(20)).unwrap_err();
            assert!(e.contains("already fails the check"), "{e}");
        }
    }
}
