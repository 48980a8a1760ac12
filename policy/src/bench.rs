//! Throughput measurements of sampling and training, and the matrix-multiply rate they are read
//! against, as `swarm-node bench sample|train|matmul` reports them.

use std::time::Instant;

use anyhow::{Result, ensure};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::{AdamW, AdamWConfig, ModelConfig, Policy, SampleOptions, TokenSequence};

/// Shapes and repetitions of a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BenchShape {
    /// Sequences per batch.
    pub batch: usize,
    /// Prompt tokens per sequence.
    pub prompt_tokens: usize,
    /// Generated (sampling) or completion (training) tokens per sequence.
    pub new_tokens: usize,
    /// Distinct prompts in a sampling batch, each completed by `batch / distinct_prompts`
    /// sequences as a learner's group is (1: every sequence completes the same prompt).
    pub distinct_prompts: usize,
    /// Timed repetitions (one untimed warm-up run precedes them).
    pub iterations: usize,
}

/// What a benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `sample` or `train`.
    pub kind: &'static str,
    /// Sequences per batch.
    pub batch: usize,
    /// Prompt tokens per sequence.
    pub prompt_tokens: usize,
    /// New tokens per sequence.
    pub new_tokens: usize,
    /// Distinct prompts in the batch (sampling).
    pub distinct_prompts: usize,
    /// Timed repetitions.
    pub iterations: usize,
    /// Threads available to tensor work.
    pub threads: usize,
    /// Model parameters.
    pub parameters: usize,
    /// Seconds per repetition (mean).
    pub seconds_per_iteration: f64,
    /// Tokens per second: generated tokens for sampling; all tokens of the batch for training.
    pub tokens_per_second: f64,
    /// Estimated useful arithmetic rate: matrix-multiply FLOPs of the work (forward only for
    /// sampling, forward plus twice that for backward in training) per second, in GFLOP/s.
    pub gflop_per_second: f64,
}

/// The one-line summary `swarm-node bench` prints without `--json`.
impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {:.1} tokens/s ({:.3} s per batch of {} x ({} + {}) tokens, {} distinct prompts, {} threads, {} parameters)",
            self.kind,
            self.tokens_per_second,
            self.seconds_per_iteration,
            self.batch,
            self.prompt_tokens,
            self.new_tokens,
            self.distinct_prompts,
            self.threads,
            self.parameters
        )
    }
}

/// Matrix-multiply FLOPs of one forward token attending to `context` earlier tokens: two per weight
/// of every projection and of the output head, plus the attention scores and the weighted sum.
pub fn forward_flops_per_token(config: &ModelConfig, context: usize) -> f64 {
    let (h, hd) = (config.hidden_size as f64, config.head_dim as f64);
    let (q, kv) = (
        config.num_attention_heads as f64 * hd,
        config.num_key_value_heads as f64 * hd,
    );
    let projections = h * q + 2.0 * h * kv + q * h + 3.0 * h * config.intermediate_size as f64;
    let attention = 2.0 * q * context as f64;
    let layers = config.num_hidden_layers as f64 * (projections + attention);
    2.0 * (layers + h * config.vocab_size as f64)
}

/// Prompt number `variant` of `tokens` tokens; different variants are different prompts.
fn prompt(policy: &Policy, tokens: usize, variant: usize) -> Result<Vec<u32>> {
    let text: String = format!("What is {}+34? ", 12 + variant)
        .chars()
        .cycle()
        .take(tokens.max(1))
        .collect();
    let mut ids = policy.encode(&text)?;
    ids.truncate(tokens.max(1));
    Ok(ids)
}

fn report(
    kind: &'static str,
    policy: &Policy,
    shape: BenchShape,
    seconds: f64,
    tokens: usize,
) -> BenchReport {
    let per_iteration = seconds / shape.iterations as f64;
    // Tokens attend on average to half the sequence.
    let context = (shape.prompt_tokens + shape.new_tokens) / 2;
    let passes = if kind == "train" { 3.0 } else { 1.0 };
    let flops =
        passes * forward_flops_per_token(policy.config(), context) * tokens as f64 / per_iteration;
    BenchReport {
        kind,
        batch: shape.batch,
        prompt_tokens: shape.prompt_tokens,
        new_tokens: shape.new_tokens,
        distinct_prompts: shape.distinct_prompts,
        iterations: shape.iterations,
        threads: candle_core::utils::get_num_threads(),
        parameters: policy.config().parameter_count(),
        seconds_per_iteration: per_iteration,
        tokens_per_second: tokens as f64 / per_iteration,
        gflop_per_second: flops / 1e9,
    }
}

