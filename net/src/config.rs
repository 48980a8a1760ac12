//! Settings of one node's network stack.

use std::time::Duration;

use libp2p::Multiaddr;
use swarm_protocol::{Limits, StalenessWindow};

/// When a node asks relay servers among its peers to accept connections on its behalf. Parsed from
/// and shown as `when-private`, `always` and `never`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RelayReservations {
    /// Once AutoNAT concludes that peers cannot dial this node directly.
    #[default]
    WhenPrivate,
    /// On every relay server it connects to, whatever AutoNAT says (nodes known to sit behind NAT).
    Always,
    /// Never: the node is reachable only at its own addresses.
    Never,
}

impl RelayReservations {
    /// Every mode by the name configuration files use.
    pub const ALL: [(&'static str, RelayReservations); 3] = [
        ("when-private", RelayReservations::WhenPrivate),
        ("always", RelayReservations::Always),
        ("never", RelayReservations::Never),
    ];
}

impl std::str::FromStr for RelayReservations {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, mode)| *mode)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(known, _)| *known).collect();
                format!(
                    "{name:?} is not a relay reservation mode; use one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Everything the network layer needs to know before it starts. Plain data with defaults suited to
/// a public network; tests shorten the heartbeat and listen on loopback.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Name of the network; selects the gossip topic, the Kademlia protocol and the network id
    /// bundles must carry, so that different networks never mix.
    pub network_name: String,
    /// Addresses to listen on, for example `/ip4/0.0.0.0/tcp/0` and `/ip4/0.0.0.0/udp/0/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers dialled at start and re-dialled while the node has no peers. Each must end in
    /// `/p2p/<peer id>` to be added to the routing table.
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses at which peers can reach this node, when the operator knows them (a bootstrap
    /// node's public address or DNS name, a port forwarded through NAT). Announced to peers and
    /// handed to nodes that reserve a relay slot here.
    pub external_addresses: Vec<Multiaddr>,
    /// Local mode: mDNS discovery on the LAN.
    pub local_mode: bool,
    /// Serve as a circuit relay (v2) for nodes that cannot be dialled directly. Bootstrap nodes do.
    pub relay_server: bool,
    /// When to reserve a slot on relay servers, so that nodes behind NAT stay reachable through
    /// them (and DCUtR can then upgrade the relayed connection to a direct one).
    pub relay_reservations: RelayReservations,
    /// Most relay servers to hold a reservation on at once.
    pub max_relay_reservations: usize,
    /// AutoNAT: only ask peers at global IP addresses to dial back, and only dial back clients at
    /// global addresses. Off in loopback tests, where every address is private.
    pub autonat_global_only: bool,
    /// What identify tells peers this software is (`name/version`).
    pub agent_version: String,
    /// AutoNAT: delay before the first reachability probe, and between probes until it is sure.
    pub autonat_boot_delay: Duration,
    /// AutoNAT: interval between probes while the status is uncertain.
    pub autonat_retry_interval: Duration,
    /// Most established connections in total.
    pub max_connections: u32,
    /// Most established connections to one peer.
    pub max_connections_per_peer: u32,
    /// Bundles one author may have accepted per minute (token bucket, burst of the same size).
    pub author_quota_per_minute: u32,
    /// Messages one forwarding peer may send us per minute before the rest are ignored.
    pub peer_quota_per_minute: u32,
    /// Message ids, and separately (author, sequence) pairs, of accepted bundles remembered for
    /// duplicate detection; the oldest recorded are forgotten first.
    pub dedup_capacity: usize,
    /// How old (or how far ahead) a bundle may be.
    pub staleness: StalenessWindow,
    /// Size and structure limits of accepted bundles.
    pub limits: Limits,
    /// Gossipsub mesh degree D: peers each node forwards full bundles to. Larger meshes survive
    /// more lost peers and cost more bytes per delivered bundle (each receiver forwards to D - 1).
    pub mesh_degree: usize,
    /// Gossipsub heartbeat; one second on real networks, shorter in tests.
    pub heartbeat: Duration,
    /// How long an idle connection stays open.
    pub idle_timeout: Duration,
    /// How often the node re-dials bootstrap peers while it has none.
    pub redial_interval: Duration,
    /// Capacity of the channel of events to the learner; when it is full, bundles are dropped
    /// (and counted) rather than stalling the network loop.
    pub event_capacity: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            network_name: "swarm-demo".into(),
            listen: vec![
                "/ip4/0.0.0.0/tcp/0"
                    .parse()
                    .expect("valid literal multiaddr"),
                "/ip4/0.0.0.0/udp/0/quic-v1"
                    .parse()
                    .expect("valid literal multiaddr"),
            ],
            bootstrap: Vec::new(),
            external_addresses: Vec::new(),
            local_mode: false,
            relay_server: false,
            relay_reservations: RelayReservations::WhenPrivate,
            max_relay_reservations: 2,
            autonat_global_only: true,
            agent_version: format!("swarm-net/{}", env!("CARGO_PKG_VERSION")),
            autonat_boot_delay: Duration::from_secs(15),
            autonat_retry_interval: Duration::from_secs(90),
            max_connections: 128,
            // One carries gossip; a relay reservation, a hole punch and an AutoNAT dial-back may
            // each need another for a while.
            max_connections_per_peer: 4,
            // A fast node publishes one bundle per prompt per round: 8 prompts in half a second is
            // about 1,000 a minute. The quotas stop floods, not fast honest nodes, and a bootstrap
            // node forwards every author's bundles, hence the larger per-peer figure.
            author_quota_per_minute: 1_200,
            peer_quota_per_minute: 60_000,
            dedup_capacity: 65_536,
            staleness: StalenessWindow {
                max_age_ms: 10 * 60_000,
                max_future_skew_ms: 30_000,
            },
            limits: Limits::default(),
            mesh_degree: 6,
            heartbeat: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(120),
            redial_interval: Duration::from_secs(10),
            event_capacity: 1024,
        }
    }
}

impl NetConfig {
    /// A configuration for tests and single-machine demos: loopback TCP on an ephemeral port, a
    /// fast heartbeat, no mDNS, AutoNAT probing loopback peers quickly.
    pub fn loopback(network_name: &str) -> Self {
        NetConfig {
            network_name: network_name.into(),
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .expect("valid literal multiaddr"),
            ],
            heartbeat: Duration::from_millis(100),
            redial_interval: Duration::from_millis(500),
            autonat_global_only: false,
            autonat_boot_delay: Duration::from_millis(500),
            autonat_retry_interval: Duration::from_secs(2),
            ..NetConfig::default()
        }
    }
}
