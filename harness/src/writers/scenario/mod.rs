//! `torture scenario`: the postmortems as named scenarios (pools, many writers, WAL-init races, backups, operator "fixes", checkpoints, shutdown, known corruptors), on the core trial engine.
//!
//! A scenario is a claim from a postmortem (`shared/seeds/`) or from sqlite.org's howtocorrupt.html,
//! turned into trials. Each has variants (a parameter setting each); trial `i` of a scenario run uses
//! variant `i mod V`, like profiles, so `--iterations N` means N trials per variant. A trial forks its
//! own children from the slot, kills them as the scenario says, and checks the database with the core
//! oracle; its row is the core's `TrialRecord` with `profile = SCENARIO/VARIANT` and the variant's
//! parameters and the trial's measurements in `detail`. The verdict follows the scenario's own
//! expectation: damage SQLite promises cannot happen is a `violation`; damage the documentation
//! predicts (an operator deleting a hot journal, a known corruptor) is `expected`.

mod backup;
mod checkpoint;
mod corruptors;
mod engine;
mod init;
#[cfg(test)]
mod measure;
mod pool;
mod power;
mod recovery;
mod shutdown;
mod walreset;
mod writers;

use std::fmt::Write as _;

use torture_workloads::{JournalMode, Profile, Synchronous};

use crate::options::RunOptions;
use crate::trial::children::SlotFiles;
use crate::verify::outcome::TrialRecord;

pub(crate) use engine::Metrics;

/// One named scenario: the claim it tests and its variants.
pub struct Scenario {
    pub name: &'static str,
    /// One line for `torture scenario list`.
    pub summary: &'static str,
    /// The postmortem's claim, in its own words where possible.
    pub claim: &'static str,
    /// Where the claim comes from: seed postmortems (`000`…`004`) or sqlite.org pages.
    pub seeds: &'static str,
    pub variants: Vec<Variant>,
}

/// One parameter setting of a scenario.
pub struct Variant {
    /// `p10-nobusy`; the CSV's `profile` column is `SCENARIO/VARIANT`.
    pub name: String,
    /// `key=value` words for every parameter: the first part of every row's `detail`.
    pub params: String,
    /// The pragmas every connection gets (named `SCENARIO/VARIANT`): saved in failure evidence.
    pub profile: Profile,
    pub(crate) kind: Kind,
}

/// What a variant does, per scenario.
pub(crate) enum Kind {
    Pool(pool::Params),
    Writers(writers::Params),
    Init(init::Params),
    Backup(backup::Params),
    Recovery(recovery::Params),
    Checkpoint(checkpoint::Params),
    Shutdown(shutdown::Params),
    Corruptor(corruptors::Params),
    WalReset(walreset::Params),
}

impl Variant {
    pub(crate) fn new(
        scenario: &str,
        name: impl Into<String>,
        params: impl Into<String>,
        mut profile: Profile,
        kind: Kind,
    ) -> Variant {
        let name = name.into();
        profile.name = format!("{scenario}/{name}");
        Variant {
            name,
            params: params.into(),
            profile,
            kind,
        }
    }
}

impl Scenario {
    /// The variant trial `index` uses: variants take turns.
    pub fn variant_of(&self, index: u64) -> &Variant {
        &self.variants[(index % self.variants.len() as u64) as usize]
    }
}

/// Every scenario, in the order.
pub fn all() -> Vec<Scenario> {
    vec![
        pool::scenario(),
        writers::scenario(),
        init::scenario(),
        backup::scenario(),
        recovery::scenario(),
        checkpoint::scenario(),
        shutdown::scenario(),
        corruptors::scenario(),
        walreset::scenario(),
    ]
}

pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

/// The usage error for an unknown scenario name, naming the fix.
pub fn unknown(name: &str) -> String {
    format!(
        "unknown scenario `{name}`; choose one of: {} (`torture scenario list` describes them)",
        all().iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
    )
}

/// What `torture scenario list` prints: one line per scenario, then its variants indented.
pub fn list_text() -> String {
    let mut out = String::new();
    for s in all() {
        let _ = writeln!(out, "{:<11} {} [{}]", s.name, s.summary, s.seeds);
        let names: Vec<&str> = s.variants.iter().map(|v| v.name.as_str()).collect();
        let _ = writeln!(out, "{:<11}   variants: {}", "", names.join(", "));
    }
    out
}

/// One profile per variant, named `SCENARIO/VARIANT`, in variant order: what a scenario run puts in
/// `RunOptions::profiles`, so trial counts (`iterations × variants`), the summary's row order and the
/// slot's ack board size come out right.
pub fn profiles(name: &str) -> Option<Vec<Profile>> {
    find(name).map(|s| s.variants.into_iter().map(|v| v.profile).collect())
}

