//! How the node configuration's `[net]` section becomes the network layer's settings, shared by
//! `join` and `bootstrap`.

use anyhow::{Context, Result};
use swarm_net::NetConfig;
use swarm_protocol::{Limits, StalenessWindow};

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
        autonat_global_only: config.net.autonat_global_only,
        agent_version: format!("swarm-node/{}", env!("CARGO_PKG_VERSION")),
        mesh_degree: config.net.mesh_degree as usize,
        author_quota_per_minute: config.net.author_quota_per_minute,
        peer_quota_per_minute: config.net.peer_quota_per_minute,
        dedup_capacity: config.net.dedup_capacity as usize,
        staleness: StalenessWindow {
            max_age_ms: config.net.max_age_seconds.saturating_mul(1000),
            max_future_skew_ms: config.net.max_clock_skew_seconds.saturating_mul(1000),
        },
        limits: Limits {
            max_envelope_bytes: config.net.max_envelope_bytes as usize,
            ..Limits::default()
        },
        relay_reservations: config
            .net
            .relay_reservations
            .parse()
            .map_err(|err: String| anyhow::anyhow!("`net.relay_reservations`: {err}"))?,
        ..NetConfig::default()
    })
}
