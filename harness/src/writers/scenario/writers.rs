//! Scenario `writers` (seed 004): W writer processes on one database, in WAL and DELETE mode. Either
//! all are SIGKILLed at once, or one is SIGKILLed while the others go on (and are killed later);
//! every process's acknowledged commits are checked on their own. The `-power` variants cut the
//! power instead: every writer process runs under one recording of the file-operation recorder (one
//! total order of their file operations and acknowledgements), each makes [`POWER_COMMITS`] commits,
//! and every crash state of that recording is checked (`power.rs`): one cut for all processes.

use std::time::{Duration, Instant};

use torture_workloads::{JournalMode, Synchronous};

use super::engine::{self, failed_codes, record, Ctx, Ending, Metrics};
use super::{base_profile, power, Kind, Scenario, Variant};
use crate::verify::outcome::TrialRecord;

pub(crate) struct Params {
    pub processes: u32,
    pub kill_one: bool,
    /// A power cut on the recorder instead of SIGKILL.
    pub power_loss: bool,
}

/// Commits each writer process of a `-power` variant makes under the recorder.
pub(crate) const POWER_COMMITS: u64 = 20;

/// Commits the survivors must make after one writer was killed before they are killed too.
const AFTER_ONE: u64 = 20;
/// How long the survivors get for them: longer means they stalled (a lock left behind).
const SURVIVOR_WINDOW: Duration = Duration::from_secs(2);

pub(crate) fn scenario() -> Scenario {
    let mut variants = Vec::new();
    for journal in [JournalMode::Wal, JournalMode::Delete] {
        for processes in [2, 8] {
            for kill_one in [false, true] {
                let mut profile = base_profile(journal, Synchronous::Full);
                profile.processes = processes;
                variants.push(Variant::new(
                    "writers",
                    format!(
                        "{}-{processes}proc-{}",
                        journal.as_str(),
                        if kill_one { "kill-one" } else { "kill-all" }
                    ),
                    format!(
                        "journal_mode={} synchronous=full processes={processes} busy_timeout_ms=5000 kill={}",
                        journal.as_str(),
                        if kill_one {
                            format!("SIGKILL writer 0, the others go on for {AFTER_ONE} commits, then SIGKILL them")
                        } else {
                            "SIGKILL all at once".to_string()
                        }
                    ),
                    profile,
                    Kind::Writers(Params {
                        processes,
                        kill_one,
                        power_loss: false,
                    }),
                ));
            }
        }
    }
    // Power cuts on the recorder: every process under one recording; synchronous=OFF is the
    // positive control (a cut must catch the missing fsyncs).
    for (journal, sync, processes) in [
        (JournalMode::Wal, Synchronous::Full, 2),
        (JournalMode::Wal, Synchronous::Full, 8),
        (JournalMode::Wal, Synchronous::Normal, 2),
        (JournalMode::Delete, Synchronous::Full, 2),
        (JournalMode::Delete, Synchronous::Full, 8),
        (JournalMode::Wal, Synchronous::Off, 2),
    ] {
        let mut profile = base_profile(journal, sync);
        profile.processes = processes;
        let mut name = format!("{}-{processes}proc", journal.as_str());
        if sync != Synchronous::Full {
            name.push_str(&format!("-sync-{}", sync.as_str()));
        }
        name.push_str("-power");
        variants.push(Variant::new(
            "writers",
            name,
            format!(
                "journal_mode={} synchronous={} processes={processes} busy_timeout_ms=5000 \
                 fault=power-loss commits_per_process={POWER_COMMITS} (one recording, one cut for all)",
                journal.as_str(),
                sync.as_str()
            ),
            profile,
            Kind::Writers(Params {
                processes,
                kill_one: false,
                power_loss: true,
            }),
        ));
    }
    Scenario {
        name: "writers",
        summary: "2 or 8 writer processes on one database (WAL, DELETE); SIGKILL all, or one while the others go on, or one power cut for all",
        claim: "004: \"Multiple processes (Streamlit app + manual scripts running simultaneously) ... DuckDB WAL can't \
                handle concurrent writers well\"; process crashes (\"Ctrl+C during long operations\") leave \"WAL in \
                inconsistent state\". The postmortem is about DuckDB; the lab tests the same pattern on SQLite.",
        seeds: "004",
        variants,
    }
}

