//! The learner's [`Network`] over the gossip layer: own groups leave as signed rollout bundles, and
//! validated bundles from other nodes come back as external groups whose question was regenerated
//! locally from the task reference while the bundle was validated.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use swarm_learner::{ExternalCompletion, ExternalGroup, LocalGroup, Network};
use swarm_net::{NetEvent, NetHandle, RateLimiter, TaskChecker};
use swarm_protocol::{Digest, RolloutBundle, SigningKey, TaskCheck, network_id, sign_bundle};
use swarm_tasks::{Question, TaskCatalog, TaskError};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// The gossip layer's task check: regenerate the question a reference names and compare prompts.
/// The question it resolves comes back with the accepted bundle, ground truth included, so that
/// [`GossipNetwork::take_arrivals`] scores against it without regenerating it.
/// A node without a family or dataset ignores the bundle (it cannot judge it); so does one whose
/// task plug-in failed, saying why in its log, rather than blaming the sender.
pub fn task_checker(catalog: Arc<TaskCatalog>) -> TaskChecker<Question> {
    Arc::new(move |task, prompt| {
        catalog.check(task, prompt).map_err(|err| match err {
            TaskError::UnknownFamily(_) => TaskCheck::UnknownFamily,
            TaskError::UnknownDataset(_) => TaskCheck::UnknownDataset,
            TaskError::Plugin(failure) => {
                tracing::warn!(%failure, "cannot check a received bundle's question");
                TaskCheck::UnknownFamily
            }
            _ => TaskCheck::Mismatch,
        })
    })
}

/// The events of a network layer spawned with [`task_checker`]: accepted bundles arrive with the
/// question validation resolved.
pub type GossipEvents = mpsc::Receiver<NetEvent<Question>>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A learner's network over a running gossip node. Its methods block on the runtime, so the learner
/// must run on a thread that is not a runtime worker.
pub struct GossipNetwork {
    handle: NetHandle,
    events: GossipEvents,
    runtime: Handle,
    key: SigningKey,
    network_id: Digest,
    sequence: u64,
    /// Groups not published because no peer was subscribed yet.
    pub unpublished: u64,
    /// Groups not published because this node was at its publishing pace.
    pub paced: u64,
    /// This node's own publishing rate: a minute's worth of burst, then the steady rate, so it
    /// stays inside the per-author quota receivers enforce.
    pace: Option<RateLimiter<()>>,
    /// External groups handed to the learner.
    pub received: u64,
}

impl GossipNetwork {
    /// Wraps a spawned network node; `key` must be the identity the node was spawned with, so
    /// bundle authors and transport peers agree, and its task check must be [`task_checker`]'s.
    pub fn new(
        handle: NetHandle,
        events: GossipEvents,
        runtime: Handle,
        key: SigningKey,
        network_name: &str,
        publish_per_minute: u32,
    ) -> Self {
        Self {
            handle,
            events,
            runtime,
            key,
            network_id: network_id(network_name),
            // Sequence numbers only have to grow per author; starting at the clock keeps them growing
            // across restarts without storing a counter.
            sequence: now_ms(),
            unpublished: 0,
            paced: 0,
            pace: (publish_per_minute > 0).then(|| RateLimiter::new(publish_per_minute)),
            received: 0,
        }
    }

    /// The network node's handle.
    pub fn handle(&self) -> &NetHandle {
        &self.handle
    }

    /// The bundle that carries `group`.
    pub fn bundle(&mut self, group: &LocalGroup) -> RolloutBundle {
        self.sequence += 1;
        RolloutBundle {
            network_id: self.network_id,
            author: self.key.verifying_key().to_bytes(),
            sequence: self.sequence,
            created_at_ms: now_ms(),
            policy: group.policy.clone(),
            sampling: group.sampling,
            task: group.task.clone(),
            prompt: group.question.prompt.clone(),
            completions: group.completions.clone(),
        }
    }
}

impl Network for GossipNetwork {
    fn publish(&mut self, group: &LocalGroup) -> Result<()> {
        if self.handle.stats().topic_peers == 0 {
            // Gossip refuses to publish with no subscribed peer; the group would be lost anyway.
            self.unpublished += 1;
            return Ok(());
        }
        if let Some(pace) = &mut self.pace
            && !pace.try_spend(&(), Instant::now())
        {
            // Dropped, not queued: a delayed bundle only grows staler for its receivers, and a node
            // this fast has fresher groups to publish next round.
            self.paced += 1;
            return Ok(());
        }
        let bundle = self.bundle(group);
        let envelope = sign_bundle(&bundle, &self.key).context("cannot sign a rollout bundle")?;
        self.runtime.block_on(self.handle.publish(envelope))?;
        Ok(())
    }

    fn take_arrivals(&mut self) -> Vec<ExternalGroup> {
        let mut groups = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            let NetEvent::Bundle {
                bundle,
                resolved: question,
                ..
            } = event
            else {
                continue;
            };
            let bundle = bundle.bundle;
            groups.push(ExternalGroup {
                author: hex::encode(bundle.author),
                question,
                policy: bundle.policy,
                completions: bundle
                    .completions
                    .iter()
                    .map(ExternalCompletion::from_wire)
                    .collect(),
            });
        }
        self.received += groups.len() as u64;
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_protocol::TaskRef;
    use swarm_tasks::TaskRefExt;

    #[test]
    fn the_pace_allows_a_minute_of_burst_then_the_steady_rate() {
        let start = Instant::now();
        let mut pace = RateLimiter::new(60);
        assert!((0..60).all(|_| pace.try_spend(&(), start)));
        assert!(
            !pace.try_spend(&(), start),
            "the burst is one minute's worth"
        );
        assert!(pace.try_spend(&(), start + std::time::Duration::from_secs(1)));
        assert!(!pace.try_spend(&(), start + std::time::Duration::from_secs(1)));
        let later = start + std::time::Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| pace.try_spend(&(), later)).count(), 60);
    }

    #[test]
    fn the_checker_regenerates_prompts() {
        let question = swarm_tasks::family("countdown").unwrap().generate(1, 3, 4);
        let wire = TaskRef::procedural(&question);
        let check = task_checker(Arc::new(TaskCatalog::new()));
        assert_eq!(check(&wire, &question.prompt), Ok(question.clone()));
        assert_eq!(check(&wire, "What is 1+1?"), Err(TaskCheck::Mismatch));
        let unknown = TaskRef::Procedural {
            family: "poetry".into(),
            difficulty: 0,
            seed: 0,
            index: 0,
        };
        assert_eq!(check(&unknown, "x"), Err(TaskCheck::UnknownFamily));
    }
}
