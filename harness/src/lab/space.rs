//! The lab's own disks: telling a full scratch disk (`--dir`) from a verdict about SQLite (free
//! space and sizes are [`crate::fsio`]'s). A writer's SQLITE_FULL or an oracle's SQLITE_IOERR on a disk the lab filled itself is the
//! lab's failure (exit 3), never a broken promise.

use std::path::Path;

use crate::fsio::{free_bytes, human, LOW_SPACE};
use crate::verify::outcome::{Outcome, TrialRecord};
use crate::verify::verdict::Fault;

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
