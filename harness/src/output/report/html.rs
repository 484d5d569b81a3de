//! One self-contained HTML page: inline CSS and hand-written inline SVG, no scripts and no network,
//! so the file can be mailed, archived and opened offline years later.

use std::fmt::Write as _;

use super::text::{self, escape_xml as esc};
use super::Exporter;
use crate::output::kills::{KillAxis, KillHistogram};
use crate::output::model::{GroupStats, OutcomeRate, Report};
use crate::verify::outcome::Outcome;

/// A single offline HTML page with charts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Html;

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:980px;margin:0 auto;padding:16px 24px 48px;background:#fff}
h1{font-size:22px;margin:8px 0}
h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:2px}
p.note{color:#555;margin:4px 0 8px}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 9px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.n{text-align:right}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
.hists{display:flex;flex-wrap:wrap;gap:10px 18px}
.hists figure{margin:0}
figcaption{color:#555;font-size:12px;max-width:440px}
svg{display:block;max-width:100%;height:auto}
svg text{font:12px system-ui,-apple-system,'Segoe UI',sans-serif;fill:#222}
svg .axis{stroke:#999;stroke-width:1}
svg .grid{stroke:#eee;stroke-width:1}
";

/// Fill colour of each outcome: green for intact, warm to dark for worse damage, grey for the
/// lab's own failures.
fn color(o: Outcome) -> &'static str {
    match o {
        Outcome::Intact => "#2e7d32",
        Outcome::LostCommit => "#f9a825",
        Outcome::Atomicity => "#ef6c00",
        Outcome::Corrupt => "#c62828",
        Outcome::OpenFailed => "#6a1b9a",
        Outcome::WrongKey => "#283593",
        Outcome::WorkerError => "#9e9e9e",
    }
}

/// Width of the group-label column of the row charts.
const LABEL_W: f64 = 290.0;
const ROW_H: f64 = 24.0;

impl Exporter for Html {
    fn render(&self, report: &Report) -> String {
        let mut out = String::new();
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        out.push_str("<title>torture report</title>\n<style>\n");
        out.push_str(STYLE);
        out.push_str("</style>\n</head>\n<body>\n<main>\n<h1>torture report</h1>\n");
        let _ = writeln!(out, "<p>{}.</p>", esc(&text::headline(report)));
        if !report.runs.is_empty() {
            out.push_str("<h2>Runs side by side</h2>\n<ul>\n");
            for r in &report.runs {
                let _ = writeln!(out, "<li>{}</li>", esc(&text::run_line(r)));
            }
            out.push_str("</ul>\n");
        }
        if !report.groups.is_empty() {
            survival_section(&mut out, report);
            mix_section(&mut out, report);
            kills_section(&mut out, report);
            tables_section(&mut out, report);
            comparisons_section(&mut out, report);
        }
        out.push_str("</main>\n</body>\n</html>\n");
        out
    }
}

/// The lowest axis start that still shows every interval: survival rates of a good profile sit
/// near 100%, and a 0-100% axis would squash their intervals into a dot.
fn axis_start(report: &Report) -> f64 {
    let min_low = report
        .groups
        .iter()
        .filter(|g| g.judged > 0)
        .map(|g| g.survival.low95)
        .fold(1.0, f64::min);
    [
        0.9999, 0.9995, 0.999, 0.998, 0.995, 0.99, 0.98, 0.95, 0.9, 0.8, 0.5,
    ]
    .into_iter()
    .find(|&s| s <= min_low)
    .unwrap_or(0.0)
}

fn survival_section(out: &mut String, report: &Report) {
    let start = axis_start(report);
    // Five steps between start and 100%, labelled with just enough decimals to tell them apart.
    let step = (1.0 - start) / 5.0;
    let decimals = (-(step * 100.0).log10()).ceil().max(0.0) as usize;
    let _ = writeln!(
        out,
        "<h2>Survival</h2>\n<p class=\"note\">Intact among judged trials, with 95% Wilson intervals; \
         red marks a group with a violation. The axis runs from {:.decimals$}% to 100%.</p>",
        start * 100.0
    );
    let plot_w = 400.0;
    let width = LABEL_W + plot_w + 230.0;
    let top = 8.0;
    let height = top + ROW_H * report.groups.len() as f64 + 30.0;
    let x = |v: f64| LABEL_W + (v - start) / (1.0 - start) * plot_w;
    let _ = writeln!(
        out,
        "<svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" \
         aria-label=\"survival rate per group with 95% intervals\">"
    );
    let axis_y = top + ROW_H * report.groups.len() as f64;
    for i in 0..=5 {
        let v = start + step * i as f64;
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{axis_y}\"/>\
             <text x=\"{0:.1}\" y=\"{1:.1}\" text-anchor=\"middle\">{2:.decimals$}%</text>",
            x(v),
            axis_y + 16.0,
            v * 100.0
        );
    }
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{LABEL_W}\" y1=\"{axis_y}\" x2=\"{:.1}\" y2=\"{axis_y}\"/>",
        LABEL_W + plot_w
    );
    for (i, g) in report.groups.iter().enumerate() {
        let y = top + ROW_H * i as f64 + ROW_H / 2.0;
        row_label(out, g, y);
        let value_x = LABEL_W + plot_w + 10.0;
        if g.judged == 0 {
            let _ = writeln!(
                out,
                "<text x=\"{value_x}\" y=\"{:.1}\">no judged trials</text>",
                y + 4.0
            );
            continue;
        }
        let s = &g.survival;
        let (lo, hi, mid) = (x(s.low95), x(s.high95), x(s.rate));
        let colour = if g.violations > 0 {
            "#c62828"
        } else {
            "#1565c0"
        };
        let _ = writeln!(
            out,
            "<g><title>{title}</title>\
             <line x1=\"{lo:.1}\" y1=\"{y:.1}\" x2=\"{hi:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <line x1=\"{lo:.1}\" y1=\"{a:.1}\" x2=\"{lo:.1}\" y2=\"{b:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <line x1=\"{hi:.1}\" y1=\"{a:.1}\" x2=\"{hi:.1}\" y2=\"{b:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <circle cx=\"{mid:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{colour}\"/></g>\
             <text x=\"{value_x}\" y=\"{ty:.1}\">{value}</text>",
            title = esc(&format!(
                "{}: {} of {} intact",
                g.label(),
                text::thousands(s.count),
                text::thousands(s.n)
            )),
            a = y - 5.0,
            b = y + 5.0,
            ty = y + 4.0,
            value = esc(&format!("{} {}", text::pct(s.rate), text::interval(s))),
        );
    }
    out.push_str("</svg>\n");
}

/// The group's name at the left of a row chart, right-aligned against the plot. SVG text does not
/// wrap, so a long name is cut to fit the label column; the full name is its tooltip.
fn row_label(out: &mut String, g: &GroupStats, y: f64) {
    const MAX_CHARS: usize = 44;
    let label = g.label();
    let shown = if label.chars().count() > MAX_CHARS {
        let cut: String = label.chars().take(MAX_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        label.clone()
    };
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\"><title>{}</title>{}</text>",
        LABEL_W - 10.0,
        y + 4.0,
        esc(&label),
        esc(&shown)
    );
}

fn mix_section(out: &mut String, report: &Report) {
    out.push_str(
        "<h2>Outcome mix</h2>\n<p class=\"note\">Share of all trials per outcome; rare outcomes are \
         widened to stay visible; hover a segment for its count.</p>\n<p class=\"legend\">",
    );
    for o in Outcome::ALL {
        let _ = write!(
            out,
            "<span><i style=\"background:{}\"></i>{}</span>",
            color(o),
            o
        );
    }
    out.push_str("</p>\n");
    let bar_w = 560.0;
    let width = LABEL_W + bar_w + 20.0;
    let height = ROW_H * report.groups.len() as f64 + 8.0;
    let _ = writeln!(
        out,
        "<svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" \
         aria-label=\"outcome mix per group\">"
    );
    for (i, g) in report.groups.iter().enumerate() {
        let y = 4.0 + ROW_H * i as f64;
        row_label(out, g, y + ROW_H / 2.0);
        let mut x = LABEL_W;
        for (o, w) in segments(g, bar_w) {
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\">\
                 <title>{}</title></rect>",
                y + 3.0,
                ROW_H - 6.0,
                color(o.outcome),
                esc(&format!(
                    "{}: {} {} of {} ({})",
                    g.label(),
                    o.outcome,
                    text::thousands(o.rate.count),
                    text::thousands(o.rate.n),
                    text::pct(o.rate.rate)
                ))
            );
            x += w;
        }
    }
    out.push_str("</svg>\n");
}

/// The outcome-mix segments of a group and their widths. A rare outcome (one corrupt trial in
/// 10,000) would be thinner than a pixel, yet it is the one that matters, so every present
/// outcome gets at least `MIN_W`, taken from the widest segment.
fn segments(g: &GroupStats, bar_w: f64) -> Vec<(&OutcomeRate, f64)> {
    const MIN_W: f64 = 3.0;
    let mut segs: Vec<(&OutcomeRate, f64)> = g
        .outcomes
        .iter()
        .filter(|o| o.rate.count > 0)
        .map(|o| (o, o.rate.rate * bar_w))
        .collect();
    let mut extra = 0.0;
    for seg in &mut segs {
        if seg.1 < MIN_W {
            extra += MIN_W - seg.1;
            seg.1 = MIN_W;
        }
    }
    if let Some(widest) = segs.iter_mut().max_by(|a, b| a.1.total_cmp(&b.1)) {
        widest.1 -= extra;
    }
    segs
}

fn kills_section(out: &mut String, report: &Report) {
    out.push_str(
        "<h2>Where the kills landed</h2>\n<p class=\"note\">Kills per bin, stacked: intact \
         (green), damaged (red), worker error (grey).</p>\n<div class=\"hists\">\n",
    );
    for g in &report.groups {
        out.push_str("<figure>\n");
        histogram(out, g);
        let mut caption = g.kills.axis.label().to_string();
        if g.kills.not_reached > 0 {
            let n = g.kills.not_reached;
            let _ = write!(
                caption,
                "; {} {} not shown: the writers finished or timed out before the kill point",
                text::thousands(n),
                if n == 1 { "trial" } else { "trials" }
            );
        }
        let _ = writeln!(out, "<figcaption>{}</figcaption>\n</figure>", esc(&caption));
    }
    out.push_str("</div>\n");
}

fn histogram(out: &mut String, g: &GroupStats) {
    let (width, height) = (440.0, 170.0);
    let (left, right, top, bottom) = (44.0, 10.0, 26.0, 24.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let _ = writeln!(
        out,
        "<svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" \
         aria-label=\"{}\">\n<text x=\"{left}\" y=\"16\" font-weight=\"600\">{}</text>",
        esc(&format!("kill histogram of {}", g.label())),
        esc(&g.label())
    );
    let h: &KillHistogram = &g.kills;
    let base = top + plot_h;
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{left}\" y1=\"{base}\" x2=\"{:.1}\" y2=\"{base}\"/>\
         <line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{base}\"/>",
        left + plot_w
    );
    let max = h.bins.iter().map(|b| b.total()).max().unwrap_or(0);
    if max == 0 {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no kill landed</text>\n</svg>",
            left + plot_w / 2.0,
            top + plot_h / 2.0
        );
        return;
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
         <text x=\"{:.1}\" y=\"{base:.1}\" text-anchor=\"end\">0</text>",
        left - 4.0,
        top + 9.0,
        text::thousands(max),
        left - 4.0
    );
    let bar_w = plot_w / h.bins.len() as f64;
    let scale = plot_h / max as f64;
    for (i, bin) in h.bins.iter().enumerate() {
        let x = left + bar_w * i as f64;
        let mut y = base;
        let range = if bin.lo == bin.hi {
            text::thousands(bin.lo)
        } else {
            format!("{}–{}", text::thousands(bin.lo), text::thousands(bin.hi))
        };
        for (count, fill, what) in [
            (bin.intact, color(Outcome::Intact), "intact"),
            (bin.damaged, color(Outcome::Corrupt), "damaged"),
            (
                bin.worker_error,
                color(Outcome::WorkerError),
                "worker error",
            ),
        ] {
            if count == 0 {
                continue;
            }
            let bar_h = count as f64 * scale;
            y -= bar_h;
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bar_h:.1}\" fill=\"{fill}\">\
                 <title>{}</title></rect>",
                x + 1.0,
                (bar_w - 2.0).max(1.0),
                esc(&format!("{range}: {} {what}", text::thousands(count)))
            );
        }
    }
    // The range's ends and middle along the axis, anchored so they stay inside the picture; the
    // caption names the axis.
    let unit = match h.axis {
        KillAxis::AckedCommits => "",
        KillAxis::TimeUs => "us",
    };
    let n = h.bins.len();
    let mut ticks = vec![(left, "start", h.bins[0].lo)];
    if n >= 5 {
        let mid = n / 2;
        ticks.push((left + bar_w * (mid as f64 + 0.5), "middle", h.bins[mid].lo));
    }
    if n > 1 {
        ticks.push((left + plot_w, "end", h.bins[n - 1].hi));
    }
    for (x, anchor, v) in ticks {
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}{unit}</text>",
            base + 16.0,
            text::thousands(v)
        );
    }
    out.push_str("</svg>\n");
}

