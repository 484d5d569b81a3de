//! Reading result folders back: one or several `trials.csv` (shards of one run, or several runs)
//! merged into one list of trials, with errors that name the file, the line and the fix.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::options::RunSpecFile;
use crate::output::trials_csv;
use crate::trial::outcome::TrialRecord;

/// Why results could not be loaded. Each message is one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no results given; pass one or more result folders or trials.csv files")]
    NoInputs,
    #[error(
        "{0}: no such file or folder; pass a result folder (`torture --out`) or its trials.csv"
    )]
    NotFound(PathBuf),
    #[error(
        "{0} has no trials.csv; pass the folder a run wrote (`torture --out`) or a trials.csv"
    )]
    NoTrialsCsv(PathBuf),
    #[error("cannot read {path}: {reason}; check that it exists and is readable")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}; this is not a trials.csv row of this torture version, or the file was edited: fix or delete that line")]
    Malformed {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path} is not a trials.csv: its header lacks {missing}; pass a trials.csv that torture wrote")]
    NotTrialsCsv { path: PathBuf, missing: String },
    #[error("trial {iteration} appears twice with different rows, in {first} and in {second}; these are not shards of one run: report them separately")]
    Conflict {
        iteration: u64,
        first: Source,
        second: Source,
    },
}

/// Where a row was read: file and line, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub line: u64,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// Reads every input (a result folder, whose `trials.csv` is read, or a `trials.csv` itself) and
/// merges them, sorted by (workload, fault, iteration). A trial found twice with the same row is kept once, so
/// overlapping shards or the same folder given twice are harmless; a trial found twice with
/// different rows is an error, because the report would otherwise mix two runs silently.
pub fn load(inputs: &[PathBuf]) -> Result<Vec<TrialRecord>, ReportError> {
    if inputs.is_empty() {
        return Err(ReportError::NoInputs);
    }
    // A trial is identified by its run's workload and fault and its index: runs of other workloads
    // (the nightly's) share indices without being the same trials.
    type Key = (String, String, u64);
    let mut by_iteration: BTreeMap<Key, (TrialRecord, Source)> = BTreeMap::new();
    for input in inputs {
        let path = trials_path(input)?;
        for (record, source) in read_rows(&path)? {
            let key = (
                record.workload.clone(),
                record.fault.clone(),
                record.iteration,
            );
            match by_iteration.get(&key) {
                None => {
                    by_iteration.insert(key, (record, source));
                }
                Some((seen, _)) if *seen == record => {}
                Some((_, first)) => {
                    return Err(ReportError::Conflict {
                        iteration: record.iteration,
                        first: first.clone(),
                        second: source,
                    })
                }
            }
        }
    }
    Ok(by_iteration.into_values().map(|(r, _)| r).collect())
}

/// The run settings next to an input (a result folder's `run.json`, or the one beside a trials.csv).
fn spec_of(input: &Path) -> Option<RunSpecFile> {
    let dir = if input.is_dir() {
        input
    } else {
        input.parent()?
    };
    // A regular file, capped: a results folder is data (a FIFO or /dev/zero there never ends).
    let text = crate::output::out_dir::read_data_text(
        &dir.join("run.json"),
        crate::output::out_dir::MAX_NOTE_BYTES,
    )
    .ok()?;
    serde_json::from_str(&text).ok()
}

/// Refuses to pool shards of different runs: two inputs of one workload and fault, at least one a
/// `--partition` shard, with different master seeds (their trial indices would not collide, so
/// `load` could not tell). One line, as `merge` says it.
pub fn check_one_run_per_shard_set(inputs: &[PathBuf]) -> Result<(), String> {
    let specs: Vec<(&PathBuf, RunSpecFile)> = inputs
        .iter()
        .filter_map(|i| spec_of(i).map(|s| (i, s)))
        .collect();
    for (i, (a, sa)) in specs.iter().enumerate() {
        for (b, sb) in &specs[i + 1..] {
            let shards = sa.partition.is_some() || sb.partition.is_some();
            if shards && sa.workload == sb.workload && sa.fault == sb.fault && sa.seed != sb.seed {
                return Err(format!(
                    "{} and {} are shards of different runs (seed {} vs {}); report the shards of one run together, or merge each run first",
                    a.display(),
                    b.display(),
                    sa.seed,
                    sb.seed
                ));
            }
        }
    }
    Ok(())
}

/// One note per input that `merge --partial` made, saying what it lacks.
pub fn partial_notes(inputs: &[PathBuf]) -> Vec<String> {
    inputs
        .iter()
        .filter_map(|i| spec_of(i).and_then(|s| s.partial).map(|p| (i, p)))
        .map(|(i, p)| format!("{} is {p}", i.display()))
        .collect()
}

fn trials_path(input: &Path) -> Result<PathBuf, ReportError> {
    if input.is_dir() {
        let path = input.join("trials.csv");
        if path.is_file() {
            Ok(path)
        } else {
            Err(ReportError::NoTrialsCsv(input.to_path_buf()))
        }
    } else if input.is_file() {
        Ok(input.to_path_buf())
    } else if input.exists() {
        // A FIFO, `/dev/zero` or `/dev/urandom` would never end, or grow without bound.
        Err(ReportError::Unreadable {
            path: input.to_path_buf(),
            reason: "not a regular file; give a results folder or its trials.csv".into(),
        })
    } else {
        Err(ReportError::NotFound(input.to_path_buf()))
    }
}

