//! Node state behind the model-free checks: seen messages, per-author and per-peer rate quotas.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Instant;

use swarm_protocol::{MessageId, PublicKeyBytes, TaskCheck, TaskRef, ValidationHooks};

/// Resolves the question a task reference names and checks it against the prompt that came with it:
/// `Ok` with what it resolved, or `Err` with why not (`Err(TaskCheck::Match)` makes no sense and
/// counts as a mismatch).
///
/// Generic over what it resolves to because regenerating a question is the costly part of
/// validation and the learner needs the result to score the bundle: the resolution travels with the
/// accepted bundle in [`crate::NetEvent::Bundle`] instead of being redone. A type parameter rather
/// than an opaque `dyn Any` keeps the receiving side free of downcasts, while this crate still
/// depends on the protocol alone and never learns what a question is. Callers that need nothing
/// resolve to `()`.
pub type TaskChecker<T = ()> = Arc<dyn Fn(&TaskRef, &str) -> Result<T, TaskCheck> + Send + Sync>;

/// A set that forgets its oldest entries beyond a fixed capacity, so memory stays bounded however
/// many messages arrive.
pub(crate) struct BoundedSet<T> {
    capacity: usize,
    order: VecDeque<T>,
    members: HashSet<T>,
}

impl<T: Eq + Hash + Clone> BoundedSet<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedSet {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            members: HashSet::new(),
        }
    }

    pub(crate) fn contains(&self, item: &T) -> bool {
        self.members.contains(item)
    }

    pub(crate) fn insert(&mut self, item: T) {
        if !self.members.insert(item.clone()) {
            return;
        }
        self.order.push_back(item);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.members.remove(&oldest);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }
}

/// Token buckets keyed by author or peer: `per_minute` tokens refill over a minute, up to a burst
/// of the same size. Buckets that refilled completely are forgotten, which bounds memory by the
/// number of keys active within one minute.
pub struct RateLimiter<K> {
    per_minute: f64,
    buckets: HashMap<K, (f64, Instant)>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// Buckets of `per_minute` tokens (at least 1).
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute: f64::from(per_minute.max(1)),
            buckets: HashMap::new(),
        }
    }

    fn tokens(&self, key: &K, now: Instant) -> f64 {
        match self.buckets.get(key) {
            None => self.per_minute,
            Some((tokens, at)) => {
                let refill = now.duration_since(*at).as_secs_f64() * self.per_minute / 60.0;
                (tokens + refill).min(self.per_minute)
            }
        }
    }

    /// Whether `key` has no whole token left.
    pub(crate) fn exhausted(&self, key: &K, now: Instant) -> bool {
        self.tokens(key, now) < 1.0
    }

    /// Spends one token if one is left; returns whether it could.
    pub fn try_spend(&mut self, key: &K, now: Instant) -> bool {
        let tokens = self.tokens(key, now);
        if tokens < 1.0 {
            return false;
        }
        self.buckets.insert(key.clone(), (tokens - 1.0, now));
        if self.buckets.len() > 4096 {
            let full = self.per_minute;
            let per_minute = self.per_minute;
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * per_minute / 60.0 < full
            });
        }
        true
    }
}

/// The state [`swarm_protocol::validate`] consults through [`ValidationHooks`].
pub(crate) struct ValidationState<T> {
    pub(crate) seen_ids: BoundedSet<MessageId>,
    pub(crate) seen_sequences: BoundedSet<(PublicKeyBytes, u64)>,
    pub(crate) authors: RateLimiter<PublicKeyBytes>,
    pub(crate) task_check: TaskChecker<T>,
    /// What the task check resolved for the message being validated. The hooks only get `&self`
    /// and `validate` returns the protocol's bundle alone, so the resolution is set aside here and
    /// taken by the caller once the message is accepted.
    pub(crate) resolved: RefCell<Option<T>>,
    pub(crate) now: Instant,
}

impl<T> ValidationState<T> {
    /// Records an accepted (or locally published) message and charges its author's quota.
    pub(crate) fn record(&mut self, id: MessageId, author: PublicKeyBytes, sequence: u64) {
        self.seen_ids.insert(id);
        self.seen_sequences.insert((author, sequence));
        self.authors.try_spend(&author, self.now);
    }
}

impl<T> ValidationHooks for ValidationState<T> {
    fn is_duplicate(&self, id: &MessageId, author: &PublicKeyBytes, sequence: u64) -> bool {
        self.seen_ids.contains(id) || self.seen_sequences.contains(&(*author, sequence))
    }

    fn check_task(&self, task: &TaskRef, prompt: &str) -> TaskCheck {
        match (self.task_check)(task, prompt) {
            Ok(resolved) => {
                self.resolved.replace(Some(resolved));
                TaskCheck::Match
            }
            Err(TaskCheck::Match) => TaskCheck::Mismatch,
            Err(refused) => refused,
        }
    }

    fn author_over_quota(&self, author: &PublicKeyBytes) -> bool {
        self.authors.exhausted(author, self.now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_set_forgets_oldest() {
        let mut set = BoundedSet::new(2);
        set.insert(1);
        set.insert(2);
        set.insert(3);
        assert!(!set.contains(&1));
        assert!(set.contains(&2) && set.contains(&3));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn token_bucket_refills() {
        let mut limiter = RateLimiter::new(60);
        let start = Instant::now();
        for _ in 0..60 {
            assert!(limiter.try_spend(&"a", start));
        }
        assert!(limiter.exhausted(&"a", start));
        assert!(!limiter.try_spend(&"a", start));
        assert!(limiter.try_spend(&"a", start + Duration::from_secs(2)));
        assert!(!limiter.exhausted(&"b", start));
    }
}
