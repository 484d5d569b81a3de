//! Failure evidence: the crashed database files as the writers left them, saved before recovery
//! touches anything, with a note that says how to reproduce the trial.

use std::path::{Path, PathBuf};

use serde::Serialize;
use torture_workloads::Profile;

use crate::outcome::TrialRecord;

/// The suffixes of the files that make up one database on disk.
pub const SIDECARS: [&str; 4] = ["", "-wal", "-shm", "-journal"];

/// The database and its sidecar files, read into memory before recovery.
pub struct Snapshot {
    files: Vec<(String, Vec<u8>)>,
}

impl Snapshot {
    /// Reads every file of the database that exists. Cheap on tmpfs: a few small reads.
    pub fn take(db: &Path) -> Snapshot {
        let mut files = Vec::new();
        for suffix in SIDECARS {
            let path = with_suffix(db, suffix);
            if let Ok(bytes) = std::fs::read(&path) {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push((name, bytes));
            }
        }
        Snapshot { files }
    }
}

/// `db` with `suffix` appended to its file name (`x.db` → `x.db-wal`).
pub fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// What `OUT/failures/<iteration>/trial.json` holds: enough to re-run the trial alone.
#[derive(Serialize)]
struct TrialNote<'a> {
    record: &'a TrialRecord,
    master_seed: u64,
    profile_settings: &'a Profile,
    command_line: &'a str,
    reproduce: String,
}

/// Writes the snapshot and the note into `failures_dir/<iteration>/`.
pub fn save(
    failures_dir: &Path,
    snapshot: &Snapshot,
    record: &TrialRecord,
    profile: &Profile,
    master_seed: u64,
    command_line: &str,
) -> std::io::Result<PathBuf> {
    let dir = failures_dir.join(record.iteration.to_string());
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in &snapshot.files {
        std::fs::write(dir.join(name), bytes)?;
    }
    let note = TrialNote {
        record,
        master_seed,
        profile_settings: profile,
        command_line,
        reproduce: format!(
            "the trial's seed is {}; re-run the whole run with: {command_line}",
            record.seed
        ),
    };
    let json = serde_json::to_string_pretty(&note).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("trial.json"), json)?;
    Ok(dir)
}
