//! What a trial found, typed, built in one place: the outcome class, the verdict against SQLite's
//! promises, and the CSV row.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the recovery check found after the writers died. The kebab-case names are the CSV's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// integrity_check ok, every acknowledged commit present, invariants hold.
    Intact,
    /// An acknowledged commit is missing.
    LostCommit,
    /// A partial transaction is visible or the workload's invariant broke.
    Atomicity,
    /// `PRAGMA integrity_check` did not answer `ok`, or a read failed with SQLITE_CORRUPT.
    Corrupt,
    /// The database could not be opened or recovered (not a database, cannot open, I/O error).
    OpenFailed,
    /// SQLCipher: the key the trial wrote with does not open the file (a plaintext database, or no
    /// page authenticates). A damaged file the key does fit is `open-failed`.
    WrongKey,
    /// A writer failed before the kill for a reason of its own; the trial says nothing about SQLite.
    WorkerError,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Intact,
        Outcome::LostCommit,
        Outcome::Atomicity,
        Outcome::Corrupt,
        Outcome::OpenFailed,
        Outcome::WrongKey,
        Outcome::WorkerError,
    ];

    /// The database lost something: a commit, atomicity, its structure, or the ability to open.
    pub fn is_damage(self) -> bool {
        !matches!(self, Outcome::Intact | Outcome::WorkerError)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Intact => "intact",
            Outcome::LostCommit => "lost-commit",
            Outcome::Atomicity => "atomicity",
            Outcome::Corrupt => "corrupt",
            Outcome::OpenFailed => "open-failed",
            Outcome::WrongKey => "wrong-key",
            Outcome::WorkerError => "worker-error",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome read against what SQLite documents for the profile and the fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Intact.
    Ok,
    /// Not intact, but SQLite does not promise otherwise for this profile (e.g. `journal_mode=OFF`).
    Expected,
    /// Not intact although SQLite promises it would be: a finding, or a bug in the lab.
    Violation,
    /// The trial could not be judged (worker error).
    LabError,
    /// The user's program failed for its own reason (`torture exec`: it exited non-zero, died of
    /// a signal, its own SQLITE_BUSY) before the fault: nothing to judge of the database.
    ProgramError,
}

impl Verdict {
    /// How bad, for picking a trial's worst crash state: violation > lab or program error >
    /// expected > ok.
    pub fn severity(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Expected => 1,
            Verdict::LabError | Verdict::ProgramError => 2,
            Verdict::Violation => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Expected => "expected",
            Verdict::Violation => "violation",
            Verdict::LabError => "lab-error",
            Verdict::ProgramError => "program-error",
        }
    }
}

/// One row of `trials.csv`. Field order is column order; `results/README.md` describes each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// Global trial index in the run (unique; also the failure folder's name).
    pub iteration: u64,
    /// This trial's own seed, derived from the master seed and `iteration`.
    pub seed: u64,
    pub profile: String,
    /// journal_mode in force (read back), not merely requested.
    pub journal_mode: String,
    /// synchronous in force (read back).
    pub synchronous: String,
    pub connections: u32,
    pub processes: u32,
    pub workload: String,
    pub fault: String,
    pub kill_point: String,
    pub acked_commits: u64,
    pub recovered_commits: u64,
    pub outcome: Outcome,
    pub verdict: Verdict,
    pub detail: String,
    pub busy_errors: u64,
    pub pragma_fallback: String,
    pub duration_us: u64,
    pub sqlite_version: String,
    /// Power loss on the file-operation recorder: distinct crash states of the trial's recording
    /// checked (0 for a fault that checks one state). Columns added at the end, defaulted, so an
    /// older `trials.csv` still reads.
    #[serde(default)]
    pub crash_states: u64,
    /// Of those, states whose outcome is damage (anything but intact: a lost commit included).
    #[serde(default)]
    pub damaged_states: u64,
    /// Of those, states whose cut fell inside a WAL checkpoint (after its first write to the
    /// database file, before the sync that ends it).
    #[serde(default)]
    pub cuts_in_checkpoint: u64,
}

/// One crash state checked: a row of `OUT/crash-states.csv` (exec under a fault).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateRow {
    pub iteration: u64,
    pub seed: u64,
    pub fault: String,
    /// `cut=op 123/456 (sync 17) lose-all`.
    pub cut: String,
    /// The content hash that made the state distinct (paths and bytes).
    pub state_hash: String,
    /// The cut fell inside a WAL checkpoint (after its first write to the database file, before
    /// the sync that ends it).
    pub in_checkpoint: bool,
    /// The highest commit acknowledged before the cut.
    pub acked_commits: u64,
    pub recovered_commits: u64,
    pub outcome: Outcome,
    pub verdict: Verdict,
    pub detail: String,
}

/// What a slot sends the parent for one finished trial: its row and, for exec under a fault, the
/// rows of the crash states it checked. The parent, the only writer of OUT, appends the states to
/// `crash-states.csv` before the trial's row (which makes the trial finished for `--resume`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    pub record: TrialRecord,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<StateRow>,
}

impl From<TrialRecord> for Finished {
    fn from(record: TrialRecord) -> Finished {
        Finished {
            record,
            states: Vec::new(),
        }
    }
}

#[cfg(test)]
impl TrialRecord {
    /// A plain row for tests: profile, outcome and verdict as given, everything else fixed.
    pub(crate) fn for_test(profile: &str, outcome: Outcome, verdict: Verdict) -> TrialRecord {
        TrialRecord {
            iteration: 0,
            seed: 1,
            profile: profile.into(),
            journal_mode: "wal".into(),
            synchronous: "full".into(),
            connections: 1,
            processes: 1,
            workload: "inserts".into(),
            fault: "sigkill".into(),
            kill_point: String::new(),
            acked_commits: 2,
            recovered_commits: 2,
            outcome,
            verdict,
            detail: String::new(),
            busy_errors: 1,
            pragma_fallback: String::new(),
            duration_us: 100,
            sqlite_version: String::new(),
            crash_states: 0,
            damaged_states: 0,
            cuts_in_checkpoint: 0,
        }
    }
}
