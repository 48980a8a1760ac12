//! From a round's rollouts to scored training sequences: external completions are rescored by the
//! local verifier and re-tokenized, completions are grouped (pooled by prompt, or one group per
//! source), group-relative advantages are computed, zero-variance groups are dropped and, optionally,
//! only the maximum-variance subset of each group is kept (PODS).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use swarm_tasks::Question;

use crate::advantage::{AdvantageOptions, group_advantages};
use crate::rollout::{ExternalGroup, LocalGroup, Provenance};
use crate::scoring::Scorer;

/// Which completions share an advantage baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grouping {
    /// Every completion of the same question, local or external, forms one group.
    #[default]
    Pooled,
    /// Each sampled group (own or one sender's) is its own group, as the SAPO paper's code does.
    PerSource,
}

/// A completion ready for the loss.
#[derive(Debug, Clone)]
pub struct TrainItem {
    /// Prompt token ids under this node's tokenizer.
    pub prompt: Vec<u32>,
    /// Completion token ids under this node's tokenizer.
    pub completion: Vec<u32>,
    /// Behaviour log-probs per completion token, for own rollouts only.
    pub behaviour: Option<Vec<f32>>,
    /// Locally computed reward.
    pub reward: f32,
    /// Group-relative advantage.
    pub advantage: f32,
    /// Length of the completion text in bytes (for per-byte likelihoods).
    pub bytes: usize,
    /// Where it came from.
    pub provenance: Provenance,
}

/// Grouping and advantage settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchOptions {
    /// Baseline grouping.
    pub grouping: Grouping,
    /// Advantage normalisation.
    pub advantages: AdvantageOptions,
    /// Keep only the maximum-variance subset of this size of larger groups.
    pub max_variance_subset: Option<usize>,
    /// External completions longer than this, after re-tokenization, are dropped.
    pub max_completion_tokens: usize,
}

impl BatchReport {
    /// Mean locally computed reward of the external completions considered, if there were any.
    pub fn reward_external(&self) -> Option<f64> {
        let (sum, count) = self
            .external_rewards
            .iter()
            .flatten()
            .fold((0.0, 0usize), |(sum, count), &r| {
                (sum + f64::from(r), count + 1)
            });
        (count > 0).then(|| sum / count as f64)
    }
}

/// What building the batch kept and dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReport {
    /// Groups formed (after pooling).
    pub groups: usize,
    /// Groups dropped because every reward was equal.
    pub zero_variance_groups: usize,
    /// Completions left out by the max-variance subset.
    pub subset_dropped: usize,
    /// External completions dropped as too long or empty after re-tokenization.
    pub external_unusable: usize,
    /// Locally computed reward of every external completion, per group in the order given.
    pub external_rewards: Vec<Vec<f32>>,
    /// External completions judged correct, per family: (correct, total).
    pub external_correct: BTreeMap<String, (usize, usize)>,
}

/// Turns text into this node's token ids; the policy in production, a stub tokenizer in tests.
pub trait Tokenize {
    /// Token ids of `text`, without special tokens.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// Token appended to a completion that ended on its own.
    fn eos(&self) -> u32;
}

struct Candidate {
    item: TrainItem,
}

/// What identifies a question when completions of it are pooled: the same reference and prompt.
pub fn question_key(question: &Question) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        question.family, question.difficulty, question.seed, question.index, question.prompt
    )
}

