//! Builders shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod strategies;

use swarm_protocol::{
    Completion, Limits, MessageId, PolicyInfo, PublicKeyBytes, RolloutBundle, SamplingParams,
    SigningKey, StalenessWindow, TaskCheck, TaskRef, Validation, ValidationContext,
    ValidationHooks, network_id, sign_bundle,
};

pub const NETWORK: &str = "test-net";
pub const NOW_MS: u64 = 1_700_000_000_000;
pub const WINDOW: StalenessWindow = StalenessWindow {
    max_age_ms: 600_000,
    max_future_skew_ms: 30_000,
};

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A small valid bundle authored by `key`.
pub fn bundle(key: &SigningKey) -> RolloutBundle {
    RolloutBundle {
        network_id: network_id(NETWORK),
        author: key.verifying_key().to_bytes(),
        sequence: 7,
        created_at_ms: NOW_MS - 1_000,
        policy: PolicyInfo {
            model_name: "tiny-policy".into(),
            architecture_hash: [1; 32],
            tokenizer_hash: [2; 32],
            policy_version: 3,
        },
        sampling: SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 8,
        },
        task: TaskRef::Procedural {
            family: "basic_arithmetic".into(),
            difficulty: 1,
            seed: 42,
            index: 5,
        },
        prompt: "What is 2 + 3?".into(),
        completions: vec![
            Completion {
                text: "5".into(),
                token_ids: vec![20, 2],
                logprobs: vec![-0.25, -0.01],
                reward: 1.0,
                truncated: false,
            },
            Completion {
                text: "6".into(),
                token_ids: vec![21, 2],
                logprobs: vec![-1.5, 0.0],
                reward: 0.0,
                truncated: false,
            },
        ],
    }
}

/// Hooks with fixed answers, so each test chooses the node state it needs.
pub struct Hooks {
    pub duplicate: bool,
    pub over_quota: bool,
    pub task: TaskCheck,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            duplicate: false,
            over_quota: false,
            task: TaskCheck::Match,
        }
    }
}

impl ValidationHooks for Hooks {
    fn is_duplicate(&self, _id: &MessageId, _author: &PublicKeyBytes, _sequence: u64) -> bool {
        self.duplicate
    }
    fn check_task(&self, _task: &TaskRef, _prompt: &str) -> TaskCheck {
        self.task
    }
    fn author_over_quota(&self, _author: &PublicKeyBytes) -> bool {
        self.over_quota
    }
}

pub fn validate_with(bytes: &[u8], limits: &Limits, hooks: &Hooks) -> Validation {
    let ctx = ValidationContext {
        network_id: network_id(NETWORK),
        limits,
        now_ms: NOW_MS,
        staleness: WINDOW,
        hooks,
    };
    swarm_protocol::validate(bytes, &ctx)
}

pub fn validate_default(bytes: &[u8]) -> Validation {
    validate_with(bytes, &Limits::default(), &Hooks::default())
}

pub fn signed_bytes(bundle: &RolloutBundle, key: &SigningKey) -> Vec<u8> {
    sign_bundle(bundle, key)
        .expect("test bundle signs")
        .to_bytes()
}
