//! A malicious peer sends every kind of bad message to an honest node; each is counted under the
//! right reason, the attacker ends up disconnected, and honest nodes keep exchanging bundles.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::{Multiaddr, Swarm, noise, tcp, yamux};
use swarm_net::{NetConfig, spawn};
use swarm_protocol::{SigningKey, sign_bundle, topic};
use tokio::sync::mpsc;

/// A bare gossipsub node that publishes whatever bytes it is given, with no validation at all.
struct Attacker {
    messages: mpsc::Sender<Vec<u8>>,
    sent: Arc<AtomicUsize>,
}

fn attacker(network: &str, target: Multiaddr) -> Attacker {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|message: &gossipsub::Message| {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            message.data.hash(&mut hasher);
            gossipsub::MessageId::new(&hasher.finish().to_be_bytes())
        })
        .heartbeat_interval(Duration::from_millis(100))
        .max_transmit_size(2 << 20)
        .build()
        .expect("valid attacker gossipsub config");
    let mut swarm: Swarm<gossipsub::Behaviour> = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(|_| {
            gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)
                .expect("attacker gossipsub")
        })
        .expect("attacker behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let gossip_topic = IdentTopic::new(topic(network));
    swarm
        .behaviour_mut()
        .subscribe(&gossip_topic)
        .expect("subscribe");
    swarm.dial(target).expect("dial the honest node");

    let (sender, mut receiver) = mpsc::channel::<Vec<u8>>(256);
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        let mut pending: std::collections::VecDeque<Vec<u8>> = Default::default();
        let mut retry = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = swarm.select_next_some() => {}
                message = receiver.recv() => match message {
                    Some(message) => pending.push_back(message),
                    None => return,
                },
                _ = retry.tick() => {}
            }
            // Publish in order; stop at the first failure (no subscribed peer yet) and retry later.
            while let Some(message) = pending.front() {
                if swarm
                    .behaviour_mut()
                    .publish(gossip_topic.clone(), message.clone())
                    .is_err()
                {
                    break;
                }
                pending.pop_front();
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    Attacker {
        messages: sender,
        sent,
    }
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
    assert_eq!(stats.outcome("over_quota"), 3, "{stats:?}");

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
fn sign_bundle_unchecked(bundle: &swarm_protocol::RolloutBundle, key: &SigningKey) -> Vec<u8> {
    let payload = bundle.to_bytes().expect("encodable bundle");
    swarm_protocol::SignedEnvelope::sign_payload(payload, key).to_bytes()
}
