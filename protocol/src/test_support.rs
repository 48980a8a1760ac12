//! The example bundle the tests and benchmarks of this crate and of the crates above it start from,
//! so that a change to the wire types is made in one fixture. Behind the `test-support` feature:
//! ordinary builds have no use for it.

use crate::{
    Completion, PolicyInfo, RolloutBundle, SamplingParams, SigningKey, TaskRef, network_id,
};

/// The network [`example_bundle`] belongs to.
pub const EXAMPLE_NETWORK: &str = "test-net";

/// A receiver's clock at which [`example_bundle`] is fresh: it was created one second earlier.
pub const EXAMPLE_NOW_MS: u64 = 1_700_000_000_000;

/// A small bundle authored by `key` that [`crate::validate`] accepts on [`EXAMPLE_NETWORK`] at
/// [`EXAMPLE_NOW_MS`] with the default limits (given a task check that matches): a procedural
/// question and two short completions. Callers change the fields their test is about.
pub fn example_bundle(key: &SigningKey) -> RolloutBundle {
    RolloutBundle {
        network_id: network_id(EXAMPLE_NETWORK),
        author: key.verifying_key().to_bytes(),
        sequence: 7,
        created_at_ms: EXAMPLE_NOW_MS - 1_000,
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
