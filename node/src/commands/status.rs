//! `swarm-node status`: the status of a running node, read from its HTTP API.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use swarm_node::config::NodeConfig;

use crate::args::ConfigFile;

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The node's API address [default: config http.listen].
    #[arg(long, env = "SWARM_STATUS_API")]
    pub(crate) api: Option<SocketAddr>,
    /// Print the raw JSON document instead of a summary.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) common: ConfigFile,
}

pub(crate) fn run(args: &StatusArgs, config: &NodeConfig) -> Result<()> {
    let addr = match args.api {
        Some(addr) => addr,
        None => config.http.listen.parse().map_err(|_| {
            anyhow::anyhow!(
                "`http.listen` is `{}`; pass the node's API address with --api ADDR",
                config.http.listen
            )
        })?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(swarm_node::http::get_json(
        addr,
        "/api/status",
        Duration::from_secs(10),
    ))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!(
            "{}",
            swarm_node::status::render_text(&serde_json::from_value(status)?)
        );
    }
    Ok(())
}
