//! Interval estimates for survival rates.

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

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn wilson_matches_known_values() {
        // Reference values: 8 of 10 -> [0.4902, 0.9433]; 0 of 10 -> [0, 0.2775].
        let (lo, hi) = wilson_95(8, 10);
        assert!(close(lo, 0.4902) && close(hi, 0.9433), "{lo} {hi}");
        let (lo, hi) = wilson_95(0, 10);
        assert!(close(lo, 0.0) && close(hi, 0.2775), "{lo} {hi}");
        let (lo, hi) = wilson_95(10_000, 10_000);
        assert!(hi == 1.0 && close(lo, 0.99962), "{lo}");
    }

    #[test]
    fn no_trials_says_nothing() {
        assert_eq!(wilson_95(0, 0), (0.0, 1.0));
    }
}
