//! The policy-gradient loss: a PPO-clipped surrogate with asymmetric clipping, a clamped log-ratio,
//! per-token importance weights (stop-gradient) and token-mean aggregation over the optimizer step.

use anyhow::Result;
use candle_core::Tensor;

/// Clipping and clamping constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossOptions {
    /// Lower clip: ratios below `1 - eps_low` stop pushing down.
    pub eps_low: f64,
    /// Upper clip: ratios above `1 + eps_high` stop pushing up (clip-higher keeps exploration).
    pub eps_high: f64,
    /// Log-ratios are clamped to ±this before exponentiation, so one stale token cannot overflow.
    pub log_ratio_clamp: f64,
}

impl Default for LossOptions {
    fn default() -> Self {
        Self {
            eps_low: 0.2,
            eps_high: 0.28,
            log_ratio_clamp: 20.0,
        }
    }
}

/// Inputs for one micro-batch, all `(B, T)` except `advantages` `(B)`.
pub struct LossInputs<'a> {
    /// Current log-probs (carry gradients).
    pub logprobs: &'a Tensor,
    /// Log-probs of the policy the ratio is taken against (behaviour or proximal).
    pub old_logprobs: &'a Tensor,
    /// Per-token importance weights (no gradient): 1 on-policy, truncated ratios off-policy.
    pub weights: &'a Tensor,
    /// Per-sequence advantages.
    pub advantages: &'a Tensor,
    /// 1 for real completion tokens, 0 for padding.
    pub mask: &'a Tensor,
}

/// The loss to backpropagate and what happened in it.
pub struct LossOutput {
    /// Sum of per-token losses divided by `token_normalizer` (so micro-batches add up to a token mean).
    pub loss: Tensor,
    /// Share of tokens clipped at the lower bound (negative advantage, ratio below 1 - eps_low).
    pub clip_low_fraction: f64,
    /// Share of tokens clipped at the upper bound (positive advantage, ratio above 1 + eps_high).
    pub clip_high_fraction: f64,
}

