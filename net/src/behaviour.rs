//! The one libp2p behaviour of a node and its construction from [`NetConfig`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::{Context, Result};
use libp2p::gossipsub::{
    self, IdentTopic, MessageAuthenticity, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode, score_parameter_decay,
};
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{StreamProtocol, autonat, connection_limits, dcutr, identify, mdns, ping, relay};
use swarm_protocol::{MessageId, topic};

use crate::config::NetConfig;

/// Gossip messages larger than this are dropped by the transport before validation sees them.
pub const MAX_TRANSMIT_BYTES: usize = 1 << 20;

/// Every protocol a node speaks. Connection limits come first so that a refused connection is
/// refused before any other behaviour allocates state for it.
#[derive(NetworkBehaviour)]
pub(crate) struct NodeBehaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kademlia: kad::Behaviour<MemoryStore>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) autonat: autonat::Behaviour,
    pub(crate) relay_client: relay::client::Behaviour,
    pub(crate) relay_server: Toggle<relay::Behaviour>,
    pub(crate) dcutr: dcutr::Behaviour,
}

/// Relay server limits. libp2p's defaults (2 minutes, 128 KiB per circuit) suit a relay that only
/// bridges until hole punching succeeds; a swarm relay also carries gossip for nodes whose hole
/// punch fails, so circuits live longer and may carry a few rounds of bundles. Circuits and
/// reservations stay bounded in number, which bounds what a relay can be made to carry.
fn relay_server_config() -> relay::Config {
    relay::Config {
        max_circuit_duration: Duration::from_secs(30 * 60),
        max_circuit_bytes: 64 << 20,
        ..relay::Config::default()
    }
}

fn autonat_config(config: &NetConfig) -> autonat::Config {
    autonat::Config {
        boot_delay: config.autonat_boot_delay,
        retry_interval: config.autonat_retry_interval,
        throttle_server_period: config.autonat_retry_interval,
        only_global_ips: config.autonat_global_only,
        ..autonat::Config::default()
    }
}

/// Kademlia protocol name private to one network, so that nodes of different networks (and of
/// the public IPFS DHT) never fill each other's routing tables.
pub(crate) fn kademlia_protocol(network_name: &str) -> Result<StreamProtocol> {
    StreamProtocol::try_from_owned(format!("/swarm/{network_name}/kad/1.0.0"))
        .with_context(|| format!("network name {network_name:?} makes an invalid protocol name"))
}

/// Score below which gossipsub ignores a peer entirely; the event loop also disconnects it.
pub(crate) const GRAYLIST_THRESHOLD: f64 = -2500.0;

fn peer_score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -500.0,
        publish_threshold: -1000.0,
        graylist_threshold: GRAYLIST_THRESHOLD,
        accept_px_threshold: 1000.0,
        opportunistic_graft_threshold: 3.5,
    }
}

/// Scoring that punishes invalid messages hard and nothing else: the invalid-message penalty grows
/// with the square of the count (-80, -320, -720, ...), so a peer that relays a bad bundle by
/// accident keeps its place, and one that sends six is graylisted. Mesh-delivery penalties stay
/// off because rollout traffic is bursty: a quiet peer is not a faulty one.
fn peer_score_params(network_name: &str) -> PeerScoreParams {
    let topic_params = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: score_parameter_decay(Duration::from_secs(600)),
        first_message_deliveries_cap: 50.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -80.0,
        invalid_message_deliveries_decay: score_parameter_decay(Duration::from_secs(3600)),
        ..TopicScoreParams::default()
    };
    let mut params = PeerScoreParams::default();
    params
        .topics
        .insert(IdentTopic::new(topic(network_name)).hash(), topic_params);
    // Many honest nodes may share one host in simulations and demos; loopback peers are never
    // counted as colocated.
    params
        .ip_colocation_factor_whitelist
        .insert(IpAddr::V4(Ipv4Addr::LOCALHOST));
    params
        .ip_colocation_factor_whitelist
        .insert(IpAddr::V6(Ipv6Addr::LOCALHOST));
    params
}

pub(crate) fn build(
    key: &Keypair,
    relay_client: relay::client::Behaviour,
    config: &NetConfig,
) -> Result<NodeBehaviour> {
    let peer_id = key.public().to_peer_id();

    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(config.max_connections.max(8) / 2)),
    );

    // Pushing listen address changes tells peers (and through the DHT, their peers) of a relayed
    // address as soon as a reservation holds, which is how nodes behind NAT find each other.
    let identify = identify::Behaviour::new(
        identify::Config::new(
            format!("/swarm/{}/1.0.0", config.network_name),
            key.public(),
        )
        .with_agent_version(config.agent_version.clone())
        .with_push_listen_addr_updates(true),
    );

    let mut kad_config = kad::Config::new(kademlia_protocol(&config.network_name)?);
    kad_config.set_periodic_bootstrap_interval(Some(Duration::from_secs(300)));
    let mut kademlia = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
    // Every node serves the DHT: swarm nodes are few and long-lived, and waiting for autonat to
    // confirm reachability would leave small networks without a routing table.
    kademlia.set_mode(Some(kad::Mode::Server));

    if !(2..=32).contains(&config.mesh_degree) {
        anyhow::bail!(
            "gossip mesh degree {} is out of range: use 2 to 32 (6 is libp2p's default)",
            config.mesh_degree
        );
    }
    let mesh_degree = config.mesh_degree;
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        // The protocol's message id, over the whole envelope: a bundle relayed along two paths is
        // one message to every node, and a corrupted copy is a different one.
        .message_id_fn(|message: &gossipsub::Message| {
            gossipsub::MessageId::new(MessageId::of_envelope(&message.data).as_bytes())
        })
        .validate_messages()
        // Anonymous messages name no source, so a peer cannot tell that a bundle it forwards came
        // from us: our own bundle comes back whenever another path to that peer was faster (a
        // relayed link, for one). That is not the peer's fault; gossipsub's default would penalise
        // it as invalid and soon graylist every peer of ours. Allowed, it is a plain duplicate.
        .allow_self_origin(true)
        .max_transmit_size(MAX_TRANSMIT_BYTES)
        .flood_publish(false)
        .mesh_n(mesh_degree)
        .mesh_n_low(mesh_degree.saturating_sub(1).max(1))
        .mesh_n_high(mesh_degree * 2)
        .mesh_outbound_min((mesh_degree / 2).clamp(1, 2))
        .heartbeat_interval(config.heartbeat)
        .build()
        .map_err(|err| anyhow::anyhow!("invalid gossipsub configuration: {err}"))?;
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)
        .map_err(|err| anyhow::anyhow!("cannot start gossipsub: {err}"))?;
    gossipsub
        .with_peer_score(
            peer_score_params(&config.network_name),
            peer_score_thresholds(),
        )
        .map_err(|err| anyhow::anyhow!("invalid peer score parameters: {err}"))?;

    let mdns = if config.local_mode {
        Some(
            mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                .context("cannot start mDNS discovery (local mode)")?,
        )
    } else {
        None
    };

    Ok(NodeBehaviour {
        limits,
        identify,
        ping: ping::Behaviour::new(ping::Config::new()),
        kademlia,
        gossipsub,
        mdns: mdns.into(),
        autonat: autonat::Behaviour::new(peer_id, autonat_config(config)),
        relay_client,
        relay_server: config
            .relay_server
            .then(|| relay::Behaviour::new(peer_id, relay_server_config()))
            .into(),
        dcutr: dcutr::Behaviour::new(peer_id),
    })
}
