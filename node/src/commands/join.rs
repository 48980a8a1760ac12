//! `swarm-node join` and `swarm-node bootstrap`: the two subcommands that run on the network, until
//! a signal stops them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;
use swarm_node::config::{FlagOverride, NodeConfig};
use swarm_node::status::StatusBoard;
use tokio::runtime::Runtime;
use toml::Value;

use super::serve::{start_http, status_board};
use crate::args::ServeArgs;

#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// Bootstrap peer multiaddr ending in /p2p/<peer id> (repeatable) [config: net.bootstrap].
    #[arg(long = "bootstrap")]
    pub(crate) bootstrap: Vec<String>,
    /// Multiaddr to listen on (repeatable) [config: net.listen].
    #[arg(long = "listen")]
    pub(crate) listen: Vec<String>,
    /// Network name [config: net.network].
    #[arg(long)]
    pub(crate) network: Option<String>,
    /// Model directory [config: node.model].
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Stop after this many rounds instead of running until interrupted.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rounds: Option<u64>,
    #[command(flatten)]
    pub(crate) common: ServeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct BootstrapArgs {
    /// Multiaddr to listen on (repeatable) [config: net.listen].
    #[arg(long = "listen")]
    pub(crate) listen: Vec<String>,
    /// Network name [config: net.network].
    #[arg(long)]
    pub(crate) network: Option<String>,
    #[command(flatten)]
    pub(crate) common: ServeArgs,
}

impl JoinArgs {
    /// Configuration keys these flags set.
    pub(crate) fn overrides(&self) -> Vec<FlagOverride> {
        network_overrides(
            &self.bootstrap,
            &self.listen,
            self.network.as_ref(),
            self.model.as_ref(),
        )
    }
}

impl BootstrapArgs {
    /// Configuration keys these flags set.
    pub(crate) fn overrides(&self) -> Vec<FlagOverride> {
        network_overrides(&[], &self.listen, self.network.as_ref(), None)
    }
}

/// The flags of `join` and `bootstrap` are configuration keys, so that a configuration file and
/// the environment can set them too.
fn network_overrides(
    bootstrap: &[String],
    listen: &[String],
    network: Option<&String>,
    model: Option<&PathBuf>,
) -> Vec<FlagOverride> {
    let strings =
        |values: &[String]| Value::Array(values.iter().map(|v| Value::String(v.clone())).collect());
    let mut flags = Vec::new();
    if !bootstrap.is_empty() {
        flags.push(FlagOverride {
            key: "net.bootstrap",
            flag: "--bootstrap",
            value: strings(bootstrap),
        });
    }
    if !listen.is_empty() {
        flags.push(FlagOverride {
            key: "net.listen",
            flag: "--listen",
            value: strings(listen),
        });
    }
    if let Some(network) = network {
        flags.push(FlagOverride {
            key: "net.network",
            flag: "--network",
            value: Value::String(network.clone()),
        });
    }
    if let Some(model) = model {
        flags.push(FlagOverride {
            key: "node.model",
            flag: "--model",
            value: Value::String(model.display().to_string()),
        });
    }
    flags
}

pub(crate) fn join(args: &JoinArgs, config: &NodeConfig) -> Result<()> {
    let learner = run_networked(config, "learner", |board, runtime, stop| {
        swarm_node::join::join(config, args.rounds, board, runtime, stop)
    })?;
    println!(
        "left the network at round {}; checkpoints and metrics.jsonl are in {}",
        learner.round(),
        config.node.data_dir.display()
    );
    Ok(())
}

pub(crate) fn bootstrap(config: &NodeConfig) -> Result<()> {
    run_networked(config, "bootstrap", |board, runtime, stop| {
        swarm_node::join::bootstrap(config, board, runtime, stop)
    })
}

/// Runs `work` with a network runtime, the HTTP API, and a stop flag that SIGINT and SIGTERM set.
fn run_networked<T>(
    config: &NodeConfig,
    role: &str,
    work: impl FnOnce(&StatusBoard, &Runtime, &AtomicBool) -> Result<T>,
) -> Result<T> {
    let board = status_board(config, role, &config.net.network);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    swarm_node::signals::stop_on_signal(&runtime, stop.clone());
    let server = start_http(config, &board, &runtime)?;
    let result = work(&board, &runtime, &stop);
    if let Some(server) = server {
        runtime.block_on(server.shutdown());
    }
    result
}
