//! SQLite's documented promises (`shared/SQLITE-PROMISES.md`, sqlite.org pragma.html) as a table: what a
//! profile may lose under each fault. An outcome the table rules out is a violation.

use serde::{Deserialize, Serialize};
use torture_workloads::JournalMode;

use crate::verify::outcome::{Outcome, Verdict};

/// The fault a trial was subjected to (`--fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL of the writer processes by their parent, at a seeded point.
    Sigkill,
    /// A SIGKILL just before an I/O operation: every operation boundary of one recorded run, with
    /// everything written kept (the page cache survives a process crash).
    KillAtOp,
    /// A power cut at the N-th I/O operation: what was not made durable is kept, lost or torn.
    PowerLoss,
    /// The N-th I/O operation fails with EIO; the writer carries on; then every crash state.
    IoError,
    /// The N-th operation of the chosen kind (`--crash-at`, default any; exec: writes) fails with
    /// ENOSPC, and every later one of that kind; then every crash state.
    DiskFull,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Sigkill,
        Fault::KillAtOp,
        Fault::PowerLoss,
        Fault::IoError,
        Fault::DiskFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Sigkill => "sigkill",
            Fault::KillAtOp => "kill-at-op",
            Fault::PowerLoss => "power-loss",
            Fault::IoError => "io-error",
            Fault::DiskFull => "disk-full",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Faults placed at the N-th I/O operation (on the file-operation recorder), not by a timer.
    pub fn is_op_indexed(self) -> bool {
        self != Fault::Sigkill
    }

    /// The fault one crash state of a recording is judged under: a state that kept everything
    /// (`keep_all`) is what a process crash leaves (the page cache survives it), judged by the
    /// application-crash promise (kill-at-op; after an injected error, that error's); any other
    /// state is a power cut.
    pub fn judged_as(self, keep_all: bool) -> Fault {
        match (self, keep_all) {
            (Fault::KillAtOp, _) => Fault::KillAtOp,
            (Fault::IoError | Fault::DiskFull, true) => self,
            _ => Fault::PowerLoss,
        }
    }
}

/// Judges one outcome. `journal_mode` and `synchronous` are the values in force (after read-back),
/// or the requested ones when no writer lived long enough to report them. `hardware_as_documented`
/// is false when the power-loss model breaks an assumption SQLite makes of the disk on purpose
/// (a disk that ignores fsync, no powersafe overwrite): SQLite promises nothing then.
pub fn judge(
    outcome: Outcome,
    journal_mode: &str,
    synchronous: &str,
    fault: Fault,
    hardware_as_documented: bool,
) -> Verdict {
    if outcome == Outcome::Intact {
        return Verdict::Ok;
    }
    if outcome == Outcome::WorkerError {
        return Verdict::LabError;
    }
    let mode = JournalMode::parse(journal_mode);
    // "journal_mode=OFF/MEMORY ... will very likely go corrupt" if the process dies mid-transaction.
    if mode.is_some_and(|m| !m.is_crash_safe()) {
        return Verdict::Expected;
    }
    match fault {
        // "Transactions are durable across application crashes regardless of the synchronous
        // setting or journal mode." A failed write is reported to the application, which is no
        // licence to lose what was acknowledged.
        Fault::Sigkill | Fault::KillAtOp | Fault::IoError | Fault::DiskFull => Verdict::Violation,
        Fault::PowerLoss => {
            if !hardware_as_documented {
                return Verdict::Expected;
            }
            let wal = mode == Some(JournalMode::Wal);
            match (synchronous, wal) {
                // OFF: "may corrupt" in every journal mode.
                ("off", _) => Verdict::Expected,
                // WAL+NORMAL: consistent, but "recent commits may roll back".
                ("normal", true) if outcome == Outcome::LostCommit => Verdict::Expected,
                // Rollback+NORMAL: "maybe not consistent" (older file systems).
                ("normal", false) => Verdict::Expected,
                // Rollback+FULL: atomic and consistent, but "the last commit may roll back".
                ("full", false) if outcome == Outcome::LostCommit => Verdict::Expected,
                // WAL+FULL, WAL+EXTRA, rollback+EXTRA: ACID; everything else above is a break.
                _ => Verdict::Violation,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAMAGE: [Outcome; 4] = [
        Outcome::LostCommit,
        Outcome::Atomicity,
        Outcome::Corrupt,
        Outcome::OpenFailed,
    ];

    #[test]
    fn under_a_process_crash_only_memory_and_off_may_break() {
        for fault in [
            Fault::Sigkill,
            Fault::KillAtOp,
            Fault::IoError,
            Fault::DiskFull,
        ] {
            for mode in ["delete", "truncate", "persist", "wal"] {
                for sync in ["off", "normal", "full", "extra"] {
                    for o in DAMAGE {
                        assert_eq!(judge(o, mode, sync, fault, true), Verdict::Violation);
                    }
                }
            }
            for mode in ["memory", "off"] {
                assert_eq!(
                    judge(Outcome::Corrupt, mode, "full", fault, true),
                    Verdict::Expected
                );
            }
        }
        assert_eq!(
            judge(Outcome::Intact, "off", "off", Fault::Sigkill, true),
            Verdict::Ok
        );
        assert_eq!(
            judge(Outcome::WorkerError, "wal", "full", Fault::Sigkill, true),
            Verdict::LabError
        );
    }

    #[test]
    fn power_loss_follows_the_documented_synchronous_matrix() {
        let pl = |o, m, s| judge(o, m, s, Fault::PowerLoss, true);
        // WAL: FULL and EXTRA are ACID; NORMAL may lose recent commits but must stay consistent.
        for s in ["full", "extra"] {
            for o in DAMAGE {
                assert_eq!(pl(o, "wal", s), Verdict::Violation, "wal {s} {o}");
            }
        }
        assert_eq!(pl(Outcome::LostCommit, "wal", "normal"), Verdict::Expected);
        assert_eq!(pl(Outcome::Corrupt, "wal", "normal"), Verdict::Violation);
        // Rollback journals: EXTRA is ACID; FULL may lose the last commit; NORMAL may corrupt.
        for o in DAMAGE {
            assert_eq!(pl(o, "delete", "extra"), Verdict::Violation);
            assert_eq!(pl(o, "truncate", "normal"), Verdict::Expected);
            assert_eq!(pl(o, "wal", "off"), Verdict::Expected);
        }
        assert_eq!(pl(Outcome::LostCommit, "delete", "full"), Verdict::Expected);
        assert_eq!(pl(Outcome::Corrupt, "delete", "full"), Verdict::Violation);
        // A disk that breaks SQLite's assumptions voids every promise.
        assert_eq!(
            judge(Outcome::Corrupt, "wal", "full", Fault::PowerLoss, false),
            Verdict::Expected
        );
    }

    #[test]
    fn an_unknown_mode_is_held_to_the_strict_promise() {
        assert_eq!(
            judge(Outcome::Corrupt, "?", "full", Fault::Sigkill, true),
            Verdict::Violation
        );
    }

    #[test]
    fn fault_names_round_trip() {
        for f in Fault::ALL {
            assert_eq!(Fault::parse(f.as_str()), Some(f));
        }
        assert_eq!(Fault::parse("sigterm"), None);
    }
}
