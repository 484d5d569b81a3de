//! Power cuts for the scenarios on the file-operation recorder: record once, crash everywhere, as
//! `writers/builtin/recorded_trial.rs` does for the built-in writers.
//!
//! A scenario's power-loss trial copies its starting database into the slot's recorded folder
//! (`slot/rec/trial.db`, nothing else there), forks its processes through [`Children`], and each
//! turns the recorder on right after its fork ([`Recording::spawn`]), so every file operation of
//! every process and thread lands in one log, in one total order with the commits' acknowledgements.
//! The processes make a bounded number of commits, say `done` and wait for the slot's SIGKILL (no
//! close, no checkpoint on close). Then every distinct crash state of that one recording (every
//! sync boundary, inside every WAL checkpoint and after every WAL reset, × keep/lose/tear, a seeded
//! sample of `--max-states`) is rebuilt on a scratch copy and checked with the oracle
//! (`faults::recorded::check_recording`). The row is the worst state, with `crash_states`,
//! `damaged_states` and `cuts_in_checkpoint` filled; the evidence of a damaged trial is the worst
//! state's files before recovery and the recorder's log.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use torture_preload::{Snapshot, Variant};

use super::engine::{Children, Ctx, Ending, Env, StateCounts, WriterSpec};
use crate::faults::recorded::{self, AfterCheck, CheckPlan, Checked, RecordingPlan, StateKind};
use crate::trial::evidence;
use crate::trial::record::{self, Judged, Pragmas};
use crate::verify::oracle::Verification;
use crate::verify::outcome::Outcome;
use crate::verify::verdict::Fault;
use crate::writers::workload::{commit_loop_with, open_writer, OnError};

/// The database's name inside the recorded folder.
pub(crate) const DB_NAME: &str = "trial.db";

/// The `fault` column of a scenario's power-loss row.
pub(crate) const FAULT: &str = "power-loss";

/// One scenario trial under the recorder: the recorded folder, its starting snapshot and the
/// trial's processes.
pub(crate) struct Recording<'a> {
    pub plan: RecordingPlan,
    /// The database every process opens: `slot/rec/trial.db`.
    pub db: PathBuf,
    start: Snapshot,
    pub run: Children<'a>,
    /// Acknowledging writers (each must say `done` once its commits are made).
    writers: u32,
}

