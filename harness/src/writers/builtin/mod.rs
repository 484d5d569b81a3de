//! One trial of the built-in workload, as a slot runs it: fresh database, fork the writers, kill them at the trial's kill point,
//! reap them, snapshot the files, recover and verify, and build the CSV row. Trials of the
//! op-indexed faults (power loss, kill-at-op, io-error, disk-full) record the writers once and check
//! every crash state instead (`recorded_trial`).

mod recorded_trial;

use std::path::Path;
use std::time::Instant;

use torture_workloads::Profile;

use crate::faults::kill_point::KillPoint;
use crate::options::RunOptions;
use crate::seed;
use crate::trial::ack::TrialEvents;
use crate::trial::children::{Children, Landing, SlotFiles};
use crate::trial::evidence::{self, Snapshot};
use crate::trial::record::{self, Found, Judged, Pragmas, Trial};
use crate::verify::oracle;
use crate::verify::outcome::{Outcome, TrialRecord};
use crate::verify::verdict::Fault;
use crate::writers::workload::{self, WriterPlan};

/// How the writers' lives ended.
#[derive(Debug, Default)]
struct Ending {
    /// Writers that died of something other than our SIGKILL or a clean exit.
    abnormal: Vec<String>,
    timed_out: bool,
    completed: bool,
}

/// Runs trial `index` of the run and returns its row. Failure evidence is saved here, before the
/// record leaves the slot.
pub fn run_trial(
    opts: &RunOptions,
    index: u64,
    files: &SlotFiles,
    template: Result<&Path, &str>,
    sqlite_version: &str,
) -> TrialRecord {
    let started = Instant::now();
    let profile = opts.profile_of(index);
    let trial_seed = seed::trial_seed(opts.seed, index);
    if opts.faults.fault.is_op_indexed() {
        // Power loss, kill-at-op, io-error, disk-full: record once, check every crash state.
        return recorded_trial::run(opts, index, files, template, sqlite_version, started);
    }
    let kill_point = opts
        .kill
        .draw(&mut seed::rng_for(trial_seed, seed::KILL_STREAM));

    files.clear();
    let mut events = TrialEvents::default();
    let mut ending = Ending::default();
    let mut crash_note = String::new();
    let fault = opts.faults.fault;
    let setup = template
        .map_err(|e| format!("making the starting database: {e}"))
        .and_then(|t| {
            fresh_copy(t, files)?;
            let plan = writer_plan(opts, profile, files, trial_seed, None);
            run_writers(
                &plan,
                opts,
                profile,
                files,
                Stop::At(kill_point),
                &mut events,
                &mut ending,
            )
        });
    if setup.is_ok() && opts.faults.crash_recovery {
        let mut rng = seed::rng_for(trial_seed, seed::FAULT_STREAM + 2);
        let note = crate::faults::recovery::crash_first_opener(
            &files.db,
            &files.dir.join("recovery-count"),
            &mut rng,
        )
        .unwrap_or_else(|e| e);
        crash_note = note;
    }
    let mut snapshot = Snapshot::before_recovery(&files.db);
    let verification = match &setup {
        Ok(()) => oracle::recover_and_verify(&files.db, opts.workload, &events.acked),
        Err(_) => oracle::Verification::not_run(),
    };

    let pragmas = Pragmas::read_back(
        profile,
        events.in_force.as_ref(),
        &events.disagreeing_writers,
        "unknown: killed before any writer read its pragmas back",
    );
    let mut lab_problems: Vec<String> = Vec::new();
    if let Err(e) = &setup {
        lab_problems.push(e.clone());
    }
    for (w, code, text) in &events.errors {
        lab_problems.push(format!("writer {w}: {code}: {text}"));
    }
    lab_problems.extend(ending.abnormal.iter().cloned());
    let outcome = record::outcome_of(verification.outcome, &lab_problems);
    let mut detail = record::detail_with_lab(
        verification.outcome,
        outcome,
        &verification.detail,
        &lab_problems,
    );
    if ending.timed_out {
        detail = format!("trial timeout before the kill point; {detail}")
            .trim_end_matches("; ")
            .to_string();
    }
    let kill_point_text = if ending.completed {
        Landing::WritersFinished.describe(kill_point)
    } else if ending.timed_out {
        Landing::TimedOut.describe(kill_point)
    } else {
        kill_point.to_string()
    };
    if !crash_note.is_empty() {
        detail = if detail.is_empty() {
            crash_note
        } else {
            format!("{detail}; {crash_note}")
        };
    }
    let judged = Judged {
        fault,
        hardware_as_documented: opts.faults.hardware_as_documented(),
        expected_damage: false,
    };
    let trial = Trial {
        iteration: index,
        seed: trial_seed,
        profile: &profile.name,
        connections: profile.connections,
        processes: profile.processes,
        workload: opts.workload.name(),
        fault: fault.as_str(),
        sqlite_version,
        started,
    };
    let mut record = trial.row(Found {
        outcome,
        verdict: record::verdict_of(outcome, &pragmas, judged),
        pragmas,
        kill_point: kill_point_text,
        acked_commits: events.acks_total,
        recovered_commits: verification.recovered_commits,
        busy_errors: events.busy,
        detail,
    });
    if outcome != Outcome::Intact {
        if let Err(e) = evidence::save(
            &opts.out_dir.join("failures"),
            &mut snapshot,
            &files.db,
            &record,
            profile,
            &opts.spec,
            // A SIGKILL trial logs no operations (op-indexed faults: `recorded_trial`).
            None,
        ) {
            record
                .detail
                .push_str(&format!("; evidence not saved: {e}"));
        }
    }
    record
}