/// Runs trial `index` of scenario `scenario` in a slot and returns its row. Failure evidence goes to
/// `OUT/failures/<index>/` before the row is returned. Reads from `opts`: `seed`, `workload`, `kill`,
/// `trial_timeout`, `max_commits`, `out_dir`, `spec`.
pub fn run_trial(
    opts: &RunOptions,
    scenario: &str,
    index: u64,
    files: &SlotFiles,
    sqlite_version: &str,
) -> TrialRecord {
    run_measured(opts, scenario, index, files, sqlite_version).0
}

/// [`run_trial`], also returning the trial's measurements (for docs/findings.md's tables).
pub(crate) fn run_measured(
    opts: &RunOptions,
    scenario: &str,
    index: u64,
    files: &SlotFiles,
    sqlite_version: &str,
) -> (TrialRecord, Metrics) {
    let started = std::time::Instant::now();
    let Some(sc) = find(scenario) else {
        return unknown_row(opts, scenario, index, sqlite_version);
    };
    let variant = sc.variant_of(index);
    let workload = match variant.kind {
        // Its workers create the schema themselves with CREATE TABLE IF NOT EXISTS: `inserts` only.
        Kind::Init(_) => torture_workloads::Workload::Inserts,
        _ => opts.workload,
    };
    let ctx = engine::Ctx {
        opts,
        files,
        index,
        seed: crate::seed::trial_seed(opts.seed, index),
        variant,
        workload,
        sqlite_version,
        started,
    };
    match &variant.kind {
        Kind::Pool(p) => pool::run(&ctx, p),
        Kind::Writers(p) => writers::run(&ctx, p),
        Kind::Init(p) => init::run(&ctx, p),
        Kind::Backup(p) => backup::run(&ctx, p),
        Kind::Recovery(p) => recovery::run(&ctx, p),
        Kind::Checkpoint(p) => checkpoint::run(&ctx, p),
        Kind::Shutdown(p) => shutdown::run(&ctx, p),
        Kind::Corruptor(p) => corruptors::run(&ctx, p),
        Kind::WalReset(p) => walreset::run(&ctx, p),
    }
}

fn unknown_row(
    opts: &RunOptions,
    scenario: &str,
    index: u64,
    sqlite_version: &str,
) -> (TrialRecord, Metrics) {
    let profile = format!("{scenario}/?");
    let trial = crate::trial::record::Trial {
        iteration: index,
        seed: crate::seed::trial_seed(opts.seed, index),
        profile: &profile,
        connections: 0,
        processes: 0,
        workload: opts.workload.name(),
        fault: "",
        sqlite_version,
        started: std::time::Instant::now(),
    };
    let mut record = trial.row(crate::trial::record::Found {
        outcome: crate::verify::outcome::Outcome::WorkerError,
        verdict: crate::verify::outcome::Verdict::LabError,
        pragmas: Default::default(),
        kill_point: String::new(),
        acked_commits: 0,
        recovered_commits: 0,
        busy_errors: 0,
        detail: unknown(scenario),
    });
    record.duration_us = 0;
    (record, Metrics::new())
}

/// A built-in profile with `journal_mode` and `synchronous` replaced: the base of most variants.
pub(crate) fn base_profile(journal: JournalMode, sync: Synchronous) -> Profile {
    let name = format!("{}-{}", journal.as_str(), sync.as_str());
    Profile::builtin(&name).expect("every journal_mode-synchronous pair is built in")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_variants_are_named_for_the_csv() {
        let all = all();
        assert_eq!(all.len(), 9);
        let mut names: Vec<&str> = all.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 9);
        for s in &all {
            assert!(!s.variants.is_empty(), "{}", s.name);
            assert!(!s.claim.is_empty() && !s.summary.contains('\n'));
            let mut v: Vec<&str> = s.variants.iter().map(|v| v.name.as_str()).collect();
            v.sort();
            v.dedup();
            assert_eq!(v.len(), s.variants.len(), "{}: duplicate variant", s.name);
            for v in &s.variants {
                assert_eq!(v.profile.name, format!("{}/{}", s.name, v.name));
                assert!(!v.params.is_empty());
            }
        }
        let list = list_text();
        assert_eq!(list.lines().count(), 18, "{list}");
        assert!(profiles("pool").unwrap().len() >= 6);
        assert!(profiles("nope").is_none());
        assert!(unknown("nope").contains("pool"));
    }

    #[test]
    fn an_unknown_scenario_is_a_lab_error_row() {
        let lab = engine::testing::lab(&[]);
        let r = run_trial(&lab.opts, "nope", 3, &lab.files, "x");
        assert_eq!(r.outcome, crate::verify::outcome::Outcome::WorkerError);
        assert!(r.detail.contains("unknown scenario"));
    }
}
