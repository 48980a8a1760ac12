//! The training forward: full sequences, right padding, per-token log-probs of completion tokens that
//! carry gradients to every parameter, their loss mask and entropy.
//!
//! Log-probs are taken under the distribution a sampler with the same [`SampleOptions`] draws from
//! (temperature, top-k, top-p), so a sampled token's behaviour log-prob and its training log-prob
//! are the same number up to float rounding.

use anyhow::{Result, ensure};
use candle_core::{D, Tensor};
use serde::Serialize;

use crate::model::{self, MASKED};
use crate::sampler::{SampleOptions, support};
use crate::{AdamW, Policy};

/// One training sequence: a prompt and the completion whose tokens are scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSequence {
    /// Prompt token ids (at least one).
    pub prompt: Vec<u32>,
    /// Completion token ids.
    pub completion: Vec<u32>,
}

/// Per-token results of the training forward over completion tokens, right-padded to the longest
/// completion of the batch.
pub struct SequenceLogprobs {
    /// `(B, C)` log-probs of each completion token; carries gradients to every parameter.
    pub logprobs: Tensor,
    /// `(B, C)` 1.0 where a completion token exists, 0.0 on padding.
    pub mask: Tensor,
    /// `(B, C)` entropy of the predicted distribution at each completion token (no gradient).
    pub entropy: Tensor,
}

/// The per-token log-probs of a completion, as `swarm-node logprobs` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct TokenLogprobs {
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Completion token ids.
    pub completion_ids: Vec<u32>,
    /// Text of each completion token.
    pub tokens: Vec<String>,
    /// Log-prob of each completion token given everything before it.
    pub logprobs: Vec<f32>,
    /// Sum of the log-probs.
    pub total: f64,
}

/// Whether `options` change the distribution away from the plain softmax of the logits.
fn filters(options: &SampleOptions) -> bool {
    options.top_k > 0 || options.top_p < 1.0
}

impl Policy {
    /// Training forward at temperature 1 without filters: see [`Policy::sequence_logprobs_under`].
    pub fn sequence_logprobs(&self, batch: &[TokenSequence]) -> Result<SequenceLogprobs> {
        self.sequence_logprobs_under(batch, &SampleOptions::default())
    }

