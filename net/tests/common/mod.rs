//! Helpers shared by the loopback integration tests.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use swarm_net::{NetConfig, NetEvent, NetHandle, TaskChecker, spawn};
use swarm_protocol::test_support::example_bundle;
use swarm_protocol::{
    RolloutBundle, SignedEnvelope, SigningKey, TaskCheck, TaskRef, ValidatedBundle, network_id,
    prompt_hash, sign_bundle,
};
use tokio::sync::mpsc;

/// Upper bound on any single wait in these tests; generous because the machine is shared.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn accept_all() -> TaskChecker {
    Arc::new(|_: &TaskRef, _: &str| Ok::<(), TaskCheck>(()))
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// The protocol's example bundle, fresh, on `network`, with an unlabeled `prompt` (so that a changed
/// prompt is a protocol violation even though every task check here matches).
pub fn bundle(network: &str, key: &SigningKey, sequence: u64, prompt: &str) -> RolloutBundle {
    RolloutBundle {
        network_id: network_id(network),
        sequence,
        created_at_ms: now_ms(),
        task: TaskRef::Unlabeled {
            prompt_hash: prompt_hash(prompt),
        },
        prompt: prompt.into(),
        ..example_bundle(key)
    }
}

pub fn signed(network: &str, key: &SigningKey, sequence: u64, prompt: &str) -> SignedEnvelope {
    sign_bundle(&bundle(network, key, sequence, prompt), key).expect("test bundle within limits")
}

/// Polls `condition` every 20 ms until it holds, failing the test with `what` after [`DEADLINE`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Retries an async operation until it succeeds or [`DEADLINE`] passes.
pub async fn retry<T, F: Future<Output = anyhow::Result<T>>>(
    what: &str,
    mut operation: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match operation().await {
            Ok(value) => return value,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("timed out trying to {what}: {err:#}"),
        }
    }
}

/// Waits for the next bundle on `events`, skipping peer events.
pub async fn next_bundle(
    events: &mut mpsc::Receiver<NetEvent>,
) -> (ValidatedBundle, libp2p::PeerId) {
    let (bundle, source, _) = next_bundle_received(events).await;
    (bundle, source)
}

/// [`next_bundle`], with the time the node received it.
pub async fn next_bundle_received(
    events: &mut mpsc::Receiver<NetEvent>,
) -> (ValidatedBundle, libp2p::PeerId, SystemTime) {
    let received = tokio::time::timeout(DEADLINE, async {
        loop {
            match events.recv().await {
                Some(NetEvent::Bundle {
                    bundle,
                    source,
                    received_at,
                    ..
                }) => return (bundle, source, received_at),
                Some(_) => continue,
                None => panic!("network event channel closed"),
            }
        }
    })
    .await;
    received.expect("no bundle arrived before the deadline")
}

pub struct Node {
    pub handle: NetHandle,
    pub events: mpsc::Receiver<NetEvent>,
}

/// Starts a node with identity seed `[seed; 32]` that accepts every task reference.
pub async fn spawn_node(config: NetConfig, seed: u8) -> Node {
    let (handle, events) = spawn(config, [seed; 32], accept_all())
        .await
        .expect("node starts");
    Node { handle, events }
}

/// Starts a loopback node; it listens once started.
pub async fn start_node(network: &str, seed: u8, bootstrap: Vec<libp2p::Multiaddr>) -> Node {
    let config = NetConfig {
        bootstrap,
        ..NetConfig::loopback(network)
    };
    spawn_node(config, seed).await
}

/// Waits until `handle` sees at least `n` peers on the topic, failing the test after [`DEADLINE`].
pub async fn wait_for_topic_peers(handle: &NetHandle, n: usize) {
    if let Err(err) = handle
        .wait_for_topic_peers(n, std::time::Instant::now() + DEADLINE)
        .await
    {
        panic!("{err:#}");
    }
}
