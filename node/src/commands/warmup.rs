//! `swarm-node warmup`: build the warm start of a model and show how well it answers.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use swarm_node::config::NodeConfig;
use swarm_node::setup::{build_warm_start, warm_start_dir};
use swarm_tasks::eval::EvalOptions;

use super::eval::evaluate;
use crate::args::NodeArgs;

#[derive(Debug, Args)]
pub(crate) struct WarmupArgs {
    /// Model directory with config.json and tokenizer.json [default: config node.model].
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Where to write the warmed-up model [default: the cache under the data directory that
    /// `train` uses].
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) common: NodeArgs,
}

pub(crate) fn run(args: WarmupArgs, config: &NodeConfig) -> Result<()> {
    let model = swarm_node::builtin::resolve_model(
        args.model.as_ref().unwrap_or(&config.node.model),
        &config.node.data_dir,
    )?;
    let out = match args.out {
        Some(out) => out,
        None => warm_start_dir(
            &config.node.data_dir,
            &model,
            &config.warmup,
            config.node.seed,
        )?,
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let policy = build_warm_start(&model, &config.warmup, config.node.seed, &out)?;
    println!("warm start written to {}", out.display());
    // A quick look at what the warm start learned, on the families and difficulty it trained on.
    let options = EvalOptions {
        families: config.warmup.families.clone(),
        difficulty: config.warmup.difficulty,
        n: 100,
        ..Default::default()
    };
    print!(
        "{}",
        evaluate(
            &policy,
            &swarm_tasks::TaskCatalog::new(),
            &options,
            config.node.seed
        )?
        .to_table()
    );
    Ok(())
}
