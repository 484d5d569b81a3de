//! The fault-injection settings the recorder reads, parsed the same way by the recorder and by the
//! lab (which should validate them before starting a program: a bad value is one line naming the
//! fix, exit 2).

/// Which operations `TORTURE_FAULTFS_FAIL_AT` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    Any,
    Write,
    Sync,
    Truncate,
    /// Opens that create or truncate a file.
    Open,
    Unlink,
    Rename,
    Fallocate,
}

/// `TORTURE_FAULTFS_FAIL_AT=<kind>:<n>[:eio|:enospc][:persist]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailAt {
    pub kind: FailKind,
    /// The n-th matching operation (from 1) over every process of the trial.
    pub n: u64,
    /// `libc::EIO` or `libc::ENOSPC`.
    pub errno: i32,
    /// Every later matching operation fails too (a disk that stays full).
    pub persist: bool,
}

const FAIL_AT_HELP: &str = "give <kind>:<n>[:eio|:enospc][:persist] with kind any, write, sync, \
truncate, open, unlink, rename or fallocate and n ≥ 1, e.g. sync:3 or write:10:enospc:persist";

impl std::str::FromStr for FailAt {
    type Err = String;

    fn from_str(s: &str) -> Result<FailAt, String> {
        let bad = || format!("TORTURE_FAULTFS_FAIL_AT={s:?}: {FAIL_AT_HELP}");
        let mut parts = s.trim().split(':');
        let kind = match parts.next().ok_or_else(bad)? {
            "any" => FailKind::Any,
            "write" => FailKind::Write,
            "sync" => FailKind::Sync,
            "truncate" => FailKind::Truncate,
            "open" => FailKind::Open,
            "unlink" => FailKind::Unlink,
            "rename" => FailKind::Rename,
            "fallocate" => FailKind::Fallocate,
            _ => return Err(bad()),
        };
        let n = parts
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(bad)?;
        let mut spec = FailAt {
            kind,
            n,
            errno: libc::EIO,
            persist: false,
        };
        for p in parts {
            match p {
                "eio" => spec.errno = libc::EIO,
                "enospc" => spec.errno = libc::ENOSPC,
                "persist" => spec.persist = true,
                _ => return Err(bad()),
            }
        }
        Ok(spec)
    }
}

/// `TORTURE_FAULTFS_CRASH_AT=<n>`: the sequence number of the op the process group dies instead of.
pub fn parse_crash_at(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!(
                "TORTURE_FAULTFS_CRASH_AT={s:?}: give the op's sequence number, a whole number ≥ 1"
            )
        })
}

/// `TORTURE_FAULTFS_SEED=<u64>`.
pub fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("TORTURE_FAULTFS_SEED={s:?}: give a whole number from 0 to 2^64-1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_at_parses_and_bad_values_name_the_fix() {
        let f: FailAt = "write:10:enospc:persist".parse().unwrap();
        assert_eq!(
            f,
            FailAt {
                kind: FailKind::Write,
                n: 10,
                errno: libc::ENOSPC,
                persist: true
            }
        );
        assert_eq!("sync:3".parse::<FailAt>().unwrap().errno, libc::EIO);
        for bad in ["", "fsync:1", "sync", "sync:0", "sync:x", "sync:1:eperm"] {
            let e = bad.parse::<FailAt>().unwrap_err();
            assert!(e.contains("give <kind>:<n>"), "{bad}: {e}");
        }
        assert!(parse_crash_at("0").is_err());
        assert_eq!(parse_crash_at("17"), Ok(17));
        assert!(parse_seed("-1").is_err());
    }
}

/// Which files an [`OpFilter`] matches, by SQLite's (and DuckDB's) naming of its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFilter {
    Any,
    /// A database file: not a `-wal`, `-shm`, `-journal`, `.wal` or `-mj…` sidecar.
    Db,
    /// `*-wal` (SQLite) or `*.wal` (DuckDB).
    Wal,
    /// `*-journal` or a super-journal (`*-mj…`).
    Journal,
    Shm,
}

