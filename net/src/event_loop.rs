//! The single task that owns the libp2p swarm: it runs commands from [`crate::NetHandle`],
//! validates every gossip message and reports its outcome, and keeps the node connected.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::identity::Keypair;
use libp2p::metrics::{Metrics, Recorder, Registry};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, dcutr, identify, mdns, noise, relay, tcp, yamux};
use swarm_protocol::{
    Digest, IgnoreReason, MessageId, Outcome, Validation, ValidationContext, network_id, topic,
    validate,
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::behaviour::{
    self, GRAYLIST_THRESHOLD, MAX_TRANSMIT_BYTES, NodeBehaviour, NodeBehaviourEvent,
};
use crate::config::NetConfig;
use crate::reachability::{NatStatus, Reachability, is_relayed};
use crate::state::{BoundedSet, RateLimiter, TaskChecker, ValidationState};
use crate::{Command, NetEvent, NetHandle, NetStats, PeerConnection};

/// Commands are few and small; a short queue is enough and pushes back on a runaway caller.
const COMMAND_CAPACITY: usize = 64;

/// How long [`crate::spawn`] waits for its listeners to report their addresses. Binding a local
/// port is immediate; this only bounds a transport that never answers.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn start<T: Send + 'static>(
    config: NetConfig,
    seed: [u8; 32],
    task_check: TaskChecker<T>,
) -> Result<(NetHandle, mpsc::Receiver<NetEvent<T>>)> {
    let mut seed = seed;
    let key = Keypair::ed25519_from_bytes(&mut seed)
        .map_err(|err| anyhow!("the node seed is not a valid ed25519 secret key: {err}"))?;
    let peer_id = key.public().to_peer_id();
    let idle_timeout = config.idle_timeout;
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .context("cannot set up the TCP transport")?
        .with_quic()
        .with_dns()
        .context("cannot set up DNS resolution (is /etc/resolv.conf readable?)")?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .context("cannot set up the relay client transport")?
        .with_bandwidth_metrics(&mut registry)
        .with_behaviour(|key, relay_client| {
            behaviour::build(key, relay_client, &config).map_err(Into::into)
        })
        .map_err(|err| anyhow!("cannot assemble the network behaviour: {err}"))?
        .with_swarm_config(|swarm_config| swarm_config.with_idle_connection_timeout(idle_timeout))
        .build();

    let gossip_topic = IdentTopic::new(topic(&config.network_name));
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&gossip_topic)
        .map_err(|err| anyhow!("cannot subscribe to {gossip_topic}: {err}"))?;
    let mut listeners = Vec::with_capacity(config.listen.len());
    for address in &config.listen {
        let listener = swarm.listen_on(address.clone()).with_context(|| {
            format!(
                "cannot listen on {address}; check the --listen address and that the port is free"
            )
        })?;
        listeners.push((listener, address.clone()));
    }
    for address in &config.external_addresses {
        swarm.add_external_address(address.clone());
    }
    let (command_sender, commands) = mpsc::channel(COMMAND_CAPACITY);
    let (event_sender, events) = mpsc::channel(config.event_capacity.max(1));
    let stats = Arc::new(Mutex::new(NetStats::default()));
    let (topic_peers, topic_peers_seen) = watch::channel(0);
    let registry = Arc::new(registry);
    let state = ValidationState {
        seen_ids: BoundedSet::new(config.dedup_capacity),
        seen_sequences: BoundedSet::new(config.dedup_capacity),
        authors: RateLimiter::new(config.author_quota_per_minute),
        task_check,
        resolved: RefCell::new(None),
        now: Instant::now(),
    };
    let mut event_loop = EventLoop {
        network_id: network_id(&config.network_name),
        peers: RateLimiter::new(config.peer_quota_per_minute),
        reachability: Reachability::new(config.relay_reservations, config.max_relay_reservations),
        connections: HashMap::new(),
        config,
        swarm,
        topic: gossip_topic,
        state,
        stats: stats.clone(),
        topic_peers,
        events: event_sender,
        local_peer_id: peer_id,
        metrics,
    };
    event_loop.wait_until_listening(listeners).await?;
    // Only now: TCP dials leave from the listening port (so that the address peers observe is
    // one hole punching can use) once the listener has reported its addresses, and not before.
    event_loop.dial_bootstrap_peers();
    tokio::spawn(event_loop.run(commands));
    info!(%peer_id, "network layer started");
    Ok((
        NetHandle {
            peer_id,
            commands: command_sender,
            stats,
            topic_peers: topic_peers_seen,
            metrics: registry,
        },
        events,
    ))
}

