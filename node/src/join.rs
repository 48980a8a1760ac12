//! `swarm-node join` and `swarm-node bootstrap`: a learner on the real network, and a model-free
//! node that helps others find each other and relays gossip.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use swarm_learner::Learner;
use swarm_net::{NetConfig, NetHandle, NetStats};
use swarm_protocol::Outcome;
use swarm_tasks::TaskCatalog;
use tokio::runtime::Runtime;

use crate::config::NodeConfig;
use crate::connectivity;
use crate::gossip::{GossipEvents, GossipNetwork, task_checker};
use crate::identity::Identity;
use crate::net_config::net_config;
use crate::setup::{node_learner, node_tasks, print_round, record_round};
use crate::status::{ConnectionStatus, StatusBoard};

/// Starts the network layer under this node's identity and prints the addresses peers can dial.
fn start_network(
    net: NetConfig,
    identity: &Identity,
    board: &StatusBoard,
    runtime: &Runtime,
    tasks: Arc<TaskCatalog>,
) -> Result<(NetHandle, GossipEvents)> {
    let (handle, events) =
        runtime.block_on(swarm_net::spawn(net, identity.seed(), task_checker(tasks)))?;
    board.attach_network_metrics(handle.metrics_registry());
    for address in handle.listen_addrs() {
        println!("listening on {address}");
    }
    Ok((handle, events))
}

/// The status board's `outcome.reason` key (as `/metrics` labels it) for a network outcome.
fn outcome_key(outcome: Outcome) -> String {
    match outcome {
        Outcome::Accept => outcome.label().to_owned(),
        Outcome::Reject(_) | Outcome::Ignore(_) => {
            format!("{}.{}", outcome.kind(), outcome.label())
        }
    }
}

fn publish_net_stats(board: &StatusBoard, stats: &NetStats) {
    let connectivity = connectivity::describe(stats);
    let mut changed = false;
    board.update(|s| {
        s.peers = stats.connected_peers;
        s.bundles_published = stats.published;
        s.bundles_accepted = stats.accepted;
        s.validation = stats
            .outcomes
            .iter()
            .map(|(&outcome, &count)| (outcome_key(outcome), count))
            .collect();
        s.listen_addrs = stats.listen_addrs.iter().map(|a| a.to_string()).collect();
        s.reachability = stats.nat_status.as_str().to_owned();
        s.relay_reservations = stats.relay_reservations;
        s.hole_punches = stats.hole_punches;
        s.hole_punch_failures = stats.hole_punch_failures;
        s.connections = stats
            .connections
            .iter()
            .map(|c| ConnectionStatus {
                peer: c.peer.to_string(),
                address: c.remote_address.to_string(),
                relayed: c.relayed,
            })
            .collect();
        if connectivity != s.connectivity {
            s.connectivity.clone_from(&connectivity);
            changed = true;
        }
    });
    // Logged outside the board's lock, which the HTTP API takes for every request.
    if changed {
        tracing::info!("connectivity: {connectivity}");
    }
}

/// Runs the learner on the network until `rounds` more rounds are done (forever if `None`) or `stop`
/// is set; then checkpoints and leaves the network cleanly.
pub fn join(
    config: &NodeConfig,
    rounds: Option<u64>,
    board: &StatusBoard,
    runtime: &Runtime,
    stop: &AtomicBool,
) -> Result<Learner> {
    let identity = Identity::load_or_create(&config.node.data_dir)?;
    board.update(|s| {
        s.peer_id = identity.peer_id().to_string();
        s.public_key = identity.public_key_hex();
    });
    let tasks = node_tasks(config)?;
    let (handle, events) = start_network(
        net_config(config)?,
        &identity,
        board,
        runtime,
        Arc::clone(&tasks),
    )?;
    let mut learner = node_learner(config, tasks)?;
    let mut network = GossipNetwork::new(
        handle.clone(),
        events,
        runtime.handle().clone(),
        identity.signing_key(),
        &config.net.network,
        config.net.publish_per_minute,
    );
    let target = rounds.map(|r| learner.round() + r);
    while !stop.load(Ordering::SeqCst) && target.is_none_or(|t| learner.round() < t) {
        let metrics = learner.run_round(&mut network)?;
        let stats = handle.stats();
        print_round(&metrics, Some(stats.connected_peers));
        publish_net_stats(board, &stats);
        board.update(|s| s.bundles_paced = network.paced);
        record_round(board, &metrics)?;
    }
    learner.checkpoint()?;
    if let Err(err) = runtime.block_on(handle.shutdown()) {
        tracing::warn!(%err, "the network layer had already stopped");
    }
    Ok(learner)
}

/// Runs a model-free node that peers bootstrap from and that relays (and validates) gossip, until
/// `stop` is set.
pub fn bootstrap(
    config: &NodeConfig,
    board: &StatusBoard,
    runtime: &Runtime,
    stop: &AtomicBool,
) -> Result<()> {
    let identity = Identity::load_or_create(&config.node.data_dir)?;
    board.update(|s| {
        s.peer_id = identity.peer_id().to_string();
        s.public_key = identity.public_key_hex();
    });
    // A bootstrap node is the relay its NATed peers reserve slots on.
    let net = NetConfig {
        relay_server: true,
        ..net_config(config)?
    };
    let (handle, mut events) = start_network(net, &identity, board, runtime, node_tasks(config)?)?;
    let mut last_peers = usize::MAX;
    while !stop.load(Ordering::SeqCst) {
        // Bundles are relayed by gossipsub itself; the events only need draining.
        while events.try_recv().is_ok() {}
        let stats = handle.stats();
        if stats.connected_peers != last_peers {
            last_peers = stats.connected_peers;
            tracing::info!(
                peers = last_peers,
                accepted = stats.accepted,
                "bootstrap node"
            );
        }
        publish_net_stats(board, &stats);
        std::thread::sleep(Duration::from_millis(200));
    }
    runtime.block_on(handle.shutdown())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_outcomes_become_outcome_and_reason_labels() {
        use swarm_protocol::{IgnoreReason, RejectReason};
        assert_eq!(outcome_key(Outcome::Accept), "accept");
        assert_eq!(
            outcome_key(Outcome::Reject(RejectReason::BadSignature)),
            "reject.bad_signature"
        );
        assert_eq!(
            outcome_key(Outcome::Reject(RejectReason::PromptMismatch)),
            "reject.prompt_mismatch"
        );
        assert_eq!(
            outcome_key(Outcome::Ignore(IgnoreReason::Duplicate)),
            "ignore.duplicate"
        );
        assert_eq!(
            outcome_key(Outcome::Ignore(IgnoreReason::OverAuthorQuota)),
            "ignore.over_quota_author"
        );
        for reason in RejectReason::ALL {
            assert!(outcome_key(Outcome::Reject(reason)).starts_with("reject."));
        }
        for reason in IgnoreReason::ALL {
            assert!(outcome_key(Outcome::Ignore(reason)).starts_with("ignore."));
        }
    }
}
