//! The policy update of a round: proximal log-probs once, the per-byte likelihood gate for external
//! completions, then one or more clipped policy-gradient steps with off-policy weights chosen by
//! provenance, all computed here by the receiver.

use anyhow::Result;
use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use swarm_policy::{AdamW, Policy, TokenSequence};

use crate::batch::TrainItem;
use crate::loss::{LossInputs, LossOptions, policy_loss, truncated_importance_weights};

/// Update settings (from [`crate::LearnerOptions`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateOptions {
    /// Optimizer steps per round; the batch is split into this many shuffled minibatches.
    pub steps: usize,
    /// Learning rate of every step.
    pub lr: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// PPO clipping.
    pub loss: LossOptions,
    /// Cap of the truncated importance weight for own rollouts.
    pub tis_cap: f64,
    /// Negative-advantage external completions whose per-byte NLL exceeds the local mean by more than
    /// this many nats are dropped.
    pub nll_gate_margin: f64,
}

/// What the update did, averaged over its steps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateStats {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Completions trained on.
    pub trained: usize,
    /// External completions dropped by the likelihood gate.
    pub gated: usize,
    /// Share of tokens clipped at the lower bound.
    pub clip_low: f64,
    /// Share of tokens clipped at the upper bound.
    pub clip_high: f64,
    /// Mean entropy on trained tokens.
    pub entropy: f64,
    /// Mean off-policy weight on trained tokens.
    pub mean_weight: f64,
    /// Effective sample size of the token weights, as a share of the tokens (1 = all weights equal).
    pub effective_sample_size: f64,
    /// KL(proximal || current) before each step (k3 estimator), averaged over steps.
    pub kl_proximal: f64,
    /// Mean per-byte NLL under the proximal policy of own and of external completions.
    pub nll_per_byte_local: Option<f64>,
    /// The same for external completions.
    pub nll_per_byte_external: Option<f64>,
}