/// Batched sampling: every sequence generates exactly `new_tokens` tokens (no stop tokens).
pub fn bench_sample(policy: &Policy, shape: BenchShape) -> Result<BenchReport> {
    ensure!(
        (1..=shape.batch).contains(&shape.distinct_prompts),
        "{} distinct prompts for a batch of {}: give between 1 and the batch size",
        shape.distinct_prompts,
        shape.batch
    );
    let distinct = (0..shape.distinct_prompts)
        .map(|variant| prompt(policy, shape.prompt_tokens, variant))
        .collect::<Result<Vec<_>>>()?;
    // Grouped like a learner's batch: the sequences completing one prompt are adjacent.
    let prompts: Vec<Vec<u32>> = (0..shape.batch)
        .map(|b| distinct[b * shape.distinct_prompts / shape.batch].clone())
        .collect();
    // With end-of-sequence ignored every sequence runs to the limit, so the work per run is fixed.
    let options = SampleOptions {
        max_new_tokens: shape.new_tokens,
        ignore_eos: true,
        ..SampleOptions::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let run = |rng: &mut ChaCha8Rng| -> Result<usize> {
        let samples = policy.sample(&prompts, &options, rng)?;
        Ok(samples.iter().map(|s| s.token_ids.len()).sum())
    };
    run(&mut rng)?;
    let start = Instant::now();
    let mut tokens = 0;
    for _ in 0..shape.iterations {
        tokens += run(&mut rng)?;
    }
    Ok(report(
        "sample",
        policy,
        shape,
        start.elapsed().as_secs_f64(),
        tokens / shape.iterations,
    ))
}

/// One supervised training step (forward, backward, clipping, AdamW) on a batch of fixed shape.
pub fn bench_train(policy: &Policy, shape: BenchShape) -> Result<BenchReport> {
    let prompt = prompt(policy, shape.prompt_tokens, 0)?;
    let mut completion = policy.encode(&"46".repeat(shape.new_tokens.max(1)))?;
    completion.truncate(shape.new_tokens.max(1));
    let batch = vec![TokenSequence { prompt, completion }; shape.batch];
    let mut optimizer = AdamW::new(policy.varmap(), AdamWConfig::default())?;
    let mut step = || {
        policy
            .supervised_step(&mut optimizer, &batch, 1e-5)
            .map(drop)
    };
    step()?;
    let start = Instant::now();
    for _ in 0..shape.iterations {
        step()?;
    }
    let tokens = shape.batch * (shape.prompt_tokens + shape.new_tokens);
    Ok(report(
        "train",
        policy,
        shape,
        start.elapsed().as_secs_f64(),
        tokens,
    ))
}

/// What the matrix-multiply measurement found.
#[derive(Debug, Clone, Serialize)]
pub struct MatmulReport {
    /// Always `matmul`.
    pub kind: &'static str,
    /// Rows and columns of both square float32 operands.
    pub size: usize,
    /// Timed repetitions.
    pub iterations: usize,
    /// Threads available to tensor work.
    pub threads: usize,
    /// Seconds per product (mean).
    pub seconds_per_iteration: f64,
    /// `2 size^3` FLOPs per product, per second, in GFLOP/s.
    pub gflop_per_second: f64,
}

/// The one-line summary `swarm-node bench matmul` prints without `--json`.
impl std::fmt::Display for MatmulReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "matmul: {:.1} GFLOP/s ({:.4} s per {} x {} float32 product, {} threads)",
            self.gflop_per_second, self.seconds_per_iteration, self.size, self.size, self.threads
        )
    }
}

/// The rate of one large float32 product through the same candle path the policy uses: the
/// practical ceiling for the GFLOP/s of [`bench_sample`] and [`bench_train`] on this device, which
/// a theoretical peak (cores x clock x SIMD width) would overstate.
pub fn bench_matmul(device: &Device, size: usize, iterations: usize) -> Result<MatmulReport> {
    ensure!(
        size > 0 && iterations > 0,
        "a matmul benchmark needs a positive size and iteration count, got {size} and {iterations}"
    );
    let lhs = Tensor::randn(0f32, 1.0, (size, size), device)?;
    let rhs = Tensor::randn(0f32, 1.0, (size, size), device)?;
    // The product is computed (on a GPU: queued) and dropped; the synchronisations around the timed
    // loop make it count queued work too.
    let product = || -> Result<()> {
        lhs.matmul(&rhs)?;
        Ok(())
    };
    product()?;
    device.synchronize()?;
    let start = Instant::now();
    for _ in 0..iterations {
        product()?;
    }
    device.synchronize()?;
    let per_iteration = start.elapsed().as_secs_f64() / iterations as f64;
    Ok(MatmulReport {
        kind: "matmul",
        size,
        iterations,
        threads: candle_core::utils::get_num_threads(),
        seconds_per_iteration: per_iteration,
        gflop_per_second: 2.0 * (size as f64).powi(3) / per_iteration / 1e9,
    })
}
