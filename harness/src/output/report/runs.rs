//! Which inputs of `torture report` are one run and which are separate runs, and what to call each
//! run: the settings in which the runs differ (date, seed, SQLite or engine version, machine).
//!
//! Inputs whose `run.json` agree on every setting that decides the trials are shards of one run and
//! are joined, as `merge` joins them; two unsharded folders of the same settings are a run repeated
//! (a rerun, another day) and stay apart. Inputs without a `run.json` are joined as one run, as they
//! always were.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::options::RunSpecFile;
use crate::output::model::RunInfo;
use crate::verify::outcome::TrialRecord;

/// One run among the inputs: the inputs that hold it, its settings, and (after loading) its trials.
#[derive(Clone, Debug)]
pub struct Run {
    pub inputs: Vec<PathBuf>,
    pub spec: Option<RunSpecFile>,
    pub records: Vec<TrialRecord>,
}

/// The settings that decide a run's trials: what shards of one run share.
fn identity(spec: &RunSpecFile) -> Option<serde_json::Value> {
    let mut s = spec.clone();
    s.partition = None;
    s.command_line.clear();
    s.partial = None;
    s.machine = None;
    s.started = None;
    serde_json::to_value(&s).ok()
}

/// Whether an input with `spec` joins `run`: both without settings, or the same settings with at
/// least one a shard (two unsharded folders of one command are two runs of it).
pub fn joins(run: &Run, spec: Option<&RunSpecFile>) -> bool {
    match (&run.spec, spec) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            identity(a) == identity(b) && (a.partition.is_some() || b.partition.is_some())
        }
        _ => false,
    }
}