/// Whether an address is on the loopback interface of whichever host dials it.
fn is_loopback(address: &Multiaddr) -> bool {
    match address.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// The peer a multiaddr names in its `/p2p/<peer id>` suffix.
fn peer_of(address: &Multiaddr) -> Option<PeerId> {
    match address.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// Adds a bootstrap address to the routing table (when it names its peer) and dials it.
fn add_bootstrap_peer(swarm: &mut Swarm<NodeBehaviour>, address: &Multiaddr) {
    match peer_of(address) {
        Some(peer) => {
            swarm
                .behaviour_mut()
                .kademlia
                .add_address(&peer, address.clone());
        }
        None => warn!(
            %address,
            "bootstrap address has no /p2p/<peer id> suffix; dialling it, but it cannot seed the DHT"
        ),
    }
    // A plain dial, not one by peer id with a "not yet connected" condition: with the latter,
    // bench gossip's in-process swarms delivered markedly slower (why is not understood yet),
    // and callers only dial bootstrap peers they are not connected to anyway.
    if let Err(err) = swarm.dial(address.clone()) {
        warn!(%address, "cannot dial bootstrap peer: {err}");
    }
}

struct EventLoop<T> {
    config: NetConfig,
    network_id: Digest,
    swarm: Swarm<NodeBehaviour>,
    topic: IdentTopic,
    state: ValidationState<T>,
    peers: RateLimiter<PeerId>,
    stats: Arc<Mutex<NetStats>>,
    /// The topic peer count as it changes, for [`NetHandle::wait_for_topic_peers`].
    topic_peers: watch::Sender<usize>,
    events: mpsc::Sender<NetEvent<T>>,
    local_peer_id: PeerId,
    reachability: Reachability,
    /// Every open connection, for [`NetStats::connections`].
    connections: HashMap<ConnectionId, PeerConnection>,
    metrics: Metrics,
}

impl<T: Send + 'static> EventLoop<T> {
    /// Runs the swarm until every listener knows its addresses (or has closed), so that the
    /// caller of [`crate::spawn`] can hand them out at once: the next node to start dials them.
    /// Binding is immediate, but the addresses are reported through the swarm, which nobody polls
    /// before this. Gives up after [`LISTEN_TIMEOUT`]: with no address at all that is an error,
    /// with some it only leaves the slow listeners to report later.
    async fn wait_until_listening(
        &mut self,
        mut pending: Vec<(ListenerId, Multiaddr)>,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        while !pending.is_empty() {
            let next = tokio::time::timeout_at(deadline, self.swarm.select_next_some());
            let Ok(event) = next.await else {
                break;
            };
            if let SwarmEvent::NewListenAddr { listener_id, .. }
            | SwarmEvent::ListenerClosed { listener_id, .. } = &event
            {
                pending.retain(|(pending_id, _)| pending_id != listener_id);
            }
            self.on_swarm_event(event);
        }
        if pending.is_empty() {
            return Ok(());
        }
        let waited_for: Vec<String> = pending
            .iter()
            .map(|(_, address)| address.to_string())
            .collect();
        let listening = !self
            .stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .listen_addrs
            .is_empty();
        if !listening {
            return Err(anyhow!(
                "no listen address within {LISTEN_TIMEOUT:?}: still waiting for {}",
                waited_for.join(", ")
            ));
        }
        warn!(
            waiting_for = %waited_for.join(", "),
            "some listeners have no address yet; starting with the others"
        );
        Ok(())
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut redial = tokio::time::interval(self.config.redial_interval);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    Some(Command::Publish(envelope, reply)) => {
                        let _ = reply.send(self.publish(envelope));
                    }
                    Some(Command::Dial(address, reply)) => {
                        let _ = reply.send(
                            self.swarm
                                .dial(address.clone())
                                .with_context(|| format!("cannot dial {address}")),
                        );
                    }
                    Some(Command::Shutdown(reply)) => {
                        self.shutdown();
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.shutdown();
                        return;
                    }
                },
                _ = redial.tick() => {
                    self.redial_bootstrap();
                    // Reservations are refused while a relay has no confirmed address yet, and
                    // lapse when a relay restarts: ask again rather than wait for the next trigger.
                    self.request_reservations();
                }
            }
        }
    }

    fn shutdown(&mut self) {
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .unsubscribe(&self.topic);
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        info!(peer_id = %self.local_peer_id, "network layer stopped");
    }

    /// Dials every bootstrap peer and starts a Kademlia bootstrap from them.
    fn dial_bootstrap_peers(&mut self) {
        for address in &self.config.bootstrap {
            add_bootstrap_peer(&mut self.swarm, address);
        }
        if !self.config.bootstrap.is_empty() {
            // Fails only when no peer is known, which add_bootstrap_peer already warned about.
            let _ = self.swarm.behaviour_mut().kademlia.bootstrap();
        }
    }

    /// Dials the bootstrap peers this node is not connected to. A bootstrap node is how a node
    /// learns of new peers and, behind NAT, its relay: losing it (a restart, a network outage)
    /// must not leave the node on the peers it happens to still have.
    fn redial_bootstrap(&mut self) {
        let alone = self.swarm.connected_peers().next().is_none();
        let missing: Vec<Multiaddr> = self
            .config
            .bootstrap
            .iter()
            .filter(|address| match peer_of(address) {
                Some(peer) => !self.swarm.is_connected(&peer),
                None => alone,
            })
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        if alone {
            warn!(
                bootstrap = ?self.config.bootstrap,
                retry_in = ?self.config.redial_interval,
                "no peers connected and no bootstrap peer reachable; the node keeps running alone and retries"
            );
        } else {
            debug!(?missing, "redialling bootstrap peers");
        }
        for address in &missing {
            add_bootstrap_peer(&mut self.swarm, address);
        }
    }

    fn publish(&mut self, envelope: swarm_protocol::SignedEnvelope) -> Result<MessageId> {
        let bytes = envelope.to_bytes();
        let limit = self
            .config
            .limits
            .max_envelope_bytes
            .min(MAX_TRANSMIT_BYTES);
        if bytes.len() > limit {
            return Err(anyhow!(
                "envelope of {} bytes exceeds the {limit}-byte limit; publish smaller bundles",
                bytes.len()
            ));
        }
        let id = MessageId::of_envelope(&bytes);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), bytes)
            .map_err(|err| anyhow!("cannot publish bundle {id}: {err}"))?;
        self.state.seen_ids.insert(id);
        self.update_stats(|stats| stats.published += 1);
        Ok(id)
    }

    fn record_metrics(&self, event: &SwarmEvent<NodeBehaviourEvent>) {
        self.metrics.record(event);
        let SwarmEvent::Behaviour(event) = event else {
            return;
        };
        match event {
            NodeBehaviourEvent::Gossipsub(event) => self.metrics.record(event),
            NodeBehaviourEvent::Identify(event) => self.metrics.record(event),
            NodeBehaviourEvent::Kademlia(event) => self.metrics.record(event),
            NodeBehaviourEvent::Ping(event) => self.metrics.record(event),
            NodeBehaviourEvent::RelayServer(event) => self.metrics.record(event),
            NodeBehaviourEvent::Dcutr(event) => self.metrics.record(event),
            _ => {}
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<NodeBehaviourEvent>) {
        self.record_metrics(&event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                // A relay refuses reservations until it knows an address of its own to hand
                // out. Without addresses from the operator, its listen addresses are the best
                // guess (right for a bootstrap node listening on its public interface).
                if self.config.relay_server
                    && self.config.external_addresses.is_empty()
                    && !is_relayed(&address)
                {
                    self.swarm.add_external_address(address.clone());
                }
                let address = self.dialable(address);
                info!(%address, "listening");
                self.update_stats(|stats| {
                    if !stats.listen_addrs.contains(&address) {
                        stats.listen_addrs.push(address);
                    }
                });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let address = self.dialable(address);
                self.update_stats(|stats| stats.listen_addrs.retain(|known| *known != address));
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                self.reachability.listener_closed(listener_id);
                self.refresh_reachability();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    self.reachability.dialled(peer_id, address);
                }
                let remote_address = endpoint.get_remote_address().clone();
                let relayed = endpoint.is_relayed();
                if !relayed {
                    debug!(%peer_id, %remote_address, "direct connection");
                }
                self.connections.insert(
                    connection_id,
                    PeerConnection {
                        peer: peer_id,
                        remote_address,
                        relayed,
                    },
                );
                self.refresh_connections();
                if num_established.get() == 1 {
                    debug!(%peer_id, "peer connected");
                    self.refresh_peer_count();
                    self.emit(NetEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                connection_id,
                num_established,
                ..
            } if num_established > 0 => {
                self.connections.remove(&connection_id);
                self.refresh_connections();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => {
                self.connections.remove(&connection_id);
                self.refresh_connections();
                debug!(%peer_id, "peer disconnected");
                self.reachability.peer_gone(&peer_id);
                self.refresh_reachability();
                self.refresh_peer_count();
                self.emit(NetEvent::PeerDisconnected(peer_id));
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(?peer_id, "outgoing connection failed: {error}");
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, &message.data),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Gossipsub(
                gossipsub::Event::Subscribed { .. } | gossipsub::Event::Unsubscribed { .. },
            )) => self.refresh_peer_count(),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
                    self.reachability.relay_found(peer_id);
                    self.request_reservations();
                }
                // Only peers that speak this network's DHT protocol go into the routing table.
                let kad_protocol = behaviour::kademlia_protocol(&self.config.network_name);
                if kad_protocol.is_ok_and(|protocol| info.protocols.contains(&protocol)) {
                    // A peer listening on every interface lists its loopback addresses too. Handed
                    // on through the DHT, they make other hosts dial themselves, and the failed
                    // identity check ends the whole dial, relayed addresses included. Only a peer
                    // reached over loopback is on this host.
                    let same_host = self
                        .connections
                        .values()
                        .any(|c| c.peer == peer_id && is_loopback(&c.remote_address));
                    for address in info
                        .listen_addrs
                        .into_iter()
                        .filter(|address| same_host || !is_loopback(address))
                    {
                        self.swarm
                            .behaviour_mut()
                            .kademlia
                            .add_address(&peer_id, address);
                    }
                }
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Autonat(autonat::Event::StatusChanged {
                new,
                ..
            })) => {
                let status = NatStatus::from(&new);
                info!(status = status.as_str(), "reachability (AutoNAT) changed");
                if status == NatStatus::Private {
                    info!(
                        "peers cannot dial this node directly; it will stay reachable through relay servers among its peers"
                    );
                }
                self.reachability.set_nat(status);
                self.request_reservations();
                self.refresh_reachability();
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal,
                    ..
                },
            )) => {
                if !renewal {
                    info!(relay = %relay_peer_id, "relay reservation accepted; reachable through it");
                    // Peers behind NAT are only reachable once they hold a reservation, and the
                    // query at start ran before anyone's: look again now. Of two nodes that
                    // reserve, the later one finds the earlier at its relayed address.
                    let _ = self.swarm.behaviour_mut().kademlia.bootstrap();
                }
                self.reachability.reservation_accepted(relay_peer_id);
                self.refresh_reachability();
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => match result {
                Ok(_) => {
                    debug!(peer = %remote_peer_id, "relayed connection upgraded to a direct one");
                    self.update_stats(|stats| stats.hole_punches += 1);
                }
                Err(err) => {
                    debug!(peer = %remote_peer_id, "hole punching failed; staying on the relay: {err}");
                    self.update_stats(|stats| stats.hole_punch_failures += 1);
                }
            },
            SwarmEvent::Behaviour(NodeBehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer_id, address) in found {
                    if self.swarm.is_connected(&peer_id) {
                        continue;
                    }
                    if let Err(err) = self.swarm.dial(address.clone()) {
                        debug!(%peer_id, %address, "cannot dial mDNS peer: {err}");
                    }
                }
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, source: PeerId, gossip_id: gossipsub::MessageId, data: &[u8]) {
        let now = Instant::now();
        self.state.now = now;
        let (outcome, resolved) = if !self.peers.try_spend(&source, now) {
            (Validation::Ignore(IgnoreReason::OverPeerQuota), None)
        } else {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64);
            let context = ValidationContext {
                network_id: self.network_id,
                limits: &self.config.limits,
                now_ms,
                staleness: self.config.staleness,
                hooks: &self.state,
            };
            let outcome = validate(data, &context);
            (outcome, self.state.resolved.take())
        };
        let outcome = match outcome {
            // validate() runs the task check last before accepting, so an accepted message has a
            // resolution; should that ever change, a bundle nobody resolved is dropped unpenalised
            // rather than handed to the learner unchecked.
            Validation::Accept(_) if resolved.is_none() => {
                warn!(%source, "accepted bundle has no task resolution; ignoring it");
                Validation::Ignore(IgnoreReason::UnknownTaskFamily)
            }
            outcome => outcome,
        };
        let acceptance = match &outcome {
            Validation::Accept(_) => MessageAcceptance::Accept,
            Validation::Ignore(_) => MessageAcceptance::Ignore,
            Validation::Reject(_) => MessageAcceptance::Reject,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&gossip_id, &source, acceptance);
        let counted = outcome.outcome();
        if counted != Outcome::Accept {
            debug!(%source, outcome = counted.label(), "gossip message not accepted");
        }
        if matches!(counted, Outcome::Reject(_)) {
            self.disconnect_if_graylisted(source);
        }
        self.update_stats(|stats| *stats.outcomes.entry(counted).or_default() += 1);
        if let (Validation::Accept(accepted), Some(resolved)) = (outcome, resolved) {
            self.state.record(
                accepted.message_id,
                accepted.signer,
                accepted.bundle.sequence,
            );
            self.update_stats(|stats| stats.accepted += 1);
            self.emit(NetEvent::Bundle {
                bundle: accepted,
                resolved,
                source,
                received_at: SystemTime::now(),
            });
        }
    }

    /// Gossipsub already ignores a graylisted peer; closing its connections also frees the slot
    /// and the bandwidth it was wasting. Its score is retained, so reconnecting does not reset it.
    fn disconnect_if_graylisted(&mut self, peer: PeerId) {
        let score = self.swarm.behaviour().gossipsub.peer_score(&peer);
        if score.is_some_and(|score| score < GRAYLIST_THRESHOLD) {
            warn!(%peer, ?score, "disconnecting a peer that keeps sending invalid messages");
            let _ = self.swarm.disconnect_peer_id(peer);
            self.update_stats(|stats| stats.graylisted_disconnects += 1);
        }
    }

    /// A listen address as peers dial it: ending in `/p2p/<this node>` (relayed listen addresses
    /// already do).
    fn dialable(&self, address: Multiaddr) -> Multiaddr {
        if matches!(address.iter().last(), Some(Protocol::P2p(_))) {
            address
        } else {
            address.with(Protocol::P2p(self.local_peer_id))
        }
    }

    /// Listens through every relay that should now hold a reservation for this node.
    fn request_reservations(&mut self) {
        for (relay, address) in self.reachability.reservations_to_request() {
            match self.swarm.listen_on(address.clone()) {
                Ok(listener) => {
                    debug!(%relay, %address, "requesting a relay reservation");
                    self.reachability.listening_through(relay, listener);
                }
                Err(err) => warn!(%relay, %address, "cannot listen through relay: {err}"),
            }
        }
    }

    fn refresh_connections(&mut self) {
        let mut connections: Vec<PeerConnection> = self.connections.values().cloned().collect();
        connections.sort_by_key(|c| (c.peer, c.relayed, c.remote_address.to_string()));
        self.update_stats(|stats| stats.connections = connections);
    }

    fn refresh_reachability(&mut self) {
        let nat_status = self.reachability.nat();
        let reservations = self.reachability.reservations();
        self.update_stats(|stats| {
            stats.nat_status = nat_status;
            stats.relay_reservations = reservations;
        });
    }

    /// Hands an event to the learner without ever blocking the network loop: a learner that
    /// falls behind loses bundles (counted), not connections.
    fn emit(&mut self, event: NetEvent<T>) {
        if self.events.try_send(event).is_err() {
            self.update_stats(|stats| stats.dropped_events += 1);
        }
    }

    fn refresh_peer_count(&mut self) {
        let count = self.swarm.connected_peers().count();
        let topic = self.topic.hash();
        let topic_peers = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&topic))
            .count();
        self.update_stats(|stats| {
            stats.connected_peers = count;
            stats.topic_peers = topic_peers;
        });
        self.topic_peers.send_replace(topic_peers);
    }

    fn update_stats(&self, update: impl FnOnce(&mut NetStats)) {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        update(&mut stats);
    }
}
