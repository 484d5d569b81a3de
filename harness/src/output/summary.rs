//! Per-profile survival statistics: `OUT/summary.csv` and the table printed at the end of a run.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::output::stats::wilson_95;
use crate::trial::outcome::{Outcome, TrialRecord, Verdict};

/// Counts for one profile (and workload and fault).
#[derive(Clone, Debug, Default)]
pub struct ProfileStats {
    pub profile: String,
    pub journal_mode: String,
    pub synchronous: String,
    pub workload: String,
    pub fault: String,
    pub trials: u64,
    /// Indexed like [`Outcome::ALL`].
    pub outcomes: [u64; Outcome::ALL.len()],
    pub expected: u64,
    pub violations: u64,
    pub busy_errors: u64,
    pub acked_commits: u64,
    pub duration_us: u64,
}

impl ProfileStats {
    pub fn count(&self, o: Outcome) -> u64 {
        self.outcomes[Outcome::ALL.iter().position(|&x| x == o).unwrap_or(0)]
    }

    /// Trials that say something about SQLite: all but worker errors.
    pub fn judged(&self) -> u64 {
        self.trials - self.count(Outcome::WorkerError)
    }

    /// (rate, low, high) of intact among judged trials, with the 95% Wilson interval.
    pub fn survival(&self) -> (f64, f64, f64) {
        let n = self.judged();
        let ok = self.count(Outcome::Intact);
        let (lo, hi) = wilson_95(ok, n);
        let rate = if n == 0 { 0.0 } else { ok as f64 / n as f64 };
        (rate, lo, hi)
    }
}

/// One row of `summary.csv`.
#[derive(Serialize)]
struct SummaryRow<'a> {
    profile: &'a str,
    journal_mode: &'a str,
    synchronous: &'a str,
    workload: &'a str,
    fault: &'a str,
    trials: u64,
    intact: u64,
    lost_commit: u64,
    atomicity: u64,
    corrupt: u64,
    open_failed: u64,
    wrong_key: u64,
    worker_error: u64,
    expected: u64,
    violations: u64,
    survival_rate: String,
    survival_low95: String,
    survival_high95: String,
    busy_errors: u64,
    mean_acked_commits: String,
    mean_trial_us: u64,
}

/// Statistics of a whole run, per profile, in the order profiles first appeared.
#[derive(Debug, Default)]
pub struct Summary {
    pub profiles: Vec<ProfileStats>,
    order: Vec<String>,
}

impl Summary {
    /// A summary whose rows come in this order (the order profiles were asked for), whatever order
    /// trials finish in.
    pub fn with_profile_order(names: impl IntoIterator<Item = String>) -> Summary {
        Summary {
            profiles: Vec::new(),
            order: names.into_iter().collect(),
        }
    }

    pub fn add(&mut self, r: &TrialRecord) {
        let idx =
            match self.profiles.iter().position(|p| {
                p.profile == r.profile && p.workload == r.workload && p.fault == r.fault
            }) {
                Some(i) => i,
                None => {
                    self.profiles.push(ProfileStats {
                        profile: r.profile.clone(),
                        journal_mode: r.journal_mode.clone(),
                        synchronous: r.synchronous.clone(),
                        workload: r.workload.clone(),
                        fault: r.fault.clone(),
                        ..ProfileStats::default()
                    });
                    let rank = |name: &str| self.order.iter().position(|o| o == name);
                    // Keep rows in the requested order; unknown names go last, in arrival order.
                    let new_rank = rank(&r.profile).unwrap_or(usize::MAX);
                    let at = self
                        .profiles
                        .iter()
                        .position(|p| rank(&p.profile).unwrap_or(usize::MAX) > new_rank)
                        .unwrap_or(self.profiles.len() - 1);
                    let row = self.profiles.pop().expect("just pushed");
                    self.profiles.insert(at, row);
                    at
                }
            };
        let p = &mut self.profiles[idx];
        p.trials += 1;
        p.outcomes[Outcome::ALL
            .iter()
            .position(|&o| o == r.outcome)
            .unwrap_or(0)] += 1;
        match r.verdict {
            Verdict::Expected => p.expected += 1,
            Verdict::Violation => p.violations += 1,
            Verdict::Ok | Verdict::LabError => {}
        }
        p.busy_errors += r.busy_errors;
        p.acked_commits += r.acked_commits;
        p.duration_us += r.duration_us;
    }

    pub fn trials(&self) -> u64 {
        self.profiles.iter().map(|p| p.trials).sum()
    }

    pub fn violations(&self) -> u64 {
        self.profiles.iter().map(|p| p.violations).sum()
    }

    pub fn count(&self, o: Outcome) -> u64 {
        self.profiles.iter().map(|p| p.count(o)).sum()
    }

