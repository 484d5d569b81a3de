//! `torture merge OUT SHARDS...`: joins the result folders of `--partition` shards into one folder
//! that reads like the unsharded run: trials.csv in trial order, summary.csv, failure evidence, and
//! the run's settings.

use std::path::{Path, PathBuf};

use crate::options::RunSpec;
use crate::output::report;
use crate::output::{Summary, TrialsCsv};

/// Writes the merged folder; returns the number of trials. Errors are one line naming the fix.
pub fn merge(out: &Path, shards: &[PathBuf]) -> Result<u64, String> {
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(format!(
            "merge: {} already holds files; give a new folder",
            out.display()
        ));
    }
    // `load` reads every shard, counts a trial seen twice once, and refuses conflicting duplicates.
    let mut records = report::load(shards).map_err(|e| format!("merge: {e}"))?;
    records.sort_by_key(|r| r.iteration);
    let specs: Vec<RunSpec> = shards
        .iter()
        .filter_map(|s| std::fs::read_to_string(s.join("run.json")).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    if let Some(first) = specs.first() {
        if let Some(other) = specs.iter().find(|s| {
            s.seed != first.seed
                || s.workload != first.workload
                || s.iterations != first.iterations
                || s.engine != first.engine
        }) {
            return Err(format!(
                "merge: the shards come from different runs (seed {} vs {}, workload {} vs {}, engine {} vs {} or another key); merge shards of one run",
                first.seed,
                other.seed,
                first.workload,
                other.workload,
                first.engine.name(),
                other.engine.name()
            ));
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| format!("merge: cannot create {}: {e}", out.display()))?;
    let io = |e: std::io::Error| format!("merge: writing {}: {e}", out.display());
    let mut csv = TrialsCsv::create(&out.join("trials.csv")).map_err(io)?;
    let order = specs
        .first()
        .map(|s| {
            s.profiles
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut summary = Summary::with_profile_order(order);
    for r in &records {
        csv.append(r).map_err(io)?;
        summary.add(r);
    }
    summary.write_csv(&out.join("summary.csv")).map_err(io)?;
    if let Some(first) = specs.first() {
        let mut spec = first.clone();
        spec.partition = None;
        let json = serde_json::to_string_pretty(&spec).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(out.join("run.json"), json).map_err(io)?;
    }
    for shard in shards {
        let failures = shard.join("failures");
        let Ok(entries) = std::fs::read_dir(&failures) else {
            continue;
        };
        for e in entries.flatten() {
            copy_dir(&e.path(), &out.join("failures").join(e.file_name())).map_err(io)?;
        }
    }
    Ok(records.len() as u64)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}
