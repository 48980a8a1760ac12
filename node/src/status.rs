//! The live state a node shows to its operator: written by the learner and network tasks, read by the
//! HTTP API, the dashboard and `swarm-node status`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// How many per-round records the board keeps for `/api/history` and the dashboard.
pub const HISTORY_CAPACITY: usize = 2048;

/// A point-in-time view of the node, as `/api/status` serves it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// libp2p peer id.
    pub peer_id: String,
    /// ed25519 public key (hex) that signs this node's bundles.
    pub public_key: String,
    /// Network name.
    pub network: String,
    /// `learner` or `bootstrap`.
    pub role: String,
    /// Model directory or name; empty for a bootstrap node.
    pub model: String,
    /// Optimizer steps taken by the local policy.
    pub policy_version: u64,
    /// Learner rounds completed.
    pub round: u64,
    /// Connected peers now.
    pub peers: usize,
    /// Bundles this node published.
    pub bundles_published: u64,
    /// Own groups not published because the node was at its publishing pace
    /// (`net.publish_per_minute`).
    #[serde(default)]
    pub bundles_paced: u64,
    /// External bundles accepted from the network.
    pub bundles_accepted: u64,
    /// Mean reward of the last round's own completions.
    pub last_reward: Option<f64>,
    /// Sampling throughput of the last round, tokens per second.
    pub tokens_per_second: Option<f64>,
    /// Gossip validation outcomes: `accept`, `ignore.<reason>`, `reject.<reason>`.
    pub validation: BTreeMap<String, u64>,
    /// Listen addresses, as multiaddrs (relayed ones end in `/p2p-circuit/p2p/<peer id>`).
    pub listen_addrs: Vec<String>,
    /// AutoNAT's verdict on whether peers can dial this node: `unknown`, `public` or `private`;
    /// empty when the node is not networked.
    pub reachability: String,
    /// Relay servers holding a reservation for this node.
    pub relay_reservations: usize,
    /// Relayed connections upgraded to direct ones by hole punching.
    pub hole_punches: u64,
    /// Hole punching attempts that failed (those peers stay reachable through the relay).
    #[serde(default)]
    pub hole_punch_failures: u64,
    /// How this node is connected, in words (see `swarm_node::connectivity`); empty when the node
    /// is not networked.
    #[serde(default)]
    pub connectivity: String,
    /// Open connections: the peer, its address on the connection and whether it is relayed.
    #[serde(default)]
    pub connections: Vec<ConnectionStatus>,
    /// Bytes received on libp2p connections (read from the network's metrics when served).
    pub bytes_received: u64,
    /// Bytes sent on libp2p connections (read from the network's metrics when served).
    pub bytes_sent: u64,
    /// Seconds since the node started (filled in when served).
    pub uptime_seconds: u64,
    /// Wall-clock start time, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
}

/// One open connection in [`NodeStatus::connections`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionStatus {
    /// The peer's id.
    pub peer: String,
    /// The peer's address on this connection: its own, its NAT's, or a relay circuit.
    pub address: String,
    /// Whether the connection goes through a relay.
    pub relayed: bool,
}

/// Shared, thread-safe holder of the status and the recent per-round history.
#[derive(Debug)]
pub struct StatusBoard {
    status: RwLock<NodeStatus>,
    history: Mutex<VecDeque<serde_json::Value>>,
    started: Instant,
    network_metrics: OnceLock<Arc<Registry>>,
}

impl StatusBoard {
    /// A board for a node starting now.
    pub fn new(initial: NodeStatus) -> Self {
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            status: RwLock::new(NodeStatus {
                started_at_ms,
                ..initial
            }),
            history: Mutex::new(VecDeque::new()),
            started: Instant::now(),
            network_metrics: OnceLock::new(),
        }
    }

    /// Makes the network layer's own metrics (libp2p's) part of what `/metrics` serves. The network
    /// starts after the HTTP server, hence a slot filled once instead of a constructor argument.
    pub fn attach_network_metrics(&self, registry: Arc<Registry>) {
        let _ = self.network_metrics.set(registry);
    }

    /// The network layer's metrics, once attached.
    pub fn network_metrics(&self) -> Option<&Registry> {
        self.network_metrics.get().map(|registry| registry.as_ref())
    }

    /// Applies a change to the status.
    pub fn update(&self, change: impl FnOnce(&mut NodeStatus)) {
        // A panic while holding the lock poisons it; the status is plain data, so keep serving it.
        let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
        change(&mut status);
    }

    /// The status with its uptime and, for a networked node, its traffic filled in.
    pub fn snapshot(&self) -> NodeStatus {
        let mut status = self
            .status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        status.uptime_seconds = self.started.elapsed().as_secs();
        if let Some(network) = self.network_metrics() {
            let wire = swarm_net::wire_bytes(network);
            status.bytes_received = wire.inbound;
            status.bytes_sent = wire.outbound;
        }
        status
    }

    /// Appends one per-round record, dropping the oldest past [`HISTORY_CAPACITY`].
    pub fn push_history(&self, record: serde_json::Value) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.len() == HISTORY_CAPACITY {
            history.pop_front();
        }
        history.push_back(record);
    }

    /// Forgets every record (a simulation starting its next run).
    pub fn clear_history(&self) {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The most recent `limit` records, oldest first.
    pub fn history(&self, limit: usize) -> Vec<serde_json::Value> {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let skip = history.len().saturating_sub(limit);
        history.iter().skip(skip).cloned().collect()
    }
}

