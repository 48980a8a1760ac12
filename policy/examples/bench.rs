//! Prints sampling and training throughput of a model directory as JSON lines, without building the
//! node: `cargo run -p swarm-policy --release --example bench -- configs/models/tiny [batch]
//! [prompt_tokens] [new_tokens] [iterations] [distinct_prompts]`. `BENCH_KIND=sample` or `train` runs only one.

use std::path::PathBuf;

use anyhow::{Context, Result};
use swarm_policy::Policy;
use swarm_policy::bench::{BenchShape, bench_sample, bench_train};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "configs/models/tiny".into()));
    let mut number = |name: &str, default: usize| -> Result<usize> {
        args.next().map_or(Ok(default), |v| {
            v.parse().with_context(|| format!("{name}: {v:?}"))
        })
    };
    let shape = BenchShape {
        batch: number("batch", 8)?,
        prompt_tokens: number("prompt_tokens", 32)?,
        new_tokens: number("new_tokens", 64)?,
        iterations: number("iterations", 3)?,
        distinct_prompts: number("distinct_prompts", 1)?,
    };
    let policy = Policy::load_or_init(&dir, 0, &swarm_policy::default_device()?)?;
    let kind = std::env::var("BENCH_KIND").unwrap_or_default();
    if kind != "train" {
        println!("{}", serde_json::to_string(&bench_sample(&policy, shape)?)?);
    }
    if kind != "sample" {
        println!("{}", serde_json::to_string(&bench_train(&policy, shape)?)?);
    }
    Ok(())
}
