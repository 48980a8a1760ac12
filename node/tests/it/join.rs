//! `swarm-node bootstrap` and `swarm-node join` as separate processes on loopback: two learners find
//! each other through the bootstrap node, train on each other's rollouts, report it through the HTTP
//! API and /metrics, and leave cleanly on SIGTERM with a checkpoint of the round they finished; and a
//! learner whose peer crashes keeps training and reconnects.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use swarm_tests::free_local_addr;

use crate::common::node::{KillOnDrop, lines, small_node};

/// A small node process with `http` as its API address (or `off`).
fn command(data_dir: &Path, http: &str) -> Command {
    let mut command = small_node(data_dir);
    command
        // A 3-step warm start rarely answers correctly; a large format reward still gives groups
        // reward differences, so the learners have something to train on from the start.
        .env("SWARM_LEARNER_FORMAT_REWARD", "0.4")
        .args(["--http", http])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// The body of a plain HTTP/1.1 GET.
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// Waits up to two minutes for a line of `rx` that `matches`.
fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    what: &str,
    matches: impl Fn(&str) -> bool,
) -> String {
    swarm_tests::wait_for_line(rx, what, Duration::from_secs(120), matches)
}

/// A bootstrap node listening on `listen`, its stdout, and the multiaddr it printed.
fn start_bootstrap(
    data_dir: &Path,
    network: &str,
    listen: &str,
) -> (KillOnDrop, mpsc::Receiver<String>, String) {
    let mut child = command(data_dir, "off")
        .args(["bootstrap", "--network", network, "--listen", listen])
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    let address = wait_for_line(&rx, "the bootstrap address", |l| {
        l.starts_with("listening on ") && l.contains("/p2p/")
    })
    .trim_start_matches("listening on ")
    .to_owned();
    (KillOnDrop(child), rx, address)
}

/// A learner joining `network` through `bootstrap`, and its stdout.
fn start_join(
    data_dir: &Path,
    http: &str,
    network: &str,
    bootstrap: &str,
) -> (KillOnDrop, mpsc::Receiver<String>) {
    let mut child = command(data_dir, http)
        .args([
            "join",
            "--network",
            network,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--bootstrap",
            bootstrap,
        ])
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    (KillOnDrop(child), rx)
}

#[test]
fn two_learners_share_rollouts_through_a_bootstrap_node_and_stop_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let network = "join-test";
    let (boot, _boot_lines, address) =
        start_bootstrap(&dir.path().join("boot"), network, "/ip4/127.0.0.1/tcp/0");

    let api = free_local_addr();
    let mut learners = Vec::new();
    for name in ["a", "b"] {
        let http = if name == "a" {
            api.to_string()
        } else {
            "off".to_owned()
        };
        let (process, rx) = start_join(&dir.path().join(name), &http, network, &address);
        learners.push((name, process, rx));
    }

    // Each learner reports its peer count and how many of its peers' groups a round took. (Whether
    // they are trained on depends on reward variance; the simulation test covers that.)
    for (name, _, rx) in &learners {
        wait_for_line(rx, &format!("learner {name} taking peers' groups"), |l| {
            l.starts_with("round")
                && l.split("peer groups ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
        });
    }

    // The operator's view of learner a: its API reports peers and accepted bundles, and /metrics
    // labels the gossip outcomes.
    let status = Command::new(env!("CARGO_BIN_EXE_swarm-node"))
        .args(["status", "--json", "--api", &api.to_string()])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["network"], network);
    assert!(status["peers"].as_u64().unwrap() >= 1, "{status}");
    assert!(
        status["bundles_published"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert!(
        status["validation"]["accept"].as_u64().unwrap() > 0,
        "{status}"
    );
    let metrics = http_get(api, "/metrics");
    assert!(
        metrics.contains("swarm_gossip_validation_total{outcome=\"accept\",reason=\"\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("swarm_peers "), "{metrics}");
    // libp2p's own metrics come in the same exposition: bytes by transport and direction.
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text");
    let sent: f64 = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "libp2p_bandwidth_bytes_total"
                && s.labels.get("direction") == Some("Outbound")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!(sent > 0.0, "{metrics}");
    assert!(
        status["bytes_sent"].as_u64().unwrap() > 0 && status["reachability"].is_string(),
        "{status}"
    );

    for (name, process, rx) in &mut learners {
        let pid = process.0.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let farewell = wait_for_line(rx, &format!("learner {name} leaving"), |l| {
            l.starts_with("left the network at round")
        });
        let exit = process.0.wait().unwrap();
        assert!(exit.success(), "learner {name} exited with {exit}");
        let round: u64 = farewell
            .trim_start_matches("left the network at round ")
            .split(';')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let state: Vec<_> = std::fs::read_dir(dir.path().join(*name).join("checkpoints"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path().join("state.json")).ok())
            .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .filter(|state| state["extra"]["round"] == round)
            .collect();
        assert_eq!(
            state.len(),
            1,
            "learner {name} saved a checkpoint of its last round ({round})"
        );
    }
    drop(boot);
}

/// The peer count a `join` round line reports.
fn peers_in(line: &str) -> Option<usize> {
    line.starts_with("round")
        .then(|| {
            line.split("peers ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .flatten()
}

#[test]
fn a_learner_keeps_training_alone_and_reconnects_when_its_peer_returns() {
    let dir = tempfile::tempdir().unwrap();
    let network = "churn-test";
    // A fixed port, so the restarted bootstrap node is found at the address the learner knows.
    let port = free_local_addr().port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let boot_dir = dir.path().join("boot");
    let (boot, _boot_lines, address) = start_bootstrap(&boot_dir, network, &listen);

    let (mut learner, rounds) = start_join(&dir.path().join("learner"), "off", network, &address);
    wait_for_line(&rounds, "the learner connected", |l| peers_in(l) == Some(1));

    drop(boot);
    wait_for_line(&rounds, "the learner training with no peer", |l| {
        peers_in(l) == Some(0)
    });
    // It keeps going alone: more rounds follow.
    wait_for_line(&rounds, "another round alone", |l| peers_in(l) == Some(0));

    let (restarted, _restarted_lines, again) = start_bootstrap(&boot_dir, network, &listen);
    assert_eq!(again, address, "same identity and port");
    wait_for_line(&rounds, "the learner reconnected", |l| {
        peers_in(l) == Some(1)
    });

    let pid = learner.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for_line(&rounds, "the learner leaving", |l| {
        l.starts_with("left the network at round")
    });
    assert!(learner.0.wait().unwrap().success());
    drop(restarted);
}
