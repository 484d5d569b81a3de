//! The one statistics model behind everything the lab shows: trials grouped by (profile, workload,
//! fault) into [`Groups`] of [`Tally`]s — counts per outcome and verdict, busy errors, acknowledged
//! commits, durations — and every rate derived from a tally with its 95% Wilson interval.
//! `summary.csv`, the terminal table and JUnit render a [`Groups`] ([`crate::output::Summary`]
//! adds one trial at a time); `torture report` builds a [`Report`] from the same groups, adding kill
//! histograms and Fisher comparisons, and its exporters render that.

use serde::Serialize;

use crate::output::kills::KillHistogram;
use crate::stats::{fisher_exact_two_sided, Rate};
use crate::verify::outcome::{Outcome, TrialRecord, Verdict};

/// Significance level of the pairwise comparisons.
pub const ALPHA: f64 = 0.05;

/// Distinct values of a column within a group, each with the lowest trial index that had it.
#[derive(Clone, Debug, Default)]
struct Distinct(Vec<(String, u64)>);

impl Distinct {
    fn add(&mut self, value: &str, iteration: u64) {
        match self.0.iter_mut().find(|(v, _)| v == value) {
            Some((_, first)) => *first = (*first).min(iteration),
            None => self.0.push((value.to_string(), iteration)),
        }
    }

    /// The values joined by `/`, in the order of the trials that first had them: a profile whose
    /// pragma fell back on some trials shows both values rather than hiding one, and the order
    /// does not depend on which trial happened to finish first.
    fn joined(&self) -> String {
        let mut values: Vec<&(String, u64)> = self.0.iter().collect();
        values.sort_by_key(|(_, first)| *first);
        let values: Vec<&str> = values.iter().map(|(v, _)| v.as_str()).collect();
        values.join("/")
    }
}

/// The counts of one (profile, workload, fault) group, added one trial at a time.
#[derive(Clone, Debug)]
pub struct Tally {
    pub profile: String,
    pub workload: String,
    pub fault: String,
    journal_modes: Distinct,
    synchronous: Distinct,
    pub trials: u64,
    /// Indexed like [`Outcome::ALL`].
    outcomes: [u64; Outcome::ALL.len()],
    /// Damaged trials SQLite does not promise to avoid for this profile (verdict `expected`).
    pub expected: u64,
    /// Damaged trials SQLite promises to avoid (verdict `violation`).
    pub violations: u64,
    pub busy_errors: u64,
    pub acked_commits: u64,
    /// Sum of the trials' own durations.
    pub duration_us: u64,
}

fn outcome_index(o: Outcome) -> usize {
    Outcome::ALL.iter().position(|&x| x == o).unwrap_or(0)
}

impl Tally {
    /// An empty tally for the group `r` belongs to.
    fn new(r: &TrialRecord) -> Tally {
        Tally {
            profile: r.profile.clone(),
            workload: r.workload.clone(),
            fault: r.fault.clone(),
            journal_modes: Distinct::default(),
            synchronous: Distinct::default(),
            trials: 0,
            outcomes: [0; Outcome::ALL.len()],
            expected: 0,
            violations: 0,
            busy_errors: 0,
            acked_commits: 0,
            duration_us: 0,
        }
    }

    /// Whether `r` belongs to this group.
    pub fn holds(&self, r: &TrialRecord) -> bool {
        self.profile == r.profile && self.workload == r.workload && self.fault == r.fault
    }

    fn add(&mut self, r: &TrialRecord) {
        self.journal_modes.add(&r.journal_mode, r.iteration);
        self.synchronous.add(&r.synchronous, r.iteration);
        self.trials += 1;
        self.outcomes[outcome_index(r.outcome)] += 1;
        match r.verdict {
            Verdict::Expected => self.expected += 1,
            Verdict::Violation => self.violations += 1,
            Verdict::Ok | Verdict::LabError | Verdict::ProgramError => {}
        }
        self.busy_errors += r.busy_errors;
        self.acked_commits += r.acked_commits;
        self.duration_us += r.duration_us;
    }

    /// journal_mode read back; several values joined by `/` if the trials disagree.
    pub fn journal_mode(&self) -> String {
        self.journal_modes.joined()
    }

    /// synchronous read back; several values joined by `/` if the trials disagree.
    pub fn synchronous(&self) -> String {
        self.synchronous.joined()
    }

    pub fn count(&self, o: Outcome) -> u64 {
        self.outcomes[outcome_index(o)]
    }

    /// Trials that say something about SQLite: all but worker errors.
    pub fn judged(&self) -> u64 {
        self.trials - self.count(Outcome::WorkerError)
    }

