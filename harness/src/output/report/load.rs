//! Reading result folders back: one or several `trials.csv` (shards of one run, or several runs)
//! merged into one list of trials, with errors that name the file, the line and the fix.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::runs::{self, Run};
use crate::options::RunSpecFile;
use crate::output::trials_csv;
use crate::verify::outcome::TrialRecord;

/// Why results could not be loaded. Each message is one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no results given; pass one or more result folders or trials.csv files")]
    NoInputs,
    #[error("every input is a report torture wrote; pass the result folders (`torture --out`) or their trials.csv")]
    OnlyReports,
    #[error(
        "{0}: no such file or folder; pass a result folder (`torture --out`) or its trials.csv"
    )]
    NotFound(PathBuf),
    #[error(
        "{0} has no trials.csv; pass the folder a run wrote (`torture --out`) or a trials.csv"
    )]
    NoTrialsCsv(PathBuf),
    #[error("{0} is neither a folder nor a regular file; pass a result folder (`torture --out`) or its trials.csv")]
    NotAFile(PathBuf),
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
    #[error("trial {iteration} appears twice with different rows, in {first} and in {second}; these are not shards of one run, and no run.json beside them tells their runs apart: report them separately")]
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
/// different rows is an error, because the report would otherwise mix two runs silently. (`merge`
/// reads shards so; `torture report` reads [`load_runs`].)
pub fn load(inputs: &[PathBuf]) -> Result<Vec<TrialRecord>, ReportError> {
    if inputs.is_empty() {
        return Err(ReportError::NoInputs);
    }
    let mut paths = Vec::new();
    for input in inputs {
        if let Input::Trials(path) = classify(input)? {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(ReportError::OnlyReports);
    }
    pool(&paths)
}

/// What `torture report` reads: the inputs as runs (shards of one run joined, separate runs apart,
/// see [`runs`](super::runs)), notes (inputs skipped) and warnings (runs that lack trials).
pub struct Loaded {
    pub runs: Vec<Run>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// Reads every input into the run it belongs to. Within a run, trials are merged as [`load`]
/// merges them; separate runs keep their own trials, so two runs of one command may be compared.
pub fn load_runs(inputs: &[PathBuf]) -> Result<Loaded, ReportError> {
    if inputs.is_empty() {
        return Err(ReportError::NoInputs);
    }
    let mut notes = Vec::new();
    let mut runs: Vec<(Run, Vec<PathBuf>)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for input in inputs {
        let path = match classify(input)? {
            Input::Trials(path) => path,
            Input::OwnReport(path) => {
                notes.push(skipped_note(&path));
                continue;
            }
        };
        // The same trials.csv given twice (as a folder and as a file) is read once.
        if !seen.insert(std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())) {
            continue;
        }
        let spec = spec_of(input);
        match runs
            .iter_mut()
            .find(|(run, _)| runs::joins(run, spec.as_ref()))
        {
            Some((run, paths)) => {
                run.inputs.push(input.clone());
                if let (Some(s), Some(r)) = (&spec, &mut run.spec) {
                    // Shards start on their own machines at their own times: the run started
                    // with its first shard, on a machine only if all shards agree.
                    if s.machine != r.machine {
                        r.machine = None;
                    }
                    if s.started < r.started {
                        r.started = s.started.clone();
                    }
                }
                paths.push(path);
            }
            None => runs.push((
                Run {
                    inputs: vec![input.clone()],
                    spec,
                    records: Vec::new(),
                },
                vec![path],
            )),
        }
    }
    if runs.is_empty() {
        return Err(ReportError::OnlyReports);
    }
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (mut run, paths) in runs {
        run.records = pool(&paths)?;
        warnings.extend(incomplete_note(&run));
        out.push(run);
    }
    Ok(Loaded {
        runs: out,
        notes,
        warnings,
    })
}

/// The trials of `paths`, merged: see [`load`].
fn pool(paths: &[PathBuf]) -> Result<Vec<TrialRecord>, ReportError> {
    // A trial is identified by its run's workload and fault and its index: runs of other workloads
    // (the nightly's) share indices without being the same trials.
    type Key = (String, String, u64);
    let mut by_iteration: BTreeMap<Key, (TrialRecord, Source)> = BTreeMap::new();
    for path in paths {
        for (record, source) in read_rows(path)? {
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

/// A warning for a run with fewer trials than its run.json plans: a shard not given, a shard or
/// run stopped early (resume it), a partial merge. Counted from the trials themselves, so a
/// partial merge whose folder was resumed to completion is not called partial.
fn incomplete_note(run: &Run) -> Option<String> {
    let spec = run.spec.as_ref()?;
    let total = spec.iterations?.saturating_mul(spec.profiles.len() as u64);
    let have = run.records.len() as u64;
    if have >= total {
        return None;
    }
    let folders: Vec<String> = run.inputs.iter().map(|p| p.display().to_string()).collect();
    // A pasteable command, in backticks: the folder quoted (issue 20 S5), and an exec run's
    // program runs again only when the user trusts the folder (S1).
    let resume = |input: &Path| {
        // A trials.csv given as the input is resumed through its folder.
        let folder = match input.parent() {
            // A bare `trials.csv` is in the current folder.
            Some(p) if input.is_file() && p.as_os_str().is_empty() => Path::new("."),
            Some(p) if input.is_file() => p,
            _ => input,
        };
        format!(
            "`torture --resume {}{}`",
            crate::reproduce::quote(&folder.to_string_lossy()),
            if spec.exec.is_some() {
                " --trust-folder"
            } else {
                ""
            }
        )
    };
    let mut why = Vec::new();
    let shards: Vec<(&PathBuf, crate::config::Partition)> = run
        .inputs
        .iter()
        .filter_map(|i| spec_of(i).and_then(|s| s.partition).map(|p| (i, p)))
        .collect();
    if let Some(n) = shards.first().map(|(_, p)| p.n) {
        let absent: Vec<String> = (1..=n)
            .filter(|k| !shards.iter().any(|(_, p)| p.k == *k))
            .map(|k| format!("{k}/{n}"))
            .collect();
        if !absent.is_empty() {
            why.push(format!("shard(s) {} not given", absent.join(", ")));
        }
    }
    // Shards cover disjoint ranges of trial indices: each one's count is the run's in its range.
    for (input, p) in &shards {
        let range = p.range(total);
        let want = range.end - range.start;
        let count = run
            .records
            .iter()
            .filter(|r| range.contains(&r.iteration))
            .count() as u64;
        if count < want {
            why.push(format!(
                "{} has {count} of its {want}: resume it with {}",
                input.display(),
                resume(input)
            ));
        }
    }
    if let Some(p) = &spec.partial {
        why.push(format!("it is {p}"));
    }
    if why.is_empty() {
        why.push(format!(
            "it stopped early: resume it with {}",
            resume(&run.inputs[0])
        ));
    }
    Some(format!(
        "{} holds {have} of its {total} trials ({}); its rates rest on fewer trials than planned",
        folders.join(" + "),
        why.join("; ")
    ))
}

/// The run settings next to an input (a result folder's `run.json`, or the one beside a
/// trials.csv); `None` when there is none, or it is not a regular file of a sane size, or not a
/// run.json (the run is then neither labelled nor joined by its settings; its trials still count).
fn spec_of(input: &Path) -> Option<RunSpecFile> {
    let dir = if input.is_dir() {
        input
    } else {
        input.parent()?
    };
    let path = dir.join("run.json");
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > 16 << 20 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// What one input is: the trials.csv to read, or a report `torture report` wrote (a glob such as
/// `merged/*` picks up the `report.md` written beside the result folders), which is skipped with
/// a note rather than refused.
enum Input {
    Trials(PathBuf),
    OwnReport(PathBuf),
}

fn classify(input: &Path) -> Result<Input, ReportError> {
    let meta = std::fs::metadata(input).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReportError::NotFound(input.to_path_buf()),
        _ => ReportError::Unreadable {
            path: input.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    if meta.is_dir() {
        let path = input.join("trials.csv");
        return if path.is_file() {
            Ok(Input::Trials(path))
        } else {
            Err(ReportError::NoTrialsCsv(input.to_path_buf()))
        };
    }
    if !meta.is_file() {
        return Err(ReportError::NotAFile(input.to_path_buf()));
    }
    if is_own_report(input) {
        Ok(Input::OwnReport(input.to_path_buf()))
    } else {
        Ok(Input::Trials(input.to_path_buf()))
    }
}

/// Whether the file begins as one of `torture report`'s own formats does (it reads 512 bytes).
fn is_own_report(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::with_capacity(512);
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    if file.take(512).read_to_end(&mut head).is_err() {
        return false;
    }
    let head = String::from_utf8_lossy(&head);
    head.starts_with("# torture report\n")
        || head.starts_with("torture report: ")
        || (head.starts_with("<!DOCTYPE html>") && head.contains("<title>torture report</title>"))
        || (head.starts_with('{') && head.contains("\"sqlite_versions\""))
        || head.starts_with(super::csv_export::HEADER_START)
}

/// The note for a skipped report file.
fn skipped_note(path: &Path) -> String {
    format!(
        "skipped {}: it is a report torture wrote, not results",
        path.display()
    )
}

/// Like [`trials_csv::read`], but keeps each row's line number for error messages and checks the
/// header first, so a wrong file fails with "missing column" rather than a puzzle on line 2.
fn read_rows(path: &Path) -> Result<Vec<(TrialRecord, Source)>, ReportError> {
    let unreadable = |e: &dyn fmt::Display| ReportError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(&e))?;
    let mut reader = csv::Reader::from_reader(crate::fsio::RowCapped::new(file));
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
    use crate::verify::outcome::{Outcome, Verdict};

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

    #[test]
    fn reports_torture_wrote_are_skipped_with_a_note_and_other_files_refused() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("inserts");
        let records = vec![rec(0, "wal", Outcome::Intact, Verdict::Ok)];
        write_run(&run, &records);
        // As `torture report merged/* --format F > merged/report.EXT` leaves them.
        let mut inputs = vec![run.clone()];
        for format in crate::output::report::Format::ALL {
            let path = d.path().join(format!("report.{format}"));
            std::fs::write(&path, crate::output::report::render(&records, format)).unwrap();
            inputs.push(path);
        }
        let Loaded { runs, notes, .. } = load_runs(&inputs).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].records, records);
        assert_eq!(notes.len(), 5, "{notes:?}");
        assert!(notes[0].contains("report.table") && notes[0].contains("a report torture wrote"));
        assert!(matches!(
            load_runs(&inputs[1..]),
            Err(ReportError::OnlyReports)
        ));
        // A text file that is neither: refused as before, not skipped.
        let other = d.path().join("notes.md");
        std::fs::write(&other, "# my notes\n").unwrap();
        let err = load(&[run.clone(), other]).unwrap_err();
        assert!(matches!(err, ReportError::NotTrialsCsv { .. }), "{err}");
        // A FIFO would block a read forever: refused by its type, without opening it.
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = load(&[run, fifo]).unwrap_err();
        assert!(matches!(err, ReportError::NotAFile(_)), "{err}");
        assert_eq!(err.to_string().lines().count(), 1);
    }
}
