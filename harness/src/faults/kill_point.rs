//! Where the parent kills a trial's writers: the policy a user asks for, and the point drawn from the
//! trial's own RNG.

use std::fmt;
use std::time::Duration;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// How kill points are drawn (`--kill-after`, `--kill-delay`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KillPolicy {
    /// After `k` acknowledged commits (over all writers), `k` uniform in `commits`, then a uniform
    /// delay from `delay`.
    AfterAcks {
        commits: (u64, u64),
        delay: (Duration, Duration),
    },
    /// A uniform time after the writers were forked.
    AfterTime { window: (Duration, Duration) },
}

/// The kill point of one trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillPoint {
    AfterAcks { acks: u64, delay: Duration },
    AfterTime { after: Duration },
}

impl fmt::Display for KillPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KillPoint::AfterAcks { acks, delay } => {
                write!(f, "acks={acks}+{}us", delay.as_micros())
            }
            KillPoint::AfterTime { after } => write!(f, "t={}us", after.as_micros()),
        }
    }
}

impl KillPolicy {
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> KillPoint {
        match self {
            KillPolicy::AfterAcks { commits, delay } => KillPoint::AfterAcks {
                acks: rng.random_range(commits.0..=commits.1),
                delay: draw_duration(rng, *delay),
            },
            KillPolicy::AfterTime { window } => KillPoint::AfterTime {
                after: draw_duration(rng, *window),
            },
        }
    }

    /// Parses `--kill-after` (`1..20` acknowledged commits, or a time window `2ms..30ms`) together with
    /// `--kill-delay` (`0us..500us`, only meaningful after commits).
    pub fn parse(after: &str, delay: &str) -> Result<KillPolicy, String> {
        let flag = |e: String| format!("--kill-after {after}: {e}");
        let (lo, hi) = split_range(after).map_err(flag)?;
        if lo.is_empty() || hi.is_empty() {
            return Err(flag(
                "give both ends of the window, like 1..20 (commits) or 2ms..30ms".into(),
            ));
        }
        if lo.chars().all(|c| c.is_ascii_digit()) && hi.chars().all(|c| c.is_ascii_digit()) {
            let too_large =
                |n: &str| flag(format!("`{n}` is too large; give at most {}", u64::MAX));
            let lo: u64 = lo.parse().map_err(|_| too_large(lo))?;
            let hi: u64 = hi.parse().map_err(|_| too_large(hi))?;
            if lo > hi {
                return Err(flag(format!(
                    "the window is empty ({lo} > {hi}); write it low..high"
                )));
            }
            if hi == 0 {
                return Err(flag(
                    "every kill would land before the first commit, so every trial is intact and tests nothing; write it like 1..20".into(),
                ));
            }
            let delay_flag = |e: String| format!("--kill-delay {delay}: {e}");
            let (dlo, dhi) = split_range(delay).map_err(delay_flag)?;
            let delay = (
                parse_duration(dlo).map_err(delay_flag)?,
                parse_duration(dhi).map_err(delay_flag)?,
            );
            if delay.0 > delay.1 {
                return Err(format!(
                    "--kill-delay {}: the window is empty; write it low..high",
                    join_range(delay)
                ));
            }
            Ok(KillPolicy::AfterAcks {
                commits: (lo, hi),
                delay,
            })
        } else {
            let window = (
                parse_duration(lo).map_err(flag)?,
                parse_duration(hi).map_err(flag)?,
            );
            if window.0 > window.1 {
                return Err(flag("the window is empty; write it low..high".into()));
            }
            // A delay after a commit means nothing when the kill is at a time: refused, not ignored.
            if delay.trim() != crate::cli::DEFAULT_KILL_DELAY {
                return Err(format!(
                    "--kill-delay {delay} applies after a commit and --kill-after {after} is a time window; drop --kill-delay, or give --kill-after in commits (1..20)"
                ));
            }
            Ok(KillPolicy::AfterTime { window })
        }
    }

    /// The longest a trial can run before its kill point, for checking against the trial timeout.
    pub fn latest(&self) -> Duration {
        match self {
            KillPolicy::AfterAcks { delay, .. } => delay.1,
            KillPolicy::AfterTime { window } => window.1,
        }
    }
}

fn draw_duration(rng: &mut ChaCha8Rng, (lo, hi): (Duration, Duration)) -> Duration {
    let us = rng.random_range(lo.as_micros() as u64..=hi.as_micros() as u64);
    Duration::from_micros(us)
}