/// Each run's description, labelled by what differs among `runs`.
pub fn describe(runs: &[Run]) -> Vec<RunInfo> {
    let facts: Vec<Facts> = runs.iter().map(Facts::of).collect();
    let differs =
        |f: fn(&Facts) -> Option<String>| facts.iter().map(f).collect::<BTreeSet<_>>().len() > 1;
    let attributes: [Attribute; 4] = [
        (|f| f.date.clone(), ""),
        (|f| f.seed.map(|s| s.to_string()), "seed "),
        (|f| f.version.clone(), ""),
        (|f| f.machine.clone(), "on "),
    ];
    let mut labels: Vec<String> = facts
        .iter()
        .map(|f| {
            attributes
                .iter()
                .filter(|(get, _)| differs(*get))
                .map(|(get, prefix)| match get(f) {
                    Some(v) => format!("{prefix}{v}"),
                    None => format!("{prefix}?").trim_start().to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    for (label, setting) in labels.iter_mut().zip(settings(runs)) {
        if !setting.is_empty() {
            if !label.is_empty() {
                label.push_str(", ");
            }
            label.push_str(&setting);
        }
    }
    // Runs alike in all of these (a rerun of one command) are told apart by their folders.
    let distinct = labels.iter().collect::<BTreeSet<_>>().len() == labels.len();
    if !distinct {
        for (label, run) in labels.iter_mut().zip(runs) {
            let folder = folder_name(run);
            *label = if label.is_empty() {
                folder
            } else {
                format!("{label}, {folder}")
            };
        }
    }
    runs.iter()
        .zip(facts)
        .zip(labels)
        .map(|((run, f), label)| RunInfo {
            label,
            inputs: run.inputs.iter().map(|p| p.display().to_string()).collect(),
            trials: run.records.len() as u64,
            started: f.started,
            seed: f.seed,
            version: f.version,
            machine: f.machine,
        })
        .collect()
}

/// Per run, the other settings of run.json in which the runs differ (`lying_disk=true`,
/// `workload=bank`), so a label never hides the difference that matters; empty for every run when
/// they agree. Seeds and versions are labelled above; what only a shard or a rerun changes is not
/// a setting.
fn settings(runs: &[Run]) -> Vec<String> {
    let objects: Vec<Option<serde_json::Map<String, serde_json::Value>>> = runs
        .iter()
        .map(|r| match r.spec.as_ref().and_then(identity) {
            Some(serde_json::Value::Object(mut m)) => {
                for k in ["seed", "sqlite_version", "engine"] {
                    m.remove(k);
                }
                Some(m)
            }
            _ => None,
        })
        .collect();
    let keys: BTreeSet<&String> = objects.iter().flatten().flat_map(|m| m.keys()).collect();
    let differing: Vec<&String> = keys
        .into_iter()
        .filter(|k| {
            objects
                .iter()
                .map(|m| m.as_ref().and_then(|m| m.get(*k)))
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0] != w[1])
        })
        .collect();
    objects
        .iter()
        .map(|m| {
            let Some(m) = m else {
                return String::new();
            };
            differing
                .iter()
                .filter_map(|k| Some(format!("{k}={}", spell(k, m.get(*k)?))))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect()
}

/// A setting's value for a label: strings bare, profiles by name, anything long cut.
fn spell(key: &str, value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if key == "profiles" => items
            .iter()
            .filter_map(|p| p.get("name").and_then(|n| n.as_str()))
            .collect::<Vec<_>>()
            .join(","),
        v => v.to_string(),
    };
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(39).collect::<String>())
    } else {
        text
    }
}

/// One labelled fact of a run, and how its value is spelled in a label.
type Attribute = (fn(&Facts) -> Option<String>, &'static str);

/// What a run says about itself, each `None` when it does not say.
struct Facts {
    started: Option<String>,
    date: Option<String>,
    seed: Option<u64>,
    /// The SQLite (or engine) versions its trials ran on.
    version: Option<String>,
    machine: Option<String>,
}

impl Facts {
    fn of(run: &Run) -> Facts {
        let spec = run.spec.as_ref();
        let started = spec.and_then(|s| s.started.clone());
        // The day: from run.json, or from a default folder name (`20261204-134408-seed7`).
        let date = started
            .as_deref()
            .and_then(|s| s.get(..10))
            .map(String::from)
            .or_else(|| run.inputs.iter().find_map(|p| date_in_name(p)));
        let mut versions: Vec<&str> = run
            .records
            .iter()
            .map(|r| r.sqlite_version.as_str())
            .filter(|v| !v.is_empty())
            .collect();
        versions.sort();
        versions.dedup();
        let engine = spec.map_or("SQLite", |s| match &s.engine {
            crate::engine::Engine::Sqlite => "SQLite",
            crate::engine::Engine::Sqlcipher { .. } => "SQLCipher",
        });
        let engine = match spec.and_then(|s| s.exec.as_ref()).map(|e| e.engine) {
            Some(crate::writers::program::Engine::Duckdb) => "DuckDB",
            Some(crate::writers::program::Engine::Libsql) => "libSQL",
            _ => engine,
        };
        let version = (!versions.is_empty()).then(|| format!("{engine} {}", versions.join("/")));
        Facts {
            started,
            date,
            seed: spec.map(|s| s.seed),
            version,
            machine: spec
                .and_then(|s| s.machine.as_ref())
                .map(|m| format!("{} ({} CPUs)", m.hostname, m.cpus)),
        }
    }
}

/// `2026-12-04` from a folder named `20261204-134408-seed7`.
fn date_in_name(path: &std::path::Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let digits = name.get(..8)?;
    (digits.bytes().all(|b| b.is_ascii_digit()) && name.as_bytes().get(8) == Some(&b'-'))
        .then(|| format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..8]))
}

/// The folder a run was read from, for a label: its last two components.
fn folder_name(run: &Run) -> String {
    let Some(p) = run.inputs.first() else {
        return "?".into();
    };
    let p = if p.file_name().is_some_and(|n| n == "trials.csv") {
        p.parent().unwrap_or(p)
    } else {
        p
    };
    let parts: Vec<String> = p
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut s: Vec<String> = parts.into_iter().rev().collect();
    if run.inputs.len() > 1 {
        if let Some(l) = s.last_mut() {
            l.push_str(" …");
        }
    }
    s.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_come_from_default_folder_names_only() {
        assert_eq!(
            date_in_name(std::path::Path::new("results/20261204-134408-seed7")),
            Some("2026-12-04".into())
        );
        assert_eq!(date_in_name(std::path::Path::new("results/run-a")), None);
        assert_eq!(date_in_name(std::path::Path::new("12345678")), None);
    }
}
