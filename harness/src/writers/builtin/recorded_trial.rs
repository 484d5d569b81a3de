//! An op-indexed trial of the built-in writers on the file-operation recorder (power loss,
//! kill-at-op, io-error, disk-full): record once, crash everywhere. The writers (every process and
//! connection of the profile) run their bounded workload once with the recorder on — io-error and
//! disk-full with the recorder failing one operation (`TORTURE_FAULTFS_FAIL_AT`), the writers
//! carrying on; every distinct crash state of the recording is rebuilt on a scratch copy and checked
//! by the oracle — power cuts (every sync boundary × keep/lose/tear, cuts inside checkpoints), or for
//! kill-at-op every operation boundary with everything kept (what a SIGKILL leaves); a seeded sample
//! past `--max-states`. The row is the worst state, with the counts in its last columns.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use rand::RngExt;
use torture_preload::Variant;

use super::{run_writers, writer_plan, Ending, Stop};
use crate::faults::recorded::{self, CheckPlan, Checked, RecordingPlan, StateKind};
use crate::options::RunOptions;
use crate::seed;
use crate::trial::ack::TrialEvents;
use crate::trial::children::SlotFiles;
use crate::trial::evidence;
use crate::trial::record::{self, Found, Judged, Pragmas, Trial};
use crate::verify::oracle::Verification;
use crate::verify::outcome::{Outcome, TrialRecord};
use crate::verify::verdict::Fault;

/// The database's name inside the recorded folder (and in the evidence, as before).
const DB_NAME: &str = "trial.db";

