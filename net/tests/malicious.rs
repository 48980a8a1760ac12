//! A malicious peer sends every kind of bad message to an honest node; each is counted under the
//! right reason, the attacker ends up disconnected, and honest nodes keep exchanging bundles.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use libp2p::Multiaddr;
use swarm_net::{NetConfig, spawn};
use swarm_protocol::{SigningKey, sign_bundle, topic};
use swarm_tests::{GossipPeer, gossip_peer};

/// A bare gossipsub peer that publishes whatever bytes it is given, with no validation at all.
fn attacker(network: &str, target: Multiaddr) -> GossipPeer {
    gossip_peer(&tokio::runtime::Handle::current(), &topic(network), target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_counted_and_the_attacker_disconnected() {
    let network = "malicious-test";
    let config = NetConfig {
        author_quota_per_minute: 5,
        ..NetConfig::loopback(network)
    };
    let (victim, mut victim_events) = spawn(config, [7; 32], accept_all())
        .await
        .expect("honest node starts");
    let v = victim.clone();
    let victim_addr = victim.listen_addrs()[0].clone();
    let friend = start_node(network, 8, vec![victim_addr.clone()]).await;

    let evil = attacker(network, victim_addr);
    let send = |bytes: Vec<u8>| {
        let messages = evil.messages.clone();
        async move { messages.send(bytes).await.expect("attacker task alive") }
    };
    let evil_key = SigningKey::from_bytes(&[66; 32]);
    let honest_key = SigningKey::from_bytes(&[67; 32]);

    // A flood from one author: five fit the quota, the rest are ignored.
    for sequence in 0..8 {
        send(signed(network, &evil_key, sequence, &format!("flood {sequence}")).to_bytes()).await;
    }
    wait_until("the flood is validated", || {
        v.stats().outcomes.values().sum::<u64>() == 8
    })
    .await;
    let stats = victim.stats();
    assert_eq!(stats.outcome("accept"), 5, "{stats:?}");
    assert_eq!(stats.outcome("over_quota_author"), 3, "{stats:?}");

    // A replay: same author and sequence as an accepted bundle, new bytes.
    send(signed(network, &evil_key, 0, "replayed sequence").to_bytes()).await;
    wait_until("the replay is validated", || {
        v.stats().outcome("duplicate") == 1
    })
    .await;

    let bad_messages = |round: u64| {
        let mut bad_signature = signed(network, &evil_key, 100 + round, "bad signature");
        bad_signature.signature[0] ^= 1;
        let other_author = bundle(network, &honest_key, 200 + round, "someone else's bundle");
        let other_author = sign_bundle_unchecked(&other_author, &evil_key);
        let mut mismatch = bundle(network, &evil_key, 300 + round, "the real prompt");
        mismatch.prompt = format!("a different prompt {round}");
        let mismatch = sign_bundle(&mismatch, &evil_key)
            .expect("structurally fine")
            .to_bytes();
        vec![
            bad_signature.to_bytes(),
            other_author,
            vec![round as u8; 300 * 1024],
            vec![round as u8 + 1],
            mismatch,
        ]
    };
    for message in bad_messages(0) {
        send(message).await;
    }
    wait_until("every bad message is validated", || {
        v.stats().outcomes.values().sum::<u64>() == 14
    })
    .await;
    let stats = victim.stats();
    for reason in [
        "bad_signature",
        "author_mismatch",
        "over_limit_envelope_bytes",
        "malformed_envelope",
        "prompt_mismatch",
    ] {
        assert_eq!(stats.outcome(reason), 1, "{reason}: {stats:?}");
    }
    assert_eq!(stats.accepted, 5);

    // A second round pushes the attacker's score below the graylist threshold.
    for message in bad_messages(1) {
        send(message).await;
    }
    wait_until("the attacker is disconnected", || {
        v.stats().graylisted_disconnects >= 1
    })
    .await;
    assert!(evil.sent.load(Ordering::SeqCst) >= 14);

    // Honest exchange goes on.
    let f = friend.handle.clone();
    let honest = signed(network, &honest_key, 0, "honest question");
    retry("publish from the honest friend", || {
        f.publish(honest.clone())
    })
    .await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (bundle, source) = next_bundle(&mut victim_events).await;
        if bundle.bundle.prompt == "honest question" {
            assert_eq!(source, f.peer_id());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "honest bundle never arrived"
        );
    }
    victim.shutdown().await.expect("clean shutdown");
    f.shutdown().await.expect("clean shutdown");
}

/// Signs a bundle whose author is someone else, which [`sign_bundle`] refuses to do.
/// A relay that has a fresh bundle first sends a copy with a corrupted signature: with an id over the
/// payload alone, receivers would reject the copy and then drop the genuine envelope as a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_copy_sent_first_does_not_suppress_the_genuine_bundle() {
    let network = "front-run-test";
    let (victim, mut victim_events) = spawn(NetConfig::loopback(network), [9; 32], accept_all())
        .await
        .expect("honest node starts");
    let evil = attacker(network, victim.listen_addrs()[0].clone());
    let honest_key = SigningKey::from_bytes(&[68; 32]);
    let genuine = signed(network, &honest_key, 1, "front-run target");
    let mut forged = genuine.clone();
    forged.signature[0] ^= 1;
    for message in [forged.to_bytes(), genuine.to_bytes()] {
        evil.messages
            .send(message)
            .await
            .expect("attacker task alive");
    }
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (bundle, _) = next_bundle(&mut victim_events).await;
        if bundle.bundle.prompt == "front-run target" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the genuine bundle never arrived"
        );
    }
    let stats = victim.stats();
    assert_eq!(stats.outcome("bad_signature"), 1, "{stats:?}");
    assert_eq!(stats.outcome("accept"), 1, "{stats:?}");
    victim.shutdown().await.expect("victim stops");
}

/// A forwarding peer past its rate quota is ignored under its own label, whoever the authors are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_past_its_quota_is_ignored_as_over_quota_peer() {
    let network = "peer-quota-test";
    let config = NetConfig {
        peer_quota_per_minute: 3,
        ..NetConfig::loopback(network)
    };
    let (victim, _events) = spawn(config, [10; 32], accept_all())
        .await
        .expect("honest node starts");
    let v = victim.clone();
    let relay = attacker(network, victim.listen_addrs()[0].clone());
    for author in 0..5u8 {
        let key = SigningKey::from_bytes(&[80 + author; 32]);
        let message = signed(network, &key, 1, &format!("from author {author}")).to_bytes();
        relay
            .messages
            .send(message)
            .await
            .expect("relay task alive");
    }
    wait_until("every message is counted", || {
        v.stats().outcomes.values().sum::<u64>() == 5
    })
    .await;
    let stats = victim.stats();
    assert_eq!(stats.outcome("accept"), 3, "{stats:?}");
    assert_eq!(stats.outcome("over_quota_peer"), 2, "{stats:?}");
    assert_eq!(stats.outcome("over_quota_author"), 0, "{stats:?}");
    victim.shutdown().await.expect("victim stops");
}

fn sign_bundle_unchecked(bundle: &swarm_protocol::RolloutBundle, key: &SigningKey) -> Vec<u8> {
    let payload = bundle.to_bytes().expect("encodable bundle");
    swarm_protocol::SignedEnvelope::sign_payload(payload, key).to_bytes()
}
