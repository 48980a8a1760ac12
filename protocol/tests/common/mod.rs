//! Builders shared by the integration tests.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub mod strategies;

use swarm_protocol::{
    Limits, MessageId, PublicKeyBytes, RolloutBundle, SigningKey, StalenessWindow, TaskCheck,
    TaskRef, Validation, ValidationContext, ValidationHooks, network_id, sign_bundle,
};

pub use swarm_protocol::test_support::{
    EXAMPLE_NETWORK as NETWORK, EXAMPLE_NOW_MS as NOW_MS, example_bundle,
};

pub const WINDOW: StalenessWindow = StalenessWindow {
    max_age_ms: 600_000,
    max_future_skew_ms: 30_000,
};

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
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
