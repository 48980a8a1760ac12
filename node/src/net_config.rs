//! How the node configuration's `[net]` section becomes the network layer's settings, shared by
//! `join` and `bootstrap`.

use anyhow::{Context, Result};
use swarm_net::NetConfig;

use crate::config::NodeConfig;

/// The network layer's settings from the node configuration.
pub fn net_config(config: &NodeConfig) -> Result<NetConfig> {
    let parse = |addrs: &[String]| -> Result<Vec<libp2p::Multiaddr>> {
        addrs
            .iter()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("{a:?} is not a multiaddr"))
            })
            .collect()
    };
    Ok(NetConfig {
        network_name: config.net.network.clone(),
        listen: parse(&config.net.listen)?,
        bootstrap: parse(&config.net.bootstrap)?,
        external_addresses: parse(&config.net.external_addresses)?,
        local_mode: config.net.local,
        max_connections: config.net.max_connections,
        relay_server: config.net.relay_server,
        mesh_degree: config.net.mesh_degree as usize,
        relay_reservations: config
            .net
            .relay_reservations
            .parse()
            .map_err(|err: String| anyhow::anyhow!("`net.relay_reservations`: {err}"))?,
        ..NetConfig::default()
    })
}