    /// Judged trials whose database is not intact.
    pub fn damaged(&self) -> u64 {
        Outcome::ALL
            .iter()
            .filter(|o| o.is_damage())
            .map(|&o| self.count(o))
            .sum()
    }

    /// Intact out of judged trials.
    pub fn survival(&self) -> Rate {
        Rate::new(self.count(Outcome::Intact), self.judged())
    }

    /// Damaged out of judged trials: `1 - survival`, with its own interval.
    pub fn damage(&self) -> Rate {
        Rate::new(self.damaged(), self.judged())
    }

    /// One outcome as a share of all trials.
    pub fn outcome_rate(&self, o: Outcome) -> Rate {
        Rate::new(self.count(o), self.trials)
    }

    pub fn mean_acked_commits(&self) -> f64 {
        self.acked_commits as f64 / self.trials.max(1) as f64
    }

    pub fn busy_errors_per_trial(&self) -> f64 {
        self.busy_errors as f64 / self.trials.max(1) as f64
    }

    pub fn mean_trial_us(&self) -> u64 {
        self.duration_us / self.trials.max(1)
    }

    /// Sum of the trials' own durations. Trials run in parallel, so this is not wall-clock time.
    pub fn trial_seconds(&self) -> f64 {
        self.duration_us as f64 / 1e6
    }

    /// `trials / trial_seconds`: the speed of one slot; `None` when no duration was recorded.
    pub fn trials_per_trial_second(&self) -> Option<f64> {
        (self.duration_us > 0).then(|| self.trials as f64 / self.trial_seconds())
    }
}

/// Trials grouped by (profile, workload, fault). Groups come in the order profiles were asked
/// for, if an order was given, whatever order trials finish in; other groups (and groups of one
/// profile) keep the order they first appeared in.
#[derive(Clone, Debug, Default)]
pub struct Groups {
    tallies: Vec<Tally>,
    order: Vec<String>,
}

impl Groups {
    /// Groups whose profiles come in this order; unknown profiles go last.
    pub fn with_profile_order(names: impl IntoIterator<Item = String>) -> Groups {
        Groups {
            tallies: Vec::new(),
            order: names.into_iter().collect(),
        }
    }

    /// The groups of `records`, in first-appearance order.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a TrialRecord>) -> Groups {
        let mut groups = Groups::default();
        for r in records {
            groups.add(r);
        }
        groups
    }

    /// Counts `r` in its group, making the group if it is new; returns the group's index now
    /// (a new group may shift later ones only when a profile order was given).
    pub fn add(&mut self, r: &TrialRecord) -> usize {
        let idx = match self.tallies.iter().position(|t| t.holds(r)) {
            Some(i) => i,
            None => {
                let rank = |name: &str| {
                    self.order
                        .iter()
                        .position(|o| o == name)
                        .unwrap_or(usize::MAX)
                };
                // After every group of a lower or equal rank: a stable sort by rank.
                let new_rank = rank(&r.profile);
                let at = self
                    .tallies
                    .iter()
                    .position(|t| rank(&t.profile) > new_rank)
                    .unwrap_or(self.tallies.len());
                self.tallies.insert(at, Tally::new(r));
                at
            }
        };
        self.tallies[idx].add(r);
        idx
    }

    pub fn tallies(&self) -> &[Tally] {
        &self.tallies
    }

    pub fn trials(&self) -> u64 {
        self.tallies.iter().map(|t| t.trials).sum()
    }

    pub fn violations(&self) -> u64 {
        self.tallies.iter().map(|t| t.violations).sum()
    }

    pub fn count(&self, o: Outcome) -> u64 {
        self.tallies.iter().map(|t| t.count(o)).sum()
    }

    /// Trials of any group whose database is not intact.
    pub fn damaged(&self) -> u64 {
        self.tallies.iter().map(Tally::damaged).sum()
    }
}

/// How often one outcome occurred in a group, out of all its trials.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutcomeRate {
    pub outcome: Outcome,
    #[serde(flatten)]
    pub rate: Rate,
}

