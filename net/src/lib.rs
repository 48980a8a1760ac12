//! The peer-to-peer layer of a swarm node: libp2p transports, discovery and gossipsub carrying
//! signed rollout bundles, with every received message validated before it is forwarded or
//! handed to the learner.
//!
//! [`spawn`] starts one event-loop task and returns a [`NetHandle`] to command it and a bounded
//! channel of [`NetEvent`]s. Each gossip message goes through [`swarm_protocol::validate`] with
//! this node's state (seen messages, staleness window, per-author and per-peer quotas, the task
//! check the caller supplies); the outcome is reported to gossipsub, which forwards only accepted
//! messages and penalises peers that send rejected ones, and counted by its stable reason name.
//! Rewards inside bundles are never trusted here: the learner rescores every completion.

mod behaviour;
mod config;
mod event_loop;
mod reachability;
mod state;
mod telemetry;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use libp2p::metrics::Registry;
use libp2p::{Multiaddr, PeerId};
use swarm_protocol::{MessageId, Outcome, SignedEnvelope, ValidatedBundle};
use tokio::sync::{mpsc, oneshot, watch};

pub use behaviour::MAX_TRANSMIT_BYTES;
pub use config::{NetConfig, RelayReservations};
pub use reachability::NatStatus;
pub use state::{RateLimiter, TaskChecker};
pub use telemetry::{WireBytes, wire_bytes};

/// What the network layer tells the learner. `T` is what the node's [`TaskChecker`] resolves a
/// task reference to.
#[derive(Clone, Debug)]
pub enum NetEvent<T = ()> {
    /// A bundle from another node passed every check.
    Bundle {
        /// The validated bundle.
        bundle: ValidatedBundle,
        /// What the task check resolved the bundle's task reference to during validation.
        resolved: T,
        /// The peer that forwarded it to us (not necessarily its author).
        source: PeerId,
        /// When this node received it.
        received_at: SystemTime,
    },
    /// A connection to a new peer was established.
    PeerConnected(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
}

/// Counters of the network layer, for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Validation outcomes of received gossip messages.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Bundles this node published.
    pub published: u64,
    /// Bundles received and accepted.
    pub accepted: u64,
    /// Times a peer was disconnected because invalid messages pushed its score below the graylist
    /// threshold.
    pub graylisted_disconnects: u64,
    /// Accepted bundles dropped because the learner's event channel was full.
    pub dropped_events: u64,
    /// Peers currently connected.
    pub connected_peers: usize,
    /// Connected peers subscribed to this network's gossip topic.
    pub topic_peers: usize,
    /// Addresses this node listens on, relayed (`.../p2p-circuit/p2p/<self>`) ones included.
    pub listen_addrs: Vec<Multiaddr>,
    /// AutoNAT's verdict on whether peers can dial this node.
    pub nat_status: NatStatus,
    /// Relay servers currently holding a reservation for this node.
    pub relay_reservations: usize,
    /// Relayed connections upgraded to direct ones by hole punching (DCUtR).
    pub hole_punches: u64,
    /// Hole punching attempts that failed (the relayed connection stays).
    pub hole_punch_failures: u64,
    /// Open connections, each with its peer and the address at the other end: a relayed one's
    /// address goes through `/p2p-circuit`, a direct one's is the peer's own (or its NAT's).
    pub connections: Vec<PeerConnection>,
}

/// One open connection, as [`NetStats::connections`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConnection {
    /// The peer at the other end.
    pub peer: PeerId,
    /// The peer's address on this connection.
    pub remote_address: Multiaddr,
    /// Whether the connection goes through a relay.
    pub relayed: bool,
}

impl NetStats {
    /// Connected peers reached over at least one direct connection.
    pub fn direct_peers(&self) -> BTreeSet<PeerId> {
        self.connections
            .iter()
            .filter(|c| !c.relayed)
            .map(|c| c.peer)
            .collect()
    }

    /// Connected peers reached only through relays.
    pub fn relayed_only_peers(&self) -> BTreeSet<PeerId> {
        let direct = self.direct_peers();
        self.connections
            .iter()
            .filter(|c| c.relayed && !direct.contains(&c.peer))
            .map(|c| c.peer)
            .collect()
    }

    /// How many received messages ended with the outcome labelled `label` (see
    /// [`Outcome::label`]); tests and logs name outcomes this way.
    pub fn outcome(&self, label: &str) -> u64 {
        self.outcomes
            .iter()
            .filter(|(outcome, _)| outcome.label() == label)
            .map(|(_, count)| count)
            .sum()
    }

