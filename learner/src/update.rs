//! The policy update of a round: proximal log-probs once, the per-byte likelihood gate for external
//! completions, then one or more clipped policy-gradient steps with off-policy weights chosen by
//! provenance, all computed here by the receiver.

use anyhow::Result;
use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use swarm_policy::{AdamW, Policy, SequenceLogprobs, TokenSequence};

use crate::batch::TrainItem;
use crate::loss::{LossInputs, LossOptions, policy_loss};

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
    /// Per-byte NLL of own completions in an earlier update: the gate's reference in an update
    /// without own completions (every own group without reward variance), so that such rounds do
    /// not let every external negative through.
    pub own_nll_reference: Option<f64>,
    /// Weight of the k3 estimate of KL(current || reference) added to the loss; 0 turns it off.
    pub kl_coef: f64,
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
    /// KL(current || reference) before each step (k3 estimator), averaged over steps; 0 without a
    /// reference.
    pub kl_reference: f64,
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

/// Off-policy weight of each completion token (no gradient flows through it), by provenance:
/// own rollouts (`behaviour` given) get the truncated importance weight
/// `min(exp(proximal - behaviour), tis_cap)`; external ones get 1 when reinforced and, when pushed
/// down, the taper `min(1, exp(current - proximal))`, so that a completion this policy already moved
/// away from is not pushed further.
pub fn token_weights(
    behaviour: Option<&[f32]>,
    advantage: f32,
    proximal: &[f32],
    current: &[f32],
    tis_cap: f64,
) -> Vec<f32> {
    let capped_ratio = |num: f32, den: f32, cap: f64| {
        (f64::from(num - den).clamp(-20.0, 20.0).exp().min(cap)) as f32
    };
    match behaviour {
        Some(behaviour) => proximal
            .iter()
            .zip(behaviour)
            .map(|(&p, &b)| capped_ratio(p, b, tis_cap))
            .collect(),
        None if advantage < 0.0 => current
            .iter()
            .zip(proximal)
            .map(|(&c, &p)| capped_ratio(c, p, 1.0))
            .collect(),
        None => vec![1.0; proximal.len()],
    }
}

/// Which items the per-byte likelihood gate keeps: own completions always; external ones unless
/// their advantage is negative and their NLL per byte exceeds the mean of own completions by more
/// than `margin`. Without own completions the mean is `earlier_own` (an earlier update's); with
/// neither there is no reference, and everything is kept.
pub fn likelihood_gate(
    items: &[(bool, f32, f64)],
    margin: f64,
    earlier_own: Option<f64>,
) -> Vec<bool> {
    let own: Vec<f64> = items
        .iter()
        .filter(|(local, _, _)| *local)
        .map(|&(_, _, nll)| nll)
        .collect();
    let Some(own_mean) = mean(&own).or(earlier_own) else {
        return vec![true; items.len()];
    };
    items
        .iter()
        .map(|&(local, advantage, nll)| local || advantage >= 0.0 || nll <= own_mean + margin)
        .collect()
}

fn sequences<'a>(items: impl IntoIterator<Item = &'a TrainItem>) -> Vec<TokenSequence> {
    items
        .into_iter()
        .map(|item| TokenSequence {
            prompt: item.prompt.clone(),
            completion: item.completion.clone(),
        })
        .collect()
}

/// Each item's completion log-probs, read (detached) from a training forward over `items`.
fn detached_rows(out: &SequenceLogprobs, items: &[TrainItem]) -> Result<Vec<Vec<f32>>> {
    let rows: Vec<Vec<f32>> = out.logprobs.detach().to_vec2()?;
    Ok(rows
        .into_iter()
        .zip(items)
        .map(|(row, item)| row[..item.completion.len()].to_vec())
        .collect())
}

/// Log-probs of each item's completion tokens under `policy`, without gradient.
fn completion_logprobs(policy: &Policy, items: &[TrainItem]) -> Result<Vec<Vec<f32>>> {
    detached_rows(&policy.sequence_logprobs(&sequences(items))?, items)
}

