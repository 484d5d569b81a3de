//! The crash states of recorded exec trials: `OUT/crash-states.csv` (one row per state checked),
//! the counts in a trial's detail, the run's summary line, and a failed trial's evidence.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::evidence::{START_DIR, START_INODES};
use super::ExecOptions;
use crate::options::RunOptions;
use crate::stats::wilson_95;
use crate::verify::outcome::{Outcome, TrialRecord, Verdict};

/// The file, in the run's output folder.
pub const FILE: &str = "crash-states.csv";

pub use crate::verify::outcome::StateRow;

/// Outcome counts of a trial's states, for its detail.
pub struct Counts(Vec<(Outcome, usize)>);

pub fn count(rows: &[StateRow]) -> Counts {
    Counts(
        Outcome::ALL
            .iter()
            .map(|&o| (o, rows.iter().filter(|r| r.outcome == o).count()))
            .filter(|&(_, n)| n > 0)
            .collect(),
    )
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none checked");
        }
        let parts: Vec<String> = self.0.iter().map(|(o, n)| format!("{n} {o}")).collect();
        f.write_str(&parts.join(", "))
    }
}

const HEADER: [&str; 11] = [
    "iteration",
    "seed",
    "fault",
    "cut",
    "state_hash",
    "in_checkpoint",
    "acked_commits",
    "recovered_commits",
    "outcome",
    "verdict",
    "detail",
];

/// Appends a trial's rows to `OUT/crash-states.csv` (made with its header by the first trial), in
/// one `write`. Only the parent calls it, as it writes `trials.csv`: the slots send their states
/// with their row.
pub fn append(out_dir: &Path, rows: &[StateRow]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(out_dir.join(FILE))?;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    if file.metadata()?.len() == 0 {
        w.write_record(HEADER)?;
    }
    for r in rows {
        w.serialize(r).map_err(std::io::Error::other)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    (&file).write_all(&bytes)
}

/// For `--resume`: keeps the rows of the trials that have their row in `trials.csv` (`done`), so a
/// trial that runs again — the parent died after its states were written, before its row — has its
/// states once. A torn last row (a full disk, a kill mid-write) goes too. Rewritten whole (a
/// temporary file renamed over it) only when something goes; no file, nothing to do.
pub fn keep_finished(
    out_dir: &Path,
    done: &std::collections::BTreeSet<u64>,
) -> std::io::Result<()> {
    let path = out_dir.join(FILE);
    // Read a row at a time, each at most fsio::MAX_ROW_BYTES: a planted endless row is a torn
    // tail, never a buffer the size of the file (issue 20 R8).
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut kept = Vec::new();
    let mut dropped = false;
    let mut r = csv::Reader::from_reader(crate::fsio::RowCapped::new(file));
    for row in r.deserialize::<StateRow>() {
        match row {
            Ok(row) if done.contains(&row.iteration) => kept.push(row),
            Ok(_) => dropped = true,
            // A disk error is passed on: only a torn or over-long tail is cut.
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() != std::io::ErrorKind::InvalidData) =>
            {
                return Err(std::io::Error::other(e));
            }
            Err(_) => {
                dropped = true;
                break;
            }
        }
    }
    if !dropped {
        return Ok(());
    }
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(HEADER)?;
    for row in &kept {
        w.serialize(row).map_err(std::io::Error::other)?;
    }
    let out = w.into_inner().map_err(|e| e.into_error())?;
    crate::fsio::write_whole(&path, &out)
}

/// Reads the rows back.
pub fn read(out_dir: &Path) -> Result<Vec<StateRow>, String> {
    let path = out_dir.join(FILE);
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = csv::Reader::from_reader(crate::fsio::RowCapped::new(file));
    r.deserialize()
        .collect::<Result<Vec<StateRow>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The run's summary of its crash states: how many were checked, how many distinct by content,
/// what they showed, and the share intact with its 95% interval. `None` when the run has none.
pub fn summary(out_dir: &Path) -> Option<String> {
    let rows = read(out_dir).ok()?;
    if rows.is_empty() {
        return None;
    }
    let n = rows.len() as u64;
    let distinct = rows
        .iter()
        .map(|r| r.state_hash.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let intact = rows.iter().filter(|r| r.outcome == Outcome::Intact).count() as u64;
    let damaged = rows
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::Corrupt | Outcome::OpenFailed | Outcome::Atomicity | Outcome::WrongKey
            )
        })
        .count();
    let lost = rows
        .iter()
        .filter(|r| r.outcome == Outcome::LostCommit)
        .count();
    let violations = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Violation)
        .count();
    let inside = rows.iter().filter(|r| r.in_checkpoint).count();
    let (lo, hi) = wilson_95(intact, n);
    Some(format!(
        "crash states: {n} checked ({distinct} distinct by content) — {intact} intact ({:.2}%, 95% {:.2}–{:.2}%), {lost} lost a commit, {damaged} corrupt, atomicity or open-failed, {violations} violation(s); {inside} cut inside a WAL checkpoint; rows: {}",
        100.0 * intact as f64 / n as f64,
        100.0 * lo,
        100.0 * hi,
        out_dir.join(FILE).display()
    ))
}

