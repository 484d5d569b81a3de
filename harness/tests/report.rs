//! End-to-end: `torture report` on real result folders — shards of one run joined, separate runs
//! side by side with Fisher's exact test across them, in every format; warnings for runs short of
//! trials; old folders (no machine or start time in run.json) still load.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// A small real power-loss run of `profiles` under `seed`, with `extra` flags, into `out`.
fn power_loss_run(out: &Path, profiles: &str, seed: u64, extra: &[&str]) {
    let seed = seed.to_string();
    let mut args = vec![
        "--fault",
        "power-loss",
        "--profile",
        profiles,
        "--iterations",
        "12",
        "--seed",
        &seed,
        "--no-progress",
        "--max-evidence",
        "0",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "the run finishes: {}",
        say(&o)
    );
}

fn report(inputs: &[&Path], format: &str) -> (String, String) {
    let mut args: Vec<&str> = vec!["report"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--format", format]);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    (text(&o.stdout), text(&o.stderr))
}

fn json(inputs: &[&Path]) -> serde_json::Value {
    serde_json::from_str(&report(inputs, "json").0).expect("the JSON report parses")
}

/// The comparisons of one profile across runs.
fn across_runs<'a>(v: &'a serde_json::Value, profile: &str) -> Vec<&'a serde_json::Value> {
    v["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["better"] == profile && c["worse"] == profile)
        .filter(|c| c["better_run"] != c["worse_run"])
        .collect()
}

#[test]
fn a_difference_between_two_runs_of_one_profile_is_flagged_in_every_format() {
    // Positive control: wal-full on an honest disk (seed 1) and on a disk that drops fsyncs
    // (seed 2), where power loss damages every trial: Fisher must flag the pair across the runs.
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("honest"), tmp.path().join("lying"));
    power_loss_run(&a, "wal-full", 1, &[]);
    power_loss_run(&b, "wal-full", 2, &["--lying-disk"]);
    let v = json(&[&a, &b]);
    let runs = v["runs"].as_array().expect("runs side by side");
    let labels: Vec<&str> = runs.iter().map(|r| r["label"].as_str().unwrap()).collect();
    // Labelled by what differs: the seed and the setting, not by folder names.
    assert_eq!(
        labels,
        ["seed 1, lying_disk=false", "seed 2, lying_disk=true"]
    );
    assert_eq!(runs[0]["seed"], 1);
    assert!(runs[0]["machine"]
        .as_str()
        .is_some_and(|m| m.contains("CPUs")));
    assert_eq!(v["groups"].as_array().unwrap().len(), 2);
    let c = across_runs(&v, "wal-full");
    assert_eq!(c.len(), 1, "{v:#}");
    assert_eq!(c[0]["better_run"], labels[0]);
    assert_eq!(c[0]["supported"], true, "{:#}", c[0]);
    let p = c[0]["p_value"].as_f64().unwrap();
    assert!(p < 0.001, "p = {p}");

    let (table, _) = report(&[&a, &b], "table");
    assert!(table.contains("2 runs side by side"), "{table}");
    assert!(
        table.contains(&format!(
            "wal-full [{}] survives better than wal-full [{}] (inserts · power-loss): supported at 5%",
            labels[0], labels[1]
        )),
        "{table}"
    );
    let (md, _) = report(&[&a, &b], "markdown");
    assert!(md.contains("## Runs side by side"), "{md}");
    assert!(
        md.contains("### The same profile · workload · fault across runs"),
        "{md}"
    );
    assert!(
        md.contains(&format!("| wal-full [{}] |", labels[1])),
        "{md}"
    );
    let (html, _) = report(&[&a, &b], "html");
    assert!(
        html.contains("Runs side by side") && html.contains(labels[1]),
        "{html}"
    );
    let (csv_text, _) = report(&[&a, &b], "csv");
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = r.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][col("run")], labels[0]);
    assert_eq!(&rows[0][col("p_vs_first_run")], "");
    let p_csv: f64 = rows[1][col("p_vs_first_run")].parse().unwrap();
    assert_eq!(p_csv, p);
}