fn join_range((lo, hi): (Duration, Duration)) -> String {
    format!("{}us..{}us", lo.as_micros(), hi.as_micros())
}

/// `a..b` or a single value `a` (meaning `a..a`).
fn split_range(s: &str) -> Result<(&str, &str), String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("an empty window; write it like 1..20 or 2ms..30ms".into());
    }
    Ok(match s.split_once("..") {
        Some((lo, hi)) => (lo.trim(), hi.trim_start_matches('=').trim()),
        None => (s, s),
    })
}

/// `250us`, `3ms`, `1.5s`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{s}` has no unit; write it like 500us, 20ms, 2s or 10m"))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write it like 500us, 20ms, 2s or 10m"))?;
    let micros = match unit {
        "us" | "µs" => value,
        "ms" => value * 1e3,
        "s" => value * 1e6,
        "m" | "min" => value * 60e6,
        "h" => value * 3600e6,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}`; use us, ms, s, m or h"
            ))
        }
    };
    if !micros.is_finite() || !(0.0..=1e15).contains(&micros) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_micros(micros.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn commit_windows_and_time_windows_parse() {
        assert_eq!(
            KillPolicy::parse("1..20", "0us..500us").unwrap(),
            KillPolicy::AfterAcks {
                commits: (1, 20),
                delay: (Duration::ZERO, Duration::from_micros(500))
            }
        );
        assert_eq!(
            KillPolicy::parse("2ms..30ms", crate::cli::DEFAULT_KILL_DELAY).unwrap(),
            KillPolicy::AfterTime {
                window: (Duration::from_millis(2), Duration::from_millis(30))
            }
        );
        assert_eq!(
            KillPolicy::parse("5", "1ms").unwrap(),
            KillPolicy::AfterAcks {
                commits: (5, 5),
                delay: (Duration::from_millis(1), Duration::from_millis(1))
            }
        );
    }

    #[test]
    fn impossible_windows_are_refused_with_the_fix() {
        for (after, delay) in [
            ("20..1", "0"),
            ("5ms..1ms", "0"),
            ("1..x", "0"),
            ("", "0"),
            ("1..5", "9us..1us"),
            ("3parsecs..4parsecs", "0"),
            ("1..5", "10"),
        ] {
            let err = KillPolicy::parse(after, delay).unwrap_err();
            assert!(!err.is_empty(), "{after} {delay}");
        }
    }

    /// Issue 20, R7, R16, R18: a window that tests nothing, a delay that would be ignored, and
    /// windows with a missing or huge end are refused with a line that names the flag.
    #[test]
    fn windows_that_test_nothing_or_would_be_ignored_are_refused_naming_the_flag() {
        for (after, delay, needle) in [
            (
                "0..0",
                crate::cli::DEFAULT_KILL_DELAY,
                "--kill-after 0..0: every kill",
            ),
            (
                "0",
                crate::cli::DEFAULT_KILL_DELAY,
                "before the first commit",
            ),
            (
                "..",
                crate::cli::DEFAULT_KILL_DELAY,
                "--kill-after ..: give both ends",
            ),
            (
                "1..",
                crate::cli::DEFAULT_KILL_DELAY,
                "--kill-after 1..: give both ends",
            ),
            ("..5", crate::cli::DEFAULT_KILL_DELAY, "give both ends"),
            (
                "1..99999999999999999999",
                crate::cli::DEFAULT_KILL_DELAY,
                "--kill-after 1..99999999999999999999: `99999999999999999999` is too large",
            ),
            (
                "2ms..30ms",
                "1ms..2ms",
                "--kill-delay 1ms..2ms applies after a commit",
            ),
            ("1..5", "1x", "--kill-delay 1x:"),
            ("1ms..5x", "0", "--kill-after 1ms..5x:"),
        ] {
            let err = KillPolicy::parse(after, delay).unwrap_err();
            assert!(err.contains(needle), "{after} {delay}: {err}");
        }
        // Negative control: a window that starts at 0 still reaches commits.
        assert!(KillPolicy::parse("0..3", crate::cli::DEFAULT_KILL_DELAY).is_ok());
    }

    #[test]
    fn draws_stay_inside_the_window() {
        let p = KillPolicy::parse("3..7", "10us..20us").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..1000 {
            match p.draw(&mut rng) {
                KillPoint::AfterAcks { acks, delay } => {
                    assert!((3..=7).contains(&acks));
                    assert!((10..=20).contains(&delay.as_micros()));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