    pub fn write_csv(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("csv.tmp");
        let mut w = csv::Writer::from_path(&tmp)?;
        for p in &self.profiles {
            let (rate, lo, hi) = p.survival();
            w.serialize(SummaryRow {
                profile: &p.profile,
                journal_mode: &p.journal_mode,
                synchronous: &p.synchronous,
                workload: &p.workload,
                fault: &p.fault,
                trials: p.trials,
                intact: p.count(Outcome::Intact),
                lost_commit: p.count(Outcome::LostCommit),
                atomicity: p.count(Outcome::Atomicity),
                corrupt: p.count(Outcome::Corrupt),
                open_failed: p.count(Outcome::OpenFailed),
                wrong_key: p.count(Outcome::WrongKey),
                worker_error: p.count(Outcome::WorkerError),
                expected: p.expected,
                violations: p.violations,
                survival_rate: format!("{rate:.6}"),
                survival_low95: format!("{lo:.6}"),
                survival_high95: format!("{hi:.6}"),
                busy_errors: p.busy_errors,
                mean_acked_commits: format!(
                    "{:.1}",
                    p.acked_commits as f64 / p.trials.max(1) as f64
                ),
                mean_trial_us: p.duration_us / p.trials.max(1),
            })?;
        }
        w.flush()?;
        drop(w);
        // Written whole, then renamed: a reader never sees half a summary.
        std::fs::rename(&tmp, path)
    }

    /// The table printed at the end of a run.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<26} {:>7} {:>7} {:>6} {:>6} {:>7} {:>6} {:>6}  {:>8}  {:<17}  verdict",
            "profile",
            "trials",
            "intact",
            "lost",
            "atom",
            "corrupt",
            "open",
            "w-err",
            "survival",
            "95% interval"
        );
        for p in &self.profiles {
            let (rate, lo, hi) = p.survival();
            let verdict = if p.violations > 0 {
                format!("VIOLATION x{}", p.violations)
            } else if p.expected > 0 {
                format!("ok (expected losses: {})", p.expected)
            } else if p.count(Outcome::WorkerError) > 0 {
                format!("lab errors: {}", p.count(Outcome::WorkerError))
            } else {
                "ok".to_string()
            };
            let _ = writeln!(
                out,
                "{:<26} {:>7} {:>7} {:>6} {:>6} {:>7} {:>6} {:>6}  {:>7.2}%  [{:>6.2}%, {:>6.2}%]  {}",
                truncate(&p.profile, 26),
                p.trials,
                p.count(Outcome::Intact),
                p.count(Outcome::LostCommit),
                p.count(Outcome::Atomicity),
                p.count(Outcome::Corrupt),
                p.count(Outcome::OpenFailed),
                p.count(Outcome::WorkerError),
                rate * 100.0,
                lo * 100.0,
                hi * 100.0,
                verdict
            );
        }
        // SQLCipher only: its own outcome, kept out of the table every plain run prints.
        for p in self
            .profiles
            .iter()
            .filter(|p| p.count(Outcome::WrongKey) > 0)
        {
            let _ = writeln!(
                out,
                "{}: {} trial(s) wrong-key (the key did not open the file; counted in survival, not in the columns)",
                p.profile,
                p.count(Outcome::WrongKey)
            );
        }
        out
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(profile: &str, outcome: Outcome, verdict: Verdict) -> TrialRecord {
        TrialRecord::for_test(profile, outcome, verdict)
    }

    #[test]
    fn counts_and_survival_exclude_worker_errors() {
        let mut s = Summary::default();
        s.add(&rec("off-full", Outcome::Intact, Verdict::Ok));
        s.add(&rec("off-full", Outcome::Corrupt, Verdict::Expected));
        s.add(&rec("off-full", Outcome::WorkerError, Verdict::LabError));
        s.add(&rec("wal-full", Outcome::LostCommit, Verdict::Violation));
        assert_eq!(s.profiles.len(), 2);
        let off = &s.profiles[0];
        assert_eq!((off.trials, off.judged(), off.expected), (3, 2, 1));
        assert_eq!(off.survival().0, 0.5);
        assert_eq!(s.violations(), 1);
        let table = s.render_table();
        assert!(table.contains("VIOLATION x1"), "{table}");
        assert!(table.contains("expected losses: 1"), "{table}");
    }

    #[test]
    fn rows_follow_the_requested_order_not_the_finishing_order() {
        let mut s = Summary::with_profile_order(["a", "b", "c"].map(String::from));
        for name in ["c", "x", "a", "b", "c"] {
            s.add(&rec(name, Outcome::Intact, Verdict::Ok));
        }
        let names: Vec<_> = s.profiles.iter().map(|p| p.profile.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "x"]);
        assert_eq!(s.profiles[2].trials, 2);
    }

    #[test]
    fn summary_csv_has_one_row_per_profile() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Summary::default();
        s.add(&rec("a", Outcome::Intact, Verdict::Ok));
        s.add(&rec("b", Outcome::Intact, Verdict::Ok));
        let path = d.path().join("summary.csv");
        s.write_csv(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with("profile,journal_mode,synchronous,workload,fault,trials,intact,"));
    }
}