/// The rows of a training forward that belong to `kept` items, gradients included.
fn select_rows(out: SequenceLogprobs, kept: &[u32]) -> Result<SequenceLogprobs> {
    if kept.len() == out.logprobs.dim(0)? {
        return Ok(out);
    }
    let index = Tensor::new(kept, out.logprobs.device())?;
    Ok(SequenceLogprobs {
        logprobs: out.logprobs.index_select(&index, 0)?,
        mask: out.mask.index_select(&index, 0)?,
        entropy: out.entropy.index_select(&index, 0)?,
    })
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Trains `policy` on `items`; returns which items were trained on (after gating) and the statistics.
pub fn update(
    policy: &Policy,
    reference: Option<&Policy>,
    optimizer: &mut AdamW,
    items: Vec<TrainItem>,
    options: &UpdateOptions,
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<TrainItem>, UpdateStats)> {
    swarm_policy::on_thread_pool(|| update_here(policy, reference, optimizer, items, options, rng))
}

fn update_here(
    policy: &Policy,
    reference: Option<&Policy>,
    optimizer: &mut AdamW,
    mut items: Vec<TrainItem>,
    options: &UpdateOptions,
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<TrainItem>, UpdateStats)> {
    let mut stats = UpdateStats::default();
    if items.is_empty() {
        return Ok((items, stats));
    }
    // The proximal policy is the one at the start of the round, fixed for all its steps. With a
    // single step it is also the policy being trained, so the step's own forward (taken over every
    // item, before gating) provides the proximal log-probs and no second forward is needed.
    let single_step = options.steps.clamp(1, items.len()) == 1;
    let mut first_forward = None;
    let mut proximal = if single_step {
        let out = policy.sequence_logprobs(&sequences(&items))?;
        let rows = detached_rows(&out, &items)?;
        first_forward = Some(out);
        rows
    } else {
        completion_logprobs(policy, &items)?
    };

    let nll_per_byte = |logprobs: &[f32], bytes: usize| {
        -logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / bytes.max(1) as f64
    };
    let nll: Vec<f64> = items
        .iter()
        .zip(&proximal)
        .map(|(item, logprobs)| nll_per_byte(logprobs, item.bytes))
        .collect();
    let split = |local: bool| -> Vec<f64> {
        items
            .iter()
            .zip(&nll)
            .filter(|(item, _)| item.provenance.is_local() == local)
            .map(|(_, &n)| n)
            .collect()
    };
    stats.nll_per_byte_local = mean(&split(true));
    stats.nll_per_byte_external = mean(&split(false));
    // A wrong answer this policy would never write teaches little and, pushed down hard, distorts
    // unrelated tokens.
    let gate_inputs: Vec<(bool, f32, f64)> = items
        .iter()
        .zip(&nll)
        .map(|(item, &n)| (item.provenance.is_local(), item.advantage, n))
        .collect();
    let keep = likelihood_gate(
        &gate_inputs,
        options.nll_gate_margin,
        options.own_nll_reference,
    );
    let mut kept_items = Vec::with_capacity(items.len());
    let mut kept_proximal = Vec::with_capacity(items.len());
    let mut kept_rows = Vec::with_capacity(items.len());
    for (row, ((item, logprobs), keep)) in items.into_iter().zip(proximal).zip(keep).enumerate() {
        if keep {
            kept_items.push(item);
            kept_proximal.push(logprobs);
            kept_rows.push(row as u32);
        } else {
            stats.gated += 1;
        }
    }
    items = kept_items;
    proximal = kept_proximal;
    stats.trained = items.len();
    if items.is_empty() {
        return Ok((items, stats));
    }

    // The reference is frozen, so its log-probs are computed once, like the proximal ones.
    let reference_logprobs = match reference.filter(|_| options.kl_coef > 0.0) {
        Some(reference) => Some(completion_logprobs(reference, &items)?),
        None => None,
    };

    let round = RoundData {
        items: &items,
        proximal: &proximal,
        reference: reference_logprobs.as_deref(),
    };
    // Drawn on every path, so that the learner's random stream does not depend on the step count.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.shuffle(rng);
    let step_stats: Vec<StepStats> = match first_forward {
        // One step over every kept item, on the rows of the forward already taken (item order).
        Some(out) => {
            let all: Vec<usize> = (0..items.len()).collect();
            let forward = select_rows(out, &kept_rows)?;
            vec![train_step(
                policy,
                optimizer,
                &round,
                &all,
                Some(forward),
                options,
            )?]
        }
        None => {
            let steps = options.steps.clamp(1, items.len());
            order
                .chunks(items.len().div_ceil(steps))
                .map(|minibatch| train_step(policy, optimizer, &round, minibatch, None, options))
                .collect::<Result<_>>()?
        }
    };
    stats.steps = step_stats.len();
    let mean = StepStats::mean(&step_stats);
    stats.clip_low = mean.clip_low;
    stats.clip_high = mean.clip_high;
    stats.entropy = mean.entropy;
    stats.mean_weight = mean.mean_weight;
    stats.effective_sample_size = mean.effective_sample_size;
    stats.kl_proximal = mean.kl_proximal;
    stats.kl_reference = mean.kl_reference;
    Ok((items, stats))
}

/// What every step of a round reads: the kept items, their proximal log-probs and, with a KL
/// penalty, their reference log-probs.
struct RoundData<'a> {
    items: &'a [TrainItem],
    proximal: &'a [Vec<f32>],
    reference: Option<&'a [Vec<f32>]>,
}

