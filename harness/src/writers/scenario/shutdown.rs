//! Scenario `shutdown` (seeds 000, 001): a writer that handles SIGTERM by finishing its transaction,
//! running `PRAGMA wal_checkpoint(TRUNCATE)` (WAL) and closing, against SIGKILL; and the impatient
//! supervisor in between, whose SIGKILL follows the SIGTERM before the shutdown is done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use rand::RngExt;
use torture_workloads::{JournalMode, Synchronous};

use super::engine::{
    commit_loop, file_size, open_writer, record, word, Children, Ctx, Ending, Env, Metrics,
    WriterSpec,
};
use super::{base_profile, Kind, Scenario, Variant};
use crate::engine::with_suffix;
use crate::verify::outcome::TrialRecord;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// `kill -9` at the kill point.
    Sigkill,
    /// `kill` (SIGTERM) at the kill point; SIGKILL only if the writer is still there 5 s later.
    Sigterm,
    /// SIGTERM, then SIGKILL 0..`SIGKILL_AFTER_US` µs later (a supervisor with a short stop timeout).
    SigtermThenKill,
}

pub(crate) struct Params {
    pub how: How,
}

/// Grace period of the patient supervisor.
const GRACE: Duration = Duration::from_secs(5);
/// The impatient supervisor's delay: about as long as the checkpoint-and-close of a short trial.
const SIGKILL_AFTER_US: u64 = 1500;

/// Set by the SIGTERM handler of a writer process.
static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

/// Installs the SIGTERM handler in a writer child: it only sets a flag, read between transactions.
pub(crate) fn handle_sigterm() {
    let action = SigAction::new(
        SigHandler::Handler(on_term),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        let _ = signal::sigaction(Signal::SIGTERM, &action);
    }
}

pub(crate) fn term_requested() -> bool {
    TERM.load(Ordering::SeqCst)
}

pub(crate) fn scenario() -> Scenario {
    let mut variants = Vec::new();
    for (journal, sync) in [
        (JournalMode::Wal, Synchronous::Normal),
        (JournalMode::Delete, Synchronous::Full),
    ] {
        for how in [How::Sigkill, How::Sigterm, How::SigtermThenKill] {
            let (name, what) = match how {
                How::Sigkill => ("sigkill", "kill=SIGKILL".to_string()),
                How::Sigterm => (
                    "sigterm",
                    "kill=SIGTERM (handler: finish the transaction, checkpoint TRUNCATE if WAL, close; SIGKILL after 5s)"
                        .to_string(),
                ),
                How::SigtermThenKill => (
                    "sigterm-then-sigkill",
                    format!("kill=SIGTERM, then SIGKILL 0-{SIGKILL_AFTER_US}us later"),
                ),
            };
            variants.push(Variant::new(
                "shutdown",
                format!("{}-{name}", journal.as_str()),
                format!(
                    "journal_mode={} synchronous={} {what}",
                    journal.as_str(),
                    sync.as_str()
                ),
                base_profile(journal, sync),
                Kind::Shutdown(Params { how }),
            ));
        }
    }
    Scenario {
        name: "shutdown",
        summary: "SIGTERM handled by checkpoint-and-close vs SIGKILL, and SIGTERM cut short by a SIGKILL",
        claim: "000: \"Never use `killall -9 server` - use `killall server` (SIGTERM) for graceful shutdown\". \
                001: \"No graceful shutdown: transactions interrupted on kill\" is a HIGH risk; add a SIGTERM handler \
                that runs `wal_checkpoint(TRUNCATE)` and closes the connection.",
        seeds: "000, 001",
        variants,
    }
}

/// The writer process: commits until SIGTERM, then shuts down as the postmortems' handler does.
pub(crate) fn graceful_writer(env: &Env<'_>, spec: &WriterSpec<'_>, wal: bool) -> i32 {
    handle_sigterm();
    let Some(mut conn) = open_writer(env, spec) else {
        return 0;
    };
    commit_loop(env, spec, &mut conn, 1, &term_requested);
    if wal {
        env.tally.set(word::IN_CKPT, 1);
        let r = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        env.tally.set(word::IN_CKPT, 0);
        match r {
            Ok(0) => env.tally.add(word::CKPTS, 1),
            _ => env.tally.add(word::CKPT_INCOMPLETE, 1),
        }
    }
    if conn.close().is_ok() {
        env.tally.add(word::CLEAN, 1);
    }
    0
}