/// When the slot stops the writers.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// At the trial's kill point.
    At(KillPoint),
    /// Once every writer has finished its bounded workload (or killed itself at its crash point).
    WhenDone,
}

fn fresh_copy(template: &Path, files: &SlotFiles) -> Result<(), String> {
    files.clear();
    std::fs::copy(template, &files.db)
        .map(drop)
        .map_err(|e| format!("copying the starting database: {e}"))
}

fn writer_plan<'a>(
    opts: &'a RunOptions,
    profile: &'a Profile,
    files: &'a SlotFiles,
    trial_seed: u64,
    commits: Option<u64>,
) -> WriterPlan<'a> {
    let carry_on_errors = matches!(opts.faults.fault, Fault::IoError | Fault::DiskFull);
    WriterPlan {
        db: &files.db,
        profile,
        workload: opts.workload,
        trial_seed,
        max_commits: commits.unwrap_or(opts.max_commits),
        board: &files.board,
        hold_when_done: commits.is_some(),
        carry_on_errors,
        recording: None,
    }
}

/// Forks the writer processes, waits until `stop`, kills and reaps them, and drains their
/// acknowledgements. Returns Err only when the writers could not be started.
fn run_writers(
    plan: &WriterPlan<'_>,
    opts: &RunOptions,
    profile: &Profile,
    files: &SlotFiles,
    stop: Stop,
    events: &mut TrialEvents,
    ending: &mut Ending,
) -> Result<(), String> {
    let kill_point = match stop {
        Stop::At(k) => Some(k),
        Stop::WhenDone => None,
    };
    let mut children = Children::new(files, profile.writers(), kill_point, opts.trial_timeout)?;
    for p in 0..profile.processes {
        if let Err(e) = children.spawn(&[], |env| workload::run_writer_process(plan, p, env)) {
            children.stop_all();
            return Err(e);
        }
    }
    // The pipe reaches end-of-file once every writer died (a writer that killed itself at its
    // crash point, or failed before saying `done`): the wait ends there, not at the timeout.
    children.seal();
    children.started_now();
    match kill_point {
        Some(kp) => match children.wait_kill_point(kp) {
            Landing::Reached => {}
            Landing::WritersFinished => ending.completed = true,
            Landing::TimedOut => ending.timed_out = true,
        },
        None => {
            if children.wait_writers_done() {
                ending.completed = true;
            } else {
                ending.timed_out = true;
            }
        }
    }
    children.stop_all();
    ending.abnormal.append(&mut children.lab);
    ending.abnormal.append(&mut children.deaths);
    *events = std::mem::take(&mut children.events);
    Ok(())
}