/// What one optimizer step measured, before it stepped; the round reports their means in
/// [`UpdateStats`], whose fields of the same names these are.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct StepStats {
    clip_low: f64,
    clip_high: f64,
    entropy: f64,
    mean_weight: f64,
    effective_sample_size: f64,
    kl_proximal: f64,
    kl_reference: f64,
}

impl StepStats {
    /// The round's figures: each field averaged over the round's steps.
    fn mean(steps: &[StepStats]) -> StepStats {
        let mut total = StepStats::default();
        for step in steps {
            total.clip_low += step.clip_low;
            total.clip_high += step.clip_high;
            total.entropy += step.entropy;
            total.mean_weight += step.mean_weight;
            total.effective_sample_size += step.effective_sample_size;
            total.kl_proximal += step.kl_proximal;
            total.kl_reference += step.kl_reference;
        }
        let n = steps.len() as f64;
        StepStats {
            clip_low: total.clip_low / n,
            clip_high: total.clip_high / n,
            entropy: total.entropy / n,
            mean_weight: total.mean_weight / n,
            effective_sample_size: total.effective_sample_size / n,
            kl_proximal: total.kl_proximal / n,
            kl_reference: total.kl_reference / n,
        }
    }
}

/// One optimizer step on `minibatch`. `forward`, when given, is the training forward of exactly
/// these items in this order, already computed.
fn train_step(
    policy: &Policy,
    optimizer: &mut AdamW,
    round: &RoundData<'_>,
    minibatch: &[usize],
    forward: Option<SequenceLogprobs>,
    options: &UpdateOptions,
) -> Result<StepStats> {
    let RoundData {
        items,
        proximal,
        reference,
    } = *round;
    let out = match forward {
        Some(out) => out,
        None => policy.sequence_logprobs(&sequences(minibatch.iter().map(|&i| &items[i])))?,
    };
    let (rows, width) = out.logprobs.dims2()?;
    let proximal_rows: Vec<&[f32]> = minibatch.iter().map(|&i| proximal[i].as_slice()).collect();
    let current = out.logprobs.detach();

    let current_rows: Vec<Vec<f32>> = current.to_vec2()?;
    let weight_rows: Vec<Vec<f32>> = minibatch
        .iter()
        .zip(&current_rows)
        .map(|(&i, current_row)| {
            let item = &items[i];
            let len = item.completion.len();
            token_weights(
                item.behaviour.as_deref(),
                item.advantage,
                &proximal[i],
                &current_row[..len],
                options.tis_cap,
            )
        })
        .collect();
    let weight_refs: Vec<&[f32]> = weight_rows.iter().map(Vec::as_slice).collect();
    let weights = padded(&weight_refs, width, policy)?;
    let weights = (weights * &out.mask)?;
    let proximal = padded(&proximal_rows, width, policy)?;
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
    let mut total = loss.loss;
    let mut kl_reference = 0.0;
    if let Some(reference) = reference {
        let rows: Vec<&[f32]> = minibatch.iter().map(|&i| reference[i].as_slice()).collect();
        // Clamped so that padding positions (masked below) cannot overflow the exponential.
        let log_ratio = (padded(&rows, width, policy)? - &out.logprobs)?.clamp(-20.0, 20.0)?;
        let k3 = ((log_ratio.exp()? - &log_ratio)? - 1.0)?;
        let kl = ((k3 * &out.mask)?.sum_all()? / tokens)?;
        kl_reference = f64::from(kl.to_scalar::<f32>()?);
        total = (total + (kl * options.kl_coef)?)?;
    }
    let mut grads = optimizer.zero_grads();
    optimizer.accumulate(&mut grads, &total.backward()?)?;
    optimizer.clip(&mut grads, options.max_grad_norm)?;
    optimizer.step(&grads, options.lr)?;

    let masked_sum = |t: &Tensor| -> Result<f64> {
        Ok(f64::from((t * &out.mask)?.sum_all()?.to_scalar::<f32>()?))
    };
    let weight_sum = masked_sum(&weights)?;
    let weight_square_sum = masked_sum(&weights.sqr()?)?;
    let log_ratio = (&current - &proximal)?;
    let k3 = ((log_ratio.exp()? - 1.0)? - &log_ratio)?;
    Ok(StepStats {
        clip_low: loss.clip_low_fraction,
        clip_high: loss.clip_high_fraction,
        entropy: masked_sum(&out.entropy)? / tokens,
        mean_weight: weight_sum / tokens,
        effective_sample_size: if weight_square_sum > 0.0 {
            weight_sum * weight_sum / weight_square_sum / tokens
        } else {
            0.0
        },
        kl_proximal: masked_sum(&k3)? / tokens,
        kl_reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: &[f32], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert!(
                (f64::from(*a) - e).abs() < 1e-5,
                "{actual:?} vs {expected:?}"
            );
        }
    }

    #[test]
    fn own_rollouts_get_truncated_importance_weights() {
        // exp(-1.0 - -1.5) = 1.6487; exp(-0.2 - -1.5) = 3.669 -> capped at 2; exp(-2 - -1) = 0.3679.
        let weights = token_weights(
            Some(&[-1.5, -1.5, -1.0]),
            -0.5,
            &[-1.0, -0.2, -2.0],
            &[0.0, 0.0, 0.0],
            2.0,
        );
        close(&weights, &[0.5_f64.exp(), 2.0, (-1.0_f64).exp()]);
    }

    #[test]
    fn external_negatives_are_tapered_and_positives_weigh_one() {
        let proximal = [-1.0, -1.0, -3.0];
        // The policy moved away from tokens 1 and 3 (current below proximal) and towards token 2.
        let current = [-1.7, -0.5, -3.2];
        let pushed_down = token_weights(None, -0.4, &proximal, &current, 2.0);
        close(&pushed_down, &[(-0.7_f64).exp(), 1.0, (-0.2_f64).exp()]);
        let reinforced = token_weights(None, 0.4, &proximal, &current, 2.0);
        close(&reinforced, &[1.0, 1.0, 1.0]);
    }

    #[test]
    fn the_likelihood_gate_drops_only_implausible_external_negatives() {
        // Own completions average 1.0 nat per byte; margin 2 puts the limit at 3.0.
        let items = [
            (true, -0.5, 0.5),
            (true, 0.5, 1.5),
            (false, -0.5, 3.5), // external, negative, above the limit: dropped
            (false, -0.5, 2.9), // external, negative, below the limit: kept
            (false, 0.5, 9.0),  // external, positive: kept whatever its likelihood
            (true, -0.5, 9.0),  // own: always kept
        ];
        // The last own item moves the mean to (0.5 + 1.5 + 9) / 3 = 3.667, limit 5.667.
        assert_eq!(
            likelihood_gate(&items, 2.0, None),
            vec![true, true, true, true, true, true]
        );
        assert_eq!(
            likelihood_gate(&items[..5], 2.0, None),
            vec![true, true, false, true, true]
        );
        // No own completions: an earlier update's own mean is the reference...
        assert_eq!(
            likelihood_gate(&items[2..5], 2.0, Some(1.0)),
            vec![false, true, true]
        );
        // ...and this update's own completions, when there are any, override it.
        assert_eq!(
            likelihood_gate(&items[..5], 2.0, Some(100.0)),
            vec![true, true, false, true, true]
        );
        // Neither: no reference, nothing gated.
        assert_eq!(likelihood_gate(&items[2..5], 2.0, None), vec![true; 3]);
    }

    #[test]
    fn gated_rows_leave_the_shared_forward_and_its_gradient() {
        let device = candle_core::Device::Cpu;
        let logprobs =
            candle_core::Var::from_slice(&[-1.0f32, -2.0, -3.0, -4.0, -5.0, -6.0], (3, 2), &device)
                .unwrap();
        let out = SequenceLogprobs {
            logprobs: logprobs.as_tensor().clone(),
            mask: Tensor::ones((3, 2), candle_core::DType::F32, &device).unwrap(),
            entropy: Tensor::zeros((3, 2), candle_core::DType::F32, &device).unwrap(),
        };
        let kept = select_rows(out, &[0, 2]).unwrap();
        assert_eq!(
            kept.logprobs.to_vec2::<f32>().unwrap(),
            vec![vec![-1.0, -2.0], vec![-5.0, -6.0]]
        );
        assert_eq!(kept.mask.dims(), &[2, 2]);
        let grads = kept.logprobs.sum_all().unwrap().backward().unwrap();
        let grad = grads.get(logprobs.as_tensor()).unwrap();
        assert_eq!(
            grad.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 1.0], vec![0.0, 0.0], vec![1.0, 1.0]],
            "the gated middle row gets no gradient"
        );
    }
}
