//! The arithmetic under every number the lab prints: rates with their 95% Wilson interval, and
//! Fisher's exact test for comparing two of them.

use serde::Serialize;

/// The 95% Wilson score interval for `successes` out of `n`, as fractions. Unlike the normal
/// approximation it stays inside [0, 1] and gives a useful upper bound when there were no failures.
pub fn wilson_95(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

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

/// `ln(n!)`: summed exactly for small `n`, Stirling's series (error below 1e-13) above.
pub fn ln_factorial(n: u64) -> f64 {
    if n < 64 {
        return (2..=n).map(|k| (k as f64).ln()).sum();
    }
    let x = n as f64;
    let x2 = x * x;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x2)
        + 1.0 / (1260.0 * x * x2 * x2)
}

fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// Two-sided p-value of Fisher's exact test for the table `[[a, b], [c, d]]`: the probability,
/// with the margins fixed, of a table at most as likely as the one observed (R's `fisher.test`).
/// Computed in log space, so tables of a million trials neither overflow nor lose the tiny
/// p-values a clear difference produces.
pub fn fisher_exact_two_sided(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let row1 = a + b;
    let row2 = c + d;
    let col1 = a + c;
    let n = row1 + row2;
    let denom = ln_choose(n, col1);
    // The hypergeometric log-probability of the table whose top-left cell is `x`.
    let ln_p = |x: u64| ln_choose(row1, x) + ln_choose(row2, col1 - x) - denom;
    let observed = ln_p(a);
    // Tables as likely as the observed one must count even when rounding makes them look a hair
    // less likely; R uses the same relative tolerance of 1e-7.
    let cutoff = observed + 1e-7;
    let lo = col1.saturating_sub(row2);
    let hi = row1.min(col1);
    let p: f64 = (lo..=hi)
        .map(ln_p)
        .filter(|&l| l <= cutoff)
        .map(f64::exp)
        .sum();
    p.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn wilson_matches_known_values() {
        // Reference values: 8 of 10 -> [0.4902, 0.9433]; 0 of 10 -> [0, 0.2775].
        let (lo, hi) = wilson_95(8, 10);
        assert!(near(lo, 0.4902) && near(hi, 0.9433), "{lo} {hi}");
        let (lo, hi) = wilson_95(0, 10);
        assert!(near(lo, 0.0) && near(hi, 0.2775), "{lo} {hi}");
        let (lo, hi) = wilson_95(10_000, 10_000);
        assert!(hi == 1.0 && near(lo, 0.99962), "{lo}");
        let (lo, hi) = wilson_95(0, 10_000);
        assert_eq!(lo, 0.0);
        assert!(close(hi, 3.84e-4, 1e-2), "{hi}");
    }

    #[test]
    fn no_trials_says_nothing() {
        assert_eq!(wilson_95(0, 0), (0.0, 1.0));
        let r = Rate::new(0, 0);
        assert_eq!((r.rate, r.low95, r.high95), (0.0, 0.0, 1.0));
    }

    #[test]
    fn rates_touch_the_ends_exactly() {
        let all = Rate::new(7, 7);
        assert_eq!((all.rate, all.high95), (1.0, 1.0));
        let none = Rate::new(0, 7);
        assert_eq!((none.rate, none.low95), (0.0, 0.0));
    }

    #[test]
    fn ln_factorial_is_exact_small_and_smooth_across_the_switch() {
        assert_eq!(ln_factorial(0), 0.0);
        assert_eq!(ln_factorial(1), 0.0);
        assert!(close(ln_factorial(10), 3_628_800f64.ln(), 1e-14));
        // ln 64! via the sum, compared with Stirling at the switch.
        let summed: f64 = (2..=64u64).map(|k| (k as f64).ln()).sum();
        assert!(close(ln_factorial(64), summed, 1e-13));
    }

    #[test]
    fn fisher_matches_known_values() {
        // Fisher's tea-tasting table.
        let p = fisher_exact_two_sided(3, 1, 1, 3);
        assert!(close(p, 0.485_714, 1e-5), "{p}");
        // 2 / C(20, 10).
        let p = fisher_exact_two_sided(10, 0, 0, 10);
        assert!(close(p, 2.0 / 184_756.0, 1e-9), "{p}");
        assert!(close(p, 1.08e-5, 0.01), "{p}");
        // R: fisher.test(matrix(c(1, 11, 9, 3), 2))$p.value = 0.002759456.
        let p = fisher_exact_two_sided(1, 9, 11, 3);
        assert!(close(p, 0.002_759_456, 1e-6), "{p}");
        // Identical rows say nothing.
        assert_eq!(fisher_exact_two_sided(5, 5, 5, 5), 1.0);
        assert_eq!(fisher_exact_two_sided(0, 10, 0, 10), 1.0);
    }

    #[test]
    fn fisher_handles_large_tables() {
        // 0 of 100,000 against 30 of 100,000: overwhelming, and still a finite positive number.
        let p = fisher_exact_two_sided(0, 100_000, 30, 99_970);
        assert!(p > 0.0 && p < 1e-8, "{p}");
    }
}
