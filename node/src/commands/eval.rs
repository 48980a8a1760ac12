//! `swarm-node eval`: pass@1 and pass@k of a model on held-out questions.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use swarm_node::config::NodeConfig;
use swarm_policy::Policy;
use swarm_tasks::eval::{EvalOptions, EvalReport};

use crate::args::ConfigFile;

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// Model directory (a checkpoint directory works too) or a built-in model's name [default:
    /// what this node trains: its newest checkpoint, else its starting model or warm start].
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Families to evaluate (repeatable) [default: all].
    #[arg(long = "family")]
    pub(crate) families: Vec<String>,
    /// Difficulty level.
    #[arg(long, default_value_t = 0)]
    pub(crate) difficulty: u32,
    /// Questions per family.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) n: u64,
    /// Completions per question.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) k: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) common: ConfigFile,
}

pub(crate) fn run(args: EvalArgs, config: &NodeConfig) -> Result<()> {
    let model = match &args.model {
        Some(model) => swarm_node::builtin::resolve_model(model, &config.node.data_dir)?,
        None => swarm_node::setup::current_model(config)?,
    };
    let policy = Policy::load(&model, &swarm_policy::default_device()?)?;
    let options = EvalOptions {
        families: args.families,
        difficulty: args.difficulty,
        n: args.n as usize,
        k: args.k as usize,
        ..Default::default()
    };
    let report = evaluate(&policy, &options, config.node.seed)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// Evaluates `policy` with a progress bar, which is cleared before the report is printed.
pub(crate) fn evaluate(policy: &Policy, options: &EvalOptions, seed: u64) -> Result<EvalReport> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("eval {bar:30} {pos}/{len} questions")
            .expect("valid template"),
    );
    let report = swarm_learner::evaluate_policy(policy, options, seed, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    Ok(report)
}