/// Like [`trials_csv::read`], but keeps each row's line number for error messages and checks the
/// header first, so a wrong file fails with "missing column" rather than a puzzle on line 2.
fn read_rows(path: &Path) -> Result<Vec<(TrialRecord, Source)>, ReportError> {
    let unreadable = |e: &dyn fmt::Display| ReportError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| unreadable(&e))?;
    let headers = reader
        .headers()
        .map_err(|e| csv_error(path, &e, 1))?
        .clone();
    let missing: Vec<&str> = trials_csv::header()
        .into_iter()
        .filter(|h| !trials_csv::ADDED_LATER.contains(h))
        .filter(|h| !headers.iter().any(|x| x == *h))
        .collect();
    if !missing.is_empty() {
        return Err(ReportError::NotTrialsCsv {
            path: path.to_path_buf(),
            missing: missing.join(", "),
        });
    }
    let mut rows = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| csv_error(path, &e, 0))?;
        let line = row.position().map_or(0, |p| p.line());
        let record: TrialRecord = row
            .deserialize(Some(&headers))
            .map_err(|e| csv_error(path, &e, line))?;
        let source = Source {
            path: path.to_path_buf(),
            line,
        };
        rows.push((record, source));
    }
    Ok(rows)
}

/// A csv error as a one-line [`ReportError`], without the csv crate's own position prefix (the
/// message already carries the line).
fn csv_error(path: &Path, e: &csv::Error, line: u64) -> ReportError {
    let line = e.position().map_or(line, |p| p.line());
    let reason = match e.kind() {
        csv::ErrorKind::Io(io) => {
            return ReportError::Unreadable {
                path: path.to_path_buf(),
                reason: io.to_string(),
            }
        }
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
        _ => e.to_string(),
    };
    ReportError::Malformed {
        path: path.to_path_buf(),
        line,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::report::tests::rec;
    use crate::output::TrialsCsv;
    use crate::trial::outcome::{Outcome, Verdict};

    fn write_run(dir: &Path, records: &[TrialRecord]) {
        std::fs::create_dir_all(dir).unwrap();
        let mut csv = TrialsCsv::create(&dir.join("trials.csv")).unwrap();
        for r in records {
            csv.append(r).unwrap();
        }
    }

    #[test]
    fn merges_shards_sorted_and_counts_identical_duplicates_once() {
        let d = tempfile::tempdir().unwrap();
        let a = rec(0, "wal", Outcome::Intact, Verdict::Ok);
        let b = rec(1, "wal", Outcome::Corrupt, Verdict::Violation);
        let c = rec(2, "off", Outcome::Intact, Verdict::Ok);
        write_run(&d.path().join("s1"), &[c.clone(), a.clone()]);
        write_run(&d.path().join("s2"), &[b.clone(), a.clone()]);
        let inputs = vec![
            d.path().join("s1"),
            d.path().join("s2").join("trials.csv"),
            d.path().join("s1"),
        ];
        assert_eq!(load(&inputs).unwrap(), vec![a, b, c]);
    }

    #[test]
    fn conflicting_duplicates_name_both_files() {
        let d = tempfile::tempdir().unwrap();
        write_run(
            &d.path().join("r1"),
            &[rec(7, "wal", Outcome::Intact, Verdict::Ok)],
        );
        write_run(
            &d.path().join("r2"),
            &[rec(7, "wal", Outcome::LostCommit, Verdict::Violation)],
        );
        let err = load(&[d.path().join("r1"), d.path().join("r2")]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ReportError::Conflict { iteration: 7, .. }));
        assert!(
            msg.contains("r1/trials.csv:2") && msg.contains("r2/trials.csv:2"),
            "{msg}"
        );
        assert_eq!(msg.lines().count(), 1);
    }

    #[test]
    fn errors_are_one_line_and_point_at_the_problem() {
        let d = tempfile::tempdir().unwrap();
        let missing = load(&[d.path().join("nope")]).unwrap_err();
        assert!(matches!(missing, ReportError::NotFound(_)), "{missing}");
        let empty_dir = load(&[d.path().to_path_buf()]).unwrap_err();
        assert!(
            matches!(empty_dir, ReportError::NoTrialsCsv(_)),
            "{empty_dir}"
        );
        assert!(matches!(load(&[]), Err(ReportError::NoInputs)));

        // A good row, then one with a bad outcome on line 3.
        let run = d.path().join("bad");
        write_run(&run, &[rec(0, "wal", Outcome::Intact, Verdict::Ok)]);
        let path = run.join("trials.csv");
        let mut text = std::fs::read_to_string(&path).unwrap();
        let row = text
            .lines()
            .nth(1)
            .unwrap()
            .replace(",intact,", ",exploded,");
        text.push_str(&row.replacen('0', "1", 1));
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        let err = load(std::slice::from_ref(&run)).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ReportError::Malformed { line: 3, .. }),
            "{msg}"
        );
        assert!(msg.contains("exploded") && !msg.contains('\n'), "{msg}");

        // A row cut short.
        std::fs::write(
            &path,
            format!("{}\n1,2,3\n", trials_csv::header().join(",")),
        )
        .unwrap();
        let msg = load(std::slice::from_ref(&path)).unwrap_err().to_string();
        let fields = trials_csv::header().len();
        assert!(
            msg.contains(&format!(":2: 3 fields where the header has {fields}")),
            "{msg}"
        );

        // Not a trials.csv at all.
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        let msg = load(&[path]).unwrap_err().to_string();
        assert!(msg.contains("header lacks iteration, seed,"), "{msg}");
    }
}
