//! The rollout buffer: external groups waiting to be trained on, and this node's own recent groups
//! kept for replay, each with what is needed to judge its staleness.
//!
//! External groups are chosen by the SAPO paper's rule unless configured otherwise: a group that
//! carries no learning signal under this node's own rewards (every completion scored alike) is
//! discarded on arrival, and a round's J groups are drawn uniformly from the rest. Taking the freshest
//! arrivals instead lets uninformative groups crowd out the rare ones a peer got right.

use std::collections::{BTreeMap, VecDeque};

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::batch::{Grouping, question_key};
use crate::rollout::{ExternalGroup, LocalGroup};
use crate::scoring::Scorer;

/// How a round's external groups are chosen from the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExternalSelection {
    /// Discard groups with zero advantage under this node's rewards on arrival, then draw uniformly
    /// (the SAPO paper's rule).
    #[default]
    InformativeUniform,
    /// Freshest arrivals first, whatever their advantage.
    Freshest,
}

/// Bounds of the buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolLimits {
    /// External groups held at most; the oldest arrivals are dropped first.
    pub capacity: usize,
    /// External groups older than this many of our rounds are dropped unused.
    pub max_age_rounds: u64,
    /// Largest share of one round's external groups that may come from one author.
    pub author_share_cap: f64,
    /// Own groups are replayed while at most this many policy versions old.
    pub max_staleness: u64,
    /// How external groups are chosen.
    pub selection: ExternalSelection,
}

/// An external group as it arrived, judged by this node.
#[derive(Debug, Clone)]
pub struct ScoredArrival {
    /// The group.
    pub group: ExternalGroup,
    /// Whether its completions, rescored by this node (pooled with its own completions of the same
    /// question where it has them), would have a non-zero advantage.
    pub informative: bool,
}

/// Judges arrived groups by this node's own rewards (`scorer`, whose votes pool this round's own
/// completions and the arrivals): a group is informative when its completions, rescored here, are
/// not all scored alike, or, with pooled grouping, when this round's own completions of the same
/// question score differently from them (pooled, they share a baseline). The sender's claimed
/// rewards play no part.
pub fn judge_arrivals(
    arrivals: Vec<ExternalGroup>,
    fresh: &[LocalGroup],
    grouping: Grouping,
    scorer: &Scorer<'_>,
) -> anyhow::Result<Vec<ScoredArrival>> {
    let mut own: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    if grouping == Grouping::Pooled {
        for group in fresh {
            let rewards = own.entry(question_key(&group.question)).or_default();
            for c in &group.completions {
                rewards.push(scorer.own_reward(&group.question, c)?);
            }
        }
    }
    arrivals
        .into_iter()
        .map(|group| {
            let scores = group
                .completions
                .iter()
                .map(|c| Ok(scorer.verify(&group.question, &c.text)?.reward))
                .collect::<anyhow::Result<Vec<f32>>>()?;
            let informative = match own.get(&question_key(&group.question)) {
                Some(own) => !all_equal(own.iter().chain(&scores).copied()),
                None => !all_equal(scores.iter().copied()),
            };
            Ok(ScoredArrival { group, informative })
        })
        .collect()
}

/// Whether every reward is the same (a group without learning signal); true for no rewards.
pub fn all_equal(mut rewards: impl Iterator<Item = f32>) -> bool {
    match rewards.next() {
        None => true,
        Some(first) => rewards.all(|r| r == first),
    }
}

struct Arrival {
    round: u64,
    group: ExternalGroup,
}

/// Counters of what happened to external groups, since the buffer was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounters {
    /// Groups that arrived.
    pub arrived: u64,
    /// Arrivals with zero advantage under this node's rewards.
    pub uninformative: u64,
    /// Arrivals discarded for that reason (only under [`ExternalSelection::InformativeUniform`]).
    pub discarded_uninformative: u64,
    /// Groups that aged out unused.
    pub dropped_stale: u64,
    /// Groups dropped because the buffer was full.
    pub dropped_overflow: u64,
}

/// Rollouts held between rounds.
pub struct RolloutPool {
    limits: PoolLimits,
    external: VecDeque<Arrival>,
    local: VecDeque<LocalGroup>,
    counters: PoolCounters,
}

impl RolloutPool {
    /// An empty buffer.
    pub fn new(limits: PoolLimits) -> Self {
        Self {
            limits,
            external: VecDeque::new(),
            local: VecDeque::new(),
            counters: PoolCounters::default(),
        }
    }

    /// Adds groups that arrived during `round`; under the informative rule, those without signal are
    /// discarded here, so they never take a place in the buffer.
    pub fn add_external(&mut self, round: u64, arrivals: impl IntoIterator<Item = ScoredArrival>) {
        for arrival in arrivals {
            self.counters.arrived += 1;
            if !arrival.informative {
                self.counters.uninformative += 1;
                if self.limits.selection == ExternalSelection::InformativeUniform {
                    self.counters.discarded_uninformative += 1;
                    continue;
                }
            }
            self.external.push_back(Arrival {
                round,
                group: arrival.group,
            });
        }
        while self.external.len() > self.limits.capacity {
            self.external.pop_front();
            self.counters.dropped_overflow += 1;
        }
    }