/// Runs op-indexed trial `index` and returns its row; evidence of a damaged trial (the worst
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
    let fault = f.fault;
    let mut rec = RecordingPlan::in_slot(&files.dir, trial_seed);
    let scratch = files.dir.join("state");
    let mut events = TrialEvents::default();
    let mut ending = Ending::default();
    let mut injected = String::new();
    let judged = Judged {
        fault,
        hardware_as_documented: f.hardware_as_documented(),
        expected_damage: false,
    };
    let mut pragmas = None;
    let checked: Result<Checked, String> = template
        .map_err(|e| format!("making the starting database: {e}"))
        .and_then(|t| {
            let mut step = Step {
                opts,
                profile,
                files,
                trial_seed,
                rec: &mut rec,
                events: &mut events,
                ending: &mut ending,
                injected: &mut injected,
                scratch: &scratch,
                judged,
            };
            let (result, p) = record_and_check(&mut step, t)?;
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
    // A writer that stopped at an injected error (it could not open: the error hit the `-shm`'s
    // growth) met the fault, not a lab problem: the row says so, and its states are still judged.
    let hit = checked.as_ref().is_ok_and(|c| c.injected_ops > 0);
    let mut stopped = Vec::new();
    for (w, code, text) in &events.errors {
        let line = format!("writer {w}: {code}: {text}");
        // Only an error SQLite returned can be the injected one; the recorder's or the lab's own
        // setup failing stays a lab problem.
        if hit && code.starts_with("SQLITE_") {
            stopped.push(line);
        } else {
            lab_problems.push(line);
        }
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
    let mut detail = record::detail_with_lab(found.outcome, outcome, &found.detail, &lab_problems);
    if let Some(spec) = &rec.fail_at {
        let failed = checked.as_ref().map_or(0, |c| c.injected_ops);
        detail.push_str(&format!(
            "; injected: {injected} ({}); the writers carried on: {} failed commit(s), {} acknowledged",
            match failed {
                0 => format!("not reached: the writers made fewer ({spec})"),
                n => format!("{n} op(s) failed"),
            },
            events.io_errors,
            events.acks_total,
        ));
        if !stopped.is_empty() {
            detail.push_str(&format!(
                "; stopped at the injected error: {}",
                stopped.join("; ")
            ));
        }
    }
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
        fault: fault.as_str(),
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

/// What one recorded trial's steps share.
struct Step<'a> {
    opts: &'a RunOptions,
    profile: &'a torture_workloads::Profile,
    files: &'a SlotFiles,
    trial_seed: u64,
    rec: &'a mut RecordingPlan,
    events: &'a mut TrialEvents,
    ending: &'a mut Ending,
    injected: &'a mut String,
    scratch: &'a Path,
    judged: Judged,
}

/// Records the writers once (with the recorder's failing operation for io-error and disk-full)
/// and checks the recording's crash states, each judged by its variant; the pragmas the writers
/// read back. `Err` when the recording itself failed; the check's own failure is in the result.
fn record_and_check(
    st: &mut Step<'_>,
    t: &Path,
) -> Result<(Result<Checked, String>, Pragmas), String> {
    let (opts, profile, files, trial_seed) = (st.opts, st.profile, st.files, st.trial_seed);
    let f = &opts.faults;
    let fault = f.fault;
    let judged = st.judged;
    let scratch = st.scratch;
    let rec = &mut *st.rec;

    if matches!(fault, Fault::IoError | Fault::DiskFull) {
        let spec = fail_spec(opts, profile, files, t, trial_seed)?;
        *st.injected = spec.1;
        rec.fail_at = Some(spec.0);
    }
    let db = rec.prepare(t, DB_NAME)?;
    let start = torture_preload::snapshot(&rec.dir)
        .map_err(|e| format!("snapshot of {}: {e}", rec.dir.display()))?;
    let mut plan = writer_plan(opts, profile, files, trial_seed, Some(f.commits));
    plan.db = &db;
    plan.recording = Some(&*rec);
    run_writers(
        &plan,
        opts,
        profile,
        files,
        Stop::WhenDone,
        st.events,
        st.ending,
    )?;
    let p = Pragmas::read_back(
        profile,
        st.events.in_force.as_ref(),
        &st.events.disagreeing_writers,
        "unknown: no writer read its pragmas back",
    );
    // A state that kept everything is what a process crash leaves; the others are power cuts.
    let judge = |o: Outcome, v: Variant| {
        let fault = fault.judged_as(v == Variant::KeepAll);
        let judged = Judged { fault, ..judged };
        record::verdict_of(o, &p, judged)
    };
    let mut rng = seed::rng_for(trial_seed, seed::FAULT_STREAM + 2);
    let recovery_count = files.dir.join("recovery-count");
    let mut crash_recovery = |db: &Path| {
        crate::faults::recovery::crash_first_opener(db, &recovery_count, &mut rng)
            .unwrap_or_else(|e| e)
    };
    std::fs::create_dir_all(scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;
    let result = recorded::check_recording(
        &start,
        &rec.log,
        scratch,
        DB_NAME,
        CheckPlan {
            kind: if fault == Fault::KillAtOp {
                StateKind::ProcessCrash
            } else {
                StateKind::PowerCut
            },
            model: f.model.clone(),
            max_states: f.max_states as usize,
            seed: trial_seed,
            // io-error / disk-full: `--crash-at` placed the failure, not the cut.
            fixed: f
                .op
                .filter(|_| matches!(fault, Fault::PowerLoss | Fault::KillAtOp))
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
    Ok((result, p))
}

/// How many operations of each kind an uncrashed recording of a profile makes, counted once per
/// slot process by a probe recording with a fixed seed, so every slot (and a replay) draws from the
/// same range.
type Probed = HashMap<(String, &'static str), u64>;
static PROBED: Mutex<Option<Probed>> = Mutex::new(None);

/// io-error / disk-full: the recorder's `TORTURE_FAULTFS_FAIL_AT` for this trial, and how the row
/// names it. The kind is `--crash-at`'s (any operation by default); N is `--crash-at`'s, or a
/// seeded draw over as many as the probe recording of the profile made. io-error fails one
/// operation with EIO; disk-full fails it and every later one of its kind with ENOSPC (a disk that
/// stays full).
fn fail_spec(
    opts: &RunOptions,
    profile: &torture_workloads::Profile,
    files: &SlotFiles,
    template: &Path,
    trial_seed: u64,
) -> Result<(String, String), String> {
    let f = &opts.faults;
    let kind = f.fail_kind();
    let (errno, persist, how) = match f.fault {
        Fault::DiskFull => ("enospc", ":persist", "ENOSPC, and every later one too"),
        _ => ("eio", "", "EIO"),
    };
    let (n, of) = match f.op {
        Some(n) => (n, String::new()),
        None => {
            let key = (profile.name.clone(), kind);
            let known = PROBED
                .lock()
                .ok()
                .and_then(|m| m.as_ref().and_then(|m| m.get(&key).copied()));
            let total = match known {
                Some(t) => t,
                None => {
                    let t = probe(opts, profile, files, template, kind)?;
                    if let Ok(mut m) = PROBED.lock() {
                        m.get_or_insert_with(HashMap::new).insert(key, t);
                    }
                    t
                }
            };
            let n = seed::rng_for(trial_seed, seed::FAULT_STREAM).random_range(1..=total.max(1));
            (n, format!(" of the {total} an uncrashed run makes"))
        }
    };
    let kind_name = if kind == "any" { "operation" } else { kind };
    Ok((
        format!("{kind}:{n}:{errno}{persist}"),
        format!("{kind_name} #{n}{of} fails with {how}"),
    ))
}

/// One uncrashed recording of `profile` (fixed seed, no fault): how many operations of `kind` it
/// makes.
fn probe(
    opts: &RunOptions,
    profile: &torture_workloads::Profile,
    files: &SlotFiles,
    template: &Path,
    kind: &str,
) -> Result<u64, String> {
    let probe_seed = seed::trial_seed(opts.seed, u64::MAX);
    let rec = RecordingPlan::in_slot(&files.dir, probe_seed);
    let db = rec.prepare(template, DB_NAME)?;
    let mut plan = writer_plan(opts, profile, files, probe_seed, Some(opts.faults.commits));
    plan.db = &db;
    plan.recording = Some(&rec);
    plan.carry_on_errors = false;
    let (mut events, mut ending) = (TrialEvents::default(), Ending::default());
    run_writers(
        &plan,
        opts,
        profile,
        files,
        Stop::WhenDone,
        &mut events,
        &mut ending,
    )?;
    if let Some((w, code, text)) = events.errors.first() {
        return Err(format!(
            "the uncrashed probe run: writer {w}: {code}: {text}"
        ));
    }
    let log = torture_preload::read_log(&rec.log)
        .map_err(|e| format!("reading the probe run's log: {e:?}"))?;
    let filter: torture_preload::OpFilter = kind.parse()?;
    Ok(log.ops.iter().filter(|o| filter.matches(o)).count() as u64)
}
