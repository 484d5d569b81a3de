//! Number and sentence formatting shared by the exporters, so a rate reads the same in a terminal,
//! in Markdown and in HTML.

use crate::output::model::{Comparison, Report, RunInfo};
use crate::stats::Rate;

/// `10000` -> `10,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    // Groups of three from the right; the digits are ASCII, so byte chunks are characters.
    let groups: Vec<String> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| g.iter().map(|&b| char::from(b)).collect())
        .collect();
    groups.join(",")
}

/// A fraction as a percentage with two decimals, or two significant digits of the distance to 0%
/// or 100% when that is under 1%: rare failures are the point of the lab, so 0.046% must not
/// print as `0.05%`, nor 999,996 of 1,000,000 as `100.00%`.
pub fn pct(x: f64) -> String {
    let p = x * 100.0;
    let margin = p.min(100.0 - p);
    // Below 1e-9 the margin is float noise, not a rate anyone measured.
    let decimals = if margin > 1e-9 && margin < 1.0 {
        ((-margin.log10()).ceil() as usize + 1).clamp(2, 8)
    } else {
        2
    };
    format!("{p:.decimals$}%")
}

/// An upper bound as a percentage rounded *up* to one significant digit (at least two decimals),
/// so the printed bound is never below the true one: 0.0384% -> `0.04%`.
pub fn pct_ceil(x: f64) -> String {
    let p = x * 100.0;
    let decimals = if p > 0.0 && p < 1.0 {
        ((-p.log10()).ceil() as usize).clamp(2, 8)
    } else {
        2
    };
    let scale = 10f64.powi(decimals as i32);
    // Shave float noise first: 0.2775 * 100 * 100 is 2775.0000000000005, not a reason to round up.
    let up = (p * scale * (1.0 - 1e-12)).ceil() / scale;
    format!("{up:.decimals$}%")
}

/// `[39.68%, 89.22%]`.
pub fn interval(r: &Rate) -> String {
    format!("[{}, {}]", pct(r.low95), pct(r.high95))
}

/// The damage rate in words: `3 in 10: rate 30.00% [10.78%, 60.32%]`, or with no failures the
/// upper bound, `0 in 10,000: rate < 0.04% at 95%`, which is what zero failures actually show.
pub fn rate_phrase(r: &Rate) -> String {
    if r.n == 0 {
        "no judged trials".to_string()
    } else if r.count == 0 {
        format!(
            "0 in {}: rate < {} at 95%",
            thousands(r.n),
            pct_ceil(r.high95)
        )
    } else {
        format!(
            "{} in {}: rate {} {}",
            thousands(r.count),
            thousands(r.n),
            pct(r.rate),
            interval(r)
        )
    }
}

/// A p-value with the precision that matters: `0.4857`, `0.0012`, `1.08e-5`.
pub fn p_value(p: f64) -> String {
    if p >= 1e-3 {
        format!("{p:.4}")
    } else {
        format!("{p:.2e}")
    }
}

/// `supported at 5%` or `not supported`, for "A survives better than B".
pub fn verdict(c: &Comparison) -> &'static str {
    if c.supported {
        "supported at 5%"
    } else {
        "not supported"
    }
}

/// A comparison's side: the profile, with its run in brackets when runs are side by side.
pub fn side(profile: &str, run: &str) -> String {
    if run.is_empty() {
        profile.to_string()
    } else {
        format!("{profile} [{run}]")
    }
}

/// The comparisons' parts, in order: across runs first, then within each run, each with a title
/// when runs are side by side; one untitled part otherwise.
pub fn comparison_parts(report: &Report) -> Vec<(Option<&'static str>, bool)> {
    if report.runs.is_empty() {
        vec![(None, false)]
    } else {
        vec![
            (
                Some("The same profile · workload · fault across runs"),
                true,
            ),
            (Some("Profiles within each run"), false),
        ]
    }
}

/// A run's line: `[label] 1,000 trials from results/a (seed 7, SQLite 3.54.1, started …)`.
pub fn run_line(r: &RunInfo) -> String {
    let mut facts = Vec::new();
    if let Some(v) = &r.version {
        facts.push(v.clone());
    }
    if let Some(s) = r.seed {
        facts.push(format!("seed {s}"));
    }
    if let Some(s) = &r.started {
        facts.push(format!("started {s}"));
    }
    if let Some(m) = &r.machine {
        facts.push(format!("on {m}"));
    }
    let mut line = format!(
        "[{}] {} trials from {}",
        r.label,
        thousands(r.trials),
        r.inputs.join(" + ")
    );
    if !facts.is_empty() {
        line.push_str(&format!(" ({})", facts.join(", ")));
    }
    line
}

