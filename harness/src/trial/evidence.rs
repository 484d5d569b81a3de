//! Failure evidence: the crashed database files as the writers left them, saved before recovery
//! touches anything, with a note that says how to reproduce the trial.

use std::path::{Path, PathBuf};

use serde::Serialize;
use torture_workloads::Profile;

use crate::config::RunConfig;
use crate::engine::{with_suffix, SIDECARS};
use crate::fsio::write_no_follow;
use crate::verify::outcome::TrialRecord;

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

/// What `OUT/failures/<iteration>/trial.json` holds: enough to re-run the trial alone.
#[derive(Serialize, serde::Deserialize)]
pub struct TrialNote {
    pub record: TrialRecord,
    pub master_seed: u64,
    pub profile_settings: Profile,
    pub command_line: String,
    pub reproduce: String,
    /// The whole run's settings: what `torture replay` re-creates the trial from.
    pub run: RunConfig,
}

/// Writes the snapshot and the note into `failures_dir/<iteration>/`.
pub fn save(
    failures_dir: &Path,
    snapshot: &mut Snapshot,
    db: &Path,
    record: &TrialRecord,
    profile: &Profile,
    spec: &RunConfig,
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
        crate::fsio::copy_no_follow(log, &dir.join("ops.log"))?;
    }
    let note = TrialNote {
        record: record.clone(),
        master_seed: spec.seed,
        profile_settings: profile.clone(),
        command_line: spec.command_line.clone(),
        reproduce: format!(
            "torture replay {} (re-runs this trial alone); the whole run: {}",
            crate::reproduce::quote(&dir.display().to_string()),
            crate::reproduce::command(&spec.command_line, spec.seed).0
        ),
        run: spec.clone(),
    };
    let json = serde_json::to_string_pretty(&note).map_err(std::io::Error::other)?;
    // Whole or absent: a full OUT never leaves a torn note that looks like evidence.
    crate::fsio::write_whole(&dir.join("trial.json"), json.as_bytes())?;
    Ok(dir)
}

/// Files of an evidence folder a re-check does without: the program's output and the operation
/// log, for a person to read. A cap drops these first.
const FOR_READING: [&str; 4] = ["stdout-tail", "stderr.txt", "ops.log", "faultfs.log.lock"];

fn for_reading(relative: &str) -> bool {
    FOR_READING.iter().any(|p| relative.starts_with(p))
}

/// What [`cap_folder`] did to an evidence folder.
#[derive(Debug, Default)]
pub struct Capped {
    /// Bytes left in the folder.
    pub kept_bytes: u64,
    /// Bytes removed.
    pub dropped_bytes: u64,
    /// `name (size)` of each file removed, as `trial.json`'s `dropped` lists them.
    pub dropped: Vec<String>,
    /// Even the note was over the cap: the whole folder went.
    pub removed: bool,
}

/// Every regular file under `dir`, as a path relative to it, with its size.
fn files_under(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, u64)>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir.join(rel))? {
        let e = e?;
        let meta = e.path().symlink_metadata()?;
        let r = rel.join(e.file_name());
        if meta.is_dir() {
            files_under(dir, &r, out)?;
        } else if meta.is_file() {
            out.push((r, meta.len()));
        }
    }
    Ok(())
}

/// The bytes of regular files under `dir` (0 when it is gone).
pub fn folder_bytes(dir: &Path) -> u64 {
    let mut files = Vec::new();
    let _ = files_under(dir, Path::new(""), &mut files);
    files.iter().map(|(_, n)| n).sum()
}

