//! The one place a trial's row is built: the pragmas the verdict is judged on, the rule that a
//! worker error decides the outcome only when the database itself is fine, the verdict call, and
//! the `TrialRecord` itself — for the built-in workload, the scenarios and a user's program alike.

use std::time::Instant;

use torture_workloads::{InForce, Profile};

use crate::verify::outcome::{Outcome, TrialRecord, Verdict};
use crate::verify::verdict::{self, Fault};

/// Who the trial was: the row's identity columns.
pub struct Trial<'a> {
    pub iteration: u64,
    pub seed: u64,
    pub profile: &'a str,
    pub connections: u32,
    pub processes: u32,
    pub workload: &'a str,
    /// The `fault` column (`sigkill`, `power-loss`, a scenario's `sigterm`, …).
    pub fault: &'a str,
    pub sqlite_version: &'a str,
    pub started: Instant,
}

/// The pragmas a trial ran under, as the row reports them and the verdict judges them.
#[derive(Clone, Debug, Default)]
pub struct Pragmas {
    pub journal_mode: String,
    pub synchronous: String,
    /// The `pragma_fallback` column: what differs from what was asked, or why it is unknown.
    pub fallback: String,
}

impl Pragmas {
    /// The pragmas the writers read back (the first report), with what differs from `profile`
    /// and which writers disagreed; the requested ones, marked unknown, when no writer reported.
    pub fn read_back(
        profile: &Profile,
        in_force: Option<&InForce>,
        disagreeing_writers: &[u32],
        unknown: &str,
    ) -> Pragmas {
        match in_force {
            Some(f) => {
                let mut fallback = profile.fallbacks(f).join("; ");
                if !disagreeing_writers.is_empty() {
                    if !fallback.is_empty() {
                        fallback.push_str("; ");
                    }
                    fallback.push_str(&format!(
                        "writers {disagreeing_writers:?} reported other pragmas"
                    ));
                }
                Pragmas {
                    journal_mode: f.journal_mode.clone(),
                    synchronous: f.synchronous.clone(),
                    fallback,
                }
            }
            None => Pragmas {
                journal_mode: profile.journal_mode.as_str().to_string(),
                synchronous: profile.synchronous.as_str().to_string(),
                fallback: unknown.to_string(),
            },
        }
    }
}

/// How damage is judged: the fault SQLite's promises are read for, whether the simulated disk
/// behaves as SQLite assumes, and whether the trial itself did something documented to damage.
#[derive(Clone, Copy, Debug)]
pub struct Judged {
    pub fault: Fault,
    pub hardware_as_documented: bool,
    /// An operator deleted a hot journal, a scenario ran a documented corruptor: damage is
    /// expected whatever the pragmas.
    pub expected_damage: bool,
}

impl Judged {
    /// A process crash on a disk that behaves as documented.
    pub fn crash() -> Judged {
        Judged {
            fault: Fault::Sigkill,
            hardware_as_documented: true,
            expected_damage: false,
        }
    }
}

/// The outcome of a trial from what the check found and the lab's problems (a writer that failed
/// for its own reason, a setup that failed, a child that crashed): a lab problem decides only when
/// the database itself is fine (or could not be checked), so damage is never hidden behind it.
pub fn outcome_of(found: Outcome, lab_problems: &[String]) -> Outcome {
    if matches!(found, Outcome::Intact | Outcome::WorkerError) && !lab_problems.is_empty() {
        Outcome::WorkerError
    } else {
        found
    }
}

/// The `detail` column's account of the check and the lab's problems: the problems alone when
/// they decided the outcome (after the check's own words if it could not run), else the check's
/// words followed by `also: …`.
pub fn detail_with_lab(
    found: Outcome,
    outcome: Outcome,
    check_detail: &str,
    lab: &[String],
) -> String {
    let lab_text = lab.join("; ");
    if lab.is_empty() {
        check_detail.to_string()
    } else if outcome == Outcome::WorkerError {
        if found == Outcome::WorkerError && !check_detail.is_empty() {
            format!("{check_detail}; {lab_text}")
        } else {
            lab_text
        }
    } else {
        format!("{check_detail}; also: {lab_text}")
    }
}