/// `-min(r A, clip(r) A) * w`, summed over real tokens and divided by `token_normalizer`, the number of
/// real tokens in the whole optimizer step.
pub fn policy_loss(
    inputs: &LossInputs<'_>,
    options: LossOptions,
    token_normalizer: f64,
) -> Result<LossOutput> {
    let c = options.log_ratio_clamp;
    let log_ratio = (inputs.logprobs - inputs.old_logprobs)?.clamp(-c, c)?;
    let ratio = log_ratio.exp()?;
    let advantages = inputs
        .advantages
        .unsqueeze(1)?
        .broadcast_as(ratio.shape())?;
    let unclipped = (&ratio * &advantages)?;
    let clipped = (ratio.clamp(1.0 - options.eps_low, 1.0 + options.eps_high)? * &advantages)?;
    let surrogate = unclipped.minimum(&clipped)?;
    let per_token = (surrogate.neg()? * inputs.weights)?;
    let loss = ((per_token * inputs.mask)?.sum_all()? / token_normalizer)?;

    let ratio_values: Vec<Vec<f32>> = ratio.detach().to_vec2()?;
    let advantage_values: Vec<f32> = inputs.advantages.to_vec1()?;
    let mask_values: Vec<Vec<f32>> = inputs.mask.to_vec2()?;
    let (mut low, mut high, mut tokens) = (0usize, 0usize, 0usize);
    for ((ratios, &advantage), mask) in ratio_values.iter().zip(&advantage_values).zip(&mask_values)
    {
        for (&r, &m) in ratios.iter().zip(mask) {
            if m == 0.0 {
                continue;
            }
            tokens += 1;
            low += usize::from(advantage < 0.0 && f64::from(r) < 1.0 - options.eps_low);
            high += usize::from(advantage > 0.0 && f64::from(r) > 1.0 + options.eps_high);
        }
    }
    let share = |n: usize| {
        if tokens == 0 {
            0.0
        } else {
            n as f64 / tokens as f64
        }
    };
    Ok(LossOutput {
        loss,
        clip_low_fraction: share(low),
        clip_high_fraction: share(high),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t2(rows: &[&[f32]]) -> Tensor {
        let width = rows[0].len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(flat, (rows.len(), width), &Device::Cpu).unwrap()
    }

    /// Per-token loss for one token with ratio `r` and advantage `a`, by the formula.
    fn expected(r: f64, a: f64) -> f64 {
        -(r * a).min(r.clamp(0.8, 1.28) * a)
    }

    #[test]
    fn clipping_at_both_bounds_matches_hand_values() {
        // Ratios 1.5, 0.5, 1.1, 0.9 on sequences with advantages +1, -1, +1, -1 (one token each).
        let ratios = [1.5f64, 0.5, 1.1, 0.9];
        let advantages = [1.0f32, -1.0, 1.0, -1.0];
        let logprobs = t2(&[
            &[ratios[0].ln() as f32],
            &[ratios[1].ln() as f32],
            &[ratios[2].ln() as f32],
            &[ratios[3].ln() as f32],
        ]);
        let old = t2(&[&[0.0], &[0.0], &[0.0], &[0.0]]);
        let ones = t2(&[&[1.0], &[1.0], &[1.0], &[1.0]]);
        let advantages_t = Tensor::new(&advantages, &Device::Cpu).unwrap();
        let inputs = LossInputs {
            logprobs: &logprobs,
            old_logprobs: &old,
            weights: &ones,
            advantages: &advantages_t,
            mask: &ones,
        };
        let out = policy_loss(&inputs, LossOptions::default(), 4.0).unwrap();
        let want: f64 = ratios
            .iter()
            .zip(advantages)
            .map(|(&r, a)| expected(r, f64::from(a)))
            .sum::<f64>()
            / 4.0;
        // 1.5 clips to 1.28 (A>0), 0.5 clips to 0.8 (A<0): -1.28 + 0.8 - 1.1 + 0.9 = -0.68, / 4.
        assert!((want + 0.17).abs() < 1e-12);
        let got: f32 = out.loss.to_scalar().unwrap();
        assert!((f64::from(got) - want).abs() < 1e-6, "{got} vs {want}");
        assert_eq!(
            (out.clip_low_fraction, out.clip_high_fraction),
            (0.25, 0.25)
        );
    }

    #[test]
    fn masked_tokens_weights_and_the_log_ratio_clamp_apply() {
        let logprobs = t2(&[&[0.0, 100.0]]);
        let old = t2(&[&[0.0, 0.0]]);
        let weights = t2(&[&[0.5, 1.0]]);
        let mask = t2(&[&[1.0, 0.0]]);
        let advantages = Tensor::new(&[2.0f32], &Device::Cpu).unwrap();
        let inputs = LossInputs {
            logprobs: &logprobs,
            old_logprobs: &old,
            weights: &weights,
            advantages: &advantages,
            mask: &mask,
        };
        let out = policy_loss(&inputs, LossOptions::default(), 1.0).unwrap();
        assert_eq!(
            out.loss.to_scalar::<f32>().unwrap(),
            -1.0,
            "ratio 1, A 2, weight 0.5; masked token ignored"
        );
        assert!(out.loss.to_scalar::<f32>().unwrap().is_finite());
    }

    #[test]
    fn gradient_raises_positive_and_lowers_negative_completions() {
        let var = Var::from_vec(vec![-1.0f32, -1.0], (2, 1), &Device::Cpu).unwrap();
        let old = t2(&[&[-1.0], &[-1.0]]);
        let ones = t2(&[&[1.0], &[1.0]]);
        let advantages = Tensor::new(&[1.0f32, -1.0], &Device::Cpu).unwrap();
        let inputs = LossInputs {
            logprobs: var.as_tensor(),
            old_logprobs: &old,
            weights: &ones,
            advantages: &advantages,
            mask: &ones,
        };
        let out = policy_loss(&inputs, LossOptions::default(), 2.0).unwrap();
        let grad: Vec<Vec<f32>> = out
            .loss
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .to_vec2()
            .unwrap();
        // Descending the loss raises log-probs with positive advantage and lowers the others.
        assert!(grad[0][0] < 0.0 && grad[1][0] > 0.0, "{grad:?}");
    }
}
