//! `torture merge OUT SHARDS...`: joins the result folders of `--partition` shards into one folder
//! that reads like the unsharded run: trials.csv in trial order, summary.csv, failure evidence, and
//! the run's settings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::options::RunSpecFile;
use crate::output::report;
use crate::output::{out_dir, Summary, TrialsCsv};

/// What `merge` made.
pub struct Merged {
    pub trials: u64,
    /// With `--partial`: what the merged folder lacks.
    pub partial: Option<String>,
}

/// Writes the merged folder. Refuses shards of different runs, and (without `partial`) an
/// incomplete set: a missing shard, or a shard with missing trials. Errors are one line naming the
/// fix.
pub fn merge(out: &Path, shards: &[PathBuf], partial: bool) -> Result<Merged, String> {
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
    let mut specs: Vec<RunSpecFile> = Vec::new();
    for shard in shards {
        let path = shard.join("run.json");
        // A shard is data: no symlink in it leads the merge to read (and copy) files elsewhere.
        if let Some(link) = out_dir::symlinked_parts(shard).first() {
            return Err(format!("merge: {}", out_dir::symlink_refused(shard, link)));
        }
        let spec = crate::fsio::read_data_text(&path, crate::fsio::MAX_NOTE_BYTES)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<RunSpecFile>(&t).map_err(|e| e.to_string()))
            .map_err(|e| {
                format!(
                    "merge: cannot read {} ({e}); give the result folders the shards' runs wrote",
                    path.display()
                )
            })?;
        specs.push(spec);
    }
    let first = specs[0].clone();
    for (shard, spec) in shards.iter().zip(&specs).skip(1) {
        if let Some(what) = difference(&first, spec) {
            return Err(format!(
                "merge: {} and {} come from different runs ({what}); merge the shards of one run",
                shards[0].display(),
                shard.display()
            ));
        }
    }
    // `load` reads every shard, counts a trial seen twice once, and refuses conflicting duplicates.
    let mut records = report::load(shards).map_err(|e| format!("merge: {e}"))?;
    records.sort_by_key(|r| r.iteration);
    let missing = missing_parts(shards, &specs, &records)?;
    if !missing.is_empty() && !partial {
        return Err(format!(
            "merge: the shards are incomplete: {}; add or resume what is missing, or merge what there is with --partial",
            missing.join(", ")
        ));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| format!("merge: cannot create {}: {e}", out.display()))?;
    let _lock = crate::fsio::lock(out).map_err(|_| format!("merge: {}", out_dir::in_use(out)))?;
    let io = |e: std::io::Error| format!("merge: writing {}: {e}", out.display());
    let mut csv = TrialsCsv::create(&out.join("trials.csv")).map_err(io)?;
    let order = first.profiles.iter().map(|p| p.name.clone());
    let mut summary = Summary::with_profile_order(order);
    for r in &records {
        csv.append(r).map_err(io)?;
        summary.add(r);
    }
    summary.write_csv(&out.join("summary.csv")).map_err(io)?;
    let mut spec = first.clone();
    spec.partition = None;
    let partial_note = (!missing.is_empty()).then(|| {
        format!(
            "a partial merge of {} trials: {}",
            records.len(),
            missing.join(", ")
        )
    });
    spec.partial = partial_note.clone();
    let json = serde_json::to_string_pretty(&spec).map_err(|e| io(std::io::Error::other(e)))?;
    crate::fsio::write_whole(&out.join("run.json"), json.as_bytes()).map_err(io)?;
    for shard in shards {
        let failures = shard.join("failures");
        let Ok(entries) = std::fs::read_dir(&failures) else {
            continue;
        };
        for e in entries.flatten() {
            copy_dir(&e.path(), &out.join("failures").join(e.file_name())).map_err(io)?;
        }
    }
    Ok(Merged {
        trials: records.len() as u64,
        partial: partial_note,
    })
}