/// Brings the evidence folder `dir` under `cap` bytes (`--max-evidence-bytes`): the files a
/// re-check does without go first, then the largest; `trial.json` stays and lists what went
/// (`"dropped": ["trial.db-wal (812.0 MiB)"]`), so `torture replay` can tell a folder it cannot
/// re-check. When even the note is over the cap, the folder goes.
pub fn cap_folder(dir: &Path, cap: u64) -> std::io::Result<Capped> {
    let mut files = Vec::new();
    files_under(dir, Path::new(""), &mut files)?;
    let mut c = Capped {
        kept_bytes: files.iter().map(|(_, n)| n).sum(),
        ..Capped::default()
    };
    if c.kept_bytes <= cap {
        return Ok(c);
    }
    let note = Path::new("trial.json");
    files.retain(|(r, _)| r != note);
    files.sort_by_key(|(r, n)| (!for_reading(&r.to_string_lossy()), std::cmp::Reverse(*n)));
    for (r, n) in files {
        if c.kept_bytes <= cap {
            break;
        }
        std::fs::remove_file(dir.join(&r))?;
        c.kept_bytes -= n;
        c.dropped_bytes += n;
        c.dropped
            .push(format!("{} ({})", r.display(), crate::fsio::human(n)));
    }
    let note_path = dir.join(note);
    let noted = std::fs::read_to_string(&note_path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    // `trial.json` (a few KB) stays whatever the cap: the row's evidence is never gone without
    // a word, and the note lists what was dropped. Only a folder without a readable note goes.
    match noted {
        Some(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.insert("dropped".into(), serde_json::json!(c.dropped));
            }
            let text = serde_json::to_string_pretty(&v).map_err(std::io::Error::other)?;
            crate::fsio::write_whole(&note_path, text.as_bytes())?;
            c.kept_bytes = folder_bytes(dir);
        }
        _ => {
            std::fs::remove_dir_all(dir)?;
            c.dropped_bytes += c.kept_bytes;
            c.kept_bytes = 0;
            c.removed = true;
        }
    }
    Ok(c)
}

/// Why a note's folder cannot be re-checked: the files a cap dropped that a re-check needs
/// (`None` when it dropped none, or only files for reading).
pub fn dropped_for_recheck(note: &serde_json::Value) -> Option<String> {
    let needed: Vec<&str> = note
        .get("dropped")?
        .as_array()?
        .iter()
        .filter_map(|d| d.as_str())
        .filter(|d| !for_reading(d))
        .collect();
    (!needed.is_empty()).then(|| needed.join(", "))
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

    #[test]
    fn a_capped_folder_drops_what_a_recheck_does_without_first_and_says_so() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("7");
        std::fs::create_dir_all(dir.join("crash-state")).unwrap();
        std::fs::write(dir.join("trial.json"), r#"{"record": {}}"#).unwrap();
        std::fs::write(dir.join("stdout-tail.txt"), vec![b'x'; 3000]).unwrap();
        std::fs::write(dir.join("crash-state/trial.db"), vec![0u8; 8192]).unwrap();
        std::fs::write(dir.join("crash-state/trial.db-wal"), vec![0u8; 40000]).unwrap();
        // Under the cap: nothing moves.
        let c = cap_folder(&dir, 1 << 20).unwrap();
        assert!(c.dropped.is_empty() && !c.removed);
        // The tail goes first (for reading), then the largest database file.
        let c = cap_folder(&dir, 10000).unwrap();
        assert_eq!(c.dropped.len(), 2, "{:?}", c.dropped);
        assert!(
            c.dropped[0].starts_with("stdout-tail.txt"),
            "{:?}",
            c.dropped
        );
        assert!(
            c.dropped[1].starts_with("crash-state/trial.db-wal"),
            "{:?}",
            c.dropped
        );
        assert!(dir.join("crash-state/trial.db").is_file());
        assert_eq!(c.kept_bytes, folder_bytes(&dir));
        let note: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("trial.json")).unwrap())
                .unwrap();
        assert_eq!(note["dropped"].as_array().unwrap().len(), 2);
        assert!(dropped_for_recheck(&note).unwrap().contains("trial.db-wal"));
        // A cap smaller than the note: everything else goes, the note stays and says so.
        let c = cap_folder(&dir, 10).unwrap();
        assert!(!c.removed && dir.join("trial.json").is_file(), "{c:?}");
        assert!(!dir.join("crash-state/trial.db").exists());
        let note: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("trial.json")).unwrap())
                .unwrap();
        assert!(dropped_for_recheck(&note).unwrap().contains("trial.db"));
        // A folder without a readable note goes whole.
        std::fs::write(dir.join("trial.json"), "not json").unwrap();
        std::fs::write(dir.join("stdout-tail.txt"), vec![b'x'; 3000]).unwrap();
        let c = cap_folder(&dir, 10).unwrap();
        assert!(c.removed && !dir.exists());
        let only_tail = serde_json::json!({"dropped": ["stdout-tail.txt (3 KiB)"]});
        assert_eq!(dropped_for_recheck(&only_tail), None);
    }
}
