//! JUnit XML for CI: one test case per profile × workload × fault, failed when it has a violation
//! (or, with `--fail-on any`, any non-intact trial), with the outcome counts in its output.

use std::fmt::Write as _;
use std::path::Path;

use crate::output::summary::{ProfileStats, Summary};
use crate::trial::outcome::Outcome;

/// Whether a test case fails, and why.
fn failure(p: &ProfileStats, fail_on_any: bool) -> Option<String> {
    let damaged: u64 = Outcome::ALL
        .iter()
        .filter(|o| o.is_damage())
        .map(|&o| p.count(o))
        .sum();
    if p.violations > 0 {
        Some(format!(
            "{} of {} trials broke a promise SQLite documents for this profile",
            p.violations, p.trials
        ))
    } else if fail_on_any && damaged > 0 {
        Some(format!("{damaged} of {} trials were not intact", p.trials))
    } else {
        None
    }
}

pub fn render(summary: &Summary, fail_on_any: bool) -> String {
    let failures = summary
        .profiles
        .iter()
        .filter(|p| failure(p, fail_on_any).is_some())
        .count();
    let seconds: f64 = summary
        .profiles
        .iter()
        .map(|p| p.duration_us as f64 / 1e6)
        .sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"torture\" tests=\"{}\" failures=\"{failures}\" time=\"{seconds:.3}\">",
        summary.profiles.len()
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"torture\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{seconds:.3}\">",
        summary.profiles.len()
    );
    for p in &summary.profiles {
        let name = format!("{} [{}, {}]", p.profile, p.workload, p.fault);
        let _ = write!(
            x,
            "    <testcase classname=\"torture.{}\" name=\"{}\" time=\"{:.3}\">",
            escape(&p.fault),
            escape(&name),
            p.duration_us as f64 / 1e6
        );
        if let Some(msg) = failure(p, fail_on_any) {
            let _ = write!(
                x,
                "\n      <failure message=\"{}\" type=\"{}\"/>",
                escape(&msg),
                if p.violations > 0 {
                    "violation"
                } else {
                    "not-intact"
                }
            );
        }
        let counts: Vec<String> = Outcome::ALL
            .iter()
            .map(|&o| format!("{o}={}", p.count(o)))
            .collect();
        let (rate, lo, hi) = p.survival();
        let _ = writeln!(
            x,
            "\n      <system-out>trials={} {} expected={} violations={} survival={:.4} [{:.4}, {:.4}] busy_errors={}</system-out>\n    </testcase>",
            p.trials,
            escape(&counts.join(" ")),
            p.expected,
            p.violations,
            rate,
            lo,
            hi,
            p.busy_errors
        );
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

pub fn write(path: &Path, summary: &Summary, fail_on_any: bool) -> std::io::Result<()> {
    std::fs::write(path, render(summary, fail_on_any))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::outcome::{TrialRecord, Verdict};

    fn rec(profile: &str, outcome: Outcome, verdict: Verdict) -> TrialRecord {
        TrialRecord::for_test(profile, outcome, verdict)
    }

    #[test]
    fn a_case_fails_only_for_violations_unless_asked_for_any() {
        let mut s = Summary::default();
        s.add(&rec("wal-full", Outcome::Intact, Verdict::Ok));
        s.add(&rec("off-off", Outcome::Corrupt, Verdict::Expected));
        s.add(&rec(
            "<odd & \"name\">",
            Outcome::LostCommit,
            Verdict::Violation,
        ));
        let x = render(&s, false);
        assert!(x.contains("tests=\"3\" failures=\"1\""), "{x}");
        assert!(
            x.contains("name=\"&lt;odd &amp; &quot;name&quot;&gt; [inserts, sigkill]\""),
            "{x}"
        );
        assert!(x.contains("type=\"violation\""));
        let any = render(&s, true);
        assert!(any.contains("failures=\"2\""), "{any}");
        assert!(any.contains("type=\"not-intact\""));
        assert!(x.contains("corrupt=1"));
    }
}
