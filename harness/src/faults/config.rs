//! What a writer process asks of the shim: where to crash, where to log,
//! and the vocabulary (file kinds, operation kinds, filters) shared by the shim, the log and the
//! power-loss reconstruction.

use std::fmt;
use std::str::FromStr;

use rusqlite::ffi;
use serde::{Deserialize, Serialize};

/// What a file is to SQLite, from the flags it was opened with (or, for `xDelete`, from its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    MainDb,
    MainJournal,
    Wal,
    SuperJournal,
    /// Temp databases, temp journals, sub-journals, transient files: passed through, never counted.
    Other,
}

impl FileKind {
    /// The kind of a file opened with `flags` (the `SQLITE_OPEN_*` type bits).
    pub fn from_open_flags(flags: i32) -> FileKind {
        if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
            FileKind::MainDb
        } else if flags & ffi::SQLITE_OPEN_MAIN_JOURNAL != 0 {
            FileKind::MainJournal
        } else if flags & ffi::SQLITE_OPEN_WAL != 0 {
            FileKind::Wal
        } else if flags & ffi::SQLITE_OPEN_SUPER_JOURNAL != 0 {
            FileKind::SuperJournal
        } else {
            FileKind::Other
        }
    }

    /// The kind of a file SQLite asks to delete. `xDelete` gets no flags, only a name, and SQLite
    /// names its sidecars predictably: `<db>-journal`, `<db>-wal`, `<db>-mjXXXXXXXX`.
    pub fn from_deleted_name(name: &str) -> FileKind {
        if name.ends_with("-journal") {
            FileKind::MainJournal
        } else if name.ends_with("-wal") {
            FileKind::Wal
        } else if name
            .rsplit('/')
            .next()
            .is_some_and(|base| base.contains("-mj"))
        {
            FileKind::SuperJournal
        } else {
            FileKind::Other
        }
    }

    /// Only the files that carry the database's durable state are counted.
    pub fn is_counted(self) -> bool {
        self != FileKind::Other
    }
}

/// A counted operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// `xOpen` with `SQLITE_OPEN_CREATE` (the file may or may not have existed).
    Open,
    Write,
    Truncate,
    Sync,
    Delete,
}

impl OpKind {
    pub const ALL: [OpKind; 5] = [
        OpKind::Open,
        OpKind::Write,
        OpKind::Truncate,
        OpKind::Sync,
        OpKind::Delete,
    ];
}

/// Which operations a filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKindFilter {
    #[default]
    Any,
    Write,
    Sync,
    Truncate,
    Delete,
}

/// Which files a filter matches. `Journal` is the rollback journal and the super-journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFilter {
    #[default]
    Any,
    Db,
    Wal,
    Journal,
}

/// A class of counted operations: "every sync of the WAL", "any write", … Written `kind[:file]`,
/// e.g. `any`, `write`, `sync:wal`, `delete:journal`, `any:db`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct OpFilter {
    pub kind: OpKindFilter,
    pub file: FileFilter,
}

impl OpFilter {
    /// Every counted operation.
    pub const ANY: OpFilter = OpFilter {
        kind: OpKindFilter::Any,
        file: FileFilter::Any,
    };

    pub fn new(kind: OpKindFilter, file: FileFilter) -> OpFilter {
        OpFilter { kind, file }
    }

    pub fn matches(self, op: OpKind, file: FileKind) -> bool {
        let kind_ok = match self.kind {
            OpKindFilter::Any => true,
            OpKindFilter::Write => op == OpKind::Write,
            OpKindFilter::Sync => op == OpKind::Sync,
            OpKindFilter::Truncate => op == OpKind::Truncate,
            OpKindFilter::Delete => op == OpKind::Delete,
        };
        let file_ok = match self.file {
            FileFilter::Any => file.is_counted(),
            FileFilter::Db => file == FileKind::MainDb,
            FileFilter::Wal => file == FileKind::Wal,
            FileFilter::Journal => {
                matches!(file, FileKind::MainJournal | FileKind::SuperJournal)
            }
        };
        kind_ok && file_ok
    }
}