impl<'a> Recording<'a> {
    /// A fresh recorded folder holding the variant's starting database, and a trial of `writers`
    /// acknowledging writers (no kill point: the processes end their bounded work themselves).
    pub fn new(ctx: &Ctx<'a>, writers: u32) -> Result<Recording<'a>, String> {
        ctx.clear();
        let template = ctx.template()?;
        let plan = RecordingPlan::in_slot(&ctx.files.dir, ctx.seed);
        let db = plan.prepare(&template, DB_NAME)?;
        let start = torture_preload::snapshot(&plan.dir)
            .map_err(|e| format!("snapshot of {}: {e}", plan.dir.display()))?;
        let run = Children::new(ctx.files, writers, None, ctx.opts.trial_timeout)?;
        Ok(Recording {
            plan,
            db,
            start,
            run,
            writers,
        })
    }

    /// A path beside the database in the recorded folder (a backup file: part of every state).
    pub fn path(&self, name: &str) -> PathBuf {
        self.plan.dir.join(name)
    }

    /// Forks process `process_index` with the recorder on: `body` gets the ack descriptor the
    /// recorder watches ([`recorded::log_ack`]). When `body` returns the process waits for the
    /// slot's SIGKILL, holding whatever it opened.
    pub fn spawn(
        &mut self,
        process_index: u32,
        body: impl FnOnce(&Env<'_>, RawFd),
    ) -> Result<(), String> {
        let plan = &self.plan;
        let spawned = self.run.spawn(&[], |env| {
            match recorded::start_in_writer(plan, process_index) {
                Ok(fd) => body(env, fd),
                Err(e) => env.sender().error(process_index, "RECORDER_SETUP", &e),
            }
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        });
        if let Err(e) = spawned {
            self.run.stop_all();
            return Err(e);
        }
        Ok(())
    }

    /// Forks `processes` writer processes of `threads` connections each (writers
    /// `p * threads + t`), each making `commits` commits under the recorder and then holding its
    /// connections open. `spec` is writer 0's.
    pub fn spawn_writers(
        &mut self,
        spec: &WriterSpec<'_>,
        processes: u32,
        threads: u32,
        commits: u64,
    ) -> Result<(), String> {
        let db = self.db.clone();
        for p in 0..processes {
            let first = WriterSpec {
                db: &db,
                id: p * threads,
                max_commits: commits,
                ..*spec
            };
            self.spawn(p, |env, ack| {
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let w = WriterSpec {
                            id: first.id + t,
                            ..first
                        };
                        s.spawn(move || write_and_hold(env, &w, ack));
                    }
                });
            })?;
        }
        Ok(())
    }

    /// Waits until every writer said `done` (or every process died), SIGKILLs them all, and checks
    /// every crash state of the recording. Fills `end` (the worst state, its counts, its evidence)
    /// and returns the processes for the row. A recording that did not finish, or could not be
    /// checked, is a lab problem (`setup_error`), never a verdict.
    pub fn finish_and_check(self, ctx: &Ctx<'_>, end: &mut Ending) -> Children<'a> {
        self.finish_and_check_with(ctx, end, None)
    }

    /// [`Recording::finish_and_check`], each state also checked by `after_check` (a second file
    /// of the scenario's, judged with the database).
    pub fn finish_and_check_with(
        mut self,
        ctx: &Ctx<'_>,
        end: &mut Ending,
        after_check: Option<AfterCheck<'_>>,
    ) -> Children<'a> {
        end.judged_as = Fault::PowerLoss;
        self.run.seal();
        let deadline = self.run.deadline;
        self.run
            .wait_until(deadline, |r| r.writers_done() || r.all_gone());
        let finished = self.run.writers_done();
        self.run.stop_all();
        // A setup error already set (a writer that could not start) is the real cause: keep it.
        if !finished && end.setup_error.is_none() {
            end.setup_error = Some(format!(
                "the recording did not finish: {} of {} writers made their commits before {}",
                self.run.events.done,
                self.writers,
                if self.run.timed_out {
                    "the trial timeout"
                } else {
                    "every process had died"
                }
            ));
            return self.run;
        }
        match self.check(ctx, end, after_check) {
            Ok(()) => {}
            Err(e) => end.setup_error = Some(e),
        }
        self.run
    }

    fn check(
        &self,
        ctx: &Ctx<'_>,
        end: &mut Ending,
        after_check: Option<AfterCheck<'_>>,
    ) -> Result<(), String> {
        let f = &ctx.opts.faults;
        let ev = &self.run.events;
        let pragmas = Pragmas::read_back(
            &ctx.variant.profile,
            ev.in_force.as_ref(),
            &ev.disagreeing_writers,
            "unknown: no writer read its pragmas back",
        );
        let judged = Judged {
            fault: Fault::PowerLoss,
            hardware_as_documented: f.hardware_as_documented(),
            expected_damage: end.expected_damage,
        };
        let judge = |o: Outcome, _: Variant| record::verdict_of(o, &pragmas, judged);
        let scratch = ctx.files.dir.join("state");
        std::fs::create_dir_all(&scratch)
            .map_err(|e| format!("creating {}: {e}", scratch.display()))?;
        let checked = recorded::check_recording(
            &self.start,
            &self.plan.log,
            &scratch,
            DB_NAME,
            CheckPlan {
                kind: StateKind::PowerCut,
                model: f.model.clone(),
                max_states: f.max_states as usize,
                seed: ctx.seed,
                fixed: f
                    .op
                    .map(|n| (recorded::recorder_filter(&f.filter.to_string()), n)),
                workload: ctx.workload,
                judge: &judge,
                before_check: None,
                // Reborrowed for as long as this check's own closures live.
                after_check: after_check.map(|f| {
                    let f: AfterCheck<'_> = f;
                    f
                }),
            },
        )?;
        self.fill(end, &scratch, checked);
        Ok(())
    }

    fn fill(&self, end: &mut Ending, scratch: &Path, c: Checked) {
        end.kill_point = c.kill_point.clone();
        end.measure("crash_states", c.crash_states);
        end.measure("damaged_states", c.damaged_states);
        end.measure("cuts_in_checkpoint", c.cuts_in_checkpoint);
        end.measure("checkpoints", c.checkpoints);
        end.measure("wal_resets", c.wal_resets);
        end.measure(
            "acks_after_worst_cut",
            self.run.events.acks_total.saturating_sub(c.acked_commits),
        );
        end.measures.push(format!(
            "acked before the worst cut {} of {}",
            c.acked_commits, self.run.events.acks_total
        ));
        end.recorded = Some(StateCounts {
            acked: c.acked_commits,
            crash_states: c.crash_states,
            damaged_states: c.damaged_states,
            cuts_in_checkpoint: c.cuts_in_checkpoint,
            verdict: c.verdict,
        });
        end.verification = Verification {
            outcome: c.outcome,
            detail: c.detail.clone(),
            recovered_commits: c.recovered_commits,
        };
        if c.outcome != Outcome::Intact {
            if let Some(state) = &c.worst {
                // The worst state's files as they were before the oracle recovered them.
                if state.write_to(scratch).is_ok() {
                    let db = scratch.join(DB_NAME);
                    end.evidence = Some((evidence::Snapshot::before_recovery(&db), db));
                }
            }
            end.extra_evidence
                .push(("ops.log".into(), self.plan.log.clone()));
        }
    }
}

/// One writer connection under the recorder: open, commit `spec.max_commits` times (each ack in
/// the recorder's log too), say `done`, and hold the connection until the slot's SIGKILL.
pub(crate) fn write_and_hold(env: &Env<'_>, spec: &WriterSpec<'_>, ack: RawFd) {
    let conn = open_writer(env, spec);
    if let Some(mut conn) = conn {
        commit_loop_with(
            env,
            spec,
            &mut conn,
            1,
            &super::engine::never,
            OnError::Report,
            Some(ack),
        );
        env.sender().done(spec.id);
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    env.sender().done(spec.id);
}
