//! The progress bar: position, rate, ETA and live outcome counts. Drawn by the parent on each finished
//! trial (indicatif throttles redraws); no ticker thread, so the parent stays single-threaded.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Summary;
use crate::verify::outcome::Outcome;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `total` is `None` for a `--duration` run: then the bar shows elapsed time instead of an ETA.
    pub fn new(total: Option<u64>, enabled: bool) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr_with_hz(10));
        let template = if total.is_some() {
            "{bar:30.cyan/blue} {pos}/{len} {rate:>9} eta {eta:>4}  {msg}"
        } else {
            "{spinner} {pos} trials {rate:>9} elapsed {elapsed}  {msg}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&rate_text(state.per_sec()));
                    },
                )
                .progress_chars("=> "),
        );
        Progress { bar: Some(bar) }
    }

    pub fn update(&self, summary: &Summary) {
        let Some(bar) = &self.bar else { return };
        bar.inc(1);
        let mut msg = format!("intact {}", summary.count(Outcome::Intact));
        for o in &Outcome::ALL[1..] {
            let n = summary.count(*o);
            if n > 0 {
                msg.push_str(&format!(" · {o} {n}"));
            }
        }
        let v = summary.violations();
        if v > 0 {
            msg.push_str(&format!(" · VIOLATIONS {v}"));
        }
        bar.set_message(msg);
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Trials per second as a person reads it: `318/s`, `2.5/s` (indicatif's own `{per_sec}` printed
/// `317.5896807101/s`).
pub fn rate_text(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "-/s".to_string()
    } else if per_sec < 10.0 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{per_sec:.0}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::rate_text;

    #[test]
    fn the_rate_is_rounded() {
        assert_eq!(rate_text(317.589_680_710_1), "318/s");
        assert_eq!(rate_text(2.54), "2.5/s");
        assert_eq!(rate_text(f64::NAN), "-/s");
    }
}