/// The status as a short terminal report, as `swarm-node status` prints it.
pub fn render_text(status: &NodeStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let optional = |value: Option<f64>, digits: usize| {
        value.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
    };
    let _ = writeln!(out, "peer id         {}", status.peer_id);
    let _ = writeln!(out, "network         {} ({})", status.network, status.role);
    if !status.model.is_empty() {
        let _ = writeln!(out, "model           {}", status.model);
    }
    let _ = writeln!(out, "uptime          {} s", status.uptime_seconds);
    let _ = writeln!(
        out,
        "round           {} (policy version {})",
        status.round, status.policy_version
    );
    let _ = writeln!(out, "peers           {}", status.peers);
    if !status.reachability.is_empty() {
        let _ = writeln!(
            out,
            "reachability    {} ({} relay reservations, {} hole punches, {} failed)",
            status.reachability,
            status.relay_reservations,
            status.hole_punches,
            status.hole_punch_failures
        );
        if !status.connectivity.is_empty() {
            let _ = writeln!(out, "connectivity    {}", status.connectivity);
        }
        let _ = writeln!(
            out,
            "traffic         {} bytes in, {} bytes out",
            status.bytes_received, status.bytes_sent
        );
    }
    let _ = writeln!(
        out,
        "bundles         {} published, {} accepted",
        status.bundles_published, status.bundles_accepted
    );
    let _ = writeln!(out, "last reward     {}", optional(status.last_reward, 3));
    let _ = writeln!(
        out,
        "tokens/s        {}",
        optional(status.tokens_per_second, 1)
    );
    for addr in &status.listen_addrs {
        let _ = writeln!(out, "listening on    {addr}");
    }
    if !status.validation.is_empty() {
        let _ = writeln!(out, "gossip validation:");
        for (reason, count) in &status.validation {
            let _ = writeln!(out, "  {reason:<32} {count}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_and_keeps_the_newest() {
        let board = StatusBoard::new(NodeStatus::default());
        for round in 0..HISTORY_CAPACITY + 10 {
            board.push_history(serde_json::json!({ "round": round }));
        }
        let all = board.history(usize::MAX);
        assert_eq!(all.len(), HISTORY_CAPACITY);
        assert_eq!(all[0]["round"], 10);
        let last_two = board.history(2);
        assert_eq!(last_two[1]["round"], HISTORY_CAPACITY + 9);
    }

    #[test]
    fn updates_are_visible_in_snapshots() {
        let board = StatusBoard::new(NodeStatus::default());
        board.update(|s| {
            s.round = 3;
            *s.validation
                .entry("reject.bad_signature".into())
                .or_default() += 2;
        });
        let snapshot = board.snapshot();
        assert_eq!(snapshot.round, 3);
        assert_eq!(snapshot.validation["reject.bad_signature"], 2);
        assert!(snapshot.started_at_ms > 0);
        let text = render_text(&snapshot);
        assert!(text.contains("round           3"), "{text}");
        assert!(text.contains("reject.bad_signature"), "{text}");
        assert!(
            !text.contains("reachability"),
            "a node without networking shows no reachability: {text}"
        );

        board.update(|s| {
            s.reachability = "private".into();
            s.relay_reservations = 1;
            s.bytes_received = 2048;
        });
        let text = render_text(&board.snapshot());
        assert!(
            text.contains(
                "reachability    private (1 relay reservations, 0 hole punches, 0 failed)"
            ),
            "{text}"
        );
        assert!(text.contains("2048 bytes in"), "{text}");
    }
}
