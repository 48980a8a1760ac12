//! Paired comparisons across seeds: configurations of a simulation share each seed's warm start and
//! question streams, so the difference between two configurations is taken seed by seed and its
//! confidence interval comes from the spread of those differences (a paired t interval), which is
//! much narrower than comparing the two configurations' means when seeds differ a lot.

use serde::Serialize;

/// The mean of paired differences with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedDifference {
    /// Seeds present in both configurations.
    pub pairs: usize,
    /// Mean over seeds of (this configuration - baseline).
    pub mean: f64,
    /// Lower end of the 95% t interval; NaN (`null` in JSON) with fewer than two pairs.
    pub ci95_low: f64,
    /// Upper end of the 95% t interval; NaN (`null` in JSON) with fewer than two pairs.
    pub ci95_high: f64,
}

impl PairedDifference {
    /// The paired difference of `values - baseline`, element by element (both in seed order).
    pub fn of(values: &[f64], baseline: &[f64]) -> Self {
        let differences: Vec<f64> = values.iter().zip(baseline).map(|(v, b)| v - b).collect();
        let pairs = differences.len();
        let mean = differences.iter().sum::<f64>() / pairs.max(1) as f64;
        if pairs < 2 {
            return Self {
                pairs,
                mean: if pairs == 0 { f64::NAN } else { mean },
                ci95_low: f64::NAN,
                ci95_high: f64::NAN,
            };
        }
        let variance =
            differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (pairs - 1) as f64;
        let half_width = t_975(pairs - 1) * (variance / pairs as f64).sqrt();
        Self {
            pairs,
            mean,
            ci95_low: mean - half_width,
            ci95_high: mean + half_width,
        }
    }

    /// Whether the interval lies wholly above zero (the noise cannot explain a gain).
    pub fn above_zero(&self) -> bool {
        self.ci95_low > 0.0
    }

    /// Whether the interval lies wholly below zero.
    pub fn below_zero(&self) -> bool {
        self.ci95_high < 0.0
    }
}

/// The 0.975 quantile of Student's t distribution with `df` degrees of freedom (two-sided 95%).
pub fn t_975(df: usize) -> f64 {
    // Standard table values for small samples, where the interval is most sensitive to them.
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => {
            // Cornish-Fisher expansion around the normal quantile; within 0.001 of the table
            // beyond 30 degrees of freedom.
            let z: f64 = 1.959_964;
            let df = df as f64;
            z + (z.powi(3) + z) / (4.0 * df)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * df * df)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_interval_matches_a_hand_computed_one() {
        // Differences 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), t(4) = 2.776.
        let baseline = [10.0, 20.0, 30.0, 40.0, 50.0];
        let values = [11.0, 22.0, 33.0, 44.0, 55.0];
        let d = PairedDifference::of(&values, &baseline);
        let half = 2.776 * (2.5f64 / 5.0).sqrt();
        assert_eq!(d.pairs, 5);
        assert!((d.mean - 3.0).abs() < 1e-12);
        assert!((d.ci95_low - (3.0 - half)).abs() < 1e-9);
        assert!((d.ci95_high - (3.0 + half)).abs() < 1e-9);
        assert!(d.above_zero() && !d.below_zero());
    }

    #[test]
    fn pairing_removes_the_spread_between_seeds() {
        // Seeds differ by tens while the configuration adds a steady 1 +- 0.1: unpaired the gain
        // would drown; paired it is clear.
        let baseline = [5.0, 40.0, 12.0, 70.0, 25.0, 33.0];
        let values = [6.1, 40.9, 13.0, 71.1, 25.9, 34.0];
        assert!(PairedDifference::of(&values, &baseline).above_zero());
        let worse: Vec<f64> = baseline.iter().map(|b| b - 1.0).collect();
        assert!(PairedDifference::of(&worse, &baseline).below_zero());
    }

    #[test]
    fn one_seed_has_no_interval() {
        let d = PairedDifference::of(&[2.0], &[1.0]);
        assert_eq!((d.pairs, d.mean), (1, 1.0));
        assert!(d.ci95_low.is_nan() && !d.above_zero() && !d.below_zero());
    }

    #[test]
    fn t_quantiles_approach_the_normal_one() {
        assert_eq!(t_975(1), 12.706);
        assert!((t_975(30) - 2.042).abs() < 1e-9);
        assert!((t_975(40) - 2.021).abs() < 2e-3);
        assert!((t_975(120) - 1.980).abs() < 2e-3);
        assert!(t_975(0).is_nan());
    }
}