    /// The outcome counts keyed by label, for reports that store plain names.
    pub fn outcomes_by_label(&self) -> BTreeMap<String, u64> {
        self.outcomes
            .iter()
            .map(|(outcome, &count)| (outcome.label().to_owned(), count))
            .collect()
    }
}

pub(crate) enum Command {
    Publish(SignedEnvelope, oneshot::Sender<Result<MessageId>>),
    Dial(Multiaddr, oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<()>),
}

/// Commands a running network layer. Cheap to clone; every clone talks to the same event loop.
#[derive(Clone)]
pub struct NetHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    stats: Arc<Mutex<NetStats>>,
    topic_peers: watch::Receiver<usize>,
    metrics: Arc<Registry>,
}

impl NetHandle {
    /// This node's libp2p peer id (derived from its ed25519 seed).
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Publishes a signed bundle on the network's topic. Fails if the event loop stopped, if the
    /// envelope is larger than the transport allows, or if no peer subscribes to the topic yet
    /// (the caller may retry or drop it; bundles are perishable).
    pub async fn publish(&self, envelope: SignedEnvelope) -> Result<MessageId> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Publish(envelope, reply)).await?;
        answer
            .await
            .context("network event loop stopped before publishing")?
    }

    /// Dials an address (for example a bootstrap peer learnt after start).
    pub async fn dial(&self, address: Multiaddr) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Dial(address, reply)).await?;
        answer
            .await
            .context("network event loop stopped before dialling")?
    }

    /// Addresses the node listens on, with `/p2p/<peer id>` appended so others can dial them.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.stats_snapshot().listen_addrs
    }

    /// Peers currently connected.
    pub fn peer_count(&self) -> usize {
        self.stats_snapshot().connected_peers
    }

    /// Waits until at least `n` connected peers subscribe to the network's gossip topic, which is
    /// when a publish can reach them, and returns how many do. Woken by the event loop on every
    /// change rather than polling. Fails at `deadline`, or if the event loop stops first, with
    /// an error that says what it was waiting for and how far it got.
    pub async fn wait_for_topic_peers(&self, n: usize, deadline: Instant) -> Result<usize> {
        let mut topic_peers = self.topic_peers.clone();
        let reached = tokio::time::timeout_at(
            tokio::time::Instant::from_std(deadline),
            topic_peers.wait_for(|&count| count >= n),
        )
        .await
        .map(|seen| seen.map(|count| *count));
        let so_far = *topic_peers.borrow();
        match reached {
            Ok(Ok(count)) => Ok(count),
            Ok(Err(_)) => Err(anyhow::anyhow!(
                "the network event loop of {} stopped while it waited for {n} peers on the gossip \
                 topic ({so_far} so far)",
                self.peer_id
            )),
            Err(_) => Err(anyhow::anyhow!(
                "{} timed out waiting for {n} peers on the gossip topic ({so_far} so far)",
                self.peer_id
            )),
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> NetStats {
        self.stats_snapshot()
    }

    /// libp2p's own metrics for this node (connections, gossipsub, identify, Kademlia, ping, relay,
    /// DCUtR, bytes by transport and direction), for a `/metrics` endpoint to export.
    pub fn metrics_registry(&self) -> Arc<Registry> {
        self.metrics.clone()
    }

    /// Bytes this node has read and written on its libp2p streams so far.
    pub fn wire_bytes(&self) -> WireBytes {
        telemetry::wire_bytes(&self.metrics)
    }

    /// Stops the event loop, closing every connection; returns once it has stopped.
    pub async fn shutdown(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Shutdown(reply)).await?;
        answer
            .await
            .context("network event loop stopped before acknowledging shutdown")
    }

    fn stats_snapshot(&self) -> NetStats {
        // A poisoned lock only means the event loop panicked mid-update; the counters are still
        // the best information there is.
        self.stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    async fn send(&self, command: Command) -> Result<()> {
        self.commands
            .send(command)
            .await
            .map_err(|_| anyhow::anyhow!("network event loop has stopped"))
    }
}

/// Starts the network layer of a node whose identity is the ed25519 `seed`, and returns its
/// handle and the channel of events for the learner once every listener knows its addresses, so
/// that [`NetHandle::listen_addrs`] can be handed to the next node straight away. `task_check`
/// regenerates the prompt of a task reference and compares it with the received one; what it
/// resolves comes with each accepted bundle.
pub async fn spawn<T: Send + 'static>(
    config: NetConfig,
    seed: [u8; 32],
    task_check: TaskChecker<T>,
) -> Result<(NetHandle, mpsc::Receiver<NetEvent<T>>)> {
    event_loop::start(config, seed, task_check).await
}