/// Scores, groups and computes advantages for one round. External completions, and own ones of
/// unlabeled questions (whose vote pools everything `scorer` saw), are scored by `scorer`; own
/// labeled completions keep the reward they were sampled with.
pub fn build_batch(
    fresh: &[LocalGroup],
    stale: &[LocalGroup],
    external: &[ExternalGroup],
    tokenizer: &dyn Tokenize,
    scorer: &Scorer<'_>,
    options: &BatchOptions,
) -> Result<(Vec<TrainItem>, BatchReport)> {
    let mut report = BatchReport::default();
    let mut groups: BTreeMap<(String, usize), Vec<Candidate>> = BTreeMap::new();
    let mut source = 0usize;
    let mut key_for = |question: &Question, grouping: Grouping| -> (String, usize) {
        let id = question_key(question);
        match grouping {
            Grouping::Pooled => (id, 0),
            Grouping::PerSource => {
                source += 1;
                (id, source)
            }
        }
    };

    let locals = fresh
        .iter()
        .map(|g| (g, false))
        .chain(stale.iter().map(|g| (g, true)));
    for (group, is_stale) in locals {
        let prompt = tokenizer.encode(&crate::render_prompt(&group.question.prompt))?;
        let provenance = group.provenance(is_stale);
        let key = key_for(&group.question, options.grouping);
        let entry = groups.entry(key).or_default();
        for completion in &group.completions {
            let reward = scorer.own_reward(&group.question, completion)?;
            entry.push(Candidate {
                item: TrainItem {
                    prompt: prompt.clone(),
                    completion: completion.token_ids.clone(),
                    behaviour: Some(completion.logprobs.clone()),
                    reward,
                    advantage: 0.0,
                    bytes: completion.text.len(),
                    provenance: provenance.clone(),
                },
            });
        }
    }

    for group in external {
        let mut rewards = Vec::with_capacity(group.completions.len());
        let prompt = tokenizer.encode(&crate::render_prompt(&group.question.prompt))?;
        let provenance = group.provenance();
        let key = key_for(&group.question, options.grouping);
        let entry = groups.entry(key).or_default();
        for completion in &group.completions {
            let verdict = scorer.verify(&group.question, &completion.text)?;
            rewards.push(verdict.reward);
            let tally = report
                .external_correct
                .entry(group.question.family.clone())
                .or_default();
            tally.0 += usize::from(verdict.correct);
            tally.1 += 1;
            let mut ids = tokenizer.encode(&completion.text)?;
            if !completion.truncated {
                ids.push(tokenizer.eos());
            }
            if completion.text.is_empty() && completion.truncated
                || ids.len() > options.max_completion_tokens
            {
                report.external_unusable += 1;
                continue;
            }
            entry.push(Candidate {
                item: TrainItem {
                    prompt: prompt.clone(),
                    completion: ids,
                    behaviour: None,
                    reward: verdict.reward,
                    advantage: 0.0,
                    bytes: completion.text.len(),
                    provenance: provenance.clone(),
                },
            });
        }
        report.external_rewards.push(rewards);
    }

    let mut items = Vec::new();
    for (_, mut candidates) in groups {
        if candidates.is_empty() {
            continue;
        }
        report.groups += 1;
        if let Some(size) = options.max_variance_subset {
            let before = candidates.len();
            candidates = max_variance_subset(candidates, size);
            report.subset_dropped += before - candidates.len();
        }
        let rewards: Vec<f32> = candidates.iter().map(|c| c.item.reward).collect();
        let Some(advantages) = group_advantages(&rewards, options.advantages) else {
            report.zero_variance_groups += 1;
            continue;
        };
        for (candidate, advantage) in candidates.into_iter().zip(advantages) {
            let mut item = candidate.item;
            if item.completion.is_empty() {
                continue;
            }
            item.advantage = advantage;
            items.push(item);
        }
    }
    Ok((items, report))
}

