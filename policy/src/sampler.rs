//! Batched sampling with a key/value cache and left padding. Each sampled token comes with its
//! behaviour log-prob: the log-probability under the distribution actually sampled from (after
//! temperature, top-k and top-p), which is what off-policy corrections need.

use std::collections::HashMap;

use anyhow::{Result, ensure};
use candle_core::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::Policy;
use crate::model::{KvCache, causal_mask};

/// How to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    /// Softmax temperature (> 0).
    pub temperature: f32,
    /// Nucleus mass in (0, 1]; 1 disables it.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 disables it.
    pub top_k: usize,
    /// Most tokens to generate per prompt.
    pub max_new_tokens: usize,
    /// Token ids that end a completion besides the model's end-of-sequence ids.
    pub stop_tokens: Vec<u32>,
    /// Keep generating past the model's end-of-sequence tokens (benchmarks need a fixed amount of
    /// work); `stop_tokens` still apply.
    pub ignore_eos: bool,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 32,
            stop_tokens: Vec::new(),
            ignore_eos: false,
        }
    }
}

/// One sampled completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Generated token ids, including a final stop token if one was sampled.
    pub token_ids: Vec<u32>,
    /// Decoded text of the generated tokens (special tokens removed).
    pub text: String,
    /// Behaviour log-prob of each generated token.
    pub logprobs: Vec<f32>,
    /// Whether generation hit `max_new_tokens` before a stop token.
    pub truncated: bool,
}

impl SampleOptions {
    /// Refuses options that do not describe a distribution.
    pub fn check(&self) -> Result<()> {
        ensure!(
            self.temperature.is_finite() && self.temperature > 0.0,
            "temperature must be positive and finite, got {}",
            self.temperature
        );
        ensure!(
            self.top_p > 0.0 && self.top_p <= 1.0,
            "top_p must be in (0, 1], got {}",
            self.top_p
        );
        Ok(())
    }
}

/// Unnormalised probabilities `exp((l - max) / T)` of one row of logits, in f64.
fn weights(logits: &[f32], temperature: f32) -> Vec<f64> {
    let inv_t = 1.0 / f64::from(temperature);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    logits
        .iter()
        .map(|&l| ((f64::from(l) - max) * inv_t).exp())
        .collect()
}

/// The token ids top-k and top-p keep from one row of logits, most likely first (ties by lower id),
/// or `None` when neither filter is on. The training forward calls this too, so both sides agree on
/// the support of the distribution.
pub(crate) fn support(logits: &[f32], options: &SampleOptions) -> Option<Vec<usize>> {
    if options.top_k == 0 && options.top_p >= 1.0 {
        return None;
    }
    let mut candidates: Vec<usize> = (0..logits.len()).collect();
    candidates.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if options.top_k > 0 {
        candidates.truncate(options.top_k);
    }
    if options.top_p < 1.0 {
        let weights = weights(logits, options.temperature);
        let total: f64 = candidates.iter().map(|&i| weights[i]).sum();
        let mut cumulative = 0.0;
        let keep = candidates
            .iter()
            .position(|&i| {
                cumulative += weights[i] / total;
                cumulative >= f64::from(options.top_p)
            })
            .map_or(candidates.len(), |p| p + 1);
        candidates.truncate(keep);
    }
    Some(candidates)
}

/// Picks a token from one row of logits; returns it with its log-prob under the sampled distribution.
fn choose(logits: &[f32], options: &SampleOptions, rng: &mut ChaCha8Rng) -> (u32, f32) {
    let weights = weights(logits, options.temperature);
    let candidates = support(logits, options).unwrap_or_else(|| (0..logits.len()).collect());
    let total: f64 = candidates.iter().map(|&i| weights[i]).sum();
    let mut draw = rng.random::<f64>() * total;
    let mut chosen = *candidates.last().expect("vocabulary is not empty");
    for &i in &candidates {
        draw -= weights[i];
        if draw < 0.0 {
            chosen = i;
            break;
        }
    }
    (chosen as u32, (weights[chosen] / total).ln() as f32)
}