    /// External groups waiting.
    pub fn external_len(&self) -> usize {
        self.external.len()
    }

    /// What happened to external groups so far.
    pub fn counters(&self) -> PoolCounters {
        self.counters
    }

    /// Groups dropped so far because they aged out or overflowed the buffer.
    pub fn dropped(&self) -> (u64, u64) {
        (self.counters.dropped_stale, self.counters.dropped_overflow)
    }

    /// Discards groups past the age bound at `round`; returns how many remain to choose from.
    pub fn expire(&mut self, round: u64) -> usize {
        let max_age = self.limits.max_age_rounds;
        let before = self.external.len();
        self.external
            .retain(|arrival| round.saturating_sub(arrival.round) <= max_age);
        self.counters.dropped_stale += (before - self.external.len()) as u64;
        self.external.len()
    }

    /// Takes up to `max` external groups for training in `round`, no author above its share, each
    /// group used once: drawn uniformly with `rng`, or freshest first, as configured. Groups past the
    /// age bound are discarded first.
    pub fn take_external(
        &mut self,
        round: u64,
        max: usize,
        rng: &mut impl Rng,
    ) -> Vec<ExternalGroup> {
        self.expire(round);
        if max == 0 {
            return Vec::new();
        }
        // Newest at the back: freshest first walks backwards; uniform walks a random permutation.
        let mut order: Vec<usize> = (0..self.external.len()).rev().collect();
        if self.limits.selection == ExternalSelection::InformativeUniform {
            order.shuffle(rng);
        }
        let per_author = ((max as f64 * self.limits.author_share_cap).ceil() as usize).max(1);
        let mut taken_by_author: BTreeMap<&str, usize> = BTreeMap::new();
        let mut chosen = Vec::new();
        for position in order {
            if chosen.len() == max {
                break;
            }
            let count = taken_by_author
                .entry(self.external[position].group.author.as_str())
                .or_default();
            if *count < per_author {
                *count += 1;
                chosen.push(position);
            }
        }
        // Taken groups leave in the order they were drawn; the rest keep their arrival order.
        let mut slots: Vec<Option<Arrival>> = self.external.drain(..).map(Some).collect();
        let taken = chosen
            .into_iter()
            .filter_map(|position| slots[position].take())
            .map(|arrival| arrival.group)
            .collect();
        self.external = slots.into_iter().flatten().collect();
        taken
    }

    /// Keeps own groups for replay in later rounds.
    pub fn keep_local(&mut self, groups: impl IntoIterator<Item = LocalGroup>) {
        self.local.extend(groups);
    }

    /// Own groups still fresh enough at `policy_version`, oldest first; older ones are discarded.
    /// They stay in the buffer until they age out.
    pub fn replayable(&mut self, policy_version: u64) -> Vec<LocalGroup> {
        let max = self.limits.max_staleness;
        self.local
            .retain(|g| policy_version.saturating_sub(g.policy.policy_version) <= max);
        self.local.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::ExternalCompletion;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use swarm_protocol::PolicyInfo;
    use swarm_tasks::{RewardConfig, TaskRefExt};

    fn group(author: &str, index: u64) -> ExternalGroup {
        ExternalGroup {
            author: author.to_owned(),
            question: swarm_tasks::family("basic_arithmetic")
                .unwrap()
                .generate(0, 1, index),
            policy: PolicyInfo {
                model_name: "tiny".into(),
                architecture_hash: [0; 32],
                tokenizer_hash: [0; 32],
                policy_version: 0,
            },
            completions: vec![ExternalCompletion {
                text: "1".into(),
                truncated: false,
            }],
        }
    }

    fn informative(author: &str, index: u64) -> ScoredArrival {
        ScoredArrival {
            group: group(author, index),
            informative: true,
        }
    }

    fn uninformative(author: &str, index: u64) -> ScoredArrival {
        ScoredArrival {
            group: group(author, index),
            informative: false,
        }
    }

    fn limits(selection: ExternalSelection) -> PoolLimits {
        PoolLimits {
            capacity: 4,
            max_age_rounds: 2,
            author_share_cap: 0.5,
            max_staleness: 1,
            selection,
        }
    }

    fn indexes(groups: &[ExternalGroup]) -> Vec<u64> {
        groups.iter().map(|g| g.question.index).collect()
    }

    #[test]
    fn freshest_first_with_the_author_cap() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut pool = RolloutPool::new(limits(ExternalSelection::Freshest));
        pool.add_external(1, [informative("a", 1), informative("a", 2)]);
        pool.add_external(2, [informative("a", 3), uninformative("b", 4)]);
        let taken = pool.take_external(2, 2, &mut rng);
        // a's newest (3) and b's (4), kept although uninformative; a's second-newest would exceed
        // a's half share.
        assert_eq!(indexes(&taken), vec![4, 3]);
        assert_eq!(pool.external_len(), 2);
        // Each group is used once; the rest are taken later.
        assert_eq!(indexes(&pool.take_external(2, 4, &mut rng)), vec![2, 1]);
        assert_eq!(pool.counters().uninformative, 1);
        assert_eq!(pool.counters().discarded_uninformative, 0);
    }