/// The subset of `size` completions whose rewards have the largest variance. Such a subset is always
/// some of the highest rewards plus some of the lowest, so it is found by trying every split.
fn max_variance_subset(mut candidates: Vec<Candidate>, size: usize) -> Vec<Candidate> {
    if candidates.len() <= size || size < 2 {
        return candidates;
    }
    // Stable sort: ties keep sampling order, so the choice is deterministic.
    candidates.sort_by(|a, b| b.item.reward.total_cmp(&a.item.reward));
    let rewards: Vec<f64> = candidates
        .iter()
        .map(|c| f64::from(c.item.reward))
        .collect();
    let n = rewards.len();
    let variance = |top: usize| {
        let chosen: Vec<f64> = rewards[..top]
            .iter()
            .chain(&rewards[n - (size - top)..])
            .copied()
            .collect();
        let mean = chosen.iter().sum::<f64>() / size as f64;
        chosen.iter().map(|r| (r - mean).powi(2)).sum::<f64>()
    };
    let best_top = (0..=size)
        .max_by(|&a, &b| variance(a).total_cmp(&variance(b)).then(b.cmp(&a)))
        .unwrap_or(size / 2);
    let low_start = n - (size - best_top);
    candidates
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i < best_top || *i >= low_start)
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::ExternalCompletion;
    use swarm_protocol::{Completion, PolicyInfo, SamplingParams};
    use swarm_tasks::{RewardConfig, TaskCatalog, TaskRefExt};

    /// One token per byte, eos 2.
    struct Bytes;
    impl Tokenize for Bytes {
        fn encode(&self, text: &str) -> Result<Vec<u32>> {
            Ok(text.bytes().map(u32::from).collect())
        }
        fn eos(&self) -> u32 {
            2
        }
    }

    fn question(index: u64) -> Question {
        swarm_tasks::family("basic_arithmetic")
            .unwrap()
            .generate(0, 1, index)
    }

    fn policy(version: u64) -> PolicyInfo {
        PolicyInfo {
            model_name: "tiny".into(),
            architecture_hash: [0; 32],
            tokenizer_hash: [9; 32],
            policy_version: version,
        }
    }

    /// Scores without a format reward; no unlabeled questions to vote on.
    fn scorer(tasks: &TaskCatalog) -> Scorer<'_> {
        Scorer::new(tasks, RewardConfig { format_reward: 0.0 }, 0.0, [])
    }

    fn local(q: &Question, texts: &[&str]) -> LocalGroup {
        LocalGroup {
            task: swarm_tasks::TaskRef::procedural(q),
            question: q.clone(),
            policy: policy(3),
            sampling: SamplingParams {
                temperature: 1.0,
                top_p: 1.0,
                top_k: 0,
                max_new_tokens: 8,
            },
            completions: texts
                .iter()
                .map(|t| Completion {
                    text: (*t).to_owned(),
                    token_ids: t.bytes().map(u32::from).chain([2]).collect(),
                    logprobs: vec![-1.0; t.len() + 1],
                    reward: swarm_tasks::verify(q, t, &RewardConfig::default()).reward,
                    truncated: false,
                })
                .collect(),
        }
    }

    fn external(q: &Question, author: &str, texts: &[&str]) -> ExternalGroup {
        ExternalGroup {
            author: author.to_owned(),
            question: q.clone(),
            policy: policy(40),
            completions: texts
                .iter()
                .map(|t| ExternalCompletion {
                    text: (*t).to_owned(),
                    truncated: false,
                })
                .collect(),
        }
    }

    fn options(grouping: Grouping) -> BatchOptions {
        BatchOptions {
            grouping,
            advantages: AdvantageOptions {
                scale_by_std: false,
            },
            max_variance_subset: None,
            max_completion_tokens: 16,
        }
    }

    #[test]
    fn pooled_groups_share_a_baseline_and_per_source_groups_do_not() {
        let tasks = TaskCatalog::new();
        let q = question(5);
        let right = q.answer.clone();
        // Local: all wrong (zero variance alone). External: one right, one wrong.
        let fresh = [local(&q, &["x", "y"])];
        let ext = [external(&q, "peer", &[&right, "z"])];

        let (items, report) = build_batch(
            &fresh,
            &[],
            &ext,
            &Bytes,
            &scorer(&tasks),
            &options(Grouping::Pooled),
        )
        .unwrap();
        assert_eq!((report.groups, report.zero_variance_groups), (1, 0));
        // Rewards 0, 0, 1, 0: mean 0.25.
        let advantages: Vec<f32> = items.iter().map(|i| i.advantage).collect();
        assert_eq!(advantages, vec![-0.25, -0.25, 0.75, -0.25]);
        assert_eq!(report.reward_external(), Some(0.5));
        let ext_item = &items[2];
        assert!(ext_item.behaviour.is_none());
        assert_eq!(*ext_item.completion.last().unwrap(), 2, "eos appended");

        let (items, report) = build_batch(
            &fresh,
            &[],
            &ext,
            &Bytes,
            &scorer(&tasks),
            &options(Grouping::PerSource),
        )
        .unwrap();
        assert_eq!((report.groups, report.zero_variance_groups), (2, 1));
        let advantages: Vec<f32> = items.iter().map(|i| i.advantage).collect();
        assert_eq!(advantages, vec![0.5, -0.5]);
    }

    #[test]
    fn senders_rewards_are_ignored_and_long_completions_dropped() {
        let tasks = TaskCatalog::new();
        let q = question(6);
        let long = "9".repeat(40);
        let ext = [external(&q, "liar", &["wrong", &long, &q.answer])];
        let (items, report) = build_batch(
            &[],
            &[],
            &ext,
            &Bytes,
            &scorer(&tasks),
            &options(Grouping::Pooled),
        )
        .unwrap();
        assert_eq!(report.external_unusable, 1);
        assert_eq!(items.len(), 2);
        assert!(items[0].advantage < 0.0 && items[1].advantage > 0.0);
    }

    #[test]
    fn max_variance_subset_keeps_the_extremes() {
        let tasks = TaskCatalog::new();
        let q = question(7);
        let right = q.answer.clone();
        let fresh = [local(&q, &["a", &right, "b", "c", "d", &right])];
        let mut opts = options(Grouping::Pooled);
        opts.max_variance_subset = Some(4);
        let (items, report) =
            build_batch(&fresh, &[], &[], &Bytes, &scorer(&tasks), &opts).unwrap();
        assert_eq!(report.subset_dropped, 2);
        let rewards: Vec<f32> = items.iter().map(|i| i.reward).collect();
        assert_eq!(rewards, vec![1.0, 1.0, 0.0, 0.0]);
        assert!(items.iter().all(|i| i.advantage.abs() == 0.5));
    }
}