/// Statistics of one (profile, workload, fault) group, as `torture report` shows them: the
/// [`Tally`]'s numbers, evaluated, plus the group's kill histogram.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupStats {
    /// The run's label when the report sets runs side by side; empty otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub run: String,
    pub profile: String,
    /// journal_mode read back; several values joined by `/` if the trials disagree.
    pub journal_mode: String,
    pub synchronous: String,
    pub workload: String,
    pub fault: String,
    pub trials: u64,
    /// Trials that say something about SQLite: all but worker errors.
    pub judged: u64,
    /// Every outcome in [`Outcome::ALL`] order, as a share of all trials (they add up to 1).
    pub outcomes: Vec<OutcomeRate>,
    /// Judged trials whose database is not intact (any damage), out of judged trials.
    pub damage: Rate,
    /// Intact out of judged trials: `1 - damage`, with its own interval.
    pub survival: Rate,
    /// Damaged trials SQLite does not promise to avoid for this profile (verdict `expected`).
    pub expected: u64,
    /// Damaged trials SQLite promises to avoid (verdict `violation`).
    pub violations: u64,
    pub busy_errors: u64,
    pub busy_errors_per_trial: f64,
    pub mean_acked_commits: f64,
    /// Sum of the trials' own durations. Trials run in parallel, so this is not wall-clock time.
    pub trial_seconds: f64,
    /// `trials / trial_seconds`: the speed of one slot; `None` when no duration was recorded.
    pub trials_per_trial_second: Option<f64>,
    pub kills: KillHistogram,
}

impl GroupStats {
    pub fn new(t: &Tally, kills: KillHistogram) -> GroupStats {
        GroupStats {
            run: String::new(),
            profile: t.profile.clone(),
            journal_mode: t.journal_mode(),
            synchronous: t.synchronous(),
            workload: t.workload.clone(),
            fault: t.fault.clone(),
            trials: t.trials,
            judged: t.judged(),
            outcomes: Outcome::ALL
                .iter()
                .map(|&outcome| OutcomeRate {
                    outcome,
                    rate: t.outcome_rate(outcome),
                })
                .collect(),
            damage: t.damage(),
            survival: t.survival(),
            expected: t.expected,
            violations: t.violations,
            busy_errors: t.busy_errors,
            busy_errors_per_trial: t.busy_errors_per_trial(),
            mean_acked_commits: t.mean_acked_commits(),
            trial_seconds: t.trial_seconds(),
            trials_per_trial_second: t.trials_per_trial_second(),
            kills,
        }
    }

    /// `profile · workload · fault`, for charts and headings; `[run]` before it when runs are set
    /// side by side.
    pub fn label(&self) -> String {
        let key = format!("{} · {} · {}", self.profile, self.workload, self.fault);
        if self.run.is_empty() {
            key
        } else {
            format!("[{}] {key}", self.run)
        }
    }

    /// Whether `other` is the same profile × workload × fault (of another run, perhaps).
    fn same_key(&self, other: &GroupStats) -> bool {
        self.profile == other.profile
            && self.workload == other.workload
            && self.fault == other.fault
    }

    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes
            .iter()
            .find(|o| o.outcome == outcome)
            .map_or(0, |o| o.rate.count)
    }
}

/// "`better` survives better than `worse`", tested on the damage rates of two groups of the same
/// workload and fault with Fisher's exact test (two-sided).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub workload: String,
    pub fault: String,
    /// The profile with the lower observed damage rate.
    pub better: String,
    pub worse: String,
    /// The runs of `better` and `worse` when runs are set side by side (the same run for two
    /// profiles of one run; two runs for one profile across runs); empty otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub better_run: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub worse_run: String,
    pub better_damage: Rate,
    pub worse_damage: Rate,
    pub p_value: f64,
    /// `p_value < ALPHA`: the data support "better survives better than worse" at 5%.
    pub supported: bool,
}

impl Comparison {
    /// One profile × workload × fault in two runs (rather than two profiles of one run).
    pub fn across_runs(&self) -> bool {
        self.better_run != self.worse_run
    }
}

/// One run of a report that sets runs side by side, labelled by what differs between them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunInfo {
    /// What tells this run from the others: `SQLite 3.51.2`, `seed 7, 2026-12-04`, a folder.
    pub label: String,
    /// The folders (or trials.csv files) it was read from.
    pub inputs: Vec<String>,
    pub trials: u64,
    /// When it started (UTC), if its run.json says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The engine and its versions, `SQLite 3.54.1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `host (N CPUs)`, if its run.json says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
}

/// Everything a report shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The runs set side by side; empty when the report is of one run (or of runs that share no
    /// profile × workload × fault, which read as one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunInfo>,
    pub trials: u64,
    /// Distinct `sqlite_version` values, sorted.
    pub sqlite_versions: Vec<String>,
    /// In the order each group first appears in the records.
    pub groups: Vec<GroupStats>,
    /// Pairs where at least one side has damage, most significant first.
    pub comparisons: Vec<Comparison>,
    /// Pairs left out of `comparisons` because neither side has damage: the data cannot tell
    /// them apart.
    pub indistinguishable_pairs: u64,
}

