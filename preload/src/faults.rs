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