impl FileFilter {
    pub fn matches(self, path: &std::path::Path) -> bool {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let wal = name.ends_with("-wal") || name.ends_with(".wal");
        let journal = name.ends_with("-journal") || name.contains("-mj");
        let shm = name.ends_with("-shm");
        match self {
            FileFilter::Any => true,
            FileFilter::Db => !(wal || journal || shm || name.is_empty()),
            FileFilter::Wal => wal,
            FileFilter::Journal => journal,
            FileFilter::Shm => shm,
        }
    }
}

/// A class of operations, written `kind[:file]` — `sync:wal`, `write:db`, `any` — for choosing a
/// kill-at-op cut on a recorded log (`--crash-at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpFilter {
    pub kind: FailKind,
    pub file: FileFilter,
}

impl std::str::FromStr for OpFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<OpFilter, String> {
        let bad = || {
            format!(
                "--crash-at {s:?}: give <kind>[:<file>] with kind any, write, sync, truncate, open, \
                 unlink, rename or fallocate and file any, db, wal, journal or shm, e.g. sync:wal"
            )
        };
        let (kind, file) = s.trim().split_once(':').unwrap_or((s.trim(), "any"));
        let kind = match kind {
            "any" => FailKind::Any,
            "write" => FailKind::Write,
            "sync" => FailKind::Sync,
            "truncate" => FailKind::Truncate,
            "open" => FailKind::Open,
            "unlink" => FailKind::Unlink,
            "rename" => FailKind::Rename,
            "fallocate" => FailKind::Fallocate,
            _ => return Err(bad()),
        };
        let file = match file {
            "any" => FileFilter::Any,
            "db" => FileFilter::Db,
            "wal" => FileFilter::Wal,
            "journal" => FileFilter::Journal,
            "shm" => FileFilter::Shm,
            _ => return Err(bad()),
        };
        Ok(OpFilter { kind, file })
    }
}

impl OpFilter {
    /// Whether a logged op (successful or not) is of this class. Only operations that change what
    /// a disk could hold count: writes, syncs, size changes, creating or truncating opens, unlinks,
    /// renames.
    pub fn matches(&self, op: &crate::log::Op) -> bool {
        use crate::log::OpKind as K;
        let (kind, path) = match &op.kind {
            K::Write { path, .. } => (FailKind::Write, path),
            K::Sync { path, .. } => (FailKind::Sync, path),
            K::Truncate { path, .. } => (FailKind::Truncate, path),
            K::Fallocate { path, .. } => (FailKind::Fallocate, path),
            K::Open {
                path,
                created,
                truncated,
                ..
            } if *created || *truncated => (FailKind::Open, path),
            K::Unlink { path, .. } => (FailKind::Unlink, path),
            K::Rename {
                from: Some(path), ..
            } => (FailKind::Rename, path),
            _ => return false,
        };
        (self.kind == FailKind::Any || self.kind == kind) && self.file.matches(path)
    }

    /// The sequence number of the `n`-th (from 1) matching op of the log: a SIGKILL just before it
    /// leaves `build_state(…, Cut { after: seq - 1 }, Variant::KeepAll, …)`.
    pub fn nth(&self, log: &crate::log::Log, n: u64) -> Option<u64> {
        let n = usize::try_from(n.checked_sub(1)?).ok()?;
        log.ops
            .iter()
            .filter(|o| self.matches(o))
            .nth(n)
            .map(|o| o.seq)
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn filters_parse_and_match_sqlite_and_duckdb_names() {
        let f: OpFilter = "sync:wal".parse().unwrap();
        assert_eq!(f.kind, FailKind::Sync);
        assert!(f.file.matches(std::path::Path::new("x.db-wal")));
        assert!(f.file.matches(std::path::Path::new("x.duckdb.wal")));
        assert!(!f.file.matches(std::path::Path::new("x.db")));
        assert!(FileFilter::Db.matches(std::path::Path::new("x.db")));
        assert!(!FileFilter::Db.matches(std::path::Path::new("x.db-journal")));
        assert_eq!("any".parse::<OpFilter>().unwrap().file, FileFilter::Any);
        let e = "fsync:wal".parse::<OpFilter>().unwrap_err();
        assert!(e.contains("give <kind>[:<file>]"), "{e}");
        assert!("sync:index".parse::<OpFilter>().is_err());
    }
}
