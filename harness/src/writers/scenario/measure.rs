//! The measurement behind the scenario tables of docs/findings.md: an ignored test that runs every variant of
//! the chosen scenarios a few hundred times through `run_measured`, in forked worker processes (one
//! per job, like slots), writes `trials.csv` and `summary.csv` per scenario with the core exporters,
//! and prints a Markdown table per scenario with counts, 95% Wilson intervals and the scenario's own
//! measurements (means per trial).
//!
//! ```sh
//! TORTURE_SCENARIOS=pool,recovery TORTURE_N=300 TORTURE_JOBS=2 \
//!   cargo test --release -p torture --lib scenario::measure -- --ignored --nocapture
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;

use super::engine::{fork_child, testing, Metrics};
use crate::output::{Summary, TrialsCsv};
use crate::stats::wilson_95;
use crate::trial::children::SlotFiles;
use crate::verify::outcome::{Outcome, TrialRecord};

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    record: TrialRecord,
    metrics: Metrics,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[test]
#[ignore = "a measurement of several minutes; run it by name for docs/findings.md"]
fn measure_scenarios() {
    let names = env_or("TORTURE_SCENARIOS", "all");
    let n: u64 = env_or("TORTURE_N", "200").parse().unwrap();
    let jobs: u64 = env_or("TORTURE_JOBS", "2").parse().unwrap();
    let out = PathBuf::from(env_or("TORTURE_OUT", "/tmp/scenario-measure"));
    let seed: u64 = env_or("TORTURE_SEED", "2026").parse().unwrap();
    let chosen: Vec<super::Scenario> = super::all()
        .into_iter()
        .filter(|s| names == "all" || names.split(',').any(|x| x == s.name))
        .collect();
    for sc in chosen {
        let dir = out.join(sc.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let started = std::time::Instant::now();
        let only = env_or("TORTURE_VARIANTS", "all");
        let v = sc.variants.len() as u64;
        let wanted: Vec<u64> = (0..v * n)
            .filter(|&i| {
                only == "all" || only.split(',').any(|x| x == sc.variant_of(i).name.as_str())
            })
            .collect();
        let lines = run_scenario(sc.name, &wanted, jobs, seed, &dir);
        let secs = started.elapsed().as_secs_f64();
        let mut csv = TrialsCsv::create(&dir.join("trials.csv")).unwrap();
        let mut summary =
            Summary::with_profile_order(sc.variants.iter().map(|v| v.profile.name.clone()));
        for l in &lines {
            csv.append(&l.record).unwrap();
            summary.add(&l.record);
        }
        summary.write_csv(&dir.join("summary.csv")).unwrap();
        println!(
            "\n### {} — {} trials in {secs:.0}s (seed {seed}, SQLite {})\n",
            sc.name,
            lines.len(),
            rusqlite::version()
        );
        println!("{}", table(&sc, &lines));
    }
}

/// Runs trials `indices` of `scenario` in `jobs` forked workers; returns every row.
fn run_scenario(scenario: &str, indices: &[u64], jobs: u64, seed: u64, dir: &Path) -> Vec<Line> {
    let mut pids = Vec::new();
    for j in 0..jobs {
        let part = dir.join(format!("part-{j}.jsonl"));
        let slot = dir.join(format!("slot-{j}"));
        let scenario = scenario.to_string();
        let out = dir.to_path_buf();
        let pid = fork_child(&[], move || {
            let lab = testing::lab(&["--seed", &seed.to_string()]);
            let mut opts = lab.opts.clone();
            opts.out_dir = out;
            std::fs::create_dir_all(&slot).unwrap();
            let files = SlotFiles::new(slot, 1, Vec::new()).unwrap();
            let mut f = std::fs::File::create(&part).unwrap();
            for &index in indices.iter().skip(j as usize).step_by(jobs as usize) {
                let (record, metrics) =
                    super::run_measured(&opts, &scenario, index, &files, rusqlite::version());
                let mut s = serde_json::to_string(&Line { record, metrics }).unwrap();
                s.push('\n');
                f.write_all(s.as_bytes()).unwrap();
            }
            drop(lab);
            0
        })
        .unwrap();
        pids.push(pid);
    }
    for pid in pids {
        waitpid(pid, None).unwrap();
    }
    let mut lines = Vec::new();
    for j in 0..jobs {
        let text = std::fs::read_to_string(dir.join(format!("part-{j}.jsonl"))).unwrap();
        for l in text.lines() {
            lines.push(serde_json::from_str::<Line>(l).unwrap());
        }
    }
    lines.sort_by_key(|l| l.record.iteration);
    lines
}

fn pct(k: u64, n: u64) -> String {
    let (lo, hi) = wilson_95(k, n);
    let rate = if n == 0 { 0.0 } else { k as f64 / n as f64 };
    format!(
        "{:.1}% [{:.1}, {:.1}]",
        rate * 100.0,
        lo * 100.0,
        hi * 100.0
    )
}

/// One Markdown row per variant: counts, damage rate with its interval, verdicts, and every metric
/// as a mean per trial.
fn table(sc: &super::Scenario, lines: &[Line]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| variant | trials | intact | lost-commit | atomicity | corrupt | open-failed | worker-error | damage [95% CI] | expected | violations | measured (mean per trial) |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
    );
    for v in &sc.variants {
        let rows: Vec<&Line> = lines
            .iter()
            .filter(|l| l.record.profile == v.profile.name)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let count = |o: Outcome| rows.iter().filter(|l| l.record.outcome == o).count() as u64;
        let judged = rows.len() as u64 - count(Outcome::WorkerError);
        let damage: u64 = rows.iter().filter(|l| l.record.outcome.is_damage()).count() as u64;
        let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
        for l in &rows {
            for (k, val) in &l.metrics {
                if !k.starts_with("outcome:") && !k.starts_with("verdict:") {
                    *sums.entry(k.as_str()).or_default() += val;
                }
            }
        }
        let verdict = |s: &str| {
            rows.iter()
                .filter(|l| l.record.verdict.as_str() == s)
                .count()
        };
        let n = rows.len().max(1) as f64;
        let measured: Vec<String> = sums
            .iter()
            .map(|(k, s)| format!("{k} {:.2}", *s as f64 / n))
            .collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.name,
            rows.len(),
            count(Outcome::Intact),
            count(Outcome::LostCommit),
            count(Outcome::Atomicity),
            count(Outcome::Corrupt),
            count(Outcome::OpenFailed),
            count(Outcome::WorkerError),
            pct(damage, judged),
            verdict("expected"),
            verdict("violation"),
            measured.join(", ")
        );
    }
    out
}
