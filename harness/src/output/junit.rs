//! JUnit XML for CI, written by `quick-junit` (nextest's writer, which also does the escaping):
//! one test case per profile × workload × fault, failed when it has a violation (or, with
//! `--fail-on any`, any non-intact trial), with the outcome counts in its output.

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::output::model::Tally;
use crate::output::summary::Summary;
use crate::verify::outcome::Outcome;

/// Whether a test case fails: the failure's type and message.
fn failure(t: &Tally, fail_on_any: bool) -> Option<(&'static str, String)> {
    if t.violations > 0 {
        Some((
            "violation",
            format!(
                "{} of {} trials broke a promise its engine documents for this profile",
                t.violations, t.trials
            ),
        ))
    } else if fail_on_any && t.damaged() > 0 {
        Some((
            "not-intact",
            format!("{} of {} trials were not intact", t.damaged(), t.trials),
        ))
    } else {
        None
    }
}

/// The test case of one group.
fn case(t: &Tally, fail_on_any: bool) -> TestCase {
    let status = match failure(t, fail_on_any) {
        Some((ty, message)) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(message).set_type(ty);
            s
        }
        None => TestCaseStatus::success(),
    };
    let counts: Vec<String> = Outcome::ALL
        .iter()
        .map(|&o| format!("{o}={}", t.count(o)))
        .collect();
    let s = t.survival();
    let mut case = TestCase::new(
        format!("{} [{}, {}]", t.profile, t.workload, t.fault),
        status,
    );
    case.set_classname(format!("torture.{}", t.fault))
        .set_time(Duration::from_micros(t.duration_us))
        .set_system_out(format!(
            "trials={} {} expected={} violations={} survival={:.4} [{:.4}, {:.4}] busy_errors={}",
            t.trials,
            counts.join(" "),
            t.expected,
            t.violations,
            s.rate,
            s.low95,
            s.high95,
            t.busy_errors
        ));
    case
}

/// The JUnit document of a run's summary.
pub fn render(summary: &Summary, fail_on_any: bool) -> String {
    let tallies = summary.groups().tallies();
    let time = Duration::from_micros(tallies.iter().map(|t| t.duration_us).sum());
    let mut suite = TestSuite::new("torture");
    suite.set_time(time);
    suite.add_test_cases(tallies.iter().map(|t| case(t, fail_on_any)));
    let mut report = Report::new("torture");
    report.set_time(time).add_test_suite(suite);
    // Serializing into memory fails only on invalid UTF-8, and every string here is a `String`.
    report.to_string().expect("JUnit XML of Rust strings")
}

pub fn write(path: &Path, summary: &Summary, fail_on_any: bool) -> std::io::Result<()> {
    std::fs::write(path, render(summary, fail_on_any))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::outcome::{TrialRecord, Verdict};

    fn rec(profile: &str, outcome: Outcome, verdict: Verdict) -> TrialRecord {
        TrialRecord::for_test(profile, outcome, verdict)
    }

    fn summary() -> Summary {
        let mut s = Summary::default();
        s.add(&rec("wal-full", Outcome::Intact, Verdict::Ok));
        s.add(&rec("off-off", Outcome::Corrupt, Verdict::Expected));
        s.add(&rec("<&\"'>", Outcome::LostCommit, Verdict::Violation));
        s
    }

    #[test]
    fn a_case_fails_only_for_violations_unless_asked_for_any() {
        let s = summary();
        let x = render(&s, false);
        assert!(x.contains("tests=\"3\""), "{x}");
        assert!(x.contains("failures=\"1\""), "{x}");
        assert!(x.contains("type=\"violation\""));
        let any = render(&s, true);
        assert!(any.contains("failures=\"2\""), "{any}");
        assert!(any.contains("type=\"not-intact\""));
        assert!(x.contains("corrupt=1"));
    }

    #[test]
    fn a_hostile_profile_name_is_escaped_and_reads_back_whole() {
        let x = render(&summary(), true);
        // Every special character escaped in the attribute, none left raw.
        assert!(
            x.contains("name=\"&lt;&amp;&quot;&apos;&gt; [inserts, sigkill]\""),
            "{x}"
        );
        assert!(!x.contains("<&"), "{x}");

        // The document parses, and says what the summary says.
        let report = Report::deserialize_from_str(&x).expect("well-formed JUnit");
        assert_eq!(report.name.as_deref(), Some("torture"));
        assert_eq!((report.tests, report.failures, report.errors), (3, 2, 0));
        assert_eq!(report.test_suites.len(), 1);
        let suite = &report.test_suites[0];
        assert_eq!(
            (suite.name.as_str(), suite.tests, suite.failures),
            ("torture", 3, 2)
        );
        let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "wal-full [inserts, sigkill]",
                "off-off [inserts, sigkill]",
                "<&\"'> [inserts, sigkill]"
            ]
        );
        let hostile = &suite.test_cases[2];
        assert_eq!(hostile.classname.as_deref(), Some("torture.sigkill"));
        match &hostile.status {
            TestCaseStatus::NonSuccess {
                kind, ty, message, ..
            } => {
                assert_eq!(*kind, NonSuccessKind::Failure);
                assert_eq!(ty.as_deref(), Some("violation"));
                assert_eq!(
                    message.as_deref(),
                    Some("1 of 1 trials broke a promise its engine documents for this profile")
                );
            }
            other => panic!("{other:?}"),
        }
        let out = hostile.system_out.as_deref().unwrap_or_default();
        assert!(out.starts_with("trials=1 intact=0 lost-commit=1 "), "{out}");
        assert!(matches!(
            suite.test_cases[0].status,
            TestCaseStatus::Success { .. }
        ));
    }
}
