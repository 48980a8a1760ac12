//! NAT traversal through real NATs (see `swarm_tests::netns`): a bootstrap node (the relay) on a
//! public segment, homes A, B, D and E behind endpoint-independent NATs, home C behind a symmetric
//! NAT, each running the real binary. What each scenario claims is read from `/api/status`.
//!
//! 1. A and B: AutoNAT says private, each reserves a slot on the relay, hole punching (DCUtR)
//!    gives them a direct connection whose remote address is the other's NAT, and bundles keep
//!    flowing between them after the relay stops. D and E listen on QUIC only and punch through
//!    over QUIC, where A and B (both transports) are reported with the one that punched.
//! 2. The relay restarts: A and B reconnect to it and hold reservations again.
//! 3. C behind a symmetric NAT: hole punching fails, C still receives bundles, and its status
//!    says why in words.
//! 4. A's home link goes down for a minute: A trains alone meanwhile, without a panic, and
//!    receives bundles again once the link is back.
//!
//! Skipped, with the reason printed, where namespaces or iptables are unavailable (not root).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use swarm_tests::netns::{Host, Nat, Testbed, in_namespace, status_in};
use swarm_tests::{Running, small_node, wait_for_line};

const NETWORK: &str = "nat-testbed";
/// Every node's API, on the loopback of its own namespace.
const API: &str = "127.0.0.1:8080";
const WAIT: Duration = Duration::from_secs(240);

/// A node running in a namespace of the testbed.
struct Node {
    running: Running,
    host: Host,
}

impl Node {
    fn status(&self) -> Option<serde_json::Value> {
        status_in(&self.host, api())
    }

    /// Polls this node's status until `ready` holds, panicking after [`WAIT`] with `what` and
    /// the last status seen.
    fn until(&self, what: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let mut last = None;
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(now) = self.status() {
                if ready(&now) {
                    return now;
                }
                last = Some(now);
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status: {last:#?}\nlog: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.running.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn stop(self, name: &str) {
        self.running.stop(name);
    }
}

fn api() -> SocketAddr {
    API.parse().unwrap()
}

/// Starts the node with `args` in `host`'s namespace, with its data in `data`.
fn start(host: &Host, data: &Path, args: &[&str]) -> Node {
    std::fs::create_dir_all(data).unwrap();
    let log = data.join("node.log");
    let mut node = small_node(data);
    node.env("SWARM_LEARNER_FORMAT_REWARD", "0.4")
        // The testbed's addresses are private ones; AutoNAT must probe them all the same.
        .env("SWARM_NET_AUTONAT_GLOBAL_ONLY", "false")
        .env("RUST_LOG", "info,swarm_net=debug,libp2p_dcutr=debug")
        .args(["--http", API])
        .args(args);
    Node {
        running: Running::spawn(in_namespace(host, &node), log),
        host: host.clone(),
    }
}

fn start_bootstrap(host: &Host, data: &Path) -> (Node, String) {
    let tcp = format!("/ip4/{}/tcp/4001", host.address);
    let quic = format!("/ip4/{}/udp/4001/quic-v1", host.address);
    let boot = start(
        host,
        data,
        &[
            "bootstrap",
            "--network",
            NETWORK,
            "--listen",
            &tcp,
            "--listen",
            &quic,
        ],
    );
    let address = wait_for_line(&boot.running.stdout, "the bootstrap address", WAIT, |l| {
        l.starts_with(&format!("listening on {tcp}/p2p/"))
    })
    .trim_start_matches("listening on ")
    .to_owned();
    (boot, address)
}

/// A learner joining through `bootstrap`, listening on both transports.
fn join(host: &Host, data: &Path, bootstrap: &str) -> Node {
    join_on(host, data, bootstrap, &[TCP_LISTEN, QUIC_LISTEN])
}

/// A learner joining through `bootstrap`, listening on `listen` only.
fn join_on(host: &Host, data: &Path, bootstrap: &str, listen: &[&str]) -> Node {
    let mut args = vec!["join", "--network", NETWORK, "--bootstrap", bootstrap];
    for address in listen {
        args.extend(["--listen", address]);
    }
    start(host, data, &args)
}

const TCP_LISTEN: &str = "/ip4/0.0.0.0/tcp/4001";
const QUIC_LISTEN: &str = "/ip4/0.0.0.0/udp/4001/quic-v1";

fn number(status: &serde_json::Value, key: &str) -> u64 {
    status[key].as_u64().unwrap_or(0)
}

fn text<'a>(status: &'a serde_json::Value, key: &str) -> &'a str {
    status[key].as_str().unwrap_or("")
}