#[test]
fn two_runs_of_the_same_profiles_under_other_seeds_flag_nothing_across_them() {
    // Negative control: the same command under two seeds. Within each run wal-full beats off-full
    // (the profiles keep their own comparison); across the runs no profile differs.
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    power_loss_run(&a, "wal-full,off-full", 1, &[]);
    power_loss_run(&b, "wal-full,off-full", 2, &[]);
    let v = json(&[&a, &b]);
    let labels: Vec<&str> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["seed 1", "seed 2"]);
    for profile in ["wal-full", "off-full"] {
        for c in across_runs(&v, profile) {
            assert_eq!(c["supported"], false, "{c:#}");
        }
    }
    let within: Vec<&serde_json::Value> = v["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["better_run"] == c["worse_run"])
        .collect();
    assert_eq!(within.len(), 2, "one per run: {v:#}");
    for c in within {
        assert_eq!(
            (&c["better"], &c["worse"]),
            (&"wal-full".into(), &"off-full".into())
        );
        assert_eq!(c["supported"], true, "{c:#}");
    }
}

/// A sharded run of `n` shards into `dir/s1..sn`.
fn shards(dir: &Path, n: u64) -> Vec<PathBuf> {
    (1..=n)
        .map(|k| {
            let out = dir.join(format!("s{k}"));
            let part = format!("{k}/{n}");
            let o = run(&[
                "--profile",
                "wal-full,off-full",
                "--iterations",
                "6",
                "--seed",
                "5",
                "--partition",
                &part,
                "--no-progress",
                "--out",
                out.to_str().unwrap(),
            ]);
            assert!(matches!(o.status.code(), Some(0 | 1)), "{}", say(&o));
            out
        })
        .collect()
}

#[test]
fn shards_of_one_run_are_joined_and_a_missing_or_short_shard_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let s = shards(tmp.path(), 3);
    let all: Vec<&Path> = s.iter().map(PathBuf::as_path).collect();
    let (out, err) = report(&all, "json");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.get("runs").is_none(), "one run, not runs side by side");
    assert_eq!(v["trials"], 12);
    assert!(err.is_empty(), "{err}");
    // A shard left out.
    let (_, err) = report(&all[..2], "table");
    assert!(
        err.contains("warning:") && err.contains("shard(s) 3/3 not given"),
        "{err}"
    );
    // A shard stopped early (rows cut from its trials.csv): named, with the line to resume it.
    let csv_path = s[1].join("trials.csv");
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let kept: Vec<&str> = text.lines().take(2).collect();
    std::fs::write(&csv_path, format!("{}\n", kept.join("\n"))).unwrap();
    let (_, err) = report(&all, "table");
    assert!(
        err.contains(&format!(
            "{} has 1 of its 4: resume it with `torture --resume {}`",
            s[1].display(),
            s[1].display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_partial_merge_resumed_to_completion_is_no_longer_called_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let s = shards(tmp.path(), 2);
    let merged = tmp.path().join("merged");
    let o = run(&[
        "merge",
        "--partial",
        merged.to_str().unwrap(),
        s[0].to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let (_, err) = report(&[&merged], "table");
    assert!(
        err.contains("warning:") && err.contains("partial merge"),
        "{err}"
    );
    let o = run(&["--resume", merged.to_str().unwrap(), "--no-progress"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", say(&o));
    let (out, err) = report(&[&merged], "table");
    assert!(err.is_empty(), "complete now: {err}");
    assert!(out.contains("12 trials"), "{out}");
}

#[test]
fn folders_written_before_runs_were_described_still_load_and_compare() {
    // run.json without `machine` and `started` (as every folder before them): loads, and the
    // runs are still told apart.
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    power_loss_run(&a, "off-full", 1, &[]);
    power_loss_run(&b, "off-full", 2, &[]);
    for dir in [&a, &b] {
        let path = dir.join("run.json");
        let mut spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let m = spec.as_object_mut().unwrap();
        assert!(m.remove("machine").is_some() && m.remove("started").is_some());
        std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    }
    let v = json(&[&a, &b]);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs[0].get("machine").is_none() && runs[0].get("started").is_none());
    assert_eq!(across_runs(&v, "off-full").len(), 1);
}