/// An HTML table; `numeric` marks right-aligned columns.
fn table(out: &mut String, header: &[(&str, bool)], rows: &[Vec<String>]) {
    out.push_str("<table>\n<tr>");
    for (h, _) in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for (cell, (_, numeric)) in row.iter().zip(header) {
            let class = if *numeric { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", esc(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn tables_section(out: &mut String, report: &Report) {
    out.push_str(
        "<h2>Damage</h2>\n<p class=\"note\">Any outcome but intact, among judged trials \
         (worker errors are not judged).</p>\n",
    );
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
                text::thousands(g.trials),
                text::thousands(g.judged),
                text::thousands(g.expected),
                text::thousands(g.violations),
                text::rate_phrase(&g.damage),
            ]
        })
        .collect();
    table(
        out,
        &[
            ("profile", false),
            ("workload", false),
            ("fault", false),
            ("journal", false),
            ("sync", false),
            ("trials", true),
            ("judged", true),
            ("expected", true),
            ("violations", true),
            ("damage", false),
        ],
        &rows,
    );

    out.push_str("<h2>Outcomes</h2>\n<p class=\"note\">Counts, and the rate among all trials with its 95% Wilson interval.</p>\n");
    let mut header = vec![("group", false)];
    header.extend(Outcome::ALL.iter().map(|o| (o.as_str(), true)));
    let rows: Vec<Vec<String>> = report
        .groups
        .iter()
        .map(|g| {
            let mut row = vec![g.label()];
            row.extend(g.outcomes.iter().map(|o| {
                format!(
                    "{} · {} {}",
                    text::thousands(o.rate.count),
                    text::pct(o.rate.rate),
                    text::interval(&o.rate)
                )
            }));
            row
        })
        .collect();
    table(out, &header, &rows);

    out.push_str("<h2>Speed and contention</h2>\n");
    let rows: Vec<Vec<String>> = report
        .groups
        .iter()
        .map(|g| {
            vec![
                g.label(),
                format!("{:.2}", g.busy_errors_per_trial),
                format!("{:.1}", g.mean_acked_commits),
                format!("{:.2}", g.trial_seconds),
                text::opt(g.trials_per_trial_second, 1),
            ]
        })
        .collect();
    table(
        out,
        &[
            ("group", false),
            ("busy/trial", true),
            ("acked/trial", true),
            ("trial-s", true),
            ("trials/trial-s", true),
        ],
        &rows,
    );
    let _ = writeln!(
        out,
        "<p class=\"note\">{}</p>",
        esc(text::TRIAL_SECONDS_NOTE)
    );
}

fn comparisons_section(out: &mut String, report: &Report) {
    out.push_str(
        "<h2>Comparisons</h2>\n<p class=\"note\">“A survives better than B”, on the damage rate, \
         by Fisher's exact test (two-sided).</p>\n",
    );
    if !report.comparisons.is_empty() {
        let rows: Vec<Vec<String>> = report
            .comparisons
            .iter()
            .map(|c| {
                vec![
                    format!("{} · {}", c.workload, c.fault),
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
            out,
            &[
                ("workload · fault", false),
                ("A", false),
                ("B", false),
                ("damage A", true),
                ("damage B", true),
                ("p", true),
                ("A survives better than B", false),
            ],
            &rows,
        );
    }
    let _ = writeln!(out, "<p>{}</p>", esc(&text::indistinguishable_line(report)));
}
