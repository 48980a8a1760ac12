//! libp2p's own metrics for one node: per-protocol event counters (libp2p-metrics) and the bytes
//! through its connections, kept in a Prometheus registry the node's `/metrics` endpoint exports.

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::registry::Registry;

/// Name of the counter `SwarmBuilder::with_bandwidth_metrics` registers.
const BANDWIDTH_COUNTER: &str = "libp2p_bandwidth_bytes_total";

/// Bytes read and written on this node's libp2p streams since it started, over every transport and
/// protocol (gossipsub, identify, Kademlia, ping, relay, ...). Counted above the multiplexer:
/// TCP/IP headers and noise and yamux framing are not included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireBytes {
    /// Bytes received.
    pub inbound: u64,
    /// Bytes sent.
    pub outbound: u64,
}

/// Sums the bandwidth counter of a node's metrics registry by direction. libp2p keeps the counters
/// private to its transport wrapper, so they are read back from the registry's text exposition.
pub fn wire_bytes(registry: &Registry) -> WireBytes {
    let mut text = String::new();
    if encode_registry(&mut text, registry).is_err() {
        return WireBytes::default();
    }
    parse_wire_bytes(&text)
}

fn parse_wire_bytes(text: &str) -> WireBytes {
    let mut bytes = WireBytes::default();
    for line in text.lines() {
        let Some(sample) = line.strip_prefix(BANDWIDTH_COUNTER) else {
            continue;
        };
        let Some((labels, value)) = sample.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let value = value as u64;
        if labels.contains("direction=\"Inbound\"") {
            bytes.inbound += value;
        } else if labels.contains("direction=\"Outbound\"") {
            bytes.outbound += value;
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_transport_by_direction() {
        let text = "# HELP libp2p_bandwidth_bytes Bandwidth usage.\n\
            # TYPE libp2p_bandwidth_bytes counter\n\
            # UNIT libp2p_bandwidth_bytes bytes\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Outbound\"} 1200\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/udp/quic-v1\",direction=\"Outbound\"} 34\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Inbound\"} 560\n\
            libp2p_swarm_connections_established_total{role=\"Dialer\"} 9\n";
        assert_eq!(
            parse_wire_bytes(text),
            WireBytes {
                inbound: 560,
                outbound: 1234
            }
        );
    }

    #[test]
    fn empty_registry_counts_nothing() {
        assert_eq!(wire_bytes(&Registry::default()), WireBytes::default());
    }
}