    /// Training forward: per-token log-probs (with gradients), mask and entropy of the completion
    /// tokens of each sequence, under the distribution that sampling with `options` draws from
    /// (only `temperature`, `top_k` and `top_p` matter here).
    ///
    /// With top-k or top-p the set of kept tokens is chosen from the (detached) logits, exactly as
    /// the sampler chooses it; tokens outside it get a large negative logit, so a completion token
    /// outside the set has a very low log-prob rather than a NaN.
    pub fn sequence_logprobs_under(
        &self,
        batch: &[TokenSequence],
        options: &SampleOptions,
    ) -> Result<SequenceLogprobs> {
        options.check()?;
        ensure!(!batch.is_empty(), "empty training batch");
        ensure!(
            batch.iter().all(|s| !s.prompt.is_empty()),
            "every sequence needs at least one prompt token"
        );
        let device = self.device();
        let total = batch
            .iter()
            .map(|s| s.prompt.len() + s.completion.len())
            .max()
            .unwrap_or(0);
        ensure!(
            total <= self.config().max_position_embeddings,
            "sequence of {total} tokens exceeds the model's {} positions",
            self.config().max_position_embeddings
        );
        let vocab = self.config().vocab_size;
        if let Some(bad) = batch
            .iter()
            .flat_map(|s| s.prompt.iter().chain(&s.completion))
            .find(|&&id| id as usize >= vocab)
        {
            anyhow::bail!("token id {bad} is outside the model's vocabulary of {vocab}");
        }
        let longest_completion = batch
            .iter()
            .map(|s| s.completion.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let (mut ids, mut valid, mut targets, mut gather, mut mask) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for sequence in batch {
            let mut row: Vec<u32> = sequence
                .prompt
                .iter()
                .chain(&sequence.completion)
                .copied()
                .collect();
            let real = row.len();
            row.resize(total, self.pad_id());
            valid.push((0..total).map(|j| j < real).collect::<Vec<_>>());
            for j in 0..longest_completion {
                let present = j < sequence.completion.len();
                // The logits at position p predict token p + 1.
                let position = (sequence.prompt.len() + j).min(total) - 1;
                gather.push(position as u32);
                targets.push(if present {
                    sequence.completion[j]
                } else {
                    self.pad_id()
                });
                mask.push(if present { 1f32 } else { 0.0 });
            }
            ids.extend(row);
        }
        let b = batch.len();
        let ids = Tensor::from_vec(ids, (b, total), device)?;
        let positions = Tensor::arange(0u32, total as u32, device)?
            .unsqueeze(0)?
            .repeat((b, 1))?;
        let attention = model::causal_mask(&valid, total, device)?;
        let hidden = self
            .decoder()
            .hidden_states(&ids, &positions, &attention, None)?;
        // Logits only where a completion token is predicted: prompt positions need none, and the
        // output head is the largest product of a model with a real vocabulary.
        let hidden_size = self.config().hidden_size;
        let rows: Vec<u32> = gather
            .iter()
            .enumerate()
            .map(|(i, &position)| (i / longest_completion * total) as u32 + position)
            .collect();
        let rows = Tensor::from_vec(rows, b * longest_completion, device)?;
        let selected = hidden
            .reshape((b * total, hidden_size))?
            .index_select(&rows, 0)?
            .reshape((b, longest_completion, hidden_size))?;
        let mut scores = self.decoder().logits(&selected)?;
        if options.temperature != 1.0 {
            scores = (scores / f64::from(options.temperature))?;
        }
        if filters(options) {
            scores = scores.broadcast_add(&self.support_mask(&scores, options)?)?;
        }
        let log_probs = crate::ops::log_softmax_last(&scores)?;
        let targets = Tensor::from_vec(targets, (b, longest_completion, 1), device)?;
        let logprobs = log_probs.gather(&targets, 2)?.squeeze(2)?;
        let detached = log_probs.detach();
        let entropy = (detached.exp()? * &detached)?.sum(D::Minus1)?.neg()?;
        Ok(SequenceLogprobs {
            logprobs,
            mask: Tensor::from_vec(mask, (b, longest_completion), device)?,
            entropy,
        })
    }

    /// Additive mask `(B, C, V)`: 0 on the tokens the sampler would keep at each position, a large
    /// negative elsewhere. Computed on the host from detached scores by the sampler's own rule.
    fn support_mask(&self, scores: &Tensor, options: &SampleOptions) -> Result<Tensor> {
        let dims = scores.dims().to_vec();
        let vocab = *dims.last().expect("scores are 3-D");
        // The scores are already divided by the temperature; the rule only needs their order and
        // softmax, so it runs at temperature 1 on them.
        let unit = SampleOptions {
            temperature: 1.0,
            ..options.clone()
        };
        let host: Vec<f32> = scores.detach().flatten_all()?.to_vec1()?;
        let mut additive = vec![MASKED; host.len()];
        for (row, out) in host.chunks(vocab).zip(additive.chunks_mut(vocab)) {
            for index in support(row, &unit).unwrap_or_else(|| (0..vocab).collect()) {
                out[index] = 0.0;
            }
        }
        Ok(Tensor::from_vec(additive, dims, scores.device())?)
    }

    /// Log-probs of completion tokens without building anything for backward, computed `micro_batch`
    /// sequences at a time so memory stays bounded; one vector per sequence, as long as its
    /// completion. This is what proximal and reference log-probs need.
    pub fn sequence_logprobs_detached(
        &self,
        batch: &[TokenSequence],
        options: &SampleOptions,
        micro_batch: usize,
    ) -> Result<Vec<Vec<f32>>> {
        ensure!(micro_batch > 0, "micro-batch size must be positive");
        let mut out = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(micro_batch) {
            let scored = self.sequence_logprobs_under(chunk, options)?;
            let rows: Vec<Vec<f32>> = scored.logprobs.detach().to_vec2()?;
            // Dropping `scored` here frees the chunk's activations before the next one.
            for (sequence, row) in chunk.iter().zip(rows) {
                out.push(row[..sequence.completion.len()].to_vec());
            }
        }
        Ok(out)
    }

    /// Per-token log-probs of `completion` after `prompt` (both as text, the prompt used as given),
    /// as `swarm-node logprobs` prints them.
    pub fn token_logprobs(&self, prompt: &str, completion: &str) -> Result<TokenLogprobs> {
        let sequence = TokenSequence {
            prompt: self.encode_exactly(prompt, "prompt")?,
            completion: self.encode_exactly(completion, "completion")?,
        };
        ensure!(!sequence.prompt.is_empty(), "the prompt has no tokens");
        ensure!(
            !sequence.completion.is_empty(),
            "the completion has no tokens"
        );
        let logprobs = self
            .sequence_logprobs_detached(
                std::slice::from_ref(&sequence),
                &SampleOptions::default(),
                1,
            )?
            .remove(0);
        let tokens = sequence
            .completion
            .iter()
            .map(|&id| self.decode(&[id]))
            .collect::<Result<Vec<_>>>()?;
        Ok(TokenLogprobs {
            prompt_ids: sequence.prompt,
            total: logprobs.iter().map(|&l| f64::from(l)).sum(),
            completion_ids: sequence.completion,
            tokens,
            logprobs,
        })
    }

    /// [`Policy::token_logprobs`] as pretty JSON.
    pub fn token_logprobs_json(&self, prompt: &str, completion: &str) -> Result<String> {
        Ok(serde_json::to_string_pretty(
            &self.token_logprobs(prompt, completion)?,
        )?)
    }
}

/// Global gradient norm a supervised step clips to.
pub const SUPERVISED_MAX_GRAD_NORM: f64 = 1.0;

impl Policy {
    /// One supervised step on `batch`: the mean negative log-likelihood per completion token,
    /// backward, gradients clipped to [`SUPERVISED_MAX_GRAD_NORM`], AdamW at `lr`. Returns the
    /// loss before the step. Runs on the tensor thread pool ([`crate::on_thread_pool`]).
    pub fn supervised_step(
        &self,
        optimizer: &mut AdamW,
        batch: &[TokenSequence],
        lr: f64,
    ) -> Result<f64> {
        crate::on_thread_pool(|| {
            let out = self.sequence_logprobs(batch)?;
            let tokens = f64::from(out.mask.sum_all()?.to_scalar::<f32>()?).max(1.0);
            let loss = ((out.logprobs * &out.mask)?.sum_all()?.neg()? / tokens)?;
            let mut grads = optimizer.zero_grads();
            optimizer.accumulate(&mut grads, &loss.backward()?)?;
            optimizer.clip(&mut grads, SUPERVISED_MAX_GRAD_NORM)?;
            optimizer.step(&grads, lr)?;
            Ok(f64::from(loss.to_scalar::<f32>()?))
        })
    }
}
