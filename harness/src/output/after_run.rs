//! What an exec run says after its summary, from its own files (`trials.csv`, `run.json`,
//! `calibration/trial.json`): a run that tested nothing, a `--recovered-sql` that answers text,
//! damage in a journal mode nobody declared, the calibration run's own kill — and the exit code
//! they make.

use std::path::Path;

use crate::exit_code;
use crate::verify::outcome::{Outcome, TrialRecord, Verdict};
use crate::writers::program::{Engine, ExecOptions, ExecTrialNote, BAD_RECOVERED_SQL};

/// The detail of a trial whose program had not created its database, or its schema, when it was
/// killed (the check's words).
const NOT_CREATED: [&str; 2] = [
    "before the program created the database",
    "before the program made its schema",
];

/// Prints what the run's own evidence says beyond the summary and returns the exit code: `code`
/// (what the summary decided), or
/// - 2 when `--recovered-sql` answered something that is not a commit number (bad input);
/// - 3 when no trial saw the program write anything (no `ack N` line, or no database): such a run
///   tested nothing and vouches for nothing, like a program that fails by itself (`worker-error`,
///   also 3); never 0, never SQLite's 1, and not 2, which says "refused before anything ran, one
///   line";
/// - 1 when the calibration run's own kill found a violation and the trials did not.
pub fn after_run(out_dir: &Path, calibration_held: Option<&Path>, code: i32) -> i32 {
    if let Some(held) = calibration_held {
        if let Err(e) = crate::writers::program::move_dir(held, &out_dir.join("calibration")) {
            eprintln!(
                "torture: could not move the calibration's files from {} to {}: {e}",
                held.display(),
                out_dir.join("calibration").display()
            );
        }
    }
    let Ok(rows) = super::trials_csv::read(&out_dir.join("trials.csv")) else {
        return code;
    };
    let exec: Option<ExecOptions> = std::fs::read_to_string(out_dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| serde_json::from_value(v.get("exec")?.clone()).ok());
    let Some(exec) = exec else {
        return code;
    };
    let (lines, code) = judge_run(&exec, &rows, calibration(out_dir).as_ref(), code);
    for l in lines {
        println!("{l}");
    }
    code
}

/// The calibration run's recorded finding, when its check did not find the database intact.
fn calibration(out_dir: &Path) -> Option<ExecTrialNote> {
    let t = std::fs::read_to_string(out_dir.join("calibration").join("trial.json")).ok()?;
    serde_json::from_str(&t).ok()
}

/// The lines to print and the exit code, from the rows alone (see `after_run`).
pub(crate) fn judge_run(
    exec: &ExecOptions,
    rows: &[TrialRecord],
    calibration: Option<&ExecTrialNote>,
    code: i32,
) -> (Vec<String>, i32) {
    let mut lines = Vec::new();
    if let Some(r) = rows
        .iter()
        .find(|r| r.detail.starts_with(BAD_RECOVERED_SQL))
    {
        lines.push(format!("BAD INPUT: {}", r.detail));
        return (lines, exit_code::USAGE);
    }
    let mut code = code;
    if let Some(note) = calibration {
        let r = &note.record;
        lines.push(format!(
            "calibration: the lab's kill of the calibration run found {} ({}): {}",
            r.outcome,
            r.verdict.as_str(),
            r.detail
        ));
        if r.verdict == Verdict::Violation && code == exit_code::CLEAN {
            lines.push(
                "VIOLATION: the calibration run's kill broke a promise its engine documents; its files are in OUT/calibration".into(),
            );
            code = exit_code::VIOLATION;
        }
    }
    let unknown_damage = rows
        .iter()
        .filter(|r| r.journal_mode == "?" && r.outcome.is_damage())
        .count();
    if unknown_damage > 0 && exec.engine != Engine::Duckdb {
        lines.push(format!(
            "journal mode unknown: {unknown_damage} damaged trial(s) ran in a journal mode the lab could not see (the program printed no `journal_mode MODE`, no --journal-mode was given, and the header is not WAL's), so they are held to SQLite's strict promise; if the program runs journal_mode=OFF or MEMORY (which SQLite documents as unsafe), declare it: --journal-mode off, or print `journal_mode off` on stdout"
        ));
    }
    let wrote = |r: &TrialRecord| {
        r.acked_commits > 0
            || (exec.recovered_sql.is_none()
                && r.outcome != Outcome::WorkerError
                && !NOT_CREATED.iter().any(|n| r.detail.contains(n)))
    };
    if !rows.is_empty() && !rows.iter().any(wrote) && code == exit_code::CLEAN {
        let what = if exec.recovered_sql.is_some() {
            "acknowledge a commit (no `ack N` line on stdout after a COMMIT)"
        } else {
            "create its database and a table"
        };
        lines.push(format!(
            "NOTHING TESTED: in none of the {} trials did the program {what}, so \"intact\" means nothing here; run it by hand (`TORTURE_DB=/tmp/x.db {}`) and check that it writes and prints `ack N` after each commit, or kill later with --kill-after",
            rows.len(),
            exec.command.join(" ")
        ));
        code = exit_code::LAB_ERROR;
    }
    (lines, code)
}
