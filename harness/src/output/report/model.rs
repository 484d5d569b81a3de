//! The report as data: per-group statistics, pairwise comparisons and kill histograms, computed once
//! from the trial records so every exporter shows the same numbers.

use serde::Serialize;

use super::fisher::fisher_exact_two_sided;
use crate::output::stats::wilson_95;
use crate::trial::outcome::{Outcome, TrialRecord, Verdict};

/// Significance level of the pairwise comparisons.
pub const ALPHA: f64 = 0.05;

/// At most this many bars per kill histogram; wider ranges are pooled into equal-width bins.
const MAX_BINS: u64 = 20;

/// `count` of `n` trials, with the 95% Wilson interval of the rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Rate {
    pub count: u64,
    pub n: u64,
    /// `count / n`, 0 when `n` is 0.
    pub rate: f64,
    pub low95: f64,
    pub high95: f64,
}

impl Rate {
    pub fn new(count: u64, n: u64) -> Rate {
        let (mut low95, mut high95) = wilson_95(count, n);
        // The interval touches 0 or 1 exactly when the count does; say so exactly, not as
        // 0.9999999999999999 from rounding.
        if count == 0 {
            low95 = 0.0;
        }
        if count == n {
            high95 = 1.0;
        }
        let rate = if n == 0 { 0.0 } else { count as f64 / n as f64 };
        Rate {
            count,
            n,
            rate,
            low95,
            high95,
        }
    }
}

/// How often one outcome occurred in a group, out of all its trials.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutcomeRate {
    pub outcome: Outcome,
    #[serde(flatten)]
    pub rate: Rate,
}

/// What the kill histogram counts along its axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KillAxis {
    /// Commits acknowledged when the writers died (the `acked_commits` column).
    AckedCommits,
    /// Microseconds after the fork (`t=3200us` kill points).
    TimeUs,
}

impl KillAxis {
    pub fn label(self) -> &'static str {
        match self {
            KillAxis::AckedCommits => "acked commits at the kill",
            KillAxis::TimeUs => "kill time after fork (us)",
        }
    }
}

/// One bar of a kill histogram: kills that landed in `lo..=hi`, split by what they did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KillBin {
    pub lo: u64,
    pub hi: u64,
    pub intact: u64,
    pub damaged: u64,
    pub worker_error: u64,
}

impl KillBin {
    pub fn total(&self) -> u64 {
        self.intact + self.damaged + self.worker_error
    }
}

/// Where a group's kills landed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KillHistogram {
    pub axis: KillAxis,
    pub bins: Vec<KillBin>,
    /// Trials whose writers finished or timed out before the kill point: no kill landed.
    pub not_reached: u64,
}

/// Statistics of one (profile, workload, fault) group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupStats {
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
    /// `profile · workload · fault`, for charts and headings.
    pub fn label(&self) -> String {
        format!("{} · {} · {}", self.profile, self.workload, self.fault)
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
    pub better_damage: Rate,
    pub worse_damage: Rate,
    pub p_value: f64,
    /// `p_value < ALPHA`: the data support "better survives better than worse" at 5%.
    pub supported: bool,
}

/// Everything a report shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
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
        let groups = group(records);
        let (comparisons, indistinguishable_pairs) = compare(&groups);
        let mut sqlite_versions: Vec<String> =
            records.iter().map(|r| r.sqlite_version.clone()).collect();
        sqlite_versions.sort();
        sqlite_versions.dedup();
        sqlite_versions.retain(|v| !v.is_empty());
        Report {
            trials: records.len() as u64,
            sqlite_versions,
            groups,
            comparisons,
            indistinguishable_pairs,
        }
    }
}

fn group(records: &[TrialRecord]) -> Vec<GroupStats> {
    // Groups keep first-appearance order (like summary.csv); a linear search is fine for the
    // handful of groups a run has.
    let mut members: Vec<Vec<&TrialRecord>> = Vec::new();
    for r in records {
        match members.iter_mut().find(|m| {
            let f = m[0];
            f.profile == r.profile && f.workload == r.workload && f.fault == r.fault
        }) {
            Some(m) => m.push(r),
            None => members.push(vec![r]),
        }
    }
    members.iter().map(|m| stats(m)).collect()
}

fn stats(records: &[&TrialRecord]) -> GroupStats {
    let first = records[0];
    let trials = records.len() as u64;
    let count = |o: Outcome| records.iter().filter(|r| r.outcome == o).count() as u64;
    let outcomes: Vec<OutcomeRate> = Outcome::ALL
        .iter()
        .map(|&outcome| OutcomeRate {
            outcome,
            rate: Rate::new(count(outcome), trials),
        })
        .collect();
    let judged = trials - count(Outcome::WorkerError);
    let damaged = records.iter().filter(|r| r.outcome.is_damage()).count() as u64;
    let busy_errors: u64 = records.iter().map(|r| r.busy_errors).sum();
    let acked: u64 = records.iter().map(|r| r.acked_commits).sum();
    let duration_us: u64 = records.iter().map(|r| r.duration_us).sum();
    let trial_seconds = duration_us as f64 / 1e6;
    GroupStats {
        profile: first.profile.clone(),
        journal_mode: joined(records.iter().map(|r| r.journal_mode.as_str())),
        synchronous: joined(records.iter().map(|r| r.synchronous.as_str())),
        workload: first.workload.clone(),
        fault: first.fault.clone(),
        trials,
        judged,
        outcomes,
        damage: Rate::new(damaged, judged),
        survival: Rate::new(judged - damaged, judged),
        expected: verdicts(records, Verdict::Expected),
        violations: verdicts(records, Verdict::Violation),
        busy_errors,
        busy_errors_per_trial: busy_errors as f64 / trials as f64,
        mean_acked_commits: acked as f64 / trials as f64,
        trial_seconds,
        trials_per_trial_second: (duration_us > 0).then(|| trials as f64 / trial_seconds),
        kills: kill_histogram(records),
    }
}

