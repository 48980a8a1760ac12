//! Parity with the reference implementation: logits of checkpoints built and saved by Hugging Face
//! `transformers` (see scripts/gen_policy_fixtures.py) must match ours within 1e-4.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use swarm_policy::Policy;
use swarm_policy::model::causal_mask;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The reference sequences and their logits, in file order.
fn reference(dir: &Path) -> Vec<(Vec<u32>, Vec<Vec<f32>>)> {
    let tensors =
        candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    let mut out = Vec::new();
    for i in 0.. {
        let Some(ids) = tensors.get(&format!("input_ids.{i}")) else {
            break;
        };
        let ids: Vec<u32> = ids
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|id| u32::try_from(id).unwrap())
            .collect();
        let logits: Vec<Vec<f32>> = tensors[&format!("logits.{i}")].to_vec2().unwrap();
        out.push((ids, logits));
    }
    assert!(
        out.len() >= 2,
        "fixture {} has too few sequences",
        dir.display()
    );
    out
}

/// Runs all reference sequences as one right-padded batch and compares every real position.
fn assert_parity(name: &str) {
    let dir = fixture(name);
    let policy = Policy::load(&dir, &Device::Cpu).unwrap();
    let sequences = reference(&dir);
    let longest = sequences.iter().map(|(ids, _)| ids.len()).max().unwrap();
    let batch = sequences.len();
    let mut ids = Vec::new();
    let mut valid = Vec::new();
    for (sequence, _) in &sequences {
        ids.extend(sequence.iter().copied());
        ids.extend(std::iter::repeat_n(
            policy.pad_id(),
            longest - sequence.len(),
        ));
        valid.push((0..longest).map(|j| j < sequence.len()).collect::<Vec<_>>());
    }
    let ids = Tensor::from_vec(ids, (batch, longest), &Device::Cpu).unwrap();
    let positions = Tensor::arange(0u32, longest as u32, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
        .repeat((batch, 1))
        .unwrap();
    let mask = causal_mask(&valid, longest, &Device::Cpu).unwrap();
    let logits: Vec<Vec<Vec<f32>>> = policy
        .decoder()
        .forward(&ids, &positions, &mask, None)
        .unwrap()
        .to_vec3()
        .unwrap();
    let mut worst = 0f32;
    let mut scale = 0f32;
    for ((_, expected), actual) in sequences.iter().zip(&logits) {
        for (want_row, got_row) in expected.iter().zip(actual) {
            for (want, got) in want_row.iter().zip(got_row) {
                worst = worst.max((want - got).abs());
                scale = scale.max(want.abs());
            }
        }
    }
    // Logits of this size make a 1e-4 match meaningful (not a near-uniform distribution).
    assert!(
        scale > 1.0,
        "{name}: reference logits are too small ({scale})"
    );
    assert!(
        worst < 1e-4,
        "{name}: largest logit difference {worst} (largest logit {scale})"
    );
}

#[test]
fn qwen2_gqa_bias_tied_bf16_matches_transformers() {
    assert_parity("qwen2");
}

#[test]
fn llama_untied_sharded_f16_matches_transformers() {
    assert!(
        fixture("llama")
            .join("model.safetensors.index.json")
            .exists(),
        "the llama fixture is meant to be sharded"
    );
    assert_parity("llama");
}
