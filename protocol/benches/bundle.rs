//! What a node pays per gossiped bundle: encoding and signing it before publishing, and the full
//! model-free validation every receiver runs. The bundle is a realistic large one: 8 completions of
//! 256 tokens each. `cargo bench -p swarm-protocol`; criterion writes its estimates as JSON under
//! `target/criterion/bundle/`.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use swarm_protocol::{Completion, RolloutBundle, Validation, sign_bundle};

const COMPLETIONS: usize = 8;
const TOKENS: usize = 256;

fn large_bundle() -> RolloutBundle {
    let key = common::key(9);
    let mut bundle = common::example_bundle(&key);
    bundle.sampling.max_new_tokens = TOKENS as u32;
    bundle.completions = (0..COMPLETIONS)
        .map(|i| Completion {
            text: "12 + 34 = 46. ".repeat(TOKENS / 14 + 1)[..TOKENS].to_string(),
            token_ids: (0..TOKENS as u32)
                .map(|t| (t * 7 + i as u32) % 97)
                .collect(),
            logprobs: (0..TOKENS).map(|t| -0.01 * (t % 50) as f32).collect(),
            reward: (i % 2) as f32,
            truncated: false,
        })
        .collect();
    bundle
}

fn bundle(c: &mut Criterion) {
    let key = common::key(9);
    let bundle = large_bundle();
    let message = common::signed_bytes(&bundle, &key);
    assert!(
        matches!(common::validate_default(&message), Validation::Accept(_)),
        "the benchmarked message must be one a receiver accepts"
    );

    let mut group = c.benchmark_group("bundle");
    group.throughput(Throughput::Bytes(message.len() as u64));
    group.bench_function("encode_and_sign", |b| {
        b.iter(|| sign_bundle(black_box(&bundle), &key).unwrap().to_bytes())
    });
    group.bench_function("validate", |b| {
        b.iter(|| common::validate_default(black_box(&message)))
    });
    group.finish();
}

criterion_group!(benches, bundle);
criterion_main!(benches);
