//! The round loop of one node: sample groups of completions, score them with the local verifiers,
//! publish them, take external groups from the buffer, build the batch and update the policy. The
//! same loop runs alone ([`crate::NullNetwork`]), in simulation and on the real network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use swarm_policy::{AdamW, AdamWConfig, Policy, SampleOptions, checkpoint};
use swarm_protocol::{Completion, PolicyInfo, SamplingParams};
use swarm_tasks::{RewardConfig, TaskCatalog, UNLABELED_FAMILY};

use crate::advantage::AdvantageOptions;
use crate::ballots::BallotBox;
use crate::batch::{BatchOptions, BatchReport, Tokenize, build_batch, question_key};
use crate::loss::LossOptions;
use crate::metrics::{JsonlWriter, RoundMetrics, truncate_after_round};
use crate::pool::{PoolLimits, RolloutPool, all_equal, judge_arrivals};
use crate::rollout::{ExternalGroup, LocalGroup, Network};
use crate::scoring::{Scorer, VoteTally};
use crate::task_mix::TaskMix;
use crate::update::{UpdateOptions, UpdateStats, update};
use crate::{LearnerOptions, render_prompt};

/// A learning node's state.
pub struct Learner {
    policy: Policy,
    model_name: String,
    optimizer: AdamW,
    rng: ChaCha8Rng,
    options: LearnerOptions,
    round: u64,
    checkpoints: PathBuf,
    metrics: JsonlWriter,
    rollout_log: Option<JsonlWriter>,
    pool: RolloutPool,
    reference: Option<Policy>,
    /// The families, plug-ins and datasets this node generates and scores with.
    tasks: Arc<TaskCatalog>,
    /// This node's question stream.
    mix: TaskMix,
    /// Other nodes' completions of unlabeled prompts, for the votes.
    ballots: BallotBox,
    /// Own unlabeled groups sampled last round, trained this round (`defer_unlabeled`).
    deferred: Vec<LocalGroup>,
    /// Per-byte NLL of own trained completions in the latest update that had any.
    own_nll_per_byte: Option<f64>,
    /// Seeds the draw of external groups, apart from the sampling stream, so that configurations
    /// that take different numbers of external groups still sample from the same stream.
    selection_seed: u64,
}

struct PolicyTokenizer<'a>(&'a Policy);

impl Tokenize for PolicyTokenizer<'_> {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.0.encode(text)
    }

    fn eos(&self) -> u32 {
        self.0.eos_ids().first().copied().unwrap_or(self.0.pad_id())
    }
}

/// What [`Learner::train`] did.
#[derive(Debug, Clone, Default)]
pub struct TrainReport {
    /// Grouping and advantages.
    pub batch: BatchReport,
    /// The update.
    pub update: UpdateStats,
    /// Completions trained on per provenance: (own, external).
    pub trained_local_external: (usize, usize),
    /// How the majority votes on the fresh unlabeled questions went.
    pub votes: VoteTally,
}

