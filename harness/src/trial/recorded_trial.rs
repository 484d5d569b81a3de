//! A power-loss trial of the built-in writers on the file-operation recorder: record once, crash
//! everywhere. The writers (every process and connection of the profile) run their bounded
//! workload once with the recorder on; every distinct crash state of the recording (every sync
//! boundary × keep/lose/tear, a seeded sample past `--max-states`) is rebuilt on a scratch copy and
//! checked by the oracle; the row is the worst state, with the counts in its last columns.

use std::path::Path;
use std::time::Instant;

use torture_preload::Model;

use super::record::{self, Found, Judged, Pragmas, Trial};
use super::{evidence, run_writers, writer_plan, Ending, SlotFiles, Stop};
use crate::faults::recorded::{self, CheckPlan, Checked, RecordingPlan};
use crate::lab::seed;
use crate::options::RunOptions;
use crate::trial::ack::TrialEvents;
use crate::trial::outcome::{Outcome, TrialRecord};
use crate::verify::oracle::Verification;
use crate::verify::verdict::Fault;

/// The database's name inside the recorded folder (and in the evidence, as before).
const DB_NAME: &str = "trial.db";

/// Runs power-loss trial `index` and returns its row; evidence of a damaged trial (the worst
/// state's files before recovery, and the recorder's log) is saved here.
pub fn run(
    opts: &RunOptions,
    index: u64,
    files: &SlotFiles,
    template: Result<&Path, &str>,
    sqlite_version: &str,
    started: Instant,
) -> TrialRecord {
    let profile = opts.profile_of(index);
    let trial_seed = seed::trial_seed(opts.seed, index);
    let f = &opts.faults;
    let rec = RecordingPlan::in_slot(&files.dir, trial_seed);
    let scratch = files.dir.join("state");
    let mut events = TrialEvents::default();
    let mut ending = Ending::default();
    let mut pragmas = None;
    let judged = Judged {
        fault: Fault::PowerLoss,
        hardware_as_documented: f.hardware_as_documented(),
        expected_damage: false,
    };
    let checked: Result<Checked, String> = template
        .map_err(|e| format!("making the starting database: {e}"))
        .and_then(|t| {
            let db = rec.prepare(t, DB_NAME)?;
            let start = torture_preload::snapshot(&rec.dir)
                .map_err(|e| format!("snapshot of {}: {e}", rec.dir.display()))?;
            let mut plan = writer_plan(opts, profile, files, trial_seed, None, Some(f.commits));
            plan.db = &db;
            plan.recording = Some(&rec);
            run_writers(
                &plan,
                opts,
                profile,
                files,
                Stop::WhenDone,
                &mut events,
                &mut ending,
            )?;
            let p = Pragmas::read_back(
                profile,
                events.in_force.as_ref(),
                &events.disagreeing_writers,
                "unknown: no writer read its pragmas back",
            );
            let judge = |o: Outcome| record::verdict_of(o, &p, judged);
            let mut rng = seed::rng_for(trial_seed, seed::FAULT_STREAM + 2);
            let recovery_count = files.dir.join("recovery-count");
            let mut crash_recovery = |db: &Path| {
                crate::faults::recovery::crash_first_opener(db, &recovery_count, &mut rng)
                    .unwrap_or_else(|e| e)
            };
            std::fs::create_dir_all(&scratch)
                .map_err(|e| format!("creating {}: {e}", scratch.display()))?;
            let result = recorded::check_recording(
                &start,
                &rec.log,
                &scratch,
                DB_NAME,
                CheckPlan {
                    model: Model {
                        sector_size: f.model.sector_size,
                        lying_disk: f.model.ignore_fsync,
                        powersafe_overwrite: f.model.powersafe_overwrite,
                        ..Model::default()
                    },
                    max_states: f.max_states as usize,
                    seed: trial_seed,
                    fixed: f
                        .op
                        .map(|n| (recorded::recorder_filter(&f.filter.to_string()), n)),
                    workload: opts.workload,
                    judge: &judge,
                    before_check: if f.crash_recovery {
                        Some(&mut crash_recovery)
                    } else {
                        None
                    },
                    after_check: None,
                },
            );
            pragmas = Some(p);
            result
        });

    let pragmas = pragmas.unwrap_or_else(|| {
        Pragmas::read_back(
            profile,
            events.in_force.as_ref(),
            &events.disagreeing_writers,
            "unknown: no writer read its pragmas back",
        )
    });
    let mut lab_problems: Vec<String> = Vec::new();
    if let Err(e) = &checked {
        lab_problems.push(e.clone());
    }
    for (w, code, text) in &events.errors {
        lab_problems.push(format!("writer {w}: {code}: {text}"));
    }
    lab_problems.extend(ending.abnormal.iter().cloned());
    if ending.timed_out {
        lab_problems
            .push("trial timeout before the writers finished: the recording is incomplete".into());
    }
    let found = match &checked {
        Ok(c) => Verification {
            outcome: c.outcome,
            detail: c.detail.clone(),
            recovered_commits: c.recovered_commits,
        },
        Err(_) => Verification::not_run(),
    };
    let outcome = record::outcome_of(found.outcome, &lab_problems);
    let detail = record::detail_with_lab(found.outcome, outcome, &found.detail, &lab_problems);
    let verdict = match &checked {
        // The worst state's verdict, as the states were judged one by one.
        Ok(c) if outcome == found.outcome => c.verdict,
        _ => record::verdict_of(outcome, &pragmas, judged),
    };
    let trial = Trial {
        iteration: index,
        seed: trial_seed,
        profile: &profile.name,
        connections: profile.connections,
        processes: profile.processes,
        workload: opts.workload.name(),
        fault: Fault::PowerLoss.as_str(),
        sqlite_version,
        started,
    };
    let mut row = trial.row(Found {
        outcome,
        verdict,
        pragmas,
        kill_point: checked
            .as_ref()
            .map(|c| c.kill_point.clone())
            .unwrap_or_default(),
        acked_commits: checked.as_ref().map_or(0, |c| c.acked_commits),
        recovered_commits: found.recovered_commits,
        busy_errors: events.busy,
        detail,
    });
    if let Ok(c) = &checked {
        row.crash_states = c.crash_states;
        row.damaged_states = c.damaged_states;
        row.cuts_in_checkpoint = c.cuts_in_checkpoint;
    }
    if outcome != Outcome::Intact {
        let worst = checked.as_ref().ok().and_then(|c| c.worst.as_ref());
        let saved = match worst {
            // The worst state's files as they were before the oracle recovered them.
            Some(state) => state
                .write_to(&scratch)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    let db = scratch.join(DB_NAME);
                    let mut snap = evidence::Snapshot::before_recovery(&db);
                    evidence::save(
                        &opts.out_dir.join("failures"),
                        &mut snap,
                        &db,
                        &row,
                        profile,
                        &opts.spec,
                        rec.log.is_file().then_some(rec.log.as_path()),
                    )
                    .map(drop)
                    .map_err(|e| e.to_string())
                }),
            // Nothing was checked (the recording failed: a lab problem the row already says):
            // no state to keep, and nothing that looks like a full disk.
            None => Ok(()),
        };
        if let Err(e) = saved {
            row.detail.push_str(&format!("; evidence not saved: {e}"));
        }
    }
    row
}
