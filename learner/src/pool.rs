//! The rollout buffer: external groups waiting to be trained on, and this node's own recent groups
//! kept for replay, each with what is needed to judge its staleness.

use std::collections::{BTreeMap, VecDeque};

use crate::rollout::{ExternalGroup, LocalGroup};

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
}

struct Arrival {
    round: u64,
    group: ExternalGroup,
}

/// Rollouts held between rounds.
pub struct RolloutPool {
    limits: PoolLimits,
    external: VecDeque<Arrival>,
    local: VecDeque<LocalGroup>,
    dropped_stale: u64,
    dropped_overflow: u64,
}

impl RolloutPool {
    /// An empty buffer.
    pub fn new(limits: PoolLimits) -> Self {
        Self {
            limits,
            external: VecDeque::new(),
            local: VecDeque::new(),
            dropped_stale: 0,
            dropped_overflow: 0,
        }
    }

    /// Adds groups that arrived during `round`.
    pub fn add_external(&mut self, round: u64, groups: impl IntoIterator<Item = ExternalGroup>) {
        for group in groups {
            self.external.push_back(Arrival { round, group });
        }
        while self.external.len() > self.limits.capacity {
            self.external.pop_front();
            self.dropped_overflow += 1;
        }
    }

    /// External groups waiting.
    pub fn external_len(&self) -> usize {
        self.external.len()
    }

    /// Groups dropped so far because they aged out or overflowed the buffer.
    pub fn dropped(&self) -> (u64, u64) {
        (self.dropped_stale, self.dropped_overflow)
    }

    /// Takes up to `max` external groups for training in `round`: freshest arrivals first, no author
    /// above its share, each group used once. Groups past the age bound are discarded.
    pub fn take_external(&mut self, round: u64, max: usize) -> Vec<ExternalGroup> {
        let max_age = self.limits.max_age_rounds;
        let before = self.external.len();
        self.external
            .retain(|arrival| round.saturating_sub(arrival.round) <= max_age);
        self.dropped_stale += (before - self.external.len()) as u64;
        if max == 0 {
            return Vec::new();
        }
        let per_author = ((max as f64 * self.limits.author_share_cap).ceil() as usize).max(1);
        let mut taken_by_author: BTreeMap<String, usize> = BTreeMap::new();
        let mut chosen = Vec::new();
        // Newest at the back: walk backwards so the freshest are taken first.
        for position in (0..self.external.len()).rev() {
            if chosen.len() == max {
                break;
            }
            let author = &self.external[position].group.author;
            let count = taken_by_author.entry(author.clone()).or_default();
            if *count < per_author {
                *count += 1;
                chosen.push(position);
            }
        }
        // Positions are descending, so removing in this order keeps the rest valid.
        chosen
            .into_iter()
            .filter_map(|position| self.external.remove(position))
            .map(|arrival| arrival.group)
            .collect()
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
    use swarm_protocol::PolicyInfo;

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

    fn limits() -> PoolLimits {
        PoolLimits {
            capacity: 4,
            max_age_rounds: 2,
            author_share_cap: 0.5,
            max_staleness: 1,
        }
    }

    #[test]
    fn freshest_first_with_the_author_cap() {
        let mut pool = RolloutPool::new(limits());
        pool.add_external(1, [group("a", 1), group("a", 2)]);
        pool.add_external(2, [group("a", 3), group("b", 4)]);
        let taken = pool.take_external(2, 2);
        let indexes: Vec<u64> = taken.iter().map(|g| g.question.index).collect();
        // a's newest (3) and b's (4); a's second-newest would exceed a's half share.
        assert_eq!(indexes, vec![4, 3]);
        assert_eq!(pool.external_len(), 2);
        // Each group is used once; the rest are taken later.
        let again: Vec<u64> = pool
            .take_external(2, 4)
            .iter()
            .map(|g| g.question.index)
            .collect();
        assert_eq!(again, vec![2, 1]);
    }

    #[test]
    fn old_and_overflowing_groups_are_dropped() {
        let mut pool = RolloutPool::new(limits());
        pool.add_external(1, (0..6).map(|i| group("a", i)));
        assert_eq!(pool.external_len(), 4, "capacity");
        assert_eq!(pool.dropped(), (0, 2));
        assert!(pool.take_external(4, 4).is_empty(), "round 4 - 1 > 2");
        assert_eq!(pool.dropped(), (4, 2));
    }
}