impl Learner {
    /// Starts from the newest checkpoint under `data_dir/checkpoints` if there is one, else from
    /// `policy` as given. Metrics and rollout-log lines of rounds after the resumed checkpoint
    /// (written before a crash) are dropped, so no file holds a round twice. `tasks` must hold the
    /// datasets of `options` (see [`crate::load_tasks`]) and serve its families.
    pub fn start(
        policy: Policy,
        model_name: &str,
        data_dir: &Path,
        options: LearnerOptions,
        seed: u64,
        tasks: Arc<TaskCatalog>,
    ) -> Result<Self> {
        let plugin_families: Vec<String> = tasks
            .families()
            .into_iter()
            .filter(|f| f.plugin.is_some())
            .map(|f| f.name)
            .collect();
        options
            .validate_with_plugins(&plugin_families)
            .map_err(anyhow::Error::msg)?;
        let mix = TaskMix::new(&options, &tasks)?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let mut optimizer = AdamW::new(policy.varmap(), AdamWConfig::default())?;
        let checkpoints = data_dir.join("checkpoints");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut round = 0;
        let (latest, skipped) = checkpoint::newest_complete(&checkpoints)?;
        for passed_over in &skipped {
            tracing::warn!(
                checkpoint = %passed_over.dir.display(),
                reason = %passed_over.reason,
                "skipped a damaged or unfinished checkpoint; resuming from an older one"
            );
        }
        if latest.is_none() && !skipped.is_empty() {
            tracing::warn!("no whole checkpoint found: starting from round 0");
        }
        if let Some(latest) = latest {
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
        truncate_after_round(&metrics_path, round)?;
        let rollout_log = if options.rollout_log {
            let path = data_dir.join("rollouts.jsonl");
            truncate_after_round(&path, round)?;
            Some(JsonlWriter::open(&path)?)
        } else {
            None
        };
        let pool = RolloutPool::new(PoolLimits {
            capacity: options.external_pool_size,
            max_age_rounds: options.external_max_age_rounds,
            author_share_cap: options.author_share_cap,
            max_staleness: options.max_staleness,
            selection: options.external_selection,
        });
        Ok(Self {
            metrics: JsonlWriter::open(&metrics_path)?,
            rollout_log,
            policy,
            model_name: model_name.to_owned(),
            optimizer,
            rng,
            options,
            round,
            checkpoints,
            pool,
            reference: None,
            tasks,
            mix,
            ballots: BallotBox::default(),
            deferred: Vec::new(),
            own_nll_per_byte: None,
            selection_seed: seed,
        })
    }

    /// Sets the frozen policy that `kl_coef` pulls towards: load the starting model a second time
    /// (not the resumed checkpoint), so that a resumed run keeps the same anchor.
    pub fn set_reference(&mut self, reference: Policy) {
        self.reference = Some(reference);
    }

    /// Rounds completed.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The policy being trained.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The options this learner runs with.
    pub fn options(&self) -> &LearnerOptions {
        &self.options
    }

    /// Optimizer steps taken: the version other nodes see on this node's rollouts.
    pub fn policy_version(&self) -> u64 {
        self.optimizer.steps()
    }

    fn policy_info(&self) -> PolicyInfo {
        PolicyInfo {
            model_name: self.model_name.clone(),
            architecture_hash: self.policy.architecture_hash(),
            tokenizer_hash: self.policy.tokenizer_hash(),
            policy_version: self.policy_version(),
        }
    }

    fn rewards(&self) -> RewardConfig {
        RewardConfig {
            format_reward: self.options.format_reward,
        }
    }

    /// The families, plug-ins and datasets this learner uses.
    pub fn tasks(&self) -> &Arc<TaskCatalog> {
        &self.tasks
    }

    /// A scorer whose votes pool the own and external groups given and every other completion
    /// of an unlabeled prompt that arrived lately (the ballot box, less the groups in `external`).
    fn scorer_with_ballots<'s>(
        &'s self,
        fresh: &'s [LocalGroup],
        stale: &'s [LocalGroup],
        external: &'s [ExternalGroup],
    ) -> Scorer<'s> {
        let own = fresh
            .iter()
            .chain(stale)
            .filter(|g| g.question.family == UNLABELED_FAMILY)
            .flat_map(|g| {
                g.completions
                    .iter()
                    .map(|c| (g.question.prompt.as_str(), c.text.as_str()))
            });
        let received = external
            .iter()
            .filter(|g| g.question.family == UNLABELED_FAMILY)
            .flat_map(|g| {
                g.completions
                    .iter()
                    .map(|c| (g.question.prompt.as_str(), c.text.as_str()))
            });
        Scorer::with_ballots(
            &self.tasks,
            self.rewards(),
            self.options.majority_min_share,
            own.chain(received).chain(self.ballots.pooled(external)),
        )
    }

    /// A scorer whose majority votes pool `completions`.
    fn scorer<'t>(
        &self,
        completions: impl IntoIterator<Item = (&'t swarm_tasks::Question, &'t str)>,
    ) -> Scorer<'_> {
        Scorer::new(
            &self.tasks,
            self.rewards(),
            self.options.majority_min_share,
            completions,
        )
    }

    /// Samples and scores this round's own groups.
    fn sample_groups(&mut self) -> Result<(Vec<LocalGroup>, f64)> {
        let o = &self.options;
        let first_index = self.round * o.prompts_per_round as u64;
        let mut drawn = Vec::with_capacity(o.prompts_per_round);
        for i in 0..o.prompts_per_round as u64 {
            drawn.push(self.mix.draw(&self.tasks, first_index + i)?);
        }
        let mut prompts = Vec::with_capacity(drawn.len() * o.group_size);
        for question in drawn.iter().map(|d| &d.question) {
            let ids = self.policy.encode(&render_prompt(&question.prompt))?;
            prompts.extend(std::iter::repeat_n(ids, o.group_size));
        }
        let sample_options = SampleOptions {
            temperature: o.temperature,
            max_new_tokens: o.max_new_tokens,
            ..SampleOptions::default()
        };
        let sampling = SamplingParams {
            temperature: sample_options.temperature,
            top_p: sample_options.top_p,
            top_k: sample_options.top_k as u32,
            max_new_tokens: sample_options.max_new_tokens as u32,
        };
        let group_size = o.group_size;
        let started = Instant::now();
        let samples = self
            .policy
            .sample(&prompts, &sample_options, &mut self.rng)?;
        let tokens: usize = samples.iter().map(|s| s.token_ids.len()).sum();
        let tokens_per_second = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let policy = self.policy_info();
        let sampled_groups: Vec<_> = drawn.into_iter().zip(samples.chunks(group_size)).collect();
        // Unlabeled questions are scored here by the vote of this node's own completions: the
        // rewards its bundles claim. Training rescores them with everything pooled.
        let scorer = self.scorer(
            sampled_groups
                .iter()
                .flat_map(|(d, group)| group.iter().map(|s| (&d.question, s.text.as_str()))),
        );
        let mut groups = Vec::with_capacity(sampled_groups.len());
        for (drawn, group) in &sampled_groups {
            let mut completions = Vec::with_capacity(group.len());
            for s in *group {
                completions.push(Completion {
                    reward: scorer.verify(&drawn.question, &s.text)?.reward,
                    text: s.text.clone(),
                    token_ids: s.token_ids.clone(),
                    logprobs: s.logprobs.clone(),
                    truncated: s.truncated,
                });
            }
            groups.push(LocalGroup {
                task: drawn.task.clone(),
                question: drawn.question.clone(),
                completions,
                policy: policy.clone(),
                sampling,
            });
        }
        Ok((groups, tokens_per_second))
    }

    /// How many external groups this round may train on: at most `external_per_round`, and few
    /// enough that external completions stay within `external_share_cap` of the batch.
    fn external_allowance(&self, local_groups: usize) -> usize {
        let o = &self.options;
        if o.external_share_cap >= 1.0 {
            return o.external_per_round;
        }
        let by_share = local_groups as f64 * o.external_share_cap / (1.0 - o.external_share_cap);
        o.external_per_round.min(by_share.floor() as usize)
    }

    /// Runs one round and records it; checkpoints every `checkpoint_every` rounds.
    pub fn run_round(&mut self, network: &mut dyn Network) -> Result<RoundMetrics> {
        let started = Instant::now();
        let (sampled, tokens_per_second) = self.sample_groups()?;
        for group in &sampled {
            if let Err(err) = network.publish(group) {
                tracing::warn!(
                    %err,
                    "could not publish a rollout group; training goes on with local rollouts"
                );
            }
        }
        let (deferring, fresh): (Vec<LocalGroup>, Vec<LocalGroup>) =
            sampled.iter().cloned().partition(|group| {
                self.options.defer_unlabeled && group.question.family == UNLABELED_FAMILY
            });
        let mut stale = if self.options.replay_local {
            self.pool.replayable(self.policy_version())
        } else {
            Vec::new()
        };
        stale.append(&mut self.deferred);
        let arrived = network.take_arrivals();
        // A node that takes nothing from its peers (`external_per_round = 0`) votes alone too.
        if self.options.external_per_round > 0 {
            self.ballots.add_arrivals(self.round, &arrived);
        }
        self.ballots
            .expire(self.round, self.options.external_max_age_rounds);
        let scorer = self.scorer_with_ballots(&fresh, &stale, &[]);
        let arrivals = judge_arrivals(arrived, &fresh, self.options.grouping, &scorer)?;
        drop(scorer);
        let external_arrived = arrivals.len();
        let external_uninformative = arrivals.iter().filter(|a| !a.informative).count();
        self.pool.add_external(self.round, arrivals);
        let allowance = self.external_allowance(fresh.len() + stale.len());
        let external_available = self.pool.expire(self.round);
        let mut selection_rng = ChaCha8Rng::seed_from_u64(
            self.selection_seed ^ self.round.wrapping_mul(SELECTION_STREAM),
        );
        let external = self
            .pool
            .take_external(self.round, allowance, &mut selection_rng);
        let local_zero_variance = sampled
            .iter()
            .filter(|g| all_equal(g.completions.iter().map(|c| c.reward)))
            .count();

        let mut accuracy: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut reward_sum = 0.0;
        let mut completions = 0usize;
        let mut completion_tokens = 0usize;
        for group in &sampled {
            let tally = accuracy.entry(group.question.family.clone()).or_default();
            for c in &group.completions {
                tally.0 += usize::from(c.reward >= 1.0);
                tally.1 += 1;
                reward_sum += f64::from(c.reward);
                completions += 1;
                completion_tokens += c.token_ids.len();
            }
        }

        let step_started = Instant::now();
        let policy_version = self.policy_version();
        let report = self.train(&fresh, &stale, &external)?;
        let external_aha = delivered_aha(&fresh, &external, &report.batch.external_rewards);
        let step_seconds = step_started.elapsed().as_secs_f64();
        if self.options.replay_local {
            self.pool.keep_local(fresh.iter().cloned());
        }
        self.deferred = deferring;
        self.round += 1;
        let (dropped_stale, dropped_overflow) = self.pool.dropped();
        let u = &report.update;
        let metrics = RoundMetrics {
            round: self.round,
            policy_version: self.policy_version(),
            reward_local: reward_sum / completions.max(1) as f64,
            reward_external: report.batch.reward_external(),
            accuracy: accuracy
                .into_iter()
                .map(|(family, (right, total))| (family, right as f64 / total.max(1) as f64))
                .collect(),
            external_accuracy: report
                .batch
                .external_correct
                .iter()
                .map(|(family, &(right, total))| {
                    (family.clone(), right as f64 / total.max(1) as f64)
                })
                .collect(),
            external_groups: external.len(),
            external_arrived,
            external_uninformative,
            external_available,
            external_aha,
            vote_labeled_fraction: (report.votes.questions > 0)
                .then(|| report.votes.labeled as f64 / report.votes.questions as f64),
            vote_accuracy: (report.votes.checked > 0)
                .then(|| report.votes.correct as f64 / report.votes.checked as f64),
            vote_ballots: (report.votes.questions > 0)
                .then(|| report.votes.ballots as f64 / report.votes.questions as f64),
            local_zero_variance_fraction: local_zero_variance as f64 / sampled.len().max(1) as f64,
            stale_groups: stale.len(),
            trained_local: report.trained_local_external.0,
            trained_external: report.trained_local_external.1,
            zero_variance_fraction: report.batch.zero_variance_groups as f64
                / report.batch.groups.max(1) as f64,
            gated_external: u.gated,
            unusable_external: report.batch.external_unusable,
            clip_low_fraction: u.clip_low,
            clip_high_fraction: u.clip_high,
            entropy: u.entropy,
            kl_proximal: u.kl_proximal,
            kl_reference: u.kl_reference,
            mean_importance_weight: u.mean_weight,
            effective_sample_size: u.effective_sample_size,
            nll_per_byte_local: u.nll_per_byte_local,
            nll_per_byte_external: u.nll_per_byte_external,
            optimizer_steps: u.steps,
            pool_waiting: self.pool.external_len(),
            pool_dropped: dropped_stale + dropped_overflow,
            completion_tokens: completion_tokens as f64 / completions.max(1) as f64,
            tokens_per_second,
            step_seconds,
            round_seconds: started.elapsed().as_secs_f64(),
        };
        self.metrics.write(&metrics)?;
        if let Some(log) = &mut self.rollout_log {
            write_rollouts(
                log,
                self.round,
                policy_version,
                &sampled,
                &external,
                &report.batch.external_rewards,
            )?;
        }
        if self.round % self.options.checkpoint_every == 0 {
            self.checkpoint()?;
        }
        Ok(metrics)
    }

    /// Builds the batch from own fresh and replayed groups and external groups and updates the
    /// policy. Public so that batches can be trained without sampling (tests, offline data).
    pub fn train(
        &mut self,
        fresh: &[LocalGroup],
        stale: &[LocalGroup],
        external: &[ExternalGroup],
    ) -> Result<TrainReport> {
        let o = &self.options;
        let batch_options = BatchOptions {
            grouping: o.grouping,
            advantages: AdvantageOptions {
                scale_by_std: o.scale_advantages_by_std,
            },
            max_variance_subset: (o.max_variance_subset > 0).then_some(o.max_variance_subset),
            max_completion_tokens: 4 * o.max_new_tokens,
        };
        let scorer = self.scorer_with_ballots(fresh, stale, external);
        let voted: std::collections::BTreeSet<&str> = fresh
            .iter()
            .chain(stale)
            .filter(|g| g.question.family == UNLABELED_FAMILY)
            .map(|g| g.question.prompt.as_str())
            .collect();
        let votes = scorer.tally(voted);
        let (items, batch) = build_batch(
            fresh,
            stale,
            external,
            &PolicyTokenizer(&self.policy),
            &scorer,
            &batch_options,
        )?;
        drop(scorer);
        let update_options = UpdateOptions {
            steps: o.steps_per_round,
            lr: o.lr,
            max_grad_norm: o.max_grad_norm,
            loss: LossOptions {
                eps_low: o.eps_low,
                eps_high: o.eps_high,
                ..LossOptions::default()
            },
            tis_cap: o.tis_cap,
            nll_gate_margin: o.nll_gate_margin,
            own_nll_reference: self.own_nll_per_byte,
            kl_coef: o.kl_coef,
        };
        let (trained, update) = update(
            &self.policy,
            self.reference.as_ref(),
            &mut self.optimizer,
            items,
            &update_options,
            &mut self.rng,
        )?;
        if update.nll_per_byte_local.is_some() {
            self.own_nll_per_byte = update.nll_per_byte_local;
        }
        let local = trained.iter().filter(|i| i.provenance.is_local()).count();
        Ok(TrainReport {
            batch,
            update,
            trained_local_external: (local, trained.len() - local),
            votes,
        })
    }

    /// Writes a checkpoint now.
    pub fn checkpoint(&self) -> Result<PathBuf> {
        checkpoint::save(
            &self.checkpoints,
            self.round,
            &self.policy,
            &self.optimizer,
            &self.rng,
            serde_json::json!({ "round": self.round }),
            self.options.keep_checkpoints,
        )
    }
}

