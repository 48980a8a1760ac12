//! Five nodes in local mode find each other by mDNS alone (no bootstrap address) and every bundle
//! each publishes reaches the four others.
//!
//! mDNS needs a multicast-capable interface that is not loopback. So that the test never sends
//! multicast onto a real LAN, it runs in a network namespace of its own (an unprivileged user and
//! network namespace from `unshare -rn`) holding one veth pair. Where the machine does not allow
//! such namespaces, the test says so and skips.

mod common;

use std::process::Command;
use std::time::SystemTime;

use common::*;
use swarm_net::NetConfig;
use swarm_protocol::SigningKey;

/// Set in the namespace; the inner test does nothing without it.
const INSIDE_NAMESPACE: &str = "SWARM_MDNS_TEST_NAMESPACE";
const VETH_ADDRESS: &str = "10.77.0.1";
const NODES: usize = 5;

#[test]
fn five_nodes_find_each_other_by_mdns() {
    let setup = format!(
        "ip link set lo up && ip link add swarm0 type veth peer name swarm1 \
         && ip addr add {VETH_ADDRESS}/24 dev swarm0 && ip link set swarm0 up && ip link set swarm1 up"
    );
    let probe = Command::new("unshare")
        .args(["-rn", "sh", "-c", &setup])
        .output();
    match probe {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            eprintln!(
                "SKIPPED: cannot create a network namespace with a veth pair for mDNS ({}); \
                 the bootstrap-node discovery test covers the rest",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return;
        }
        Err(err) => {
            eprintln!(
                "SKIPPED: `unshare` is not available ({err}); mDNS needs a private network namespace"
            );
            return;
        }
    }
    let test_binary = std::env::current_exe().expect("path of the test binary");
    let script = format!(
        "{setup} && exec \"$0\" mdns_nodes_inside_namespace --exact --ignored --nocapture --test-threads 1"
    );
    let output = Command::new("unshare")
        .args(["-rn", "sh", "-c", &script])
        .arg(&test_binary)
        .env(INSIDE_NAMESPACE, "1")
        .output()
        .expect("run the test inside the namespace");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "the mDNS test failed inside its namespace"
    );
    assert!(
        stdout.contains("1 passed"),
        "the inner test did not run: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside the network namespace that five_nodes_find_each_other_by_mdns creates"]
async fn mdns_nodes_inside_namespace() {
    assert!(
        std::env::var_os(INSIDE_NAMESPACE).is_some(),
        "run five_nodes_find_each_other_by_mdns instead: this half needs its network namespace"
    );
    let network = "mdns-test";
    let mut nodes = Vec::new();
    for seed in 0..NODES {
        let config = NetConfig {
            local_mode: true,
            listen: vec![
                format!("/ip4/{VETH_ADDRESS}/tcp/0")
                    .parse()
                    .expect("multiaddr"),
            ],
            ..NetConfig::loopback(network)
        };
        nodes.push(spawn_node(config, seed as u8 + 1).await);
    }
    let handles: Vec<_> = nodes.iter().map(|node| node.handle.clone()).collect();
    for handle in &handles {
        wait_for_topic_peers(handle, NODES - 1).await;
    }

    let mut latencies_ms = Vec::new();
    for (author_index, author) in handles.iter().enumerate() {
        let key = SigningKey::from_bytes(&[50 + author_index as u8; 32]);
        let prompt = format!("question from node {author_index}");
        let envelope = signed(network, &key, 0, &prompt);
        let sent = SystemTime::now();
        retry("publish", || author.publish(envelope.clone())).await;
        for (index, node) in nodes.iter_mut().enumerate() {
            if index == author_index {
                continue;
            }
            let (bundle, _, received_at) = next_bundle_received(&mut node.events).await;
            assert_eq!(bundle.bundle.prompt, prompt, "node {index}");
            let latency = received_at.duration_since(sent).unwrap_or_default();
            latencies_ms.push(latency.as_secs_f64() * 1e3);
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let delivered = latencies_ms.len();
    println!(
        "mDNS discovery: {delivered}/{} bundles delivered, p50 {:.1} ms, p99 {:.1} ms",
        NODES * (NODES - 1),
        latencies_ms[delivered / 2],
        latencies_ms[(delivered * 99 / 100).min(delivered - 1)]
    );
    for handle in handles {
        handle.shutdown().await.expect("clean shutdown");
    }
}
