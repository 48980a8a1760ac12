//! The round loop on one node: sample groups of completions, score them with the local verifiers,
//! compute group-relative advantages and take one clipped policy-gradient step per round.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use swarm_policy::{AdamW, AdamWConfig, Policy, SampleOptions, TokenSequence, checkpoint};
use swarm_tasks::RewardConfig;

use crate::advantage::{AdvantageOptions, group_advantages};
use crate::loss::{LossInputs, LossOptions, policy_loss, truncated_importance_weights};
use crate::metrics::{MetricsWriter, RoundMetrics};
use crate::{LearnerOptions, render_prompt};

/// A learning node's state.
pub struct Learner {
    policy: Policy,
    optimizer: AdamW,
    rng: ChaCha8Rng,
    options: LearnerOptions,
    round: u64,
    checkpoints: PathBuf,
    metrics: MetricsWriter,
}

impl Learner {
    /// Starts from the newest checkpoint under `data_dir/checkpoints` if there is one, else from
    /// `policy` as given. Metrics of rounds after the resumed checkpoint (written before a crash) are
    /// dropped from `metrics.jsonl`, so the file never holds a round twice.
    pub fn start(
        policy: Policy,
        data_dir: &Path,
        options: LearnerOptions,
        seed: u64,
    ) -> Result<Self> {
        options.validate().map_err(anyhow::Error::msg)?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let mut optimizer = AdamW::new(policy.varmap(), AdamWConfig::default())?;
        let checkpoints = data_dir.join("checkpoints");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut round = 0;
        if let Some(latest) = checkpoint::latest(&checkpoints)? {
            let (state, restored_rng) = checkpoint::load(&latest, &policy, &mut optimizer)?;
            rng = restored_rng;
            round = state
                .extra
                .get("round")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            tracing::info!(round, checkpoint = %latest.display(), "resumed from checkpoint");
        }
        let metrics_path = data_dir.join("metrics.jsonl");
        truncate_metrics(&metrics_path, round)?;
        Ok(Self {
            metrics: MetricsWriter::open(&metrics_path)?,
            policy,
            optimizer,
            rng,
            options,
            round,
            checkpoints,
        })
    }

    /// Rounds completed.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The policy being trained.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs one round and records it; checkpoints every `checkpoint_every` rounds.
    pub fn run_round(&mut self) -> Result<RoundMetrics> {
        let started = Instant::now();
        let o = &self.options;
        let rewards_config = RewardConfig {
            format_reward: o.format_reward,
        };
        let first_index = self.round * o.prompts_per_round as u64;
        let mut questions = Vec::with_capacity(o.prompts_per_round);
        for i in 0..o.prompts_per_round as u64 {
            let index = first_index + i;
            let name = &o.families[index as usize % o.families.len()];
            let family = swarm_tasks::family(name).context("validated family")?;
            questions.push(family.generate(o.difficulty, o.task_seed, index));
        }
        let mut prompts = Vec::with_capacity(questions.len() * o.group_size);
        for question in &questions {
            let ids = self.policy.encode(&render_prompt(&question.prompt))?;
            prompts.extend(std::iter::repeat_n(ids, o.group_size));
        }
        let sample_options = SampleOptions {
            temperature: o.temperature,
            max_new_tokens: o.max_new_tokens,
            ..SampleOptions::default()
        };
        let sampling = Instant::now();
        let samples = self
            .policy
            .sample(&prompts, &sample_options, &mut self.rng)?;
        let sampled_tokens: usize = samples.iter().map(|s| s.token_ids.len()).sum();
        let tokens_per_second = sampled_tokens as f64 / sampling.elapsed().as_secs_f64().max(1e-9);

        let mut correct: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut reward_sum = 0.0;
        let mut batch = Vec::new();
        let mut advantages = Vec::new();
        let mut behaviour = Vec::new();
        let mut zero_variance = 0;
        for (q, question) in questions.iter().enumerate() {
            let group = &samples[q * o.group_size..(q + 1) * o.group_size];
            let verdicts: Vec<_> = group
                .iter()
                .map(|s| swarm_tasks::verify(question, &s.text, &rewards_config))
                .collect();
            let entry = correct.entry(question.family.clone()).or_default();
            entry.0 += verdicts.iter().filter(|v| v.correct).count();
            entry.1 += verdicts.len();
            let rewards: Vec<f32> = verdicts.iter().map(|v| v.reward).collect();
            reward_sum += rewards.iter().map(|&r| f64::from(r)).sum::<f64>();
            let scale_by_std = o.scale_advantages_by_std;
            let Some(group_adv) = group_advantages(&rewards, AdvantageOptions { scale_by_std })
            else {
                zero_variance += 1;
                continue;
            };
            for ((sample, advantage), prompt) in group
                .iter()
                .zip(group_adv)
                .zip(&prompts[q * o.group_size..])
            {
                if sample.token_ids.is_empty() {
                    continue;
                }
                batch.push(TokenSequence {
                    prompt: prompt.clone(),
                    completion: sample.token_ids.clone(),
                });
                advantages.push(advantage);
                behaviour.push(sample.logprobs.clone());
            }
        }

        let step_started = Instant::now();
        let mut stats = StepStats::default();
        if !batch.is_empty() {
            stats = self.train_step(&batch, &advantages, &behaviour)?;
        }
        let step_seconds = step_started.elapsed().as_secs_f64();
        self.round += 1;
        let metrics = RoundMetrics {
            round: self.round,
            policy_version: self.optimizer.steps(),
            reward_local: reward_sum / samples.len().max(1) as f64,
            accuracy: correct
                .into_iter()
                .map(|(family, (right, total))| (family, right as f64 / total.max(1) as f64))
                .collect(),
            zero_variance_fraction: zero_variance as f64 / questions.len().max(1) as f64,
            clip_low_fraction: stats.clip_low,
            clip_high_fraction: stats.clip_high,
            entropy: stats.entropy,
            mean_importance_weight: stats.mean_weight,
            completion_tokens: sampled_tokens as f64 / samples.len().max(1) as f64,
            tokens_per_second,
            step_seconds,
            round_seconds: started.elapsed().as_secs_f64(),
        };
        self.metrics.write(&metrics)?;
        if self.round % self.options.checkpoint_every == 0 {
            self.checkpoint()?;
        }
        Ok(metrics)
    }