/// Mixed into the selection seed per round, so each round draws from its own stream.
const SELECTION_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// External groups taken this round that hold the only correct answer to their question in the
/// batch: no own completion of that question and no other external group got it right. These are
/// the rare successes sharing exists to spread.
/// `external_rewards` are the batch builder's local scores, per external group in order.
fn delivered_aha(
    fresh: &[LocalGroup],
    external: &[ExternalGroup],
    external_rewards: &[Vec<f32>],
) -> usize {
    let mut own_correct: BTreeMap<String, bool> = BTreeMap::new();
    for group in fresh {
        *own_correct
            .entry(question_key(&group.question))
            .or_default() |= group.completions.iter().any(|c| c.reward >= 1.0);
    }
    let mut correct_groups: BTreeMap<String, usize> = BTreeMap::new();
    for (group, rewards) in external.iter().zip(external_rewards) {
        if rewards.iter().any(|&r| r >= 1.0) {
            *correct_groups
                .entry(question_key(&group.question))
                .or_default() += 1;
        }
    }
    correct_groups
        .into_iter()
        .filter(|(key, groups)| *groups == 1 && !own_correct.get(key).copied().unwrap_or(false))
        .count()
}

/// Appends every own and external completion of the round, with locally computed rewards
/// (`external_rewards`, as the batch builder scored them, per external group).
fn write_rollouts(
    log: &mut JsonlWriter,
    round: u64,
    trainer_version: u64,
    fresh: &[LocalGroup],
    external: &[ExternalGroup],
    external_rewards: &[Vec<f32>],
) -> Result<()> {
    let own = fresh.iter().flat_map(|group| {
        let provenance = group.provenance(false);
        group.completions.iter().map(move |c| {
            (
                &group.question,
                &c.text,
                c.reward,
                c.truncated,
                provenance.clone(),
            )
        })
    });
    let received = external
        .iter()
        .zip(external_rewards)
        .flat_map(|(group, rewards)| {
            let provenance = group.provenance();
            group
                .completions
                .iter()
                .zip(rewards)
                .map(move |(c, &reward)| {
                    (
                        &group.question,
                        &c.text,
                        reward,
                        c.truncated,
                        provenance.clone(),
                    )
                })
        });
    for (question, completion, reward, truncated, provenance) in own.chain(received) {
        log.write(&serde_json::json!({
            "round": round,
            "trainer_policy_version": trainer_version,
            "family": question.family,
            "prompt": question.prompt,
            "completion": completion,
            "reward": reward,
            "truncated": truncated,
            "provenance": provenance,
        }))?;
    }
    Ok(())
}
