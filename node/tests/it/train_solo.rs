//! `train --solo` as a user runs it: a real node process with its HTTP API, the dashboard in a
//! headless browser, and a SIGKILL in the middle of training followed by an exact resume.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use swarm_tests::{poll, rounds_in};

use crate::common::node::{KillOnDrop, small_node};

/// A small node that checkpoints every round, running `args`.
fn quick(args: &[&str], data_dir: &Path) -> Command {
    let mut command = small_node(data_dir);
    command
        .env("SWARM_LEARNER_CHECKPOINT_EVERY", "1")
        .args(args);
    command
}

#[test]
fn killed_training_resumes_from_its_last_checkpoint() {
    let data = tempfile::tempdir().unwrap();
    let mut command = quick(
        &["train", "--solo", "--rounds", "1000", "--http", "off"],
        data.path(),
    );
    let mut node = KillOnDrop(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let checkpoints = data.path().join("checkpoints");
    poll("three checkpoints", Duration::from_secs(600), || {
        let count = std::fs::read_dir(&checkpoints)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("round-"))
            .count();
        let newest = swarm_policy::checkpoint::latest(&checkpoints).ok()??;
        (count >= 3 && newest.join("state.json").exists()).then_some(())
    });
    node.0.kill().unwrap();
    node.0.wait().unwrap();

    // Whatever instant the kill hit, the newest complete checkpoint is whole and loadable.
    let newest = swarm_policy::checkpoint::latest(&checkpoints)
        .unwrap()
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(newest.join("state.json")).unwrap()).unwrap();
    let saved_round = state["extra"]["round"].as_u64().unwrap();
    swarm_policy::Policy::load(&newest, &candle_core::Device::Cpu)
        .expect("the checkpoint is a loadable model");

    let output = quick(
        &["train", "--solo", "--rounds", "1", "--http", "off"],
        data.path(),
    )
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("trained to round {}", saved_round + 1)),
        "{stdout}"
    );
    let rounds = rounds_in(&data.path().join("metrics.jsonl"));
    let expected: Vec<u64> = (1..=saved_round + 1).collect();
    assert_eq!(rounds, expected, "metrics hold each round exactly once");
}

#[test]
fn sigterm_finishes_the_round_and_saves_it() {
    let data = tempfile::tempdir().unwrap();
    // Checkpoints only every 1000 rounds: the one found after the stop is the stop's own.
    let mut command = small_node(data.path());
    command
        .env("SWARM_LEARNER_CHECKPOINT_EVERY", "1000")
        .args(["train", "--solo", "--rounds", "1000", "--http", "off"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut node = KillOnDrop(command.spawn().unwrap());
    let rounds = crate::common::node::lines(&mut node.0);
    swarm_tests::wait_for_line(&rounds, "round 3", Duration::from_secs(600), |l| {
        l.starts_with("round    3")
    });
    node.signal("TERM");
    let farewell =
        swarm_tests::wait_for_line(&rounds, "the closing line", Duration::from_secs(600), |l| {
            l.starts_with("trained to round")
        });
    assert!(node.0.wait().unwrap().success());
    assert!(farewell.contains("(stopped by a signal)"), "{farewell}");
    let last: u64 = farewell
        .trim_start_matches("trained to round ")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3..1000).contains(&last), "{farewell}");
    let newest = swarm_policy::checkpoint::latest(&data.path().join("checkpoints"))
        .unwrap()
        .expect("a checkpoint of the last round");
    assert!(newest.ends_with(format!("round-{last:010}")), "{newest:?}");
    assert_eq!(
        rounds_in(&data.path().join("metrics.jsonl")),
        (1..=last).collect::<Vec<_>>()
    );
}

#[test]
fn dashboard_of_a_training_node_shows_its_rounds() {
    let Some(browser) = common::chromium::find() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut command = quick(
        &[
            "train",
            "--solo",
            "--rounds",
            "1000",
            "--http",
            "127.0.0.1:0",
        ],
        data.path(),
    );
    let mut node = KillOnDrop(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = BufReader::new(node.0.stderr.take().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("HTTP API and dashboard on http://").nth(1) {
                let _ = sender.send(rest.trim_end_matches('/').to_owned());
            }
        }
    });
    let addr = receiver
        .recv_timeout(Duration::from_secs(120))
        .expect("the node prints its HTTP address");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    poll("two rounds in the API", Duration::from_secs(600), || {
        let history = runtime
            .block_on(swarm_node::http::get_json(
                addr,
                "/api/history",
                Duration::from_secs(5),
            ))
            .ok()?;
        (history.as_array()?.len() >= 2).then_some(())
    });
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/");
    let dom = common::chromium::dump_dom(&browser, profile.path(), &url);
    assert_eq!(
        common::chromium::body_attribute(&dom, "state").as_deref(),
        Some("data"),
        "{dom}"
    );
    assert!(
        dom.contains("sorting"),
        "the accuracy chart names the family"
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-node.png");
    common::chromium::screenshot(&browser, profile.path(), &url, &shot);
    eprintln!(
        "dashboard screenshot of a training node: {}",
        shot.display()
    );
}
