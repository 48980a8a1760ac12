//! The HTTP API and dashboard as the subcommands that run a node serve them.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use swarm_node::config::NodeConfig;
use swarm_node::http::HttpServer;
use swarm_node::status::{NodeStatus, StatusBoard};
use tokio::runtime::Runtime;

/// The status board of a node in `role` on `network`, which the HTTP API reads.
pub(crate) fn status_board(config: &NodeConfig, role: &str, network: &str) -> Arc<StatusBoard> {
    Arc::new(StatusBoard::new(NodeStatus {
        role: role.into(),
        network: network.into(),
        // A bootstrap node runs no model; its status says so rather than naming the default.
        model: if role == "bootstrap" {
            String::new()
        } else {
            config.node.model.display().to_string()
        },
        ..Default::default()
    }))
}

/// Starts the HTTP API and dashboard unless `http.listen` is `off`.
pub(crate) fn start_http(
    config: &NodeConfig,
    board: &Arc<StatusBoard>,
    runtime: &Runtime,
) -> Result<Option<HttpServer>> {
    if config.http.listen == "off" {
        return Ok(None);
    }
    let server = serve_http(config.http.listen.parse()?, board, runtime)?;
    eprintln!("HTTP API and dashboard on http://{}/", server.local_addr());
    Ok(Some(server))
}

/// The HTTP API, dashboard and `/metrics` for `board` on `addr`.
pub(crate) fn serve_http(
    addr: SocketAddr,
    board: &Arc<StatusBoard>,
    runtime: &Runtime,
) -> Result<HttpServer> {
    let mut registry = prometheus_client::registry::Registry::default();
    swarm_node::http::register_status_metrics(&mut registry, board.clone());
    runtime.block_on(HttpServer::start(addr, board.clone(), Arc::new(registry)))
}
