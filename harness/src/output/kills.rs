//! Where the kills landed: each group's kill histogram, along acknowledged commits or, for `t=`
//! kill points, along time after the fork, split by what the kill did to the database.

use serde::Serialize;

use crate::verify::outcome::{Outcome, TrialRecord};

/// At most this many bars per kill histogram; wider ranges are pooled into equal-width bins.
const MAX_BINS: u64 = 20;

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

impl KillHistogram {
    /// The histogram of one group's trials.
    pub fn of(records: &[&TrialRecord]) -> KillHistogram {
        let (reached, not_reached): (Vec<&TrialRecord>, Vec<&TrialRecord>) = records
            .iter()
            .partition(|r| !r.kill_point.contains("not reached"));
        // Time kills are plotted in time; everything else by the commits acknowledged when the
        // writers died, which is where an ack-based kill actually landed (the delay lets more
        // commits through).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::report::tests::rec;
    use crate::verify::outcome::Verdict;

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
    fn histograms_bin_integers_and_set_aside_unreached_kills() {
        let mut records: Vec<TrialRecord> = (0..50)
            .map(|i| {
                let mut r = rec(i, "a", Outcome::Intact, Verdict::Ok);
                r.acked_commits = i;
                r
            })
            .collect();
        records[0].kill_point = "acks=1+0us (not reached: writers finished)".into();
        let h = KillHistogram::of(&records.iter().collect::<Vec<_>>());
        assert_eq!(h.axis, KillAxis::AckedCommits);
        assert_eq!(h.not_reached, 1);
        assert_eq!(h.bins.len(), 17, "49 values, 3 wide: {:?}", h.bins);
        assert_eq!((h.bins[0].lo, h.bins[0].hi), (1, 3));
        assert_eq!(h.bins.iter().map(KillBin::total).sum::<u64>(), 49);

        for (i, r) in records.iter_mut().enumerate() {
            r.kill_point = format!("t={}us", 1000 + i);
        }
        let h = KillHistogram::of(&records.iter().collect::<Vec<_>>());
        assert_eq!((h.axis, h.bins[0].lo), (KillAxis::TimeUs, 1000));
    }
}