fn connections(status: &serde_json::Value) -> &[serde_json::Value] {
    status["connections"].as_array().map_or(&[], Vec::as_slice)
}

/// The remote address of a direct connection to `peer`, if there is one.
fn direct_address(status: &serde_json::Value, peer: &str) -> Option<String> {
    connections(status)
        .iter()
        .find(|c| c["peer"] == peer && c["relayed"] == false)
        .map(|c| text(c, "address").to_owned())
}

fn connected_to(status: &serde_json::Value, peer: &str) -> bool {
    connections(status).iter().any(|c| c["peer"] == peer)
}

fn private_with_relay(status: &serde_json::Value) -> bool {
    text(status, "reachability") == "private" && number(status, "relay_reservations") >= 1
}

fn public_address(host: &Host) -> &str {
    &host.router.as_ref().expect("a home host").1
}

#[test]
fn nodes_behind_nat_punch_through_and_survive_outages() {
    if let Some(why) = Testbed::unavailable() {
        println!("skipped: the NAT testbed cannot run here: {why}");
        return;
    }
    let outage = Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let mut bed = Testbed::new().expect("the testbed builds");
    let boot_host = bed.public_host("boot", 1).unwrap();
    let a_host = bed.home("a", 1, Nat::EndpointIndependent).unwrap();
    let b_host = bed.home("b", 2, Nat::EndpointIndependent).unwrap();
    let c_host = bed.home("c", 3, Nat::Symmetric).unwrap();
    let d_host = bed.home("d", 4, Nat::EndpointIndependent).unwrap();
    let e_host = bed.home("e", 5, Nat::EndpointIndependent).unwrap();

    let (boot, bootstrap) = start_bootstrap(&boot_host, &dir.path().join("boot"));
    let boot_id = boot.until("the bootstrap node's status", |s| {
        !text(s, "peer_id").is_empty()
    })["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // 1. A and B behind endpoint-independent NATs.
    let started = Instant::now();
    let a = join(&a_host, &dir.path().join("a"), &bootstrap);
    let a_status = a.until("A private with a relay reservation", private_with_relay);
    let a_reserved = started.elapsed();
    let a_id = text(&a_status, "peer_id").to_owned();
    let b_started = Instant::now();
    let b = join(&b_host, &dir.path().join("b"), &bootstrap);
    // D and E speak only QUIC: punching through over QUIC is shown apart from TCP.
    let quic_bootstrap = bootstrap.replace("/tcp/4001/", "/udp/4001/quic-v1/");
    let d = join_on(
        &d_host,
        &dir.path().join("d"),
        &quic_bootstrap,
        &[QUIC_LISTEN],
    );
    let e = join_on(
        &e_host,
        &dir.path().join("e"),
        &quic_bootstrap,
        &[QUIC_LISTEN],
    );
    let e_id = text(
        &e.until("E's status", |s| !text(s, "peer_id").is_empty()),
        "peer_id",
    )
    .to_owned();
    b.until("B accepts bundles", |s| number(s, "bundles_accepted") > 0);
    let b_first_bundle = b_started.elapsed();
    let b_id = text(&b.status().expect("B answers"), "peer_id").to_owned();
    let direct = a.until("a direct connection from A to B", |s| {
        direct_address(s, &b_id).is_some()
    });
    let b_direct = b_started.elapsed();
    let to_b = direct_address(&direct, &b_id).unwrap();
    b.until("B private with a relay reservation", private_with_relay);
    assert!(
        to_b.starts_with(&format!("/ip4/{}/", public_address(&b_host))),
        "A reaches B at B's NAT's public address, not through a circuit: {to_b}"
    );
    let b_now = b.until("B sees the direct connection from A", |s| {
        direct_address(s, &a_id).is_some()
    });
    assert!(
        number(&direct, "hole_punches") + number(&b_now, "hole_punches") >= 1,
        "the direct connection came from hole punching: A {direct:#?} B {b_now:#?}"
    );
    let transport = if to_b.contains("/quic-v1") {
        "QUIC"
    } else {
        "TCP"
    };

    // Bundles keep flowing over the punched connection once the relay is gone.
    let d_to_e = d.until("a direct QUIC connection from D to E", |s| {
        direct_address(s, &e_id).is_some()
    });
    let quic_punched = direct_address(&d_to_e, &e_id).unwrap();
    assert!(
        quic_punched.starts_with(&format!("/ip4/{}/udp/", public_address(&e_host)))
            && quic_punched.contains("/quic-v1"),
        "D reaches E over QUIC at E's NAT's public address: {quic_punched}"
    );

    boot.stop("bootstrap");
    let before = number(&a.status().expect("A answers"), "bundles_accepted");
    a.until("A accepting B's bundles with the relay stopped", |s| {
        number(s, "bundles_accepted") > before + 2 && direct_address(s, &b_id).is_some()
    });

    // 2. The relay comes back on the same address: both reconnect and reserve again.
    let restarted_at = Instant::now();
    let (boot, _) = start_bootstrap(&boot_host, &dir.path().join("boot"));
    for (name, node) in [("A", &a), ("B", &b)] {
        node.until(&format!("{name} back on the restarted relay"), |s| {
            connected_to(s, &boot_id) && number(s, "relay_reservations") >= 1
        });
    }
    let reconnected_after = restarted_at.elapsed();

    // 3. C behind a symmetric NAT: punching fails, bundles still arrive, the status says why.
    let c_started = Instant::now();
    let c = join(&c_host, &dir.path().join("c"), &bootstrap);
    c.until("C accepts bundles", |s| number(s, "bundles_accepted") > 0);
    let c_first_bundle = c_started.elapsed();
    c.until("C private with a relay reservation", private_with_relay);
    let failures = |status: &serde_json::Value| number(status, "hole_punch_failures");
    c.until("a failed hole punch to C", |s| {
        let others = [&a, &b]
            .iter()
            .filter_map(|node| node.status())
            .map(|status| failures(&status))
            .sum::<u64>();
        failures(s) + others >= 1
    });
    let c_now = c.status().expect("C answers");
    assert!(
        connections(&c_now)
            .iter()
            .filter(|conn| conn["peer"] == a_id.as_str() || conn["peer"] == b_id.as_str())
            .all(|conn| conn["relayed"] == true),
        "no direct connection can exist through a symmetric NAT: {c_now:#?}"
    );
    let words = text(&c_now, "connectivity");
    assert!(
        words.starts_with("behind NAT, reachable through"),
        "C's status says where it stands: {words}"
    );

    // 4. A's home link down: A trains alone meanwhile and rejoins after.
    let a_before = a.status().expect("A answers");
    bed.set_home_link(&a_host, false).unwrap();
    let down_at = Instant::now();
    a.until("A training while its link is down", |s| {
        number(s, "round") > number(&a_before, "round") + 2
    });
    while down_at.elapsed() < outage {
        assert!(a.status().is_some(), "A keeps answering while offline");
        std::thread::sleep(Duration::from_millis(500));
    }
    bed.set_home_link(&a_host, true).unwrap();
    let back_at = Instant::now();
    let offline = a.status().expect("A answers");
    a.until("A receiving bundles again after the outage", |s| {
        number(s, "bundles_accepted") > number(&offline, "bundles_accepted") + 2
    });
    let rejoined_after = back_at.elapsed();

    for (name, node) in [
        ("A", a),
        ("B", b),
        ("C", c),
        ("D", d),
        ("E", e),
        ("bootstrap", boot),
    ] {
        node.stop(name);
    }
    let seconds = |elapsed: Duration| elapsed.as_secs_f64().round();
    crate::summary(&format!(
        "nat traversal: punched through over {transport} (A and B) and over QUIC (D and E); from \
         its start, A was found private and held a relay slot after {} s, B accepted its first \
         bundle after {} s and was directly connected to A after {} s, C (symmetric NAT, never \
         punched) accepted its first bundle after {} s; bundles flowed with the relay stopped; \
         A and B back on the restarted relay within {} s; A received bundles {} s after a {} s \
         outage ended; 0 panics",
        seconds(a_reserved),
        seconds(b_first_bundle),
        seconds(b_direct),
        seconds(c_first_bundle),
        seconds(reconnected_after),
        seconds(rejoined_after),
        seconds(outage),
    ));
}
