//! Staying reachable behind NAT: AutoNAT's verdict on this node, the relay servers among its
//! peers, and the reservations it holds on them.
//!
//! A node that AutoNAT finds private (or that is told to always use relays) asks relay servers it
//! dialled itself (typically its bootstrap nodes) for a reservation, and listens on
//! `<relay>/p2p-circuit`. Peers can then reach it through the relay, and DCUtR upgrades such
//! connections to direct ones where hole punching works.

use std::collections::HashMap;

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::config::RelayReservations;

/// What AutoNAT concluded about this node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NatStatus {
    /// No probe has answered yet.
    #[default]
    Unknown,
    /// Peers dialled back one of this node's addresses.
    Public,
    /// Peers tried to dial this node back and could not.
    Private,
}

impl NatStatus {
    /// Stable lowercase name for logs, the status API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NatStatus::Unknown => "unknown",
            NatStatus::Public => "public",
            NatStatus::Private => "private",
        }
    }
}

impl From<&libp2p::autonat::NatStatus> for NatStatus {
    fn from(status: &libp2p::autonat::NatStatus) -> Self {
        match status {
            libp2p::autonat::NatStatus::Public(_) => NatStatus::Public,
            libp2p::autonat::NatStatus::Private => NatStatus::Private,
            libp2p::autonat::NatStatus::Unknown => NatStatus::Unknown,
        }
    }
}

/// Whether an address goes through a relay.
pub(crate) fn is_relayed(address: &Multiaddr) -> bool {
    address.iter().any(|p| p == Protocol::P2pCircuit)
}

/// `<relay address>/p2p/<relay>/p2p-circuit`: listening there asks the relay for a reservation.
pub(crate) fn circuit_listen_address(relay: PeerId, address: &Multiaddr) -> Multiaddr {
    let mut base = address.clone();
    if matches!(base.iter().last(), Some(Protocol::P2p(_))) {
        base.pop();
    }
    base.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit)
}

pub(crate) struct Reachability {
    mode: RelayReservations,
    max_reservations: usize,
    nat: NatStatus,
    /// Direct addresses this node dialled, by peer: the only addresses of a relay it knows work.
    dialled: HashMap<PeerId, Multiaddr>,
    /// Connected peers that speak the relay hop protocol.
    relays: Vec<PeerId>,
    /// Relays this node listens through (reservation requested or held).
    listeners: HashMap<PeerId, ListenerId>,
    /// Relays that accepted a reservation.
    accepted: Vec<PeerId>,
}

impl Reachability {
    pub(crate) fn new(mode: RelayReservations, max_reservations: usize) -> Self {
        Reachability {
            mode,
            max_reservations,
            nat: NatStatus::Unknown,
            dialled: HashMap::new(),
            relays: Vec::new(),
            listeners: HashMap::new(),
            accepted: Vec::new(),
        }
    }

    pub(crate) fn nat(&self) -> NatStatus {
        self.nat
    }

    pub(crate) fn reservations(&self) -> usize {
        self.accepted.len()
    }

    pub(crate) fn set_nat(&mut self, status: NatStatus) {
        self.nat = status;
    }

    pub(crate) fn dialled(&mut self, peer: PeerId, address: &Multiaddr) {
        if !is_relayed(address) {
            self.dialled.insert(peer, address.clone());
        }
    }

    pub(crate) fn relay_found(&mut self, peer: PeerId) {
        if !self.relays.contains(&peer) {
            self.relays.push(peer);
        }
    }

    pub(crate) fn peer_gone(&mut self, peer: &PeerId) {
        self.dialled.remove(peer);
        self.relays.retain(|known| known != peer);
        self.accepted.retain(|known| known != peer);
        self.listeners.remove(peer);
    }

    pub(crate) fn reservation_accepted(&mut self, relay: PeerId) {
        if !self.accepted.contains(&relay) {
            self.accepted.push(relay);
        }
    }