/// One comparison as a sentence.
pub fn comparison_sentence(c: &Comparison) -> String {
    format!(
        "{} survives better than {} ({} · {}): {} (Fisher p = {}; damage {} vs {})",
        side(&c.better, &c.better_run),
        side(&c.worse, &c.worse_run),
        c.workload,
        c.fault,
        verdict(c),
        p_value(c.p_value),
        count_of(&c.better_damage),
        count_of(&c.worse_damage),
    )
}

/// `3 in 10`.
pub fn count_of(r: &Rate) -> String {
    format!("{} in {}", thousands(r.count), thousands(r.n))
}

/// The line about the pairs not listed.
pub fn indistinguishable_line(report: &Report) -> String {
    match report.indistinguishable_pairs {
        0 => "No pair is without damage on both sides.".to_string(),
        1 => "1 more pair has no damage on either side: indistinguishable.".to_string(),
        n => format!("{n} more pairs have no damage on either side: indistinguishable."),
    }
}

/// The headline: trial and group counts and the SQLite versions seen.
pub fn headline(report: &Report) -> String {
    let mut s = format!(
        "{} trials in {} groups (profile · workload · fault)",
        thousands(report.trials),
        report.groups.len()
    );
    if !report.sqlite_versions.is_empty() {
        s.push_str("; SQLite ");
        s.push_str(&report.sqlite_versions.join(", "));
    }
    if !report.runs.is_empty() {
        s.push_str(&format!("; {} runs side by side", report.runs.len()));
    }
    s
}

/// Why throughput is per trial-second and not per second.
pub const TRIAL_SECONDS_NOTE: &str =
    "trial-s: the sum of the trials' own durations; trials run in \
parallel, so wall-clock throughput is higher.";

/// A float with fixed decimals, or `-` when there is none.
pub fn opt(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{x:.decimals$}"))
}

/// Escapes text for HTML and SVG (element content and quoted attributes).
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Column alignment in a [`TextTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A plain-text table with columns padded to their widest cell.
#[derive(Debug)]
pub struct TextTable {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    pub fn new(columns: &[(&str, Align)]) -> TextTable {
        TextTable {
            header: columns.iter().map(|c| c.0.to_string()).collect(),
            align: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// Columns two spaces apart, no trailing spaces.
    pub fn render(&self) -> String {
        let width = |c: &str| c.chars().count();
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| width(&r[i]))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[i] - width(cell));
                match self.align[i] {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(pct(0.3), "30.00%");
        assert_eq!(pct(0.0), "0.00%");
        assert_eq!(pct(1.0), "100.00%");
        assert_eq!(pct(0.999_996), "99.99960%");
        assert_eq!(pct(0.000_003), "0.00030%");
        assert_eq!(pct(0.000_46), "0.046%");
        assert_eq!(pct(0.002), "0.20%");
        assert_eq!(pct(0.999_923), "99.9923%");
        assert_eq!(pct_ceil(0.000_384), "0.04%");
        assert_eq!(pct_ceil(0.277_5), "27.75%");
        assert_eq!(pct_ceil(0.000_003_84), "0.0004%");
        assert_eq!(p_value(0.485_714), "0.4857");
        assert_eq!(p_value(1.0825e-5), "1.08e-5");
        assert_eq!(p_value(1.1e-4), "1.10e-4");
        assert_eq!(pct(0.999_999_999_999_999_9), "100.00%");
    }

    #[test]
    fn zero_failures_are_phrased_as_an_upper_bound() {
        assert_eq!(
            rate_phrase(&Rate::new(0, 10_000)),
            "0 in 10,000: rate < 0.04% at 95%"
        );
        assert_eq!(
            rate_phrase(&Rate::new(3, 10)),
            "3 in 10: rate 30.00% [10.78%, 60.32%]"
        );
        assert_eq!(rate_phrase(&Rate::new(0, 0)), "no judged trials");
    }

    #[test]
    fn tables_align() {
        let mut t = TextTable::new(&[("name", Align::Left), ("n", Align::Right)]);
        t.row(vec!["a".into(), "10".into()]);
        t.row(vec!["long name".into(), "1".into()]);
        assert_eq!(t.render(), "name        n\na          10\nlong name   1\n");
        assert_eq!(
            escape_xml("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
