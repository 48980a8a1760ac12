//! `swarm-node logprobs`: per-token log-probs of a completion, for parity checks against other
//! implementations.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use swarm_node::config::NodeConfig;
use swarm_policy::Policy;

use crate::args::ConfigFile;

#[derive(Debug, Args)]
pub(crate) struct LogprobsArgs {
    /// Model directory in Hugging Face layout [default: config node.model].
    #[arg(long, env = "SWARM_LOGPROBS_MODEL")]
    pub(crate) model: Option<PathBuf>,
    /// Prompt text, exactly as the model sees it.
    #[arg(long)]
    pub(crate) prompt: String,
    /// Completion text whose tokens are scored.
    #[arg(long)]
    pub(crate) completion: String,
    #[command(flatten)]
    pub(crate) common: ConfigFile,
}

pub(crate) fn run(args: &LogprobsArgs, config: &NodeConfig) -> Result<()> {
    let dir = swarm_node::builtin::resolve_model(
        args.model.as_ref().unwrap_or(&config.node.model),
        &config.node.data_dir,
    )?;
    let policy = Policy::load(&dir, &swarm_policy::default_device()?)?;
    let report = policy.token_logprobs(&args.prompt, &args.completion)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
