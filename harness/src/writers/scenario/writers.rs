//! Scenario `writers` (seed 004): W writer processes on one database, in WAL and DELETE mode. Either
//! all are SIGKILLed at once, or one is SIGKILLed while the others go on (and are killed later);
//! every process's acknowledged commits are checked on their own.

use std::time::{Duration, Instant};

use torture_workloads::{JournalMode, Synchronous};

use super::engine::{self, failed_codes, record, Ctx, Ending, Metrics};
use super::{base_profile, Kind, Scenario, Variant};
use crate::trial::outcome::TrialRecord;

pub(crate) struct Params {
    pub processes: u32,
    pub kill_one: bool,
}

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
                    }),
                ));
            }
        }
    }
    Scenario {
        name: "writers",
        summary: "2 or 8 writer processes on one database (WAL, DELETE); SIGKILL all, or one while the others go on",
        claim: "004: \"Multiple processes (Streamlit app + manual scripts running simultaneously) ... DuckDB WAL can't \
                handle concurrent writers well\"; process crashes (\"Ctrl+C during long operations\") leave \"WAL in \
                inconsistent state\". The postmortem is about DuckDB; the lab tests the same pattern on SQLite.",
        seeds: "004",
        variants,
    }
}

pub(crate) fn run(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
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

#[cfg(test)]
mod tests {
    use super::super::engine::testing::{damaged, lab, no_lab_errors, serial};

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
}