/// The verdict of an outcome under `pragmas`, judged as `judged` says.
pub fn verdict_of(outcome: Outcome, pragmas: &Pragmas, judged: Judged) -> Verdict {
    match outcome {
        Outcome::Intact => Verdict::Ok,
        Outcome::WorkerError => Verdict::LabError,
        o if judged.expected_damage && o != Outcome::WrongKey => Verdict::Expected,
        o => verdict::judge(
            o,
            &pragmas.journal_mode,
            &pragmas.synchronous,
            judged.fault,
            judged.hardware_as_documented,
        ),
    }
}

/// What a trial found, for its row.
pub struct Found {
    pub outcome: Outcome,
    pub verdict: Verdict,
    pub pragmas: Pragmas,
    pub kill_point: String,
    pub acked_commits: u64,
    pub recovered_commits: u64,
    pub busy_errors: u64,
    pub detail: String,
}

impl Trial<'_> {
    /// The row. `duration_us` is the time since `started`.
    pub fn row(&self, found: Found) -> TrialRecord {
        TrialRecord {
            iteration: self.iteration,
            seed: self.seed,
            profile: self.profile.to_string(),
            journal_mode: found.pragmas.journal_mode,
            synchronous: found.pragmas.synchronous,
            connections: self.connections,
            processes: self.processes,
            workload: self.workload.to_string(),
            fault: self.fault.to_string(),
            kill_point: found.kill_point,
            acked_commits: found.acked_commits,
            recovered_commits: found.recovered_commits,
            outcome: found.outcome,
            verdict: found.verdict,
            detail: found.detail,
            busy_errors: found.busy_errors,
            pragma_fallback: found.pragmas.fallback,
            duration_us: self.started.elapsed().as_micros() as u64,
            sqlite_version: self.sqlite_version.to_string(),
            crash_states: 0,
            damaged_states: 0,
            cuts_in_checkpoint: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragmas(jm: &str, sync: &str) -> Pragmas {
        Pragmas {
            journal_mode: jm.into(),
            synchronous: sync.into(),
            fallback: String::new(),
        }
    }

    #[test]
    fn a_lab_problem_decides_only_when_the_database_is_fine() {
        let lab = vec!["writer 0: RUST_ERROR: boom".to_string()];
        assert_eq!(outcome_of(Outcome::Intact, &lab), Outcome::WorkerError);
        assert_eq!(outcome_of(Outcome::WorkerError, &lab), Outcome::WorkerError);
        assert_eq!(outcome_of(Outcome::Corrupt, &lab), Outcome::Corrupt);
        assert_eq!(outcome_of(Outcome::LostCommit, &lab), Outcome::LostCommit);
        assert_eq!(outcome_of(Outcome::Intact, &[]), Outcome::Intact);
    }

    #[test]
    fn documented_damage_is_expected_but_a_wrong_key_never_is() {
        let p = pragmas("wal", "full");
        let mut j = Judged::crash();
        assert_eq!(verdict_of(Outcome::Corrupt, &p, j), Verdict::Violation);
        j.expected_damage = true;
        assert_eq!(verdict_of(Outcome::Corrupt, &p, j), Verdict::Expected);
        assert_eq!(verdict_of(Outcome::WrongKey, &p, j), Verdict::Violation);
        assert_eq!(verdict_of(Outcome::Intact, &p, j), Verdict::Ok);
        assert_eq!(verdict_of(Outcome::WorkerError, &p, j), Verdict::LabError);
        assert_eq!(
            verdict_of(Outcome::Corrupt, &pragmas("off", "full"), Judged::crash()),
            Verdict::Expected
        );
    }
}
