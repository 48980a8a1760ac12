//! Rollouts and where they came from, and the seam between the learner and the network.
//!
//! The round loop publishes every prompt group it sampled and takes whatever other nodes sent through
//! [`Network`]; a solo node uses [`NullNetwork`], a simulated or real node an adapter over the gossip
//! layer. Nothing a sender claims about rewards, token ids or log-probs is used for external groups:
//! the learner keeps only their text and rescores and re-tokenizes it itself.

use anyhow::Result;
use serde::Serialize;
use swarm_protocol::{Completion, PolicyInfo, SamplingParams, TaskRef};
use swarm_tasks::Question;

/// A prompt group this node sampled.
#[derive(Debug, Clone)]
pub struct LocalGroup {
    /// How other nodes find the question.
    pub task: TaskRef,
    /// The question, with its ground truth (none for an unlabeled one).
    pub question: Question,
    /// The policy that sampled it (its version is the optimizer step count at sampling time).
    pub policy: PolicyInfo,
    /// How it was sampled.
    pub sampling: SamplingParams,
    /// The completions with their token ids, behaviour log-probs and locally computed rewards.
    pub completions: Vec<Completion>,
}

/// A prompt group another node sent, as the network layer delivers it after validation.
#[derive(Debug, Clone)]
pub struct ExternalGroup {
    /// The sender's public key, hex.
    pub author: String,
    /// The question regenerated from the bundle's task reference (never the sender's word for it).
    pub question: Question,
    /// The sender's policy: model, tokenizer hash and version. Informational: the receiver
    /// re-tokenizes and recomputes everything it trains on.
    pub policy: PolicyInfo,
    /// The completions' text and whether the sender cut them at its token limit.
    pub completions: Vec<ExternalCompletion>,
}

/// One completion of an external group.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalCompletion {
    /// The completion text.
    pub text: String,
    /// The sender stopped at its length limit (no end-of-sequence token is appended).
    pub truncated: bool,
}

impl LocalGroup {
    /// Where this group's completions come from, as the learner records it.
    pub fn provenance(&self, stale: bool) -> Provenance {
        let policy_version = self.policy.policy_version;
        if stale {
            Provenance::LocalStale { policy_version }
        } else {
            Provenance::LocalFresh { policy_version }
        }
    }
}

impl ExternalGroup {
    /// Where this group's completions come from, as the learner records it.
    pub fn provenance(&self) -> Provenance {
        Provenance::External {
            author: self.author.clone(),
            model_name: self.policy.model_name.clone(),
            tokenizer_hash: hex::encode(&self.policy.tokenizer_hash[..8]),
            policy_version: self.policy.policy_version,
        }
    }
}

impl ExternalCompletion {
    /// The text and truncation flag of a received completion; the rest is the sender's claim.
    pub fn from_wire(completion: &Completion) -> Self {
        Self {
            text: completion.text.clone(),
            truncated: completion.truncated,
        }
    }
}

/// Where a trained completion came from, as recorded in metrics and the rollout log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Provenance {
    /// Sampled by this node with the current proximal policy.
    LocalFresh {
        /// Policy version that sampled it.
        policy_version: u64,
    },
    /// Sampled by this node in an earlier round, replayed.
    LocalStale {
        /// Policy version that sampled it.
        policy_version: u64,
    },
    /// Sent by another node.
    External {
        /// The sender's public key, hex.
        author: String,
        /// The sender's model name.
        model_name: String,
        /// The sender's tokenizer hash, hex.
        tokenizer_hash: String,
        /// The sender's policy version.
        policy_version: u64,
    },
}

impl Provenance {
    /// Whether this node sampled it.
    pub fn is_local(&self) -> bool {
        !matches!(self, Self::External { .. })
    }
}

/// How rollouts leave and enter a learner.
pub trait Network {
    /// Offers one freshly sampled group to the swarm. Failing to publish is not fatal to a round:
    /// the learner logs the error and goes on.
    fn publish(&mut self, group: &LocalGroup) -> Result<()>;

    /// Every external group that arrived since the last call, already validated by the network layer.
    fn take_arrivals(&mut self) -> Vec<ExternalGroup>;
}

/// The network of a node that trains alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullNetwork;

impl Network for NullNetwork {
    fn publish(&mut self, _group: &LocalGroup) -> Result<()> {
        Ok(())
    }

    fn take_arrivals(&mut self) -> Vec<ExternalGroup> {
        Vec::new()
    }
}
