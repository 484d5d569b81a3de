//! SQLite's documented promises (`shared/SQLITE-PROMISES.md`, sqlite.org pragma.html) as a table: what a
//! profile may lose under each fault. An outcome the table rules out is a violation.

use torture_workloads::JournalMode;

use crate::outcome::{Outcome, Verdict};

/// The fault a trial was subjected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of the writer processes: the page cache survives, so every write() reaches the file.
    SigKill,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::SigKill => "sigkill",
        }
    }
}

/// Judges one outcome. `journal_mode` is the mode in force (after read-back), or the requested one
/// when no writer lived long enough to report it.
pub fn judge(outcome: Outcome, journal_mode: &str, fault: Fault) -> Verdict {
    match outcome {
        Outcome::Intact => Verdict::Ok,
        Outcome::WorkerError => Verdict::LabError,
        _ => match fault {
            // "Transactions are durable across application crashes regardless of the synchronous
            // setting or journal mode" — except OFF and MEMORY, which "will very likely go corrupt"
            // if the process dies mid-transaction.
            Fault::SigKill => match JournalMode::parse(journal_mode) {
                Some(mode) if !mode.is_crash_safe() => Verdict::Expected,
                _ => Verdict::Violation,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_sigkill_only_memory_and_off_may_break() {
        for mode in ["delete", "truncate", "persist", "wal"] {
            for o in [
                Outcome::LostCommit,
                Outcome::Atomicity,
                Outcome::Corrupt,
                Outcome::OpenFailed,
            ] {
                assert_eq!(
                    judge(o, mode, Fault::SigKill),
                    Verdict::Violation,
                    "{mode} {o}"
                );
            }
        }
        for mode in ["memory", "off"] {
            assert_eq!(
                judge(Outcome::Corrupt, mode, Fault::SigKill),
                Verdict::Expected
            );
        }
        assert_eq!(judge(Outcome::Intact, "off", Fault::SigKill), Verdict::Ok);
        assert_eq!(
            judge(Outcome::WorkerError, "wal", Fault::SigKill),
            Verdict::LabError
        );
    }

    #[test]
    fn an_unknown_mode_is_held_to_the_strict_promise() {
        assert_eq!(
            judge(Outcome::Corrupt, "?", Fault::SigKill),
            Verdict::Violation
        );
    }
}
