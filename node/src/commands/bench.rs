//! `swarm-node bench`: sampling, training and gossip throughput, and the matrix-multiply rate they
//! are read against.

use std::fmt;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use swarm_node::bench_gossip::{GossipBenchOptions, GossipBenchReport, bench_gossip};
use swarm_node::config::NodeConfig;
use swarm_policy::Policy;
use swarm_policy::bench::{BenchShape, bench_matmul, bench_sample, bench_train};

use crate::args::ConfigFile;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub(crate) what: BenchKind,
    /// Model directory [default: config node.model]; without weights it is initialised randomly,
    /// which does not change the speed.
    #[arg(long, env = "SWARM_BENCH_MODEL")]
    pub(crate) model: Option<PathBuf>,
    /// Sequences per batch.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) batch: u64,
    /// Prompt tokens per sequence.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=8192))]
    pub(crate) prompt_tokens: u64,
    /// Generated (sample) or completion (train) tokens per sequence.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=8192))]
    pub(crate) new_tokens: u64,
    /// Distinct prompts in a sampling batch, each completed by an equal group of sequences as in
    /// a learner's batch (1: one prompt for the whole batch).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) distinct_prompts: u64,
    /// Timed repetitions (gossip: bundles each node publishes).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub(crate) iterations: u64,
    /// Nodes in the swarm (gossip).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=256))]
    pub(crate) nodes: u64,
    /// Gossipsub mesh degree (gossip).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(2..=32))]
    pub(crate) mesh_degree: u64,
    /// Rows and columns of the square operands (matmul).
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=16384))]
    pub(crate) size: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) common: ConfigFile,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum BenchKind {
    /// Batched sampling with the KV cache.
    Sample,
    /// Forward, backward and optimizer step.
    Train,
    /// Delivery ratio and propagation latency of signed bundles among in-process nodes on loopback
    /// (each bundle: --batch completions of 48 tokens).
    Gossip,
    /// One float32 product of two --size x --size matrices, the way the policy multiplies: the
    /// practical GFLOP/s ceiling of this device for the sample and train figures.
    Matmul,
}

pub(crate) fn run(args: &BenchArgs, config: &NodeConfig) -> Result<()> {
    match args.what {
        BenchKind::Matmul => {
            let report = bench_matmul(
                &swarm_policy::default_device()?,
                args.size as usize,
                args.iterations as usize,
            )?;
            print_report(&report, args.json)
        }
        BenchKind::Gossip => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let report = bench_gossip(
                GossipBenchOptions {
                    nodes: args.nodes as usize,
                    messages_per_node: args.iterations as usize,
                    completions: args.batch as usize,
                    mesh_degree: args.mesh_degree as usize,
                },
                &runtime,
            )?;
            print_report(&GossipSummary(&report), args.json)
        }
        BenchKind::Sample | BenchKind::Train => {
            let dir = swarm_node::builtin::resolve_model(
                args.model.as_ref().unwrap_or(&config.node.model),
                &config.node.data_dir,
            )?;
            let policy = Policy::load_or_init(&dir, 0, &swarm_policy::default_device()?)?;
            let shape = BenchShape {
                batch: args.batch as usize,
                prompt_tokens: args.prompt_tokens as usize,
                new_tokens: args.new_tokens as usize,
                distinct_prompts: args.distinct_prompts as usize,
                iterations: args.iterations as usize,
            };
            let report = if let BenchKind::Train = args.what {
                bench_train(&policy, shape)?
            } else {
                bench_sample(&policy, shape)?
            };
            print_report(&report, args.json)
        }
    }
}

/// Prints a report as one JSON line for scripts with `--json`, else as its one-line summary.
fn print_report(report: &(impl Serialize + fmt::Display), json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// The gossip report with the one-line summary the benchmark prints (its JSON is the report's own).
#[derive(Serialize)]
#[serde(transparent)]
struct GossipSummary<'a>(&'a GossipBenchReport);

impl fmt::Display for GossipSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.0;
        write!(
            f,
            "gossip: {} nodes, {}/{} deliveries ({:.3}), latency p50 {:.1} ms, p99 {:.1} ms, \
             {} payload bytes per bundle, {:.2} bytes sent per payload byte delivered",
            report.nodes,
            report.delivered,
            report.expected,
            report.delivery_ratio,
            report.latency_ms_p50,
            report.latency_ms_p99,
            report.payload_bytes,
            report.wire_bytes_per_delivered_payload_byte
        )
    }
}
