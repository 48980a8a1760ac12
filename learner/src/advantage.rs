//! Group-relative advantages: each completion's reward minus its group's mean (Dr.GRPO), optionally
//! divided by the group's standard deviation. Groups whose rewards are all equal teach nothing and
//! are dropped.

/// How advantages are normalised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdvantageOptions {
    /// Divide by the group's standard deviation (GRPO) instead of using the plain difference (Dr.GRPO).
    pub scale_by_std: bool,
}

/// Advantages of one group, or `None` when every reward is equal (a zero-variance group).
pub fn group_advantages(rewards: &[f32], options: AdvantageOptions) -> Option<Vec<f32>> {
    if rewards.len() < 2 {
        return None;
    }
    let n = rewards.len() as f64;
    let mean = rewards.iter().map(|&r| f64::from(r)).sum::<f64>() / n;
    let variance = rewards
        .iter()
        .map(|&r| (f64::from(r) - mean).powi(2))
        .sum::<f64>()
        / n;
    if variance < 1e-12 {
        return None;
    }
    let scale = if options.scale_by_std {
        variance.sqrt() + 1e-6
    } else {
        1.0
    };
    Some(
        rewards
            .iter()
            .map(|&r| ((f64::from(r) - mean) / scale) as f32)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_baseline_std_scaling_and_zero_variance() {
        let plain = AdvantageOptions {
            scale_by_std: false,
        };
        assert_eq!(
            group_advantages(&[1.0, 0.0, 0.0, 1.0], plain),
            Some(vec![0.5, -0.5, -0.5, 0.5])
        );
        assert_eq!(
            group_advantages(&[1.0, 0.1, 0.1, 0.1], plain).unwrap()[0],
            0.675
        );
        assert_eq!(group_advantages(&[0.3, 0.3, 0.3], plain), None);
        assert_eq!(group_advantages(&[1.0], plain), None);
        let scaled =
            group_advantages(&[1.0, 0.0], AdvantageOptions { scale_by_std: true }).unwrap();
        assert!((scaled[0] - 1.0).abs() < 1e-5 && (scaled[1] + 1.0).abs() < 1e-5);
    }
}
