//! A bare gossipsub peer built from rust-libp2p alone, following PROTOCOL.md section 10 rather than
//! the `swarm-net` crate: anonymous messages, the message id over the whole message, one topic. It
//! publishes whatever bytes it is given, validating nothing, and hands over every message it
//! receives, so tests can play a hostile relay or a client written from the specification.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::{Multiaddr, Swarm, noise, tcp, yamux};
use tokio::sync::mpsc;

/// The gossip message id of PROTOCOL.md section 5: the first 20 bytes of blake3 of the message.
pub fn spec_message_id(data: &[u8]) -> [u8; 20] {
    let mut id = [0u8; 20];
    id.copy_from_slice(&blake3::hash(data).as_bytes()[..20]);
    id
}

/// A running peer: bytes sent on `messages` are published in order (retried until a subscribed
/// peer exists); messages from the network arrive on `received`.
pub struct GossipPeer {
    /// Bytes to publish.
    pub messages: mpsc::Sender<Vec<u8>>,
    /// Messages received from the network, in arrival order.
    pub received: std::sync::mpsc::Receiver<Vec<u8>>,
    /// How many messages were published so far.
    pub sent: Arc<AtomicUsize>,
}

/// Starts a peer on `runtime` that dials `target` and joins `topic`. Its transmit limit is 2 MiB,
/// above the nodes', so it can send what they must refuse.
pub fn gossip_peer(runtime: &tokio::runtime::Handle, topic: &str, target: Multiaddr) -> GossipPeer {
    let _entered = runtime.enter();
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|message: &gossipsub::Message| {
            gossipsub::MessageId::new(&spec_message_id(&message.data))
        })
        .heartbeat_interval(Duration::from_millis(100))
        .max_transmit_size(2 << 20)
        .build()
        .expect("valid gossipsub config");
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
                .expect("gossipsub behaviour")
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let gossip_topic = IdentTopic::new(topic);
    swarm
        .behaviour_mut()
        .subscribe(&gossip_topic)
        .expect("subscribe");
    swarm.dial(target).expect("dial the node");

    let (sender, mut outgoing) = mpsc::channel::<Vec<u8>>(256);
    let (deliver, received) = std::sync::mpsc::channel();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    runtime.spawn(async move {
        let mut pending: std::collections::VecDeque<Vec<u8>> = Default::default();
        let mut retry = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                event = swarm.select_next_some() => {
                    if let libp2p::swarm::SwarmEvent::Behaviour(gossipsub::Event::Message {
                        message, ..
                    }) = event
                    {
                        let _ = deliver.send(message.data);
                    }
                }
                message = outgoing.recv() => match message {
                    Some(message) => pending.push_back(message),
                    None => return,
                },
                _ = retry.tick() => {}
            }
            // Publish in order; stop at the first failure (no subscribed peer yet), retry later.
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
    GossipPeer {
        messages: sender,
        received,
        sent,
    }
}
