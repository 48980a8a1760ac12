//! `swarm-node bench gossip`: N in-process nodes on loopback, every node publishing signed bundles of
//! realistic size, every receiver timing each arrival. Reports the delivery ratio and propagation
//! latency through the whole stack (gossipsub, noise, yamux, TCP, validation), and what the exchange
//! cost in bytes on the nodes' libp2p streams.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use swarm_net::{NetConfig, NetEvent, NetHandle};
use swarm_protocol::test_support::example_bundle;
use swarm_protocol::{
    Completion, PolicyInfo, RolloutBundle, SamplingParams, SigningKey, TaskCheck, TaskRef,
    network_id, prompt_hash, sign_bundle,
};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use crate::gossip::now_ms;

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct GossipBenchOptions {
    /// Nodes in the swarm.
    pub nodes: usize,
    /// Bundles each node publishes.
    pub messages_per_node: usize,
    /// Completions per bundle (each 48 tokens, like a group of short answers with their log-probs).
    pub completions: usize,
    /// Gossipsub mesh degree.
    pub mesh_degree: usize,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct GossipBenchReport {
    /// Nodes in the swarm.
    pub nodes: usize,
    /// Bundles published in total.
    pub published: usize,
    /// Deliveries expected: every bundle at every other node.
    pub expected: usize,
    /// Distinct deliveries observed.
    pub delivered: usize,
    /// `delivered / expected`.
    pub delivery_ratio: f64,
    /// Median publish-to-delivery latency, milliseconds.
    pub latency_ms_p50: f64,
    /// 99th percentile latency, milliseconds.
    pub latency_ms_p99: f64,
    /// Largest latency, milliseconds.
    pub latency_ms_max: f64,
    /// Size of one signed envelope's payload (the encoded bundle), bytes.
    pub payload_bytes: usize,
    /// Bytes all nodes sent on their libp2p streams from the first publish until the last
    /// delivery: bundles, gossipsub control traffic (IHAVE/IWANT, GRAFT/PRUNE), pings, identify.
    /// Noise and yamux framing and TCP/IP headers are not counted.
    pub wire_bytes_sent: u64,
    /// `wire_bytes_sent` per payload byte delivered (payload size times deliveries). 1.0 would
    /// be a perfect unicast to each receiver; gossip pays for its redundancy and signatures here.
    pub wire_bytes_per_delivered_payload_byte: f64,
    /// `wire_bytes_sent` per payload byte published (each bundle counted once).
    pub wire_bytes_per_published_payload_byte: f64,
    /// Seconds until every node saw a peer on the topic.
    pub setup_seconds: f64,
    /// Gossipsub heartbeat used, milliseconds.
    pub heartbeat_ms: u64,
    /// Gossipsub mesh degree used.
    pub mesh_degree: usize,
}

/// The protocol's example bundle grown to a realistic size: `completions` answers of 48 tokens
/// each, under an unlabeled prompt unique to `sequence`.
fn bundle(network: &str, key: &SigningKey, sequence: u64, completions: usize) -> RolloutBundle {
    let prompt = format!("bench prompt {sequence}");
    let example = example_bundle(key);
    RolloutBundle {
        network_id: network_id(network),
        sequence,
        created_at_ms: now_ms(),
        policy: PolicyInfo {
            policy_version: sequence,
            ..example.policy
        },
        sampling: SamplingParams {
            max_new_tokens: 64,
            ..example.sampling
        },
        task: TaskRef::Unlabeled {
            prompt_hash: prompt_hash(&prompt),
        },
        prompt,
        completions: (0..completions)
            .map(|i| Completion {
                text: format!("completion {i} of bundle {sequence}: 12 + 30 = 42"),
                token_ids: (0..48).collect(),
                logprobs: vec![-0.5; 48],
                reward: 0.0,
                truncated: false,
            })
            .collect(),
        ..example
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs the benchmark on `runtime`; fails if the swarm does not form within 30 s.
pub fn bench_gossip(options: GossipBenchOptions, runtime: &Runtime) -> Result<GossipBenchReport> {
    if options.nodes < 2 || options.messages_per_node == 0 || options.completions == 0 {
        bail!(
            "bench gossip needs at least 2 nodes, 1 message per node and 1 completion per bundle"
        );
    }
    let network = format!("bench-gossip-{}", std::process::id());
    let keys: Vec<SigningKey> = (0..options.nodes)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let started = Instant::now();
    let mut handles: Vec<NetHandle> = Vec::new();
    let mut receivers: Vec<mpsc::Receiver<NetEvent>> = Vec::new();
    let heartbeat;
    {
        let mut config = NetConfig::loopback(&network);
        config.author_quota_per_minute = 1_000_000;
        config.peer_quota_per_minute = 1_000_000;
        config.mesh_degree = options.mesh_degree;
        heartbeat = config.heartbeat;
        for (i, key) in keys.iter().enumerate() {
            // Node 0 is the bootstrap node every other node dials; a second link to an earlier node
            // keeps the topology from being a pure star.
            config.bootstrap = [0, i / 2]
                .into_iter()
                .filter(|&j| j < i)
                .collect::<HashSet<_>>()
                .into_iter()
                .flat_map(|j| handles[j].listen_addrs())
                .collect();
            let (handle, events) = runtime.block_on(swarm_net::spawn(
                config.clone(),
                key.to_bytes(),
                Arc::new(|_: &TaskRef, _: &str| Ok::<(), TaskCheck>(())),
            ))?;
            handles.push(handle);
            receivers.push(events);
        }
    }
    // Every node has a subscribed peer, and the bootstrap node sees all of them.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, handle) in handles.iter().enumerate() {
        let wanted = if i == 0 { options.nodes - 1 } else { 1 };
        runtime
            .block_on(handle.wait_for_topic_peers(wanted, deadline))
            .with_context(|| format!("the benchmark swarm did not form within 30 s (node {i})"))?;
    }
    let setup_seconds = started.elapsed().as_secs_f64();

    let sent_before: u64 = handles.iter().map(|h| h.wire_bytes().outbound).sum();
    let mut payload_bytes = 0;
    let mut payload_bytes_published = 0u64;
    let mut published = 0;
    for round in 0..options.messages_per_node {
        for (handle, key) in handles.iter().zip(&keys) {
            let envelope = sign_bundle(
                &bundle(&network, key, round as u64 + 1, options.completions),
                key,
            )?;
            payload_bytes = envelope.payload.len();
            payload_bytes_published += payload_bytes as u64;
            // A fresh node may not have a mesh yet; gossip then refuses the publish, so retry.
            let retry_until = Instant::now() + Duration::from_secs(10);
            loop {
                match runtime.block_on(handle.publish(envelope.clone())) {
                    Ok(_) => break,
                    Err(err) if Instant::now() > retry_until => return Err(err),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            published += 1;
        }
    }

    let expected = published * (options.nodes - 1);
    let mut seen: HashSet<(usize, [u8; 32], u64)> = HashSet::new();
    let mut latencies = Vec::with_capacity(expected);
    let drain_until = Instant::now() + Duration::from_secs(10);
    while seen.len() < expected && Instant::now() < drain_until {
        let mut idle = true;
        for (node, events) in receivers.iter_mut().enumerate() {
            while let Ok(event) = events.try_recv() {
                if let NetEvent::Bundle {
                    bundle,
                    received_at,
                    ..
                } = event
                {
                    idle = false;
                    let b = &bundle.bundle;
                    if seen.insert((node, b.author, b.sequence)) {
                        let received_ms = received_at
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs_f64() * 1000.0)
                            .unwrap_or(0.0);
                        latencies.push((received_ms - b.created_at_ms as f64).max(0.0));
                    }
                }
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let sent_after: u64 = handles.iter().map(|h| h.wire_bytes().outbound).sum();
    let wire_bytes_sent = sent_after.saturating_sub(sent_before);
    let delivered_payload_bytes = payload_bytes as u64 * seen.len() as u64;
    for handle in &handles {
        let _ = runtime.block_on(handle.shutdown());
    }
    latencies.sort_by(f64::total_cmp);
    Ok(GossipBenchReport {
        nodes: options.nodes,
        published,
        expected,
        delivered: seen.len(),
        delivery_ratio: seen.len() as f64 / expected as f64,
        latency_ms_p50: percentile(&latencies, 0.5),
        latency_ms_p99: percentile(&latencies, 0.99),
        latency_ms_max: latencies.last().copied().unwrap_or(f64::NAN),
        payload_bytes,
        wire_bytes_sent,
        wire_bytes_per_delivered_payload_byte: wire_bytes_sent as f64
            / delivered_payload_bytes.max(1) as f64,
        wire_bytes_per_published_payload_byte: wire_bytes_sent as f64
            / payload_bytes_published.max(1) as f64,
        setup_seconds,
        heartbeat_ms: heartbeat.as_millis() as u64,
        mesh_degree: options.mesh_degree,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_nodes_through_one_bootstrap_node_deliver_every_bundle_to_every_other_node() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let report = bench_gossip(
            GossipBenchOptions {
                nodes: 5,
                messages_per_node: 3,
                completions: 8,
                mesh_degree: NetConfig::default().mesh_degree,
            },
            &runtime,
        )
        .unwrap();
        assert_eq!(report.published, 15);
        assert_eq!(report.expected, 60);
        assert_eq!(report.delivered, 60, "{report:?}");
        assert!(report.latency_ms_p50 <= report.latency_ms_p99);
        assert!(report.payload_bytes > 8 * 48 * 4, "{report:?}");
        // Every delivered payload byte crossed some stream at least once: a smaller figure means
        // the transport counters miss traffic.
        assert!(
            report.wire_bytes_per_delivered_payload_byte >= 1.0,
            "{report:?}"
        );
    }
}
