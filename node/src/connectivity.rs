//! How a node is connected, in words a volunteer can act on: what AutoNAT concluded, whether a
//! relay holds a slot, how many peers are direct and how many only relayed, and what to do when
//! nobody can reach the node.

use std::collections::BTreeSet;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use swarm_net::{NatStatus, NetStats};

/// The sentence `swarm-node status`, `/api/status` and the join log show.
pub fn describe(stats: &NetStats) -> String {
    let direct = stats.direct_peers().len();
    let relayed = stats.relayed_only_peers().len();
    let peers = format!("{direct} peer(s) direct, {relayed} only through a relay");
    let punching = if stats.hole_punch_failures > 0 && relayed > 0 {
        format!(
            "; hole punching failed {} time(s) (a NAT that changes ports per destination, or a \
             firewall), so gossip goes through the relay",
            stats.hole_punch_failures
        )
    } else {
        String::new()
    };
    match stats.nat_status {
        NatStatus::Public => format!("public: peers dial this node directly; {peers}"),
        NatStatus::Private if stats.relay_reservations > 0 => format!(
            "behind NAT, reachable through {} relay(s); {peers}{punching}",
            stats.relay_reservations
        ),
        NatStatus::Private => format!(
            "behind NAT and no relay holds a slot: peers cannot connect to this node, only it to \
             them; {peers}. {}",
            forwarding_advice(&stats.listen_addrs)
        ),
        NatStatus::Unknown if stats.relay_reservations > 0 => format!(
            "reachable through {} relay(s) (whether peers can dial it directly is not known \
             yet); {peers}{punching}",
            stats.relay_reservations
        ),
        NatStatus::Unknown => format!("reachability not known yet (probing); {peers}"),
    }
}

/// What to do so that peers can dial a private node: forward its listening ports.
fn forwarding_advice(listen_addrs: &[Multiaddr]) -> String {
    let mut ports = BTreeSet::new();
    for address in listen_addrs {
        if address.iter().any(|p| p == Protocol::P2pCircuit) {
            continue;
        }
        for protocol in address.iter() {
            match protocol {
                Protocol::Tcp(port) => {
                    ports.insert(format!("TCP {port}"));
                }
                Protocol::Udp(port) => {
                    ports.insert(format!("UDP {port}"));
                }
                _ => {}
            }
        }
    }
    let ports: Vec<String> = ports.into_iter().collect();
    let forward = if ports.is_empty() {
        "the port this node listens on".to_owned()
    } else {
        ports.join(" and ")
    };
    format!(
        "To be reachable, forward {forward} on your router to this machine (fixed ports: \
         --listen /ip4/0.0.0.0/tcp/4001) and announce the router's address in \
         net.external_addresses, or join through a bootstrap node that relays \
         (net.relay_reservations not \"never\")"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;
    use swarm_net::PeerConnection;

    fn connection(peer: PeerId, address: &str) -> PeerConnection {
        let remote_address: Multiaddr = address.parse().unwrap();
        PeerConnection {
            peer,
            relayed: remote_address.iter().any(|p| p == Protocol::P2pCircuit),
            remote_address,
        }
    }

    #[test]
    fn a_relayed_node_says_how_its_peers_are_reached() {
        let (relay, punched, stuck) = (PeerId::random(), PeerId::random(), PeerId::random());
        let stats = NetStats {
            nat_status: NatStatus::Private,
            relay_reservations: 1,
            hole_punch_failures: 2,
            connections: vec![
                connection(relay, "/ip4/198.18.0.1/tcp/4001"),
                connection(punched, "/ip4/198.18.0.12/udp/5000/quic-v1"),
                connection(
                    punched,
                    &format!("/ip4/198.18.0.1/tcp/4001/p2p/{relay}/p2p-circuit"),
                ),
                connection(
                    stuck,
                    &format!("/ip4/198.18.0.1/tcp/4001/p2p/{relay}/p2p-circuit"),
                ),
            ],
            ..NetStats::default()
        };
        let text = describe(&stats);
        assert!(
            text.starts_with("behind NAT, reachable through 1 relay(s); 2 peer(s) direct, 1 only"),
            "{text}"
        );
        assert!(text.contains("hole punching failed 2 time(s)"), "{text}");
    }

    #[test]
    fn an_unreachable_node_is_told_which_ports_to_forward() {
        let stats = NetStats {
            nat_status: NatStatus::Private,
            listen_addrs: vec![
                "/ip4/10.0.1.2/tcp/4001".parse().unwrap(),
                "/ip4/10.0.1.2/udp/4002/quic-v1".parse().unwrap(),
            ],
            ..NetStats::default()
        };
        let text = describe(&stats);
        assert!(text.contains("no relay holds a slot"), "{text}");
        assert!(text.contains("forward TCP 4001 and UDP 4002"), "{text}");
        let public = NetStats {
            nat_status: NatStatus::Public,
            ..NetStats::default()
        };
        assert!(describe(&public).starts_with("public"));
    }
}