    #[test]
    fn zero_advantage_groups_are_never_taken_while_informative_ones_wait() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut pool = RolloutPool::new(PoolLimits {
            capacity: 64,
            author_share_cap: 1.0,
            ..limits(ExternalSelection::InformativeUniform)
        });
        // The uninformative groups are the freshest: freshest-first would take them.
        pool.add_external(0, (0..3).map(|i| informative("a", i)));
        pool.add_external(1, (10..20).map(|i| uninformative("b", i)));
        let taken = pool.take_external(1, 8, &mut rng);
        let mut got = indexes(&taken);
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2], "only the informative groups");
        assert_eq!(
            pool.external_len(),
            0,
            "uninformative groups never entered the buffer"
        );
        let counters = pool.counters();
        assert_eq!((counters.arrived, counters.uninformative), (13, 10));
        assert_eq!(counters.discarded_uninformative, 10);
    }

    #[test]
    fn uniform_selection_is_uniform_within_the_author_cap() {
        // Author "a" has 6 waiting groups, "b" 2; with 4 taken and a cap of half, each draw takes
        // two of a's (uniformly among six) and both of b's.
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
        let draws = 3000;
        for _ in 0..draws {
            let mut pool = RolloutPool::new(PoolLimits {
                capacity: 64,
                ..limits(ExternalSelection::InformativeUniform)
            });
            pool.add_external(0, (0..6).map(|i| informative("a", i)));
            pool.add_external(0, (6..8).map(|i| informative("b", i)));
            let taken = pool.take_external(0, 4, &mut rng);
            assert_eq!(taken.len(), 4);
            assert_eq!(taken.iter().filter(|g| g.author == "a").count(), 2, "cap");
            for index in indexes(&taken) {
                *counts.entry(index).or_default() += 1;
            }
        }
        assert_eq!(counts[&6], draws, "b's groups are always taken");
        assert_eq!(counts[&7], draws);
        // Each of a's six is taken with probability 1/3: expected 1000 of 3000, binomial sd 26.
        for index in 0..6 {
            let n = counts.get(&index).copied().unwrap_or(0);
            assert!((880..=1120).contains(&n), "group {index} taken {n} times");
        }
    }

    fn answered(author: &str, index: u64, right: &[bool]) -> ExternalGroup {
        let mut g = group(author, index);
        let answer = g.question.answer.clone();
        g.completions = right
            .iter()
            .map(|&ok| ExternalCompletion {
                text: if ok { answer.clone() } else { "no idea".into() },
                truncated: false,
            })
            .collect();
        g
    }

    #[test]
    fn arrivals_are_judged_by_the_receivers_rewards_pooled_with_its_own() {
        let rewards = RewardConfig { format_reward: 0.0 };
        let tasks = swarm_tasks::TaskCatalog::new();
        let mixed = answered("a", 1, &[true, false]);
        let all_wrong = answered("a", 2, &[false, false]);
        let all_right = answered("a", 3, &[true, true]);
        // Own completions of question 3, all wrong: pooled with them, the all-right group has signal.
        let own = LocalGroup {
            task: swarm_tasks::TaskRef::procedural(&all_right.question),
            question: all_right.question.clone(),
            policy: all_right.policy.clone(),
            sampling: swarm_protocol::SamplingParams {
                temperature: 1.0,
                top_p: 1.0,
                top_k: 0,
                max_new_tokens: 8,
            },
            completions: vec![swarm_protocol::Completion {
                text: "no idea".into(),
                token_ids: vec![1],
                logprobs: vec![-1.0],
                reward: 0.0,
                truncated: false,
            }],
        };
        let arrivals = vec![mixed, all_wrong, all_right];
        let judged = |grouping| -> Vec<bool> {
            judge_arrivals(
                arrivals.clone(),
                std::slice::from_ref(&own),
                grouping,
                &Scorer::new(&tasks, rewards, 0.0, []),
            )
            .unwrap()
            .iter()
            .map(|a| a.informative)
            .collect()
        };
        assert_eq!(judged(Grouping::Pooled), vec![true, false, true]);
        assert_eq!(judged(Grouping::PerSource), vec![true, false, false]);
    }

    #[test]
    fn old_and_overflowing_groups_are_dropped() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut pool = RolloutPool::new(limits(ExternalSelection::InformativeUniform));
        pool.add_external(1, (0..6).map(|i| informative("a", i)));
        assert_eq!(pool.external_len(), 4, "capacity");
        assert_eq!(pool.dropped(), (0, 2));
        assert!(
            pool.take_external(4, 4, &mut rng).is_empty(),
            "round 4 - 1 > 2"
        );
        assert_eq!(pool.dropped(), (4, 2));
    }
}