impl Report {
    pub fn build(records: &[TrialRecord]) -> Report {
        let mut groups = Groups::default();
        let mut members: Vec<Vec<&TrialRecord>> = Vec::new();
        for r in records {
            let i = groups.add(r);
            if members.len() < groups.tallies().len() {
                members.insert(i, Vec::new());
            }
            members[i].push(r);
        }
        let groups: Vec<GroupStats> = groups
            .tallies()
            .iter()
            .zip(&members)
            .map(|(t, m)| GroupStats::new(t, KillHistogram::of(m)))
            .collect();
        let (comparisons, indistinguishable_pairs) = compare(&groups);
        let mut sqlite_versions: Vec<String> =
            records.iter().map(|r| r.sqlite_version.clone()).collect();
        sqlite_versions.sort();
        sqlite_versions.dedup();
        sqlite_versions.retain(|v| !v.is_empty());
        Report {
            runs: Vec::new(),
            trials: records.len() as u64,
            sqlite_versions,
            groups,
            comparisons,
            indistinguishable_pairs,
        }
    }
}

impl Report {
    /// The report of several runs: one run, or runs that share no profile × workload × fault, read
    /// as one (as [`Report::build`]); otherwise the runs side by side, each group labelled with
    /// its run, the same profile × workload × fault of two runs next to each other and compared
    /// across the runs, and each run's profiles compared within it as usual.
    pub fn build_runs(runs: &[(RunInfo, Vec<TrialRecord>)]) -> Report {
        let per_run: Vec<Report> = runs.iter().map(|(_, r)| Report::build(r)).collect();
        let shared = per_run.iter().enumerate().any(|(i, a)| {
            per_run[i + 1..].iter().any(|b| {
                a.groups
                    .iter()
                    .any(|g| b.groups.iter().any(|h| g.same_key(h)))
            })
        });
        if !shared {
            let all: Vec<TrialRecord> = runs.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
            return Report::build(&all);
        }
        // Groups in order of first appearance of their key, then run order.
        let mut groups: Vec<GroupStats> = Vec::new();
        for ((info, _), report) in runs.iter().zip(&per_run) {
            for g in &report.groups {
                let mut g = g.clone();
                g.run = info.label.clone();
                match groups.iter().rposition(|h| h.same_key(&g)) {
                    Some(at) => groups.insert(at + 1, g),
                    None => groups.push(g),
                }
            }
        }
        let mut comparisons = Vec::new();
        let mut indistinguishable = 0;
        for ((info, _), report) in runs.iter().zip(&per_run) {
            for c in &report.comparisons {
                let mut c = c.clone();
                c.better_run = info.label.clone();
                c.worse_run = info.label.clone();
                comparisons.push(c);
            }
            indistinguishable += report.indistinguishable_pairs;
        }
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                if !a.same_key(b) || a.run == b.run {
                    continue;
                }
                match fisher(a, b) {
                    Some(c) => comparisons.push(c),
                    None => indistinguishable += 1,
                }
            }
        }
        comparisons.sort_by(|x, y| x.p_value.total_cmp(&y.p_value));
        let mut sqlite_versions: Vec<String> = per_run
            .iter()
            .flat_map(|r| r.sqlite_versions.iter().cloned())
            .collect();
        sqlite_versions.sort();
        sqlite_versions.dedup();
        Report {
            runs: runs.iter().map(|(info, _)| info.clone()).collect(),
            trials: per_run.iter().map(|r| r.trials).sum(),
            sqlite_versions,
            groups,
            comparisons,
            indistinguishable_pairs: indistinguishable,
        }
    }
}

/// Fisher's exact test on the damage rates of two groups, the better survivor first; `None` when
/// neither has damage (the data cannot tell them apart).
fn fisher(a: &GroupStats, b: &GroupStats) -> Option<Comparison> {
    if a.damage.count == 0 && b.damage.count == 0 {
        return None;
    }
    // Name the observed better survivor first; on a tie keep group order.
    let (better, worse) = if b.damage.rate < a.damage.rate {
        (b, a)
    } else {
        (a, b)
    };
    let p_value = six_digits(fisher_exact_two_sided(
        better.damage.count,
        better.damage.n - better.damage.count,
        worse.damage.count,
        worse.damage.n - worse.damage.count,
    ));
    Some(Comparison {
        workload: a.workload.clone(),
        fault: a.fault.clone(),
        better: better.profile.clone(),
        worse: worse.profile.clone(),
        better_run: better.run.clone(),
        worse_run: worse.run.clone(),
        better_damage: better.damage,
        worse_damage: worse.damage,
        p_value,
        supported: p_value < ALPHA && better.damage.rate < worse.damage.rate,
    })
}

