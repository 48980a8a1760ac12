//! A four-process swarm on loopback (a bootstrap node and three learners) under faults: one learner
//! is killed with SIGKILL and restarted, another is frozen (SIGSTOP) while the others train on, then
//! thawed. Nobody panics, the others keep training throughout, and the restarted learner comes back
//! with the same peer id, resumes from its newest checkpoint and rejoins the mesh.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use swarm_tests::{Running, free_local_addr, poll, small_node, status, wait_for_line};

use crate::long_variant;

const NETWORK: &str = "fault-swarm";
const WAIT: Duration = Duration::from_secs(180);

fn start(data: &Path, http: &str, args: &[&str]) -> Running {
    let log = data.with_extension(format!("{}.log", std::process::id()));
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    let mut node = small_node(data);
    // A 3-step warm start rarely answers correctly; a format reward gives groups reward
    // differences, so the learners have something to train on and to share.
    node.env("SWARM_LEARNER_FORMAT_REWARD", "0.4")
        .env("SWARM_LEARNER_CHECKPOINT_EVERY", "2")
        .args(["--http", http])
        .args(args);
    Running::spawn(node, log)
}

/// A learner joining through `bootstrap` with its API on `api`.
fn join(data: &Path, api: SocketAddr, bootstrap: &str) -> Running {
    start(
        data,
        &api.to_string(),
        &[
            "join",
            "--network",
            NETWORK,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--bootstrap",
            bootstrap,
        ],
    )
}

fn field(status: &serde_json::Value, key: &str) -> u64 {
    status[key].as_u64().unwrap_or(0)
}

fn accepted(status: &serde_json::Value) -> u64 {
    status["validation"]["accept"].as_u64().unwrap_or(0)
}

/// Waits until the learner at `api` reports a round past `round` with at least one peer and more
/// than `accepted_before` accepted bundles; returns its status.
fn training_with_peers(
    name: &str,
    api: SocketAddr,
    round: u64,
    accepted_before: u64,
) -> serde_json::Value {
    poll(
        &format!("learner {name} past round {round}, with peers, accepting bundles"),
        WAIT,
        || {
            let now = status(api)?;
            (field(&now, "round") > round
                && field(&now, "peers") >= 1
                && accepted(&now) > accepted_before)
                .then_some(now)
        },
    )
}

/// The round of a `round N ...` line.
fn round_of_line(line: &str) -> Option<u64> {
    line.strip_prefix("round")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_swarm_survives_a_kill_and_a_freeze() {
    // Rounds learner c trains while b is frozen.
    let frozen_rounds = if long_variant() { 600 } else { 20 };
    let dir = tempfile::tempdir().unwrap();
    let boot = start(
        &dir.path().join("boot"),
        "off",
        &[
            "bootstrap",
            "--network",
            NETWORK,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
    );
    let bootstrap = wait_for_line(&boot.stdout, "the bootstrap address", WAIT, |l| {
        l.starts_with("listening on ") && l.contains("/p2p/")
    })
    .trim_start_matches("listening on ")
    .to_owned();

    let names = ["a", "b", "c"];
    let apis: Vec<SocketAddr> = names.iter().map(|_| free_local_addr()).collect();
    let mut learners: Vec<Option<Running>> = names
        .iter()
        .zip(&apis)
        .map(|(name, api)| Some(join(&dir.path().join(name), *api, &bootstrap)))
        .collect();
    // Past round 2, each has written a checkpoint (every 2 rounds).
    let before: Vec<serde_json::Value> = names
        .iter()
        .zip(&apis)
        .map(|(name, api)| training_with_peers(name, *api, 2, 0))
        .collect();

    // Kill -9 learner a in the middle of training, and restart it on the same data directory.
    let peer_id = before[0]["peer_id"].clone();
    let killed = learners[0].take().unwrap();
    killed.process.signal("KILL");
    drop(killed);
    let newest = swarm_policy::checkpoint::latest(&dir.path().join("a/checkpoints"))
        .unwrap()
        .expect("learner a checkpointed before the kill");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(newest.join("state.json")).unwrap()).unwrap();
    let resumed_round = state["extra"]["round"].as_u64().unwrap();
    let restarted = join(&dir.path().join("a"), apis[0], &bootstrap);
    let first = wait_for_line(&restarted.stdout, "learner a's first round", WAIT, |l| {
        round_of_line(l).is_some()
    });
    assert_eq!(
        round_of_line(&first),
        Some(resumed_round + 1),
        "resumed from its newest checkpoint: {first}"
    );
    // Counters start again in the new process: any accepted bundle means it rejoined the mesh.
    let a_back = training_with_peers("a (restarted)", apis[0], resumed_round, 0);
    assert_eq!(
        a_back["peer_id"], peer_id,
        "the same identity after a crash"
    );
    learners[0] = Some(restarted);

    // Freeze learner b: the others keep training meanwhile, and b carries on when thawed.
    let b_before = status(apis[1]).expect("b answers before the freeze");
    learners[1].as_ref().unwrap().process.signal("STOP");
    let c_start = status(apis[2]).expect("c answers");
    let c_frozen = training_with_peers(
        "c (b frozen)",
        apis[2],
        field(&c_start, "round") + frozen_rounds,
        accepted(&c_start),
    );
    learners[1].as_ref().unwrap().process.signal("CONT");
    training_with_peers(
        "b (thawed)",
        apis[1],
        field(&b_before, "round"),
        accepted(&b_before),
    );
    training_with_peers(
        "c (b thawed)",
        apis[2],
        field(&c_frozen, "round"),
        accepted(&c_frozen),
    );

    for (name, learner) in names.iter().zip(learners) {
        learner.unwrap().stop(name);
    }
    boot.stop("bootstrap");
    crate::summary(&format!(
        "swarm faults: 1 kill -9 and restart (same peer id, resumed at round {}), 1 freeze of \
         a peer for {frozen_rounds} rounds of another, 4 clean exits, 0 panics",
        resumed_round + 1
    ));
}
