//! The results folder OUT as a whole: the message for a locked OUT, the symlinks refused inside it,
//! and the time a `--duration` run has used (so `--resume` runs what is left). The lock itself and
//! the file primitives (written whole, never through a symlink, read with a size cap: OUT and
//! evidence folders travel, so their files are data) are [`crate::fsio`]'s.

use std::path::Path;
use std::time::Duration;

use crate::fsio::{read_data_text, write_whole, MAX_NOTE_BYTES};

/// The message for a locked OUT.
pub fn in_use(out: &Path) -> String {
    format!(
        "{} is in use by another torture run (or resume, or merge); wait for it to end, or give another --out",
        out.display()
    )
}

/// The parts of OUT that are symlinks: OUT's own entries and those of its evidence folders
/// (`failures/`, `evidence/`, `calibration/`). A run, resume or merge refuses them, so a planted
/// link never sends a write, an append or a delete outside OUT.
pub fn symlinked_parts(out: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![out.to_path_buf()];
    for sub in ["failures", "evidence", "calibration"] {
        let p = out.join(sub);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            folders.push(p.clone());
            for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    folders.push(e.path());
                }
            }
        }
    }
    for dir in folders {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_symlink()) {
                found.push(e.path());
            }
        }
    }
    found.sort();
    found
}

/// The one line for a symlinked part of OUT.
pub fn symlink_refused(out: &Path, part: &Path) -> String {
    format!(
        "{} is a symlink inside the results folder {}; torture never follows one there (it could send writes or deletes outside it): remove it, or copy the folder without links",
        part.display(),
        out.display()
    )
}

const ELAPSED: &str = "elapsed.json";

/// Time a `--duration` run in OUT has used so far (0 when none is recorded).
pub fn elapsed(out: &Path) -> Duration {
    read_data_text(&out.join(ELAPSED), MAX_NOTE_BYTES)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["elapsed_secs"].as_f64())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e12)
        .map_or(Duration::ZERO, Duration::from_secs_f64)
}

/// Records the time used (best effort: a lost update costs at most the time since the last one).
pub fn save_elapsed(out: &Path, used: Duration) {
    let json = serde_json::json!({ "elapsed_secs": used.as_secs_f64() }).to_string();
    let _ = write_whole(&out.join(ELAPSED), json.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_round_trips_and_defaults_to_zero() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(elapsed(d.path()), Duration::ZERO);
        save_elapsed(d.path(), Duration::from_millis(2500));
        assert_eq!(elapsed(d.path()), Duration::from_millis(2500));
    }
}