/// Saves the worst state of a failed trial: its files in `OUT/failures/<i>/crash-state/`, the
/// recorder's log, the program's stderr, and `trial.json`.
pub fn save_evidence(
    run: &RunOptions,
    record: &TrialRecord,
    exec: &ExecOptions,
    state: &torture_preload::CrashState,
    excused: bool,
    work: &Path,
    recording: &Recorded<'_>,
) -> std::io::Result<()> {
    let dir = run
        .out_dir
        .join("failures")
        .join(record.iteration.to_string());
    std::fs::create_dir_all(&dir)?;
    state.write_to(&dir.join(super::evidence::CRASH_STATE_DIR))?;
    save_start(&dir, recording.start)?;
    for name in ["faultfs.log", "stderr.txt"] {
        let from: PathBuf = work.join(name);
        if from.is_file() {
            std::fs::copy(&from, dir.join(name))?;
        }
    }
    let note = super::evidence::ExecTrialNote {
        kind: "exec".into(),
        record: record.clone(),
        master_seed: run.seed,
        exec: exec.clone(),
        kill_window_us: (0, 0),
        argv: Vec::new(),
        command_line: run.command_line.clone(),
        reproduce: format!(
            "{} (the same seed records the program again; the crash state is in crash-state/, `torture replay` re-checks it)",
            run.command_line
        ),
        acks: recording.acks.to_vec(),
        crash_state: Some(super::evidence::CrashStateNote {
            cut: state.cut.after,
            variant: crate::faults::recorded::variant_name(state.variant),
            state_hash: format!("{:016x}", state.hash),
            hardware_as_documented: exec
                .fault
                .as_ref()
                .is_none_or(|f| f.hardware_as_documented()),
            excused_after_failed_directory_sync: excused,
            instance_leaders: recording.leaders.to_vec(),
            cause: recording.cause.map(str::to_string),
        }),
    };
    // Whole or absent: a full OUT never leaves a torn note that looks like evidence.
    crate::fsio::write_whole(
        &dir.join("trial.json"),
        serde_json::to_string_pretty(&note)
            .map_err(std::io::Error::other)?
            .as_bytes(),
    )
}

/// What a saved crash state needs of its recording beyond the state: the folder it started from
/// (the base every state is rebuilt on), the instances' leaders, the acks per instance, and the
/// cause of its lost commit, if it lost one.
pub struct Recorded<'a> {
    pub start: &'a torture_preload::Snapshot,
    pub leaders: &'a [u32],
    pub acks: &'a [Vec<u64>],
    pub cause: Option<&'a str>,
}

fn save_start(dir: &Path, start: &torture_preload::Snapshot) -> std::io::Result<()> {
    let files: std::collections::BTreeMap<PathBuf, Vec<u8>> = start
        .files
        .iter()
        .map(|(p, f)| (p.clone(), f.data.clone()))
        .collect();
    torture_preload::write_files(&dir.join(START_DIR), &files)?;
    let inodes: std::collections::BTreeMap<String, u64> = start
        .files
        .iter()
        .map(|(p, f)| (p.to_string_lossy().into_owned(), f.ino))
        .collect();
    std::fs::write(
        dir.join(START_INODES),
        serde_json::to_string(&inodes).map_err(std::io::Error::other)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(outcome: Outcome, hash: &str) -> StateRow {
        StateRow {
            iteration: 0,
            seed: 1,
            fault: "power-loss".into(),
            cut: "cut=op 3/9 (sync 1) lose-all".into(),
            state_hash: hash.into(),
            in_checkpoint: false,
            acked_commits: 2,
            recovered_commits: 1,
            outcome,
            verdict: Verdict::Expected,
            detail: "a, \"quoted\"".into(),
        }
    }

    #[test]
    fn rows_round_trip_and_the_summary_counts_distinct_states() {
        let out = tempfile::tempdir().unwrap();
        let rows = vec![row(Outcome::Intact, "a"), row(Outcome::LostCommit, "b")];
        append(out.path(), &rows).unwrap();
        append(out.path(), &rows[..1]).unwrap();
        let back = read(out.path()).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[1], rows[1]);
        let s = summary(out.path()).unwrap();
        assert!(
            s.starts_with("crash states: 3 checked (2 distinct by content)"),
            "{s}"
        );
        assert!(s.contains("1 lost a commit"), "{s}");
        assert_eq!(count(&rows).to_string(), "1 intact, 1 lost-commit");
    }
}
