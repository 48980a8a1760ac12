//! Writes a seed corpus for the fuzz targets in protocol/fuzz: valid signed envelopes for
//! `validate_envelope` and valid payloads for `validate_signed_payload`, one per task kind and size.
//!
//! Usage: `cargo run -p swarm-protocol --example fuzz_seeds -- protocol/fuzz/corpus`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use swarm_protocol::{
    Completion, PolicyInfo, RolloutBundle, SamplingParams, SigningKey, TaskRef, network_id,
    prompt_hash, sign_bundle,
};

fn bundles(key: &SigningKey) -> Vec<RolloutBundle> {
    let prompt = "Convert 255 to base 16.".to_string();
    let tasks = [
        TaskRef::Procedural {
            family: "base_conversion".into(),
            difficulty: 2,
            seed: 11,
            index: 3,
        },
        TaskRef::Dataset {
            dataset_hash: [9; 32],
            row: 17,
        },
        TaskRef::Unlabeled {
            prompt_hash: prompt_hash(&prompt),
        },
    ];
    let mut out = Vec::new();
    for (sequence, task) in tasks.into_iter().enumerate() {
        for completions in [1usize, 4] {
            out.push(RolloutBundle {
                network_id: network_id("fuzz"),
                author: key.verifying_key().to_bytes(),
                sequence: sequence as u64,
                created_at_ms: 1_700_000_000_000,
                policy: PolicyInfo {
                    model_name: "tiny".into(),
                    architecture_hash: [1; 32],
                    tokenizer_hash: [2; 32],
                    policy_version: 5,
                },
                sampling: SamplingParams {
                    temperature: 0.8,
                    top_p: 0.95,
                    top_k: 40,
                    max_new_tokens: 16,
                },
                task: task.clone(),
                prompt: prompt.clone(),
                completions: (0..completions)
                    .map(|i| Completion {
                        text: format!("<answer>ff{i}</answer>"),
                        token_ids: vec![10, 20 + i as u32, 2],
                        logprobs: vec![-0.5, -1.25, -0.0625],
                        reward: if i == 0 { 1.0 } else { 0.0 },
                        truncated: i == 3,
                    })
                    .collect(),
            });
        }
    }
    out
}

fn write(dir: &Path, name: String, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn main() -> ExitCode {
    let Some(root) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds <corpus dir>   (e.g. protocol/fuzz/corpus)");
        return ExitCode::FAILURE;
    };
    // The fuzz targets sign with this seed, so envelopes made here verify there.
    let key = SigningKey::from_bytes(&[7; 32]);
    for (i, bundle) in bundles(&key).iter().enumerate() {
        let written = bundle
            .to_bytes()
            .map_err(|err| err.to_string())
            .and_then(|payload| {
                write(
                    &root.join("validate_signed_payload"),
                    format!("seed-{i}"),
                    &payload,
                )
                .map_err(|err| err.to_string())
            })
            .and_then(|()| sign_bundle(bundle, &key).map_err(|err| err.to_string()))
            .and_then(|envelope| {
                write(
                    &root.join("validate_envelope"),
                    format!("seed-{i}"),
                    &envelope.to_bytes(),
                )
                .map_err(|err| err.to_string())
            });
        if let Err(err) = written {
            eprintln!("could not write seed {i} under {}: {err}", root.display());
            return ExitCode::FAILURE;
        }
    }
    println!("wrote seeds under {}", root.display());
    ExitCode::SUCCESS
}
