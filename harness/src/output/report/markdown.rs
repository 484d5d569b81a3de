//! GitHub-flavoured Markdown: the same sections as the terminal table, ready to paste into an
//! issue or a README.

use std::fmt::Write as _;

use super::text;
use super::Exporter;
use crate::output::model::Report;

/// GitHub Markdown tables.
#[derive(Clone, Copy, Debug, Default)]
pub struct Markdown;

/// A Markdown table; `right` marks right-aligned (numeric) columns.
fn table(out: &mut String, header: &[(&str, bool)], rows: &[Vec<String>]) {
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    out.push_str(&line(header.iter().map(|h| h.0.to_string()).collect()));
    out.push_str(&line(
        header
            .iter()
            .map(|h| if h.1 { "---:" } else { "---" }.to_string())
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(row.iter().map(|c| cell(c)).collect()));
    }
}

/// A pipe inside a cell would end it early; a newline would end the table.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Exporter for Markdown {
    fn render(&self, report: &Report) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# torture report\n\n{}.", text::headline(report));
        if report.groups.is_empty() {
            return out;
        }
        if !report.runs.is_empty() {
            let _ = writeln!(out, "\n## Runs side by side\n");
            for r in &report.runs {
                let _ = writeln!(out, "- {}", cell(&text::run_line(r)));
            }
        }

        let _ = writeln!(
            out,
            "\n## Damage\n\nAny outcome but intact, among judged trials (worker errors are not judged).\n"
        );
        let rows: Vec<Vec<String>> = report
            .groups
            .iter()
            .map(|g| {
                vec![
                    text::side(&g.profile, &g.run),
                    g.workload.clone(),
                    g.fault.clone(),
                    text::thousands(g.trials),
                    text::thousands(g.judged),
                    text::thousands(g.expected),
                    text::thousands(g.violations),
                    text::rate_phrase(&g.damage),
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                ("profile", false),
                ("workload", false),
                ("fault", false),
                ("trials", true),
                ("judged", true),
                ("expected", true),
                ("violations", true),
                ("damage", false),
            ],
            &rows,
        );

        let _ = writeln!(
            out,
            "\n## Outcomes\n\nShare of all trials, with the 95% Wilson interval.\n"
        );
        let rows: Vec<Vec<String>> = report
            .groups
            .iter()
            .flat_map(|g| {
                g.outcomes.iter().map(|o| {
                    vec![
                        g.profile.clone(),
                        g.workload.clone(),
                        g.fault.clone(),
                        o.outcome.to_string(),
                        text::thousands(o.rate.count),
                        text::pct(o.rate.rate),
                        text::interval(&o.rate),
                    ]
                })
            })
            .collect();
        table(
            &mut out,
            &[
                ("profile", false),
                ("workload", false),
                ("fault", false),
                ("outcome", false),
                ("count", true),
                ("rate", true),
                ("95% interval", false),
            ],
            &rows,
        );

        let _ = writeln!(out, "\n## Speed and contention\n");
        let rows: Vec<Vec<String>> = report
            .groups
            .iter()
            .map(|g| {
                vec![
                    text::side(&g.profile, &g.run),
                    g.workload.clone(),
                    g.fault.clone(),
                    g.journal_mode.clone(),
                    g.synchronous.clone(),
                    format!("{:.2}", g.busy_errors_per_trial),
                    format!("{:.1}", g.mean_acked_commits),
                    format!("{:.2}", g.trial_seconds),
                    text::opt(g.trials_per_trial_second, 1),
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                ("profile", false),
                ("workload", false),
                ("fault", false),
                ("journal", false),
                ("sync", false),
                ("busy/trial", true),
                ("acked/trial", true),
                ("trial-s", true),
                ("trials/trial-s", true),
            ],
            &rows,
        );
        let _ = writeln!(out, "\n{}", text::TRIAL_SECONDS_NOTE);

        let _ = writeln!(
            out,
            "\n## Comparisons\n\n\"A survives better than B\", on the damage rate, by Fisher's exact test (two-sided).\n"
        );
        for (title, across) in text::comparison_parts(report) {
            let part: Vec<&crate::output::model::Comparison> = report
                .comparisons
                .iter()
                .filter(|c| c.across_runs() == across)
                .collect();
            if part.is_empty() {
                continue;
            }
            if let Some(title) = title {
                let _ = writeln!(out, "### {title}\n");
            }
            let rows: Vec<Vec<String>> = part
                .iter()
                .map(|c| {
                    vec![
                        c.workload.clone(),
                        c.fault.clone(),
                        text::side(&c.better, &c.better_run),
                        text::side(&c.worse, &c.worse_run),
                        text::count_of(&c.better_damage),
                        text::count_of(&c.worse_damage),
                        text::p_value(c.p_value),
                        text::verdict(c).to_string(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &[
                    ("workload", false),
                    ("fault", false),
                    ("A", false),
                    ("B", false),
                    ("damage A", true),
                    ("damage B", true),
                    ("p", true),
                    ("A survives better than B", false),
                ],
                &rows,
            );
            out.push('\n');
        }
        let _ = writeln!(out, "{}", text::indistinguishable_line(report));
        out
    }
}