fn compare(groups: &[GroupStats]) -> (Vec<Comparison>, u64) {
    let mut comparisons = Vec::new();
    let mut indistinguishable = 0;
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            if a.workload != b.workload || a.fault != b.fault {
                continue;
            }
            match fisher(a, b) {
                Some(c) => comparisons.push(c),
                None => indistinguishable += 1,
            }
        }
    }
    // Stable sort: equal p-values keep group order, so the output is deterministic.
    comparisons.sort_by(|x, y| x.p_value.total_cmp(&y.p_value));
    (comparisons, indistinguishable)
}

/// `x` to six significant digits. The p-value goes through `ln` and `exp`, whose last bit may
/// differ between platforms' math libraries; six digits are all a p-value can mean, and they keep
/// the exported JSON identical everywhere.
fn six_digits(x: f64) -> f64 {
    format!("{x:.5e}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::report::tests::rec;

    #[test]
    fn groups_count_outcomes_and_separate_expected_from_violations() {
        let records = vec![
            rec(0, "off", Outcome::Intact, Verdict::Ok),
            rec(1, "off", Outcome::Corrupt, Verdict::Expected),
            rec(2, "off", Outcome::WorkerError, Verdict::LabError),
            rec(3, "wal", Outcome::LostCommit, Verdict::Violation),
        ];
        let r = Report::build(&records);
        assert_eq!(r.groups.len(), 2);
        let off = &r.groups[0];
        assert_eq!((off.trials, off.judged), (3, 2));
        assert_eq!((off.expected, off.violations), (1, 0));
        assert_eq!(off.damage.count, 1);
        assert_eq!(off.survival.rate, 0.5);
        let total: f64 = off.outcomes.iter().map(|o| o.rate.rate).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert_eq!(r.groups[1].violations, 1);
    }

    #[test]
    fn survival_and_damage_split_the_judged_trials() {
        let mut records = Vec::new();
        for (i, o) in Outcome::ALL.iter().enumerate() {
            records.push(rec(i as u64, "p", *o, Verdict::Expected));
        }
        let g = Groups::of(&records);
        let t = &g.tallies()[0];
        assert_eq!(t.judged(), Outcome::ALL.len() as u64 - 1);
        assert_eq!(t.survival().count + t.damage().count, t.judged());
        assert_eq!(t.survival().n, t.damage().n);
        assert_eq!(g.damaged(), t.damaged());
    }

    #[test]
    fn groups_follow_the_requested_order_then_first_appearance() {
        let mut g = Groups::with_profile_order(["a", "b"].map(String::from));
        for name in ["y", "b", "x", "a", "y"] {
            g.add(&rec(0, name, Outcome::Intact, Verdict::Ok));
        }
        let names: Vec<&str> = g.tallies().iter().map(|t| t.profile.as_str()).collect();
        assert_eq!(names, ["a", "b", "y", "x"]);
        assert_eq!(g.tallies()[2].trials, 2);
    }

    #[test]
    fn disagreeing_pragmas_are_all_shown_in_trial_order_not_finishing_order() {
        let mut records: Vec<TrialRecord> = (0..4)
            .map(|i| rec(i, "p", Outcome::Intact, Verdict::Ok))
            .collect();
        records[0].journal_mode = "delete".into();
        records[2].synchronous = "off".into();
        let forward = Groups::of(&records);
        let backward = Groups::of(records.iter().rev());
        for g in [&forward, &backward] {
            let t = &g.tallies()[0];
            assert_eq!(t.journal_mode(), "delete/wal");
            assert_eq!(t.synchronous(), "full/off");
        }
    }

    #[test]
    fn comparisons_skip_pairs_without_damage_and_name_the_better_side_first() {
        let mut records = Vec::new();
        for i in 0..20 {
            records.push(rec(i, "a", Outcome::Intact, Verdict::Ok));
            records.push(rec(100 + i, "b", Outcome::Intact, Verdict::Ok));
            let bad = if i < 10 {
                Outcome::Corrupt
            } else {
                Outcome::Intact
            };
            records.push(rec(200 + i, "c", bad, Verdict::Expected));
        }
        let r = Report::build(&records);
        assert_eq!(r.indistinguishable_pairs, 1, "a vs b");
        assert_eq!(r.comparisons.len(), 2);
        let c = &r.comparisons[0];
        assert_eq!((c.better.as_str(), c.worse.as_str()), ("a", "c"));
        assert!(c.supported && c.p_value < 0.001, "{c:?}");
    }
}