fn verdicts(records: &[&TrialRecord], v: Verdict) -> u64 {
    records.iter().filter(|r| r.verdict == v).count() as u64
}

/// Distinct values in first-seen order, joined by `/`: a profile whose pragma fell back on some
/// trials shows both values rather than hiding one.
fn joined<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for v in values {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen.join("/")
}

/// Where a kill point string says the kill was aimed, if it parses: `acks=7+120us` or `t=3200us`,
/// possibly followed by ` (not reached: ...)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillAt {
    Acks(u64),
    TimeUs(u64),
}

pub fn parse_kill_point(s: &str) -> Option<KillAt> {
    let head = s.split_whitespace().next()?;
    if let Some(rest) = head.strip_prefix("acks=") {
        let acks = rest.split('+').next()?;
        return acks.parse().ok().map(KillAt::Acks);
    }
    let us = head.strip_prefix("t=")?.strip_suffix("us")?;
    us.parse().ok().map(KillAt::TimeUs)
}

fn kill_histogram(records: &[&TrialRecord]) -> KillHistogram {
    let (reached, not_reached): (Vec<&TrialRecord>, Vec<&TrialRecord>) = records
        .iter()
        .partition(|r| !r.kill_point.contains("not reached"));
    // Time kills are plotted in time; everything else by the commits acknowledged when the writers
    // died, which is where an ack-based kill actually landed (the delay lets more commits through).
    let parsed: Vec<Option<KillAt>> = reached
        .iter()
        .map(|r| parse_kill_point(&r.kill_point))
        .collect();
    let timed = parsed.iter().all(|k| matches!(k, Some(KillAt::TimeUs(_))));
    let axis = if timed && !reached.is_empty() {
        KillAxis::TimeUs
    } else {
        KillAxis::AckedCommits
    };
    let points: Vec<(u64, Outcome)> = reached
        .iter()
        .zip(&parsed)
        .map(|(r, k)| match (axis, k) {
            (KillAxis::TimeUs, Some(KillAt::TimeUs(us))) => (*us, r.outcome),
            _ => (r.acked_commits, r.outcome),
        })
        .collect();
    KillHistogram {
        axis,
        bins: bins(&points),
        not_reached: not_reached.len() as u64,
    }
}

fn bins(points: &[(u64, Outcome)]) -> Vec<KillBin> {
    let (Some(min), Some(max)) = (
        points.iter().map(|p| p.0).min(),
        points.iter().map(|p| p.0).max(),
    ) else {
        return Vec::new();
    };
    // Integer-wide bins so a commit count never straddles two bars.
    let span = max - min + 1;
    let width = span.div_ceil(MAX_BINS);
    let n = span.div_ceil(width);
    let mut bins: Vec<KillBin> = (0..n)
        .map(|i| KillBin {
            lo: min + i * width,
            hi: (min + (i + 1) * width - 1).min(max),
            ..KillBin::default()
        })
        .collect();
    for &(v, outcome) in points {
        let bin = &mut bins[((v - min) / width) as usize];
        match outcome {
            Outcome::Intact => bin.intact += 1,
            Outcome::WorkerError => bin.worker_error += 1,
            _ => bin.damaged += 1,
        }
    }
    bins
}

fn compare(groups: &[GroupStats]) -> (Vec<Comparison>, u64) {
    let mut comparisons = Vec::new();
    let mut indistinguishable = 0;
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            if a.workload != b.workload || a.fault != b.fault {
                continue;
            }
            if a.damage.count == 0 && b.damage.count == 0 {
                indistinguishable += 1;
                continue;
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
            comparisons.push(Comparison {
                workload: a.workload.clone(),
                fault: a.fault.clone(),
                better: better.profile.clone(),
                worse: worse.profile.clone(),
                better_damage: better.damage,
                worse_damage: worse.damage,
                p_value,
                supported: p_value < ALPHA && better.damage.rate < worse.damage.rate,
            });
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
    fn kill_points_parse() {
        assert_eq!(parse_kill_point("acks=7+120us"), Some(KillAt::Acks(7)));
        assert_eq!(parse_kill_point("t=3200us"), Some(KillAt::TimeUs(3200)));
        assert_eq!(
            parse_kill_point("acks=3+10us (not reached: timeout)"),
            Some(KillAt::Acks(3))
        );
        assert_eq!(parse_kill_point(""), None);
        assert_eq!(parse_kill_point("t=3ms"), None);
    }

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

    #[test]
    fn histograms_bin_integers_and_set_aside_unreached_kills() {
        let mut records: Vec<TrialRecord> = (0..50)
            .map(|i| {
                let mut r = rec(i, "a", Outcome::Intact, Verdict::Ok);
                r.acked_commits = i;
                r
            })
            .collect();
        records[0].kill_point = "acks=1+0us (not reached: writers finished)".into();
        let h = &Report::build(&records).groups[0].kills;
        assert_eq!(h.axis, KillAxis::AckedCommits);
        assert_eq!(h.not_reached, 1);
        assert_eq!(h.bins.len(), 17, "49 values, 3 wide: {:?}", h.bins);
        assert_eq!((h.bins[0].lo, h.bins[0].hi), (1, 3));
        assert_eq!(h.bins.iter().map(KillBin::total).sum::<u64>(), 49);

        for (i, r) in records.iter_mut().enumerate() {
            r.kill_point = format!("t={}us", 1000 + i);
        }
        let h = &Report::build(&records).groups[0].kills;
        assert_eq!((h.axis, h.bins[0].lo), (KillAxis::TimeUs, 1000));
    }
}