pub(crate) fn run(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    let fault = match p.how {
        How::Sigkill => "sigkill",
        How::Sigterm => "sigterm",
        How::SigtermThenKill => "sigterm+sigkill",
    };
    let kp = ctx.kill_point();
    let wal = ctx.variant.profile.journal_mode == JournalMode::Wal;
    let mut end = Ending::new(fault);
    let started = (|| -> Result<Children<'_>, String> {
        ctx.fresh_database()?;
        let mut run = Children::new(ctx.files, 1, Some(kp), ctx.opts.trial_timeout)?;
        run.own_signals.push(nix::sys::signal::Signal::SIGTERM);
        let spec = ctx.writer_spec();
        run.spawn(&[], |env| graceful_writer(env, &spec, wal))?;
        Ok(run)
    })();
    let mut run = match started {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed(fault, e),
    };
    end.kill_point = run.wait_kill_point(kp).describe(kp);
    let pid = run.pids[0];
    let mut escalated = false;
    match p.how {
        How::Sigkill => run.signal(pid, Signal::SIGKILL),
        How::Sigterm => {
            run.signal(pid, Signal::SIGTERM);
            if run.wait_exit(pid, Instant::now() + GRACE).is_none() {
                escalated = true;
                run.signal(pid, Signal::SIGKILL);
            }
        }
        How::SigtermThenKill => {
            let after = ctx.rng(0).random_range(0..=SIGKILL_AFTER_US);
            end.kill_point
                .push_str(&format!(" then SIGKILL after {after}us"));
            run.signal(pid, Signal::SIGTERM);
            if run
                .wait_exit(pid, Instant::now() + Duration::from_micros(after))
                .is_none()
            {
                escalated = true;
                if run.tally.get(word::IN_CKPT) == 1 {
                    end.measure("sigkill_inside_shutdown_checkpoint", 1);
                }
                run.signal(pid, Signal::SIGKILL);
            }
        }
    }
    run.stop_all();
    let clean = run.tally.get(word::CLEAN);
    let wal_bytes = file_size(&with_suffix(ctx.db(), "-wal"));
    end.measure("clean_shutdown", clean);
    end.measure("sigkilled", u64::from(p.how == How::Sigkill || escalated));
    end.measure("wal_bytes_after", wal_bytes);
    end.measure(
        "wal_file_left",
        u64::from(with_suffix(ctx.db(), "-wal").exists()),
    );
    end.measures.push(format!(
        "shutdown: {}; -wal after: {}",
        match (p.how, clean > 0, escalated) {
            (How::Sigkill, _, _) => "SIGKILLed",
            (_, true, _) => "clean (checkpoint and close done)",
            (_, false, true) => "SIGKILLed before the shutdown finished",
            (_, false, false) => "exited without a clean close",
        },
        if with_suffix(ctx.db(), "-wal").exists() {
            format!("{wal_bytes} bytes")
        } else {
            "none".into()
        }
    ));
    end.verification = end.verify(ctx.db(), ctx.workload, &run.events.acked);
    record(ctx, Some(&run), end)
}

#[cfg(test)]
mod tests {
    use super::super::engine::testing::{damaged, lab, no_lab_errors, serial};

    #[test]
    fn sigterm_shuts_down_cleanly_and_neither_way_loses_a_commit() {
        let _g = serial();
        let lab = lab(&[]);
        let rows = lab.run("shutdown", "wal-sigterm", 4);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 0);
        for (r, m) in &rows {
            assert_eq!(m["clean_shutdown"], 1, "{}", r.detail);
            assert_eq!(r.fault, "sigterm");
            // The TRUNCATE checkpoint and the close of the last connection leave no WAL behind.
            assert_eq!(m["wal_bytes_after"], 0, "{}", r.detail);
        }
        for v in ["wal-sigkill", "wal-sigterm-then-sigkill", "delete-sigterm"] {
            let rows = lab.run("shutdown", v, 4);
            no_lab_errors(&rows);
            assert_eq!(damaged(&rows), 0, "{v}");
        }
    }
}
