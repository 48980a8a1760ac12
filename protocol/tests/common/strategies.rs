//! proptest strategies for bundles: arbitrary ones (any float bits, any strings) for codec properties,
//! and valid ones for properties about accepted messages.

use proptest::collection::vec;
use proptest::prelude::*;
use swarm_protocol::{
    Completion, PolicyInfo, RolloutBundle, SamplingParams, SigningKey, TaskRef, network_id,
    prompt_hash,
};

use super::{NETWORK, NOW_MS, WINDOW};

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn any_f32_bits() -> impl Strategy<Value = f32> {
    any::<u32>().prop_map(f32::from_bits)
}

fn task() -> impl Strategy<Value = TaskRef> {
    prop_oneof![
        (text(), any::<u32>(), any::<u64>(), any::<u64>()).prop_map(
            |(family, difficulty, seed, index)| {
                TaskRef::Procedural {
                    family,
                    difficulty,
                    seed,
                    index,
                }
            }
        ),
        (any::<[u8; 32]>(), any::<u64>())
            .prop_map(|(dataset_hash, row)| TaskRef::Dataset { dataset_hash, row }),
        any::<[u8; 32]>().prop_map(|prompt_hash| TaskRef::Unlabeled { prompt_hash }),
    ]
}

fn policy() -> impl Strategy<Value = PolicyInfo> {
    (text(), any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>()).prop_map(
        |(model_name, architecture_hash, tokenizer_hash, policy_version)| PolicyInfo {
            model_name,
            architecture_hash,
            tokenizer_hash,
            policy_version,
        },
    )
}

/// Any bundle the codec can carry, valid or not.
pub fn any_bundle() -> impl Strategy<Value = RolloutBundle> {
    let sampling = (any_f32_bits(), any_f32_bits(), any::<u32>(), any::<u32>()).prop_map(
        |(temperature, top_p, top_k, max_new_tokens)| SamplingParams {
            temperature,
            top_p,
            top_k,
            max_new_tokens,
        },
    );
    let completion = (
        text(),
        vec(any::<u32>(), 0..12),
        vec(any_f32_bits(), 0..12),
        any_f32_bits(),
        any::<bool>(),
    )
        .prop_map(
            |(text, token_ids, logprobs, reward, truncated)| Completion {
                text,
                token_ids,
                logprobs,
                reward,
                truncated,
            },
        );
    (
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u64>(),
        ),
        policy(),
        sampling,
        task(),
        text(),
        vec(completion, 0..5),
    )
        .prop_map(
            |(
                (network_id, author, sequence, created_at_ms),
                policy,
                sampling,
                task,
                prompt,
                completions,
            )| {
                RolloutBundle {
                    network_id,
                    author,
                    sequence,
                    created_at_ms,
                    policy,
                    sampling,
                    task,
                    prompt,
                    completions,
                }
            },
        )
}

/// A bundle every receiver with default limits accepts, authored by `key`.
pub fn valid_bundle(key: SigningKey) -> impl Strategy<Value = RolloutBundle> {
    const MAX_NEW_TOKENS: usize = 12;
    let completion = (text(), 0..=MAX_NEW_TOKENS, 0.0f32..=1.0, any::<bool>()).prop_flat_map(
        |(text, len, reward, truncated)| {
            (vec(any::<u32>(), len), vec(-30.0f32..=0.0, len)).prop_map(
                move |(token_ids, logprobs)| Completion {
                    text: text.clone(),
                    token_ids,
                    logprobs,
                    reward,
                    truncated,
                },
            )
        },
    );
    let sampling =
        (0.01f32..4.0, 0.01f32..=1.0, any::<u32>()).prop_map(|(temperature, top_p, top_k)| {
            SamplingParams {
                temperature,
                top_p,
                top_k,
                max_new_tokens: MAX_NEW_TOKENS as u32,
            }
        });
    let age = 0..=WINDOW.max_age_ms + WINDOW.max_future_skew_ms;
    (
        (any::<u64>(), age, policy(), sampling),
        task(),
        text(),
        vec(completion, 1..5),
    )
        .prop_map(
            move |((sequence, age, policy, sampling), task, prompt, completions)| {
                // Unlabeled tasks carry the hash of their prompt; the other kinds are checked by hooks.
                let task = match task {
                    TaskRef::Unlabeled { .. } => TaskRef::Unlabeled {
                        prompt_hash: prompt_hash(&prompt),
                    },
                    other => other,
                };
                RolloutBundle {
                    network_id: network_id(NETWORK),
                    author: key.verifying_key().to_bytes(),
                    sequence,
                    created_at_ms: NOW_MS + WINDOW.max_future_skew_ms - age,
                    policy,
                    sampling,
                    task,
                    prompt,
                    completions,
                }
            },
        )
}
