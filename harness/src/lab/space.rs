//! The lab's own disks: free space, and telling a full scratch disk (`--dir`) from a verdict about
//! SQLite. A writer's SQLITE_FULL or an oracle's SQLITE_IOERR on a disk the lab filled itself is the
//! lab's failure (exit 3), never a broken promise.

use std::path::Path;

use crate::trial::outcome::{Outcome, TrialRecord};
use crate::verify::verdict::Fault;

/// Below this much free space a disk counts as full: SQLite needs room for a journal, a WAL and
/// its `-shm` (32 KiB), the lab for a copy of the starting database.
pub const LOW_SPACE: u64 = 4 << 20;

/// A run does not start on a scratch disk with less than this free.
pub const START_SPACE: u64 = 1 << 20;

/// Bytes an unprivileged process may still write under `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// `1.2 MiB`, `300 KiB`, `12 B`.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A size as people write it: `1G`, `512M`, `300k`, `2GiB`, `1000000` (bytes); binary units.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => u32::MAX,
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|_| shift != u32::MAX)
        .and_then(|n| n.checked_mul(1u64.checked_shl(shift)?))
        .ok_or_else(|| {
            format!(
                "`{s}` is not a size; give bytes or a number with K, M, G or T, e.g. 500M or 2G"
            )
        })
}

/// True for an I/O error that means "no space": ENOSPC, EDQUOT, EFBIG.
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
    ) || e.to_string().contains("No space left")
}

/// A one-line reason when `record` was decided by the lab's scratch disk running full rather than
/// by SQLite, or `None`. An injected disk-full or I/O error fault makes those errors on purpose, so
/// then only a disk that is really (nearly) full counts.
pub fn scratch_full(record: &TrialRecord, fault: Fault, dir: &Path) -> Option<String> {
    if record.outcome == Outcome::Intact {
        return None;
    }
    let d = &record.detail;
    let says_full = d.contains("disk is full")
        || d.contains("SQLITE_FULL")
        || d.contains("No space left")
        || d.contains("os error 28");
    let io_error = d.contains("SQLITE_IOERR") || d.contains("disk I/O error");
    if !says_full && !io_error {
        return None;
    }
    let free = free_bytes(dir);
    let low = free.is_some_and(|f| f < LOW_SPACE);
    let injected = matches!(fault, Fault::DiskFull | Fault::IoError);
    // A program's own SQLITE_FULL (`max_page_count`, a quota) with gigabytes free is its finding,
    // not the lab's disk: the words count only when the disk is nearly full too (the trial's
    // files may have been cleared since, so "nearly" is generous).
    let nearly_full = free.is_some_and(|f| f < 16 * LOW_SPACE);
    let full = if injected {
        low
    } else {
        (says_full && nearly_full) || low
    };
    full.then(|| {
        format!(
            "the lab's scratch disk is full: --dir {} has {} free (trial {}: {}); a full scratch disk is the lab's failure, not SQLite's",
            dir.display(),
            free.map_or("unknown space".into(), human),
            record.iteration,
            first_error(d)
        )
    })
}

/// What to say of a program that failed with an empty stderr while the scratch disk under `dir` is
/// full: its stderr file is on that disk too, so its own words ("database or disk is full") were
/// lost, and the failure is the lab's full disk. `None` when the disk has room.
pub fn silent_failure_note(dir: &Path) -> Option<String> {
    let free = free_bytes(dir)?;
    (free < LOW_SPACE).then(|| {
        format!(
            "(its stderr is empty: No space left on the scratch disk, {} free)",
            human(free)
        )
    })
}

/// The line for a probe or calibration of a program that failed while the scratch folder `dir`
/// (under `--dir base`) was full, or `None` when the disk has room: then the failure is the
/// program's, as it said.
pub fn scratch_full_before_the_run(dir: &Path, base: &Path, failure: &str) -> Option<String> {
    let free = free_bytes(dir).filter(|&f| f < LOW_SPACE)?;
    Some(format!(
        "the lab's scratch disk is full: --dir {} has {} free ({}); a full scratch disk is the lab's failure, not the program's; free space or point --dir at a larger file system",
        base.display(),
        human(free),
        &failure[..failure.floor_char_boundary(400)]
    ))
}

fn first_error(detail: &str) -> &str {
    let s = detail.split("; ").next().unwrap_or(detail);
    &s[..s.floor_char_boundary(160)]
}

/// Scratch folders hold copies of databases, which may hold a user's data: owner only.
pub fn private_dir() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o700)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(300 << 10), "300 KiB");
        assert_eq!(human(3 << 19), "1.5 MiB");
        assert!(free_bytes(Path::new("/")).is_some());
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("300k"), Ok(300 << 10));
        assert_eq!(parse_bytes("2MiB"), Ok(2 << 20));
        assert_eq!(parse_bytes("0"), Ok(0));
        for bad in ["", "-1", "1.5G", "12X", "99999999999T", "G"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert!(is_no_space(&std::io::Error::from_raw_os_error(
            libc::ENOSPC
        )));
    }
}