fn padded(rows: &[&[f32]], width: usize, policy: &Policy) -> Result<Tensor> {
    let mut flat = Vec::with_capacity(rows.len() * width);
    for row in rows {
        flat.extend(
            row.iter()
                .copied()
                .chain(std::iter::repeat(0.0))
                .take(width),
        );
    }
    Ok(Tensor::from_vec(
        flat,
        (rows.len(), width),
        policy.device(),
    )?)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Trains `policy` on `items`; returns which items were trained on (after gating) and the statistics.
pub fn update(
    policy: &Policy,
    optimizer: &mut AdamW,
    mut items: Vec<TrainItem>,
    options: &UpdateOptions,
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<TrainItem>, UpdateStats)> {
    let mut stats = UpdateStats::default();
    if items.is_empty() {
        return Ok((items, stats));
    }
    // The proximal policy is the one at the start of the round, fixed for all its steps.
    let sequences: Vec<TokenSequence> = items
        .iter()
        .map(|item| TokenSequence {
            prompt: item.prompt.clone(),
            completion: item.completion.clone(),
        })
        .collect();
    let proximal_all: Vec<Vec<f32>> = policy
        .sequence_logprobs(&sequences)?
        .logprobs
        .detach()
        .to_vec2()?;
    let mut proximal: Vec<Vec<f32>> = proximal_all
        .into_iter()
        .zip(&items)
        .map(|(row, item)| row[..item.completion.len()].to_vec())
        .collect();

    let nll_per_byte = |logprobs: &[f32], bytes: usize| {
        -logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / bytes.max(1) as f64
    };
    let mut local_nll = Vec::new();
    let mut external_nll = Vec::new();
    for (item, logprobs) in items.iter().zip(&proximal) {
        let nll = nll_per_byte(logprobs, item.bytes);
        if item.provenance.is_local() {
            local_nll.push(nll);
        } else {
            external_nll.push(nll);
        }
    }
    stats.nll_per_byte_local = mean(&local_nll);
    stats.nll_per_byte_external = mean(&external_nll);
    // A wrong answer this policy would never write teaches little and, pushed down hard, distorts
    // unrelated tokens; without own completions to compare with there is no reference and no gate.
    if let Some(local_mean) = stats.nll_per_byte_local {
        let limit = local_mean + options.nll_gate_margin;
        let mut kept_items = Vec::with_capacity(items.len());
        let mut kept_proximal = Vec::with_capacity(items.len());
        for (item, logprobs) in items.into_iter().zip(proximal) {
            let gated = !item.provenance.is_local()
                && item.advantage < 0.0
                && nll_per_byte(&logprobs, item.bytes) > limit;
            if gated {
                stats.gated += 1;
            } else {
                kept_items.push(item);
                kept_proximal.push(logprobs);
            }
        }
        items = kept_items;
        proximal = kept_proximal;
    }
    stats.trained = items.len();
    if items.is_empty() {
        return Ok((items, stats));
    }

    let mut order: Vec<usize> = (0..items.len()).collect();
    order.shuffle(rng);
    let steps = options.steps.clamp(1, items.len());
    let chunk = items.len().div_ceil(steps);
    let mut totals = [0.0f64; 6];
    for minibatch in order.chunks(chunk) {
        let step = train_step(policy, optimizer, &items, &proximal, minibatch, options)?;
        for (total, value) in totals.iter_mut().zip(step) {
            *total += value;
        }
        stats.steps += 1;
    }
    let n = stats.steps as f64;
    [
        stats.clip_low,
        stats.clip_high,
        stats.entropy,
        stats.mean_weight,
        stats.effective_sample_size,
        stats.kl_proximal,
    ] = totals.map(|t| t / n);
    Ok((items, stats))
}

/// One optimizer step on `minibatch`; returns clip low/high, entropy, mean weight, ESS share and KL.
fn train_step(
    policy: &Policy,
    optimizer: &mut AdamW,
    items: &[TrainItem],
    proximal: &[Vec<f32>],
    minibatch: &[usize],
    options: &UpdateOptions,
) -> Result<[f64; 6]> {
    let sequences: Vec<TokenSequence> = minibatch
        .iter()
        .map(|&i| TokenSequence {
            prompt: items[i].prompt.clone(),
            completion: items[i].completion.clone(),
        })
        .collect();
    let out = policy.sequence_logprobs(&sequences)?;
    let (rows, width) = out.logprobs.dims2()?;
    let proximal_rows: Vec<&[f32]> = minibatch.iter().map(|&i| proximal[i].as_slice()).collect();
    let proximal = padded(&proximal_rows, width, policy)?;
    let current = out.logprobs.detach();

    // Per-row weights: own rollouts are corrected towards the proximal policy with truncated
    // importance weights; external ones get weight 1 when they are to be reinforced and, when they
    // are to be pushed down, the taper min(1, pi_theta / pi_prox) so that a completion this policy
    // already moved away from is not pushed further.
    let mut weight_rows = Vec::with_capacity(rows);
    for (row, &i) in minibatch.iter().enumerate() {
        let item = &items[i];
        let proximal_row = proximal.get(row)?.unsqueeze(0)?;
        let weight = match &item.behaviour {
            Some(behaviour) => {
                let behaviour = padded(&[behaviour.as_slice()], width, policy)?;
                truncated_importance_weights(&proximal_row, &behaviour, options.tis_cap)?
            }
            None if item.advantage < 0.0 => {
                truncated_importance_weights(&current.get(row)?.unsqueeze(0)?, &proximal_row, 1.0)?
            }
            None => proximal_row.ones_like()?,
        };
        weight_rows.push(weight);
    }
    let weights = (Tensor::cat(&weight_rows, 0)? * &out.mask)?;
    let advantages: Vec<f32> = minibatch.iter().map(|&i| items[i].advantage).collect();
    let advantages = Tensor::from_vec(advantages, rows, policy.device())?;
    let tokens = f64::from(out.mask.sum_all()?.to_scalar::<f32>()?).max(1.0);
    let loss = policy_loss(
        &LossInputs {
            logprobs: &out.logprobs,
            old_logprobs: &proximal,
            weights: &weights,
            advantages: &advantages,
            mask: &out.mask,
        },
        options.loss,
        tokens,
    )?;
    let mut grads = optimizer.zero_grads();
    optimizer.accumulate(&mut grads, &loss.loss.backward()?)?;
    optimizer.clip(&mut grads, options.max_grad_norm)?;
    optimizer.step(&grads, options.lr)?;

    let masked_sum = |t: &Tensor| -> Result<f64> {
        Ok(f64::from((t * &out.mask)?.sum_all()?.to_scalar::<f32>()?))
    };
    let weight_sum = masked_sum(&weights)?;
    let weight_square_sum = masked_sum(&weights.sqr()?)?;
    let log_ratio = (&current - &proximal)?;
    let k3 = ((log_ratio.exp()? - 1.0)? - &log_ratio)?;
    Ok([
        loss.clip_low_fraction,
        loss.clip_high_fraction,
        masked_sum(&out.entropy)? / tokens,
        weight_sum / tokens,
        if weight_square_sum > 0.0 {
            weight_sum * weight_sum / weight_square_sum / tokens
        } else {
            0.0
        },
        masked_sum(&k3)? / tokens,
    ])
}