/// The first setting in which two shards' runs differ, or `None` when they are shards of one run.
fn difference(a: &RunSpecFile, b: &RunSpecFile) -> Option<String> {
    let names = |s: &RunSpecFile| {
        s.profiles
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    if a.seed != b.seed {
        return Some(format!("seed {} vs {}", a.seed, b.seed));
    }
    if names(a) != names(b) || a.profiles != b.profiles {
        return Some(format!(
            "profiles {} vs {}",
            names(a).join(","),
            names(b).join(",")
        ));
    }
    if a.sqlite_version != b.sqlite_version {
        return Some(format!(
            "SQLite {} vs {}",
            a.sqlite_version, b.sqlite_version
        ));
    }
    if a.iterations != b.iterations {
        return Some(format!(
            "iterations {:?} vs {:?}",
            a.iterations, b.iterations
        ));
    }
    if a.workload != b.workload || a.fault != b.fault {
        return Some(format!(
            "workload {} / fault {} vs {} / {}",
            a.workload, a.fault, b.workload, b.fault
        ));
    }
    if a.engine != b.engine {
        return Some(format!(
            "engine {} vs {} or another key",
            a.engine.name(),
            b.engine.name()
        ));
    }
    let rest = |s: &RunSpecFile| {
        let mut s = s.clone();
        s.partition = None;
        s.command_line.clear();
        s.partial = None;
        // Shards start on their own machines at their own times.
        s.machine = None;
        s.started = None;
        serde_json::to_value(&s).ok()
    };
    (rest(a) != rest(b)).then(|| "other settings in run.json".to_string())
}

/// What the set lacks: shards not given, and trials missing from the given ones.
fn missing_parts(
    shards: &[PathBuf],
    specs: &[RunSpecFile],
    records: &[crate::verify::outcome::TrialRecord],
) -> Result<Vec<String>, String> {
    let mut missing = Vec::new();
    let have: BTreeSet<u64> = records.iter().map(|r| r.iteration).collect();
    let total = specs[0]
        .iterations
        .map(|n| n.saturating_mul(specs[0].profiles.len() as u64));
    let parts: Vec<_> = specs.iter().map(|s| s.partition).collect();
    match (
        parts.iter().all(Option::is_some),
        parts.iter().all(Option::is_none),
    ) {
        (true, _) => {
            let n = parts[0].map_or(1, |p| p.n);
            if let Some((shard, _)) = shards
                .iter()
                .zip(&parts)
                .find(|(_, p)| p.is_some_and(|p| p.n != n))
            {
                return Err(format!(
                    "merge: {} is a shard of another split (not K/{n}); merge the shards of one split",
                    shard.display()
                ));
            }
            let given: BTreeSet<u64> = parts.iter().flatten().map(|p| p.k).collect();
            let absent: Vec<String> = (1..=n)
                .filter(|k| !given.contains(k))
                .map(|k| format!("{k}/{n}"))
                .collect();
            if !absent.is_empty() {
                missing.push(format!("shard(s) {} not given", absent.join(", ")));
            }
        }
        (false, true) if shards.len() == 1 => {}
        _ => return Err(
            "merge: give the shards of one --partition K/N split (an unsharded run needs no merge)"
                .to_string(),
        ),
    }
    if let Some(total) = total {
        for (shard, p) in shards.iter().zip(&parts) {
            let range = p.map_or(0..total, |p| p.range(total));
            let count = range.clone().filter(|i| have.contains(i)).count() as u64;
            let want = range.end - range.start;
            if count < want {
                missing.push(format!(
                    "{} has {count} of its {want} trials (resume it: torture --resume {}{})",
                    shard.display(),
                    crate::reproduce::quote(&shard.to_string_lossy()),
                    // An exec run's program runs again only when the user trusts the folder.
                    if specs[0].exec.is_some() {
                        " --trust-folder"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    Ok(missing)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let kind = e.file_type()?;
        if kind.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else if kind.is_file() {
            // Regular files only, never through a link at either end.
            crate::fsio::copy_no_follow(&e.path(), &to.join(e.file_name()))?;
        } else {
            return Err(std::io::Error::other(format!(
                "{} is not a regular file (a symlink, FIFO or device); a shard's evidence holds only files",
                e.path().display()
            )));
        }
    }
    Ok(())
}
