//! NAT traversal on loopback: a node that listens nowhere (so no peer can dial it) learns that from
//! AutoNAT, reserves a slot on its bootstrap node's relay, and a third node that knows only the
//! relay's address and the hidden node's id reaches it through the circuit. Bundles then flow
//! between the two over that connection.
//!
//! The relay runs another network, so it neither subscribes to the test topic nor forwards its
//! gossip: a bundle that arrives can only have come over the hidden node's own connection.

mod common;

use common::*;
use swarm_net::{NatStatus, NetConfig};
use swarm_protocol::SigningKey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_node_is_reachable_through_a_relay() {
    let network = "relay-test";
    let relay_node = spawn_node(
        NetConfig {
            relay_server: true,
            ..NetConfig::loopback("relay-test-infrastructure")
        },
        1,
    )
    .await;
    let relay = relay_node.handle.clone();
    let relay_addr = relay.listen_addrs()[0].clone();

    let Node {
        handle: hidden,
        events: mut hidden_events,
    } = spawn_node(
        NetConfig {
            listen: vec![],
            bootstrap: vec![relay_addr],
            ..NetConfig::loopback(network)
        },
        2,
    )
    .await;
    let hidden_view = hidden.clone();
    wait_until("AutoNAT finds the hidden node unreachable", || {
        hidden_view.stats().nat_status == NatStatus::Private
    })
    .await;
    wait_until("the relay accepts a reservation", || {
        hidden_view.stats().relay_reservations == 1
    })
    .await;
    let circuit = hidden
        .listen_addrs()
        .into_iter()
        .find(|address| address.to_string().contains("/p2p-circuit/"))
        .expect("a relayed listen address");

    let mut visitor = start_node(network, 3, vec![]).await;
    retry("dial the hidden node through the relay", || {
        visitor.handle.dial(circuit.clone())
    })
    .await;
    wait_for_topic_peers(&visitor.handle, 1).await;
    wait_for_topic_peers(&hidden, 1).await;

    let hidden_author = SigningKey::from_bytes(&[102; 32]);
    let from_hidden = signed(network, &hidden_author, 0, "from behind the NAT");
    retry("publish from the hidden node", || {
        hidden.publish(from_hidden.clone())
    })
    .await;
    let (bundle, source) = next_bundle(&mut visitor.events).await;
    assert_eq!(bundle.bundle.prompt, "from behind the NAT");
    assert_eq!(source, hidden.peer_id());

    let visitor_author = SigningKey::from_bytes(&[103; 32]);
    let to_hidden = signed(network, &visitor_author, 0, "to the hidden node");
    retry("publish from the visitor", || {
        visitor.handle.publish(to_hidden.clone())
    })
    .await;
    let (bundle, source) = next_bundle(&mut hidden_events).await;
    assert_eq!(bundle.bundle.prompt, "to the hidden node");
    assert_eq!(source, visitor.handle.peer_id());

    // The transports count what crossed them; the relay carried both nodes' traffic.
    let relayed = relay.wire_bytes();
    assert!(
        relayed.inbound > 0 && relayed.outbound > 0,
        "relay traffic: {relayed:?}"
    );
    let hidden_traffic = hidden.wire_bytes();
    assert!(
        hidden_traffic.outbound >= from_hidden.to_bytes().len() as u64,
        "the hidden node sent at least its bundle: {hidden_traffic:?}"
    );
    eprintln!(
        "hidden node: {:?}; relay traffic {relayed:?}",
        hidden.stats()
    );

    for handle in [hidden, visitor.handle, relay] {
        handle.shutdown().await.expect("clean shutdown");
    }
}
