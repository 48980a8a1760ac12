//! Three nodes on loopback exchange signed bundles through gossipsub.

mod common;

use common::*;
use swarm_protocol::SigningKey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_exchange_validated_bundles() {
    let network = "exchange-test";
    let mut hub = start_node(network, 1, vec![]).await;
    let hub_addr = hub.handle.listen_addrs()[0].clone();
    let mut left = start_node(network, 2, vec![hub_addr.clone()]).await;
    let mut right = start_node(network, 3, vec![hub_addr]).await;

    let (h, l, r) = (
        hub.handle.clone(),
        left.handle.clone(),
        right.handle.clone(),
    );
    wait_for_topic_peers(&h, 2).await;
    wait_for_topic_peers(&l, 1).await;
    wait_for_topic_peers(&r, 1).await;

    // Bundles are signed by each node's own author key, a different key from its libp2p identity.
    let authors: Vec<SigningKey> = (0..3)
        .map(|i| SigningKey::from_bytes(&[100 + i; 32]))
        .collect();

    let from_left = signed(network, &authors[1], 0, "left question");
    retry("publish from the left node", || {
        l.publish(from_left.clone())
    })
    .await;
    for (name, node) in [("hub", &mut hub), ("right", &mut right)] {
        let (bundle, _) = next_bundle(&mut node.events).await;
        assert_eq!(
            bundle.signer,
            authors[1].verifying_key().to_bytes(),
            "{name}"
        );
        assert_eq!(bundle.bundle.prompt, "left question", "{name}");
    }

    let from_right = signed(network, &authors[2], 0, "right question");
    retry("publish from the right node", || {
        r.publish(from_right.clone())
    })
    .await;
    for node in [&mut hub, &mut left] {
        let (bundle, _) = next_bundle(&mut node.events).await;
        assert_eq!(bundle.bundle.prompt, "right question");
    }

    let from_hub = signed(network, &authors[0], 0, "hub question");
    retry("publish from the hub", || h.publish(from_hub.clone())).await;
    for node in [&mut left, &mut right] {
        let (bundle, source) = next_bundle(&mut node.events).await;
        assert_eq!(bundle.bundle.prompt, "hub question");
        assert_ne!(
            source,
            node.handle.peer_id(),
            "a node never receives from itself"
        );
    }

    for handle in [&h, &l, &r] {
        let stats = handle.stats();
        assert_eq!(stats.published, 1);
        assert_eq!(stats.accepted, 2, "{stats:?}");
        assert_eq!(stats.outcome("accept"), 2, "{stats:?}");
        assert_eq!(
            stats.outcomes.values().sum::<u64>(),
            2,
            "nothing was rejected: {stats:?}"
        );
    }
    for handle in [h, l, r] {
        handle.shutdown().await.expect("clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_listens_at_once_and_its_wait_for_peers_times_out() {
    let node = start_node("lonely-test", 4, vec![]).await;
    assert!(
        !node.handle.listen_addrs().is_empty(),
        "spawn returns once listening"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    let err = node
        .handle
        .wait_for_topic_peers(1, deadline)
        .await
        .expect_err("nobody else is on the topic");
    let message = format!("{err:#}");
    assert!(
        message.contains("timed out waiting for 1 peers on the gossip topic (0 so far)"),
        "{message}"
    );
    node.handle.shutdown().await.expect("clean shutdown");
}