    /// A circuit listener ended (the relay refused, went away, or the reservation expired): the
    /// relay may be asked again.
    pub(crate) fn listener_closed(&mut self, listener: ListenerId) {
        let relay = self
            .listeners
            .iter()
            .find(|(_, id)| **id == listener)
            .map(|(peer, _)| *peer);
        if let Some(relay) = relay {
            self.listeners.remove(&relay);
            self.accepted.retain(|known| *known != relay);
        }
    }

    pub(crate) fn listening_through(&mut self, relay: PeerId, listener: ListenerId) {
        self.listeners.insert(relay, listener);
    }

    fn wants_reservations(&self) -> bool {
        match self.mode {
            RelayReservations::Always => true,
            RelayReservations::WhenPrivate => self.nat == NatStatus::Private,
            RelayReservations::Never => false,
        }
    }

    /// Relays to ask for a reservation now, with the address to listen on for each.
    pub(crate) fn reservations_to_request(&self) -> Vec<(PeerId, Multiaddr)> {
        if !self.wants_reservations() {
            return Vec::new();
        }
        let room = self.max_reservations.saturating_sub(self.listeners.len());
        self.relays
            .iter()
            .filter(|relay| !self.listeners.contains_key(relay))
            .filter_map(|relay| {
                let address = self.dialled.get(relay)?;
                Some((*relay, circuit_listen_address(*relay, address)))
            })
            .take(room)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay_at(port: u16) -> (PeerId, Multiaddr) {
        let peer = PeerId::random();
        let address: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}")
            .parse()
            .unwrap();
        (peer, address)
    }

    #[test]
    fn reserves_only_when_private_unless_told_otherwise() {
        let (relay, address) = relay_at(4001);
        let mut reachability = Reachability::new(RelayReservations::WhenPrivate, 2);
        reachability.dialled(relay, &address);
        reachability.relay_found(relay);
        assert!(reachability.reservations_to_request().is_empty());
        reachability.set_nat(NatStatus::Public);
        assert!(reachability.reservations_to_request().is_empty());
        reachability.set_nat(NatStatus::Private);
        let wanted = reachability.reservations_to_request();
        assert_eq!(wanted.len(), 1);
        assert_eq!(
            wanted[0].1.to_string(),
            format!("/ip4/127.0.0.1/tcp/4001/p2p/{relay}/p2p-circuit")
        );

        let mut never = Reachability::new(RelayReservations::Never, 2);
        never.set_nat(NatStatus::Private);
        never.dialled(relay, &address);
        never.relay_found(relay);
        assert!(never.reservations_to_request().is_empty());
    }

    #[test]
    fn bounded_number_of_relays_and_retry_after_close() {
        let mut reachability = Reachability::new(RelayReservations::Always, 2);
        let relays: Vec<_> = (0..3).map(|i| relay_at(4001 + i)).collect();
        for (peer, address) in &relays {
            reachability.dialled(*peer, address);
            reachability.relay_found(*peer);
        }
        let wanted = reachability.reservations_to_request();
        assert_eq!(wanted.len(), 2);
        let first = ListenerId::next();
        reachability.listening_through(wanted[0].0, first);
        reachability.listening_through(wanted[1].0, ListenerId::next());
        reachability.reservation_accepted(wanted[0].0);
        assert!(reachability.reservations_to_request().is_empty());
        assert_eq!(reachability.reservations(), 1);

        reachability.listener_closed(first);
        assert_eq!(reachability.reservations(), 0);
        assert_eq!(reachability.reservations_to_request().len(), 1);
    }

    #[test]
    fn relays_reached_only_through_other_relays_are_not_used() {
        let (relay, _) = relay_at(4001);
        let relayed: Multiaddr =
            format!("/ip4/127.0.0.1/tcp/9/p2p/{}/p2p-circuit", PeerId::random())
                .parse()
                .unwrap();
        let mut reachability = Reachability::new(RelayReservations::Always, 2);
        reachability.dialled(relay, &relayed);
        reachability.relay_found(relay);
        assert!(reachability.reservations_to_request().is_empty());
    }
}
