//! `swarm-node train --solo`: train on this machine alone, serving the HTTP API meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::Args;
use swarm_node::config::NodeConfig;

use super::serve::{start_http, status_board};
use crate::args::ServeArgs;

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Train without networking (required: `join` trains with peers).
    #[arg(long, required = true)]
    pub(crate) solo: bool,
    /// Rounds to run.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rounds: u64,
    #[command(flatten)]
    pub(crate) common: ServeArgs,
}

pub(crate) fn run(args: &TrainArgs, config: &NodeConfig) -> Result<()> {
    let board = status_board(config, "learner", "solo");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let server = start_http(config, &board, &runtime)?;
    let stop = Arc::new(AtomicBool::new(false));
    swarm_node::signals::stop_on_signal(&runtime, stop.clone());
    let learner = swarm_node::solo::train_solo(config, args.rounds, &board, &stop)?;
    let stopped = if stop.load(Ordering::SeqCst) {
        " (stopped by a signal)"
    } else {
        ""
    };
    println!(
        "trained to round {}{stopped}; checkpoints and metrics.jsonl are in {}",
        learner.round(),
        config.node.data_dir.display()
    );
    if let Some(server) = server {
        runtime.block_on(server.shutdown());
    }
    Ok(())
}
