//! Failure evidence: the crashed database files as the writers left them, saved before recovery
//! touches anything, with a note that says how to reproduce the trial.

use std::path::{Path, PathBuf};

use serde::Serialize;
use torture_workloads::Profile;

use crate::options::RunSpec;
use crate::output::out_dir::write_no_follow;
use crate::trial::outcome::TrialRecord;

/// The suffixes of the files that make up one database on disk.
pub const SIDECARS: [&str; 4] = ["", "-wal", "-shm", "-journal"];

/// The database and its sidecar files as the writers left them.
///
/// Recovery can change only two things: the `-shm` (rebuilt from the WAL) and, when a hot rollback
/// journal exists, the database and the journal (rolled back, then deleted). Those are read into
/// memory before the oracle runs. The oracle only reads and closes without checkpointing, so the
/// database and `-wal` of every other trial are still as the writers left them afterwards, and are
/// read then, only for trials that failed. This keeps the snapshot off the hot path.
pub struct Snapshot {
    files: Vec<(String, Vec<u8>)>,
}

impl Snapshot {
    /// Reads what recovery of `db` may change. Call before the oracle opens it.
    pub fn before_recovery(db: &Path) -> Snapshot {
        let hot_journal = std::fs::metadata(with_suffix(db, "-journal")).is_ok_and(|m| m.len() > 0);
        let mut snap = Snapshot { files: Vec::new() };
        for suffix in SIDECARS {
            if suffix == "-shm" || hot_journal {
                snap.add(db, suffix);
            }
        }
        snap
    }

    /// Adds the files recovery did not change. Call after the oracle, only to save evidence.
    pub fn complete(&mut self, db: &Path) {
        for suffix in SIDECARS {
            let name = file_name(&with_suffix(db, suffix));
            if !self.files.iter().any(|(n, _)| *n == name) {
                self.add(db, suffix);
            }
        }
    }

    fn add(&mut self, db: &Path, suffix: &str) {
        let path = with_suffix(db, suffix);
        if let Ok(bytes) = std::fs::read(&path) {
            self.files.push((file_name(&path), bytes));
        }
    }

    /// File names and sizes, for tests and notes.
    pub fn sizes(&self) -> Vec<(String, usize)> {
        self.files
            .iter()
            .map(|(n, b)| (n.clone(), b.len()))
            .collect()
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `db` with `suffix` appended to its file name (`x.db` → `x.db-wal`).
pub fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// What `OUT/failures/<iteration>/trial.json` holds: enough to re-run the trial alone.
#[derive(Serialize, serde::Deserialize)]
pub struct TrialNote {
    pub record: TrialRecord,
    pub master_seed: u64,
    pub profile_settings: Profile,
    pub command_line: String,
    pub reproduce: String,
    /// The whole run's settings: what `torture replay` re-creates the trial from.
    pub run: RunSpec,
}

/// Writes the snapshot and the note into `failures_dir/<iteration>/`.
pub fn save(
    failures_dir: &Path,
    snapshot: &mut Snapshot,
    db: &Path,
    record: &TrialRecord,
    profile: &Profile,
    spec: &RunSpec,
    op_log: Option<&Path>,
) -> std::io::Result<PathBuf> {
    let dir = failures_dir.join(record.iteration.to_string());
    std::fs::create_dir_all(&dir)?;
    snapshot.complete(db);
    // Written without following a link planted in OUT.
    for (name, bytes) in &snapshot.files {
        write_no_follow(&dir.join(name), bytes)?;
    }
    if let Some(log) = op_log {
        // The operation log up to the crash: what each write replaced, for a post-mortem.
        crate::output::out_dir::copy_no_follow(log, &dir.join("ops.log"))?;
    }
    let note = TrialNote {
        record: record.clone(),
        master_seed: spec.seed,
        profile_settings: profile.clone(),
        command_line: spec.command_line.clone(),
        reproduce: format!(
            "torture replay {} (re-runs this trial alone); the whole run: {}",
            crate::output::reproduce::quote(&dir.display().to_string()),
            crate::output::reproduce::command(&spec.command_line, spec.seed).0
        ),
        run: spec.clone(),
    };
    let json = serde_json::to_string_pretty(&note).map_err(std::io::Error::other)?;
    // Whole or absent: a full OUT never leaves a torn note that looks like evidence.
    crate::output::out_dir::write_whole(&dir.join("trial.json"), json.as_bytes())?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use torture_workloads::Workload;

    #[test]
    fn a_copied_shm_is_the_one_before_recovery() {
        let d = tempfile::tempdir().unwrap();
        let db = crate::verify::oracle::crashed_wal_database(d.path(), 10);
        let shm_before = std::fs::read(with_suffix(&db, "-shm")).unwrap();
        let mut snap = Snapshot::before_recovery(&db);
        let _ = crate::verify::oracle::recover_and_verify(&db, Workload::Inserts, &BTreeMap::new());
        snap.complete(&db);
        let shm = &snap
            .files
            .iter()
            .find(|(n, _)| n == "trial.db-shm")
            .unwrap()
            .1;
        assert!(shm == &shm_before, "the -shm as it was before recovery");
    }
}