impl Policy {
    /// Samples one completion for each prompt (token ids, at least one each). The same `rng` state
    /// gives the same tokens.
    pub fn sample(
        &self,
        prompts: &[Vec<u32>],
        options: &SampleOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Sample>> {
        crate::on_thread_pool(|| self.sample_here(prompts, options, rng))
    }

    fn sample_here(
        &self,
        prompts: &[Vec<u32>],
        options: &SampleOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Sample>> {
        options.check()?;
        ensure!(
            prompts.iter().all(|p| !p.is_empty()),
            "every prompt needs at least one token"
        );
        let vocab = self.config().vocab_size;
        if let Some(bad) = prompts.iter().flatten().find(|&&id| id as usize >= vocab) {
            anyhow::bail!("prompt token id {bad} is outside the model's vocabulary of {vocab}");
        }
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let device = self.device();
        let batch = prompts.len();
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        ensure!(
            longest + options.max_new_tokens <= self.config().max_position_embeddings,
            "prompt of {longest} tokens plus {} new tokens exceeds the model's {} positions",
            options.max_new_tokens,
            self.config().max_position_embeddings
        );
        // A learner samples a group of completions of each prompt, and a prompt's keys, values and
        // next-token logits are the same for every member of its group: each distinct prompt is
        // run once and the results copied to its group.
        let (distinct, source_of) = distinct_prompts(prompts);
        let mut ids = Vec::with_capacity(distinct.len() * longest);
        let mut positions = Vec::with_capacity(distinct.len() * longest);
        let mut distinct_valid: Vec<Vec<bool>> = Vec::with_capacity(distinct.len());
        for prompt in &distinct {
            let pad = longest - prompt.len();
            ids.extend(std::iter::repeat_n(self.pad_id(), pad).chain(prompt.iter().copied()));
            positions.extend((0..longest).map(|j| j.saturating_sub(pad) as u32));
            distinct_valid.push((0..longest).map(|j| j >= pad).collect());
        }
        let mut cache = KvCache::with_capacity(longest + options.max_new_tokens);
        let ids_t = Tensor::from_vec(ids, (distinct.len(), longest), device)?;
        let positions_t = Tensor::from_vec(positions, (distinct.len(), longest), device)?;
        let mask = causal_mask(&distinct_valid, longest, device)?;
        let hidden = self
            .decoder()
            .hidden_states(&ids_t, &positions_t, &mask, Some(&mut cache))?;
        // Only the last prompt position predicts the first new token.
        let last_hidden = hidden.narrow(1, longest - 1, 1)?.squeeze(1)?;
        let distinct_last: Vec<Vec<f32>> = self.decoder().logits(&last_hidden)?.to_vec2()?;
        if distinct.len() < batch {
            cache.gather(&source_of)?;
        }
        let mut last: Vec<Vec<f32>> = Vec::with_capacity(batch);
        let mut valid: Vec<Vec<bool>> = Vec::with_capacity(batch);
        for &source in &source_of {
            last.push(distinct_last[source as usize].clone());
            valid.push(distinct_valid[source as usize].clone());
        }

        let eos: &[u32] = if options.ignore_eos {
            &[]
        } else {
            self.eos_ids()
        };
        let stops: Vec<u32> = eos.iter().chain(&options.stop_tokens).copied().collect();
        let mut samples: Vec<Sample> = (0..batch)
            .map(|_| Sample {
                token_ids: Vec::new(),
                text: String::new(),
                logprobs: Vec::new(),
                truncated: false,
            })
            .collect();
        let mut done = vec![false; batch];
        for _ in 0..options.max_new_tokens {
            let mut next = Vec::with_capacity(batch);
            let mut next_positions = Vec::with_capacity(batch);
            for b in 0..batch {
                if done[b] {
                    next.push(self.pad_id());
                    next_positions.push(0);
                    valid[b].push(false);
                    continue;
                }
                let (token, logprob) = choose(&last[b], options, rng);
                let sample = &mut samples[b];
                next_positions.push((prompts[b].len() + sample.token_ids.len()) as u32);
                sample.token_ids.push(token);
                sample.logprobs.push(logprob);
                done[b] = stops.contains(&token);
                next.push(token);
                valid[b].push(true);
            }
            if (0..batch).all(|b| done[b] || samples[b].token_ids.len() == options.max_new_tokens) {
                break;
            }
            let ids_t = Tensor::from_vec(next, (batch, 1), device)?;
            let positions_t = Tensor::from_vec(next_positions, (batch, 1), device)?;
            let mask = causal_mask(&valid, 1, device)?;
            let logits = self
                .decoder()
                .forward(&ids_t, &positions_t, &mask, Some(&mut cache))?;
            last = logits.squeeze(1)?.to_vec2()?;
        }
        for (sample, finished) in samples.iter_mut().zip(&done) {
            sample.truncated = !finished;
            sample.text = self.decode(&sample.token_ids)?;
        }
        Ok(samples)
    }
}

/// The distinct prompts in order of first appearance, and for each prompt the index of its distinct
/// copy.
fn distinct_prompts(prompts: &[Vec<u32>]) -> (Vec<&[u32]>, Vec<u32>) {
    let mut index: HashMap<&[u32], u32> = HashMap::new();
    let mut distinct = Vec::new();
    let sources = prompts
        .iter()
        .map(|prompt| {
            *index.entry(prompt.as_slice()).or_insert_with(|| {
                distinct.push(prompt.as_slice());
                distinct.len() as u32 - 1
            })
        })
        .collect();
    (distinct, sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn filters_renormalise_and_report_their_own_log_probs() {
        let logits = [2.0f32, 1.0, 0.0, -1.0];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let greedy_ish = SampleOptions {
            top_k: 1,
            ..SampleOptions::default()
        };
        for _ in 0..20 {
            assert_eq!(choose(&logits, &greedy_ish, &mut rng), (0, 0.0));
        }
        let top2 = SampleOptions {
            top_k: 2,
            ..SampleOptions::default()
        };
        let expected0 = (1.0 / (1.0 + (-1.0f64).exp())).ln() as f32;
        for _ in 0..50 {
            let (token, logprob) = choose(&logits, &top2, &mut rng);
            assert!(token < 2);
            if token == 0 {
                assert!((logprob - expected0).abs() < 1e-6);
            }
        }
        let nucleus = SampleOptions {
            top_p: 0.5,
            ..SampleOptions::default()
        };
        // Token 0 alone holds about 64% of the mass, so the nucleus keeps only it.
        assert_eq!(choose(&logits, &nucleus, &mut rng), (0, 0.0));
    }
}