    /// Writes a checkpoint now.
    pub fn checkpoint(&self) -> Result<PathBuf> {
        checkpoint::save(
            &self.checkpoints,
            &self.policy,
            &self.optimizer,
            &self.rng,
            serde_json::json!({ "round": self.round }),
            self.options.keep_checkpoints,
        )
    }

    fn train_step(
        &mut self,
        batch: &[TokenSequence],
        advantages: &[f32],
        behaviour: &[Vec<f32>],
    ) -> Result<StepStats> {
        let out = self.policy.sequence_logprobs(batch)?;
        let (rows, width) = out.logprobs.dims2()?;
        let mut behaviour_padded = Vec::with_capacity(rows * width);
        for row in behaviour {
            behaviour_padded.extend(
                row.iter()
                    .copied()
                    .chain(std::iter::repeat(0.0))
                    .take(width),
            );
        }
        let device = self.policy.device();
        let behaviour = Tensor::from_vec(behaviour_padded, (rows, width), device)?;
        // One update per round: the proximal policy is the current one (ratio 1 with its gradient), and
        // the gap to the sampling distribution (temperature, numerics) is corrected by truncated
        // importance weights.
        let proximal = out.logprobs.detach();
        let weights = (truncated_importance_weights(&proximal, &behaviour, self.options.tis_cap)?
            * &out.mask)?;
        let advantages = Tensor::from_vec(advantages.to_vec(), rows, device)?;
        let tokens = f64::from(out.mask.sum_all()?.to_scalar::<f32>()?).max(1.0);
        let loss = policy_loss(
            &LossInputs {
                logprobs: &out.logprobs,
                old_logprobs: &proximal,
                weights: &weights,
                advantages: &advantages,
                mask: &out.mask,
            },
            LossOptions {
                eps_low: self.options.eps_low,
                eps_high: self.options.eps_high,
                ..LossOptions::default()
            },
            tokens,
        )?;
        let mut grads = self.optimizer.zero_grads();
        self.optimizer
            .accumulate(&mut grads, &loss.loss.backward()?)?;
        self.optimizer
            .clip(&mut grads, self.options.max_grad_norm)?;
        self.optimizer.step(&grads, self.options.lr)?;
        let masked_mean = |t: &Tensor| -> Result<f64> {
            Ok(f64::from((t * &out.mask)?.sum_all()?.to_scalar::<f32>()?) / tokens)
        };
        Ok(StepStats {
            clip_low: loss.clip_low_fraction,
            clip_high: loss.clip_high_fraction,
            entropy: masked_mean(&out.entropy)?,
            mean_weight: masked_mean(&weights)?,
        })
    }
}

#[derive(Default)]
struct StepStats {
    clip_low: f64,
    clip_high: f64,
    entropy: f64,
    mean_weight: f64,
}

/// Keeps only the rounds `<= last_round` of a metrics file.
fn truncate_metrics(path: &Path, last_round: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("round").and_then(serde_json::Value::as_u64))
                .is_some_and(|round| round <= last_round)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    std::fs::write(path, out).with_context(|| format!("cannot rewrite {}", path.display()))
}

/// Answers evaluation prompts with a policy, for `swarm_tasks::eval`.
pub struct PolicySolver<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// Sampling settings.
    pub options: SampleOptions,
    /// Random stream.
    pub rng: ChaCha8Rng,
}

impl swarm_tasks::eval::Solver for PolicySolver<'_> {
    fn solve(&mut self, prompts: &[String], k: usize) -> Result<Vec<Vec<String>>> {
        let mut ids = Vec::with_capacity(prompts.len() * k);
        for prompt in prompts {
            let encoded = self.policy.encode(&render_prompt(prompt))?;
            ids.extend(std::iter::repeat_n(encoded, k));
        }
        let samples = self.policy.sample(&ids, &self.options, &mut self.rng)?;
        Ok(samples
            .chunks(k)
            .map(|group| group.iter().map(|s| s.text.clone()).collect())
            .collect())
    }
}
