//! `swarm-node config`: inspect the configuration.

use anyhow::Result;
use clap::Subcommand;
use swarm_node::config::NodeConfig;

use crate::args::ServeArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigAction {
    /// Print the effective configuration (defaults < file < environment < flags) as TOML.
    Show {
        #[command(flatten)]
        common: ServeArgs,
    },
}

/// `config show`: the configuration every other subcommand would run with.
pub(crate) fn show(config: &NodeConfig) -> Result<()> {
    print!("{}", config.to_toml()?);
    Ok(())
}