pub(crate) fn run(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    if p.power_loss {
        return run_power_loss(ctx, p);
    }
    let kp = ctx.kill_point();
    let mut run = match engine::start_writers(ctx, p.processes, 1, Some(kp)) {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed("sigkill", e),
    };
    let mut end = Ending::new("sigkill");
    end.kill_point = run.wait_kill_point(kp).describe(kp);
    if p.kill_one {
        let victim = run.pids[0];
        run.signal(victim, nix::sys::signal::Signal::SIGKILL);
        run.wait_exit(victim, Instant::now() + Duration::from_secs(1));
        let at_kill = run.board.total();
        let victim_acked = run.board.acked(0);
        let went_on = run.wait_until(Instant::now() + SURVIVOR_WINDOW, |r| {
            r.board.total() >= at_kill + AFTER_ONE
        });
        let after = run.board.total() - at_kill;
        end.measure("survivor_commits_after_the_kill", after);
        end.measure("survivors_stalled", u64::from(!went_on));
        end.measures.push(format!(
            "writer 0 killed after {victim_acked} acks; the others then made {after} commits{}",
            if went_on { "" } else { " (stalled)" }
        ));
    }
    run.stop_all();
    failed_codes(&run, &mut end, "failed_txns");
    let per: Vec<String> = run
        .events
        .acked
        .iter()
        .map(|(w, s)| format!("{w}:{s}"))
        .collect();
    end.measures
        .push(format!("acked per writer {}", per.join(" ")));
    end.verification = end.verify(ctx.db(), ctx.workload, &run.events.acked);
    record(ctx, Some(&run), end)
}

/// Every writer process under one recording: each makes its commits, all are SIGKILLed, and every
/// crash state of the one recording is checked against every process's acknowledgements.
fn run_power_loss(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    let mut rec = match power::Recording::new(ctx, p.processes) {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed(power::FAULT, e),
    };
    let mut end = Ending::new(power::FAULT);
    if let Err(e) = rec.spawn_writers(&ctx.writer_spec(), p.processes, 1, POWER_COMMITS) {
        end.setup_error = Some(e);
    }
    let run = rec.finish_and_check(ctx, &mut end);
    failed_codes(&run, &mut end, "failed_txns");
    end.measures
        .push("processes interleave anew each run: sampled, not replayable".into());
    record(ctx, Some(&run), end)
}

#[cfg(test)]
mod tests {
    use super::super::engine::testing::{damaged, lab, no_lab_errors, serial};
    use crate::verify::outcome::{Outcome, Verdict};

    #[test]
    fn killing_one_writer_leaves_the_others_writing_and_every_commit_counted() {
        let _g = serial();
        let lab = lab(&[]);
        for v in ["wal-2proc-kill-one", "delete-2proc-kill-one"] {
            let rows = lab.run("writers", v, 4);
            no_lab_errors(&rows);
            assert_eq!(damaged(&rows), 0, "{v}");
            for (r, m) in &rows {
                assert_eq!(m["survivors_stalled"], 0, "{}", r.detail);
                assert!(m["survivor_commits_after_the_kill"] >= 20);
                assert!(r.detail.contains("acked per writer "), "{}", r.detail);
            }
        }
        let rows = lab.run("writers", "wal-8proc-kill-all", 3);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 0);
        assert!(rows.iter().all(|(r, _)| r.processes == 8));
    }

    #[test]
    fn one_power_cut_for_every_writer_process() {
        let _g = serial();
        let lab = lab(&[]);
        // WAL+FULL: nothing acknowledged is lost, whichever process acknowledged it.
        for v in ["wal-2proc-power", "wal-8proc-power"] {
            let rows = lab.run("writers", v, 2);
            no_lab_errors(&rows);
            assert_eq!(damaged(&rows), 0, "{v}: {:?}", rows[0].0.detail);
            for (r, m) in &rows {
                assert_eq!(r.fault, "power-loss");
                assert_eq!(r.verdict, Verdict::Ok, "{}", r.detail);
                assert_eq!(r.damaged_states, 0, "{}", r.detail);
                assert!(r.crash_states >= 20, "{}", r.detail);
                // One recording of every process: the log saw all of them.
                assert!(
                    r.detail.contains(&format!("{} process(es)", r.processes)),
                    "{}",
                    r.detail
                );
                assert!(m["crash_states"] > 0);
            }
        }
        // WAL+NORMAL may lose recent commits to a power cut, and must never corrupt.
        let rows = lab.run("writers", "wal-2proc-sync-normal-power", 2);
        no_lab_errors(&rows);
        for (r, _) in &rows {
            assert!(
                matches!(r.outcome, Outcome::Intact | Outcome::LostCommit),
                "{}",
                r.detail
            );
            assert_ne!(r.verdict, Verdict::Violation, "{}", r.detail);
        }
    }

    #[test]
    fn writer_processes_without_fsync_are_caught_by_the_cut() {
        let _g = serial();
        let lab = lab(&[]);
        let rows = lab.run("writers", "wal-2proc-sync-off-power", 2);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 2, "{:?}", rows[0].0.detail);
        for (r, _) in &rows {
            assert!(r.damaged_states > 0, "{}", r.detail);
            assert_ne!(r.verdict, Verdict::Violation, "{}", r.detail);
        }
        // And WAL+FULL on a disk that ignores fsync.
        let lab = super::super::engine::testing::lab(&["--lying-disk"]);
        let rows = lab.run("writers", "wal-2proc-power", 2);
        no_lab_errors(&rows);
        assert!(damaged(&rows) > 0, "{:?}", rows[0].0.detail);
    }
}
