//! Each decoder stage as the fused CPU kernel and as composed candle ops, forward and backward, at
//! the shapes of one training step of `configs/models/bench-25m` (8 sequences of 64 tokens, hidden
//! 512, MLP 1536, 8 query and 2 key/value heads of 64). `cargo bench -p swarm-policy`; criterion
//! writes its estimates as JSON under `target/criterion/<stage>/`. A decoding step's projection is
//! timed as well (`decode_projection`). Threads: candle's default (every
//! core) unless `RAYON_NUM_THREADS` says otherwise.

use candle_core::{Device, Result as CandleResult, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};
use swarm_policy::model::MASKED;
use swarm_policy::ops::{self, composed};

const BATCH: usize = 8;
const TOKENS: usize = 64;
const HIDDEN: usize = 512;
const INTERMEDIATE: usize = 1536;
const HEADS: usize = 8;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 64;

type Stage<'a> = &'a dyn Fn(&[Tensor]) -> anyhow::Result<Tensor>;

/// A random input that receives a gradient.
fn input(shape: &[usize]) -> Tensor {
    Var::randn(0f32, 1.0, shape, &Device::Cpu)
        .unwrap()
        .as_tensor()
        .clone()
}

/// Times the forward pass and the backward pass of `loss = sum(stage(inputs) * projection)`, which
/// gives every input made by [`input`] a gradient, for the fused and the composed version of one
/// stage.
fn compare(
    c: &mut Criterion,
    name: &str,
    tensors: &[Tensor],
    fused: Stage<'_>,
    composed: Stage<'_>,
) {
    let out_dims = fused(tensors).unwrap().dims().to_vec();
    let projection = Tensor::randn(0f32, 1.0, out_dims, &Device::Cpu).unwrap();
    let mut group = c.benchmark_group(name);
    for (version, stage) in [("fused", fused), ("composed", composed)] {
        group.bench_function(format!("{version}/forward_backward"), |b| {
            b.iter(|| {
                let loss = (stage(tensors).unwrap() * &projection)
                    .unwrap()
                    .sum_all()
                    .unwrap();
                loss.backward().unwrap()
            })
        });
    }
    group.finish();
}

fn causal_mask() -> CandleResult<Tensor> {
    let mask: Vec<f32> = (0..TOKENS * TOKENS)
        .map(|i| if i % TOKENS > i / TOKENS { MASKED } else { 0.0 })
        .collect();
    Tensor::from_vec(mask, (1, 1, TOKENS, TOKENS), &Device::Cpu)?.repeat((BATCH, 1, 1, 1))
}

fn stages(c: &mut Criterion) {
    let tokens = [BATCH, TOKENS, HIDDEN];
    let inputs = [input(&tokens), input(&[INTERMEDIATE, HIDDEN])];
    compare(c, "linear", &inputs, &|t| ops::linear(&t[0], &t[1]), &|t| {
        composed::linear(&t[0], &t[1])
    });

    let inputs = [input(&tokens), input(&[HIDDEN])];
    compare(
        c,
        "rms_norm",
        &inputs,
        &|t| ops::rms_norm(&t[0], &t[1], 1e-6),
        &|t| composed::rms_norm(&t[0], &t[1], 1e-6),
    );

    // The model's angles are constants of the positions; here they only need plausible values.
    let angles = Tensor::rand(0f32, 6.3, (BATCH, TOKENS, HEAD_DIM / 2), &Device::Cpu).unwrap();
    let inputs = [
        input(&[BATCH, TOKENS, HEADS, HEAD_DIM]),
        angles.cos().unwrap(),
        angles.sin().unwrap(),
    ];
    compare(
        c,
        "rope_into_heads",
        &inputs,
        &|t| ops::rope_into_heads(&t[0], &t[1], &t[2]),
        &|t| composed::rope_into_heads(&t[0], &t[1], &t[2]),
    );

    let kv = [BATCH, KV_HEADS, TOKENS, HEAD_DIM];
    let inputs = [
        input(&[BATCH, HEADS, TOKENS, HEAD_DIM]),
        input(&kv),
        input(&kv),
        causal_mask().unwrap(),
    ];
    let scale = 1.0 / (HEAD_DIM as f64).sqrt();
    compare(
        c,
        "attention",
        &inputs,
        &|t| ops::attention(&t[0], &t[1], &t[2], &t[3], scale),
        &|t| composed::attention(&t[0], &t[1], &t[2], &t[3], scale),
    );

    let mlp = [BATCH, TOKENS, INTERMEDIATE];
    let inputs = [input(&mlp), input(&mlp)];
    compare(c, "swiglu", &inputs, &|t| ops::swiglu(&t[0], &t[1]), &|t| {
        composed::swiglu(&t[0], &t[1])
    });
}

/// A decoding step's projection (one row per sequence) through as many distinct 512 -> 1536 weights
/// as the 25M model holds bytes (96 MB, more than a server's last-level cache holds), forward only:
/// what sampling spends most of its time on.
fn decode_projection(c: &mut Criterion) {
    let weights: Vec<Tensor> = (0..32)
        .map(|_| Tensor::randn(0f32, 1.0, (INTERMEDIATE, HIDDEN), &Device::Cpu).unwrap())
        .collect();
    let x = Tensor::randn(0f32, 1.0, (BATCH, 1, HIDDEN), &Device::Cpu).unwrap();
    let mut group = c.benchmark_group("decode_projection");
    let versions: [(&str, Stage<'_>); 2] = [
        ("fused", &|t| ops::linear(&t[0], &t[1])),
        ("composed", &|t| composed::linear(&t[0], &t[1])),
    ];
    for (version, project) in versions {
        group.bench_function(format!("{version}/forward_32_weights"), |b| {
            b.iter(|| {
                for weight in &weights {
                    project(&[x.clone(), weight.clone()]).unwrap();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stages, decode_projection);
criterion_main!(benches);