impl fmt::Display for OpFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            OpKindFilter::Any => "any",
            OpKindFilter::Write => "write",
            OpKindFilter::Sync => "sync",
            OpKindFilter::Truncate => "truncate",
            OpKindFilter::Delete => "delete",
        };
        let file = match self.file {
            FileFilter::Any => return f.write_str(kind),
            FileFilter::Db => "db",
            FileFilter::Wal => "wal",
            FileFilter::Journal => "journal",
        };
        write!(f, "{kind}:{file}")
    }
}

impl FromStr for OpFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<OpFilter, String> {
        let (kind, file) = s.split_once(':').unwrap_or((s, "any"));
        let kind = match kind.trim() {
            "any" | "" => OpKindFilter::Any,
            "write" => OpKindFilter::Write,
            "sync" => OpKindFilter::Sync,
            "truncate" => OpKindFilter::Truncate,
            "delete" => OpKindFilter::Delete,
            other => {
                return Err(format!(
                    "unknown operation kind {other:?} in {s:?}: use any, write, sync, truncate or delete"
                ))
            }
        };
        let file = match file.trim() {
            "any" | "" => FileFilter::Any,
            "db" => FileFilter::Db,
            "wal" => FileFilter::Wal,
            "journal" => FileFilter::Journal,
            other => {
                return Err(format!(
                    "unknown file {other:?} in {s:?}: use any, db, wal or journal"
                ))
            }
        };
        Ok(OpFilter { kind, file })
    }
}

/// Kill the process (SIGKILL, from inside) just before the `op`-th operation matching `filter`;
/// that operation is not performed. `op` counts from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashAt {
    pub op: u64,
    pub filter: OpFilter,
}

/// The fault layer's per-process configuration. Set it with [`super::configure`] in the writer
/// child, after the fork and before any connection is opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultConfig {
    pub crash_at: Option<CrashAt>,
    /// Seed SQLite's own PRNG (WAL salts, journal nonces, super-journal names) so that the same
    /// workload writes byte-identical files run after run. `None` (or 0) leaves SQLite's randomness
    /// alone. It is process-wide: set it only in writer children.
    pub sqlite_prng_seed: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_round_trip_through_their_text_form() {
        for text in [
            "any",
            "write",
            "sync:wal",
            "delete:journal",
            "any:db",
            "truncate",
        ] {
            let f: OpFilter = text.parse().unwrap();
            assert_eq!(f.to_string(), text);
        }
        assert_eq!("sync:any".parse::<OpFilter>().unwrap().to_string(), "sync");
        assert!("fsync".parse::<OpFilter>().is_err());
        assert!("write:shm".parse::<OpFilter>().is_err());
    }

    #[test]
    fn filters_match_the_files_they_name_and_never_uncounted_files() {
        let sync_wal: OpFilter = "sync:wal".parse().unwrap();
        assert!(sync_wal.matches(OpKind::Sync, FileKind::Wal));
        assert!(!sync_wal.matches(OpKind::Sync, FileKind::MainDb));
        assert!(!sync_wal.matches(OpKind::Write, FileKind::Wal));
        let journal: OpFilter = "any:journal".parse().unwrap();
        assert!(journal.matches(OpKind::Delete, FileKind::SuperJournal));
        assert!(journal.matches(OpKind::Open, FileKind::MainJournal));
        assert!(!OpFilter::ANY.matches(OpKind::Write, FileKind::Other));
    }

    #[test]
    fn deleted_files_are_classified_by_their_sqlite_names() {
        assert_eq!(
            FileKind::from_deleted_name("/d/x.db-journal"),
            FileKind::MainJournal
        );
        assert_eq!(FileKind::from_deleted_name("/d/x.db-wal"), FileKind::Wal);
        assert_eq!(
            FileKind::from_deleted_name("/d/x.db-mj1A2B3C4D5"),
            FileKind::SuperJournal
        );
        assert_eq!(FileKind::from_deleted_name("/d-mj/x.db"), FileKind::Other);
    }
}
