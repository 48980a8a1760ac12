//! `swarm-node simulate` as a researcher runs it: three real nodes on loopback (one publishing
//! garbage), each learning, exchanging signed bundles over gossipsub, and a report with charts; the
//! live dashboard of the running swarm.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PLAN: &str = r#"
[sim]
name = "ci"
rounds = 4
seeds = [7]
eval_questions = 4

# Long enough that completions disagree (pass@1 about one half), so groups carry a learning signal.
[warmup]
families = ["propositional_logic"]
steps = 30

[learner]
families = ["propositional_logic"]
prompts_per_round = 3
group_size = 4
max_new_tokens = 6
external_share_cap = 1.0
rollout_log = true

[[kind]]
name = "honest"
count = 2

[[kind]]
name = "noisy"
count = 1
adversary = "garbage"

[[configuration]]
name = "3/3"
local = 3
external = 3
"#;

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `swarm-node simulate` of `plan` into `out`.
fn simulate(plan: &Path, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_swarm-node"));
    command
        .env_remove("RUST_LOG")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", crate::common::node::test_home())
        .args(["simulate", "--config"])
        .arg(plan)
        .arg("--out")
        .arg(out);
    command
}

/// Runs `simulate --http 127.0.0.1:0` and polls the dashboard's `/api/history` while it runs; returns
/// the process output and the first history row seen.
fn simulate_with_dashboard(plan: &Path, out: &Path) -> (Output, Option<serde_json::Value>) {
    let mut child = simulate(plan, out)
        .args(["--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = BufReader::new(stdout).read_to_end(&mut text);
        text
    });
    let (address_tx, address_rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line
                .strip_prefix("simulation dashboard on http://")
                .and_then(|rest| rest.trim_end_matches('/').parse::<SocketAddr>().ok())
            {
                let _ = address_tx.send(address);
            }
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
        text
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut row = None;
    if let Ok(address) = address_rx.recv_timeout(Duration::from_secs(600)) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while row.is_none() && Instant::now() < deadline {
            let history = runtime.block_on(swarm_node::http::get_json(
                address,
                "/api/history",
                Duration::from_secs(5),
            ));
            match history {
                Ok(rows) => row = rows.as_array().and_then(|rows| rows.first().cloned()),
                // The server stops with the simulation.
                Err(_) if child.try_wait().ok().flatten().is_some() => break,
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let status = child.wait().unwrap();
    let output = Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (output, row)
}

#[test]
fn three_nodes_learn_from_each_other_and_the_report_is_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        PLAN.replace(
            "[[kind]]\nname = \"honest\"",
            &format!(
                "[[kind]]\nname = \"honest\"\nmodel = {:?}",
                root.join("configs/models/tiny")
            ),
        )
        .replace(
            "name = \"noisy\"",
            &format!(
                "name = \"noisy\"\nmodel = {:?}",
                root.join("configs/models/tiny")
            ),
        )
        .replace(
            "[sim]",
            &format!("[sim]\ncache_dir = {:?}", dir.path().join("cache")),
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let (output, live_row) = simulate_with_dashboard(&plan, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "simulate failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // While it ran, the dashboard's history held swarm-wide rows with every node's reward.
    let live_row = live_row.expect("the simulation dashboard served a round while running");
    assert_eq!(
        live_row["reward_by_node"]
            .as_object()
            .map(|nodes| nodes.len()),
        Some(3),
        "{live_row}"
    );
    assert!(live_row["reward_local"].is_number(), "{live_row}");
    assert!(stdout.contains("| 3/3 | 1 |"), "{stdout}");

    let summary = json(&out.join("summary.json"));
    let configuration = &summary["configurations"][0];
    assert_eq!(configuration["name"], "3/3");
    assert_eq!(configuration["honest_nodes"], 2);
    assert!(
        configuration["cumulative_reward"]
            .as_f64()
            .unwrap()
            .is_finite()
    );

    let result = json(&out.join("3_3/seed-7/result.json"));
    let nodes = result["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let mut trained_external = 0;
    for node in nodes {
        let name = node["name"].as_str().unwrap();
        let rounds = node["rounds"].as_array().unwrap();
        assert_eq!(rounds.len(), 4, "{name} ran every round");
        assert!(node["published"].as_u64().unwrap() > 0, "{name} published");
        assert!(
            node["received"]["accept"].as_u64().unwrap_or(0) > 0,
            "{name} accepted bundles from its peers: {}",
            node["received"]
        );
        assert!(
            rounds
                .iter()
                .any(|r| r["external_groups"].as_u64().unwrap() > 0),
            "{name} took groups from its peers"
        );
        trained_external += rounds
            .iter()
            .map(|r| r["trained_external"].as_u64().unwrap())
            .sum::<u64>();
        let metrics = out.join("3_3/seed-7").join(name).join("metrics.jsonl");
        assert_eq!(
            std::fs::read_to_string(&metrics).unwrap().lines().count(),
            4,
            "{}",
            metrics.display()
        );
        assert!(node["pass_at_1_end"]["propositional_logic"].is_number());
    }
    assert!(
        trained_external > 0,
        "some node trained on other nodes' completions"
    );
    // Every receiver rescores the garbage node's completions with its own verifier: none of them
    // may enter an honest node's training data as correct, whatever reward they claimed.
    let garbage_author = nodes.iter().find(|n| n["adversary"] == "garbage").unwrap()["author"]
        .as_str()
        .unwrap()
        .to_owned();
    for node in nodes.iter().filter(|n| n["adversary"].is_null()) {
        let log = out
            .join("3_3/seed-7")
            .join(node["name"].as_str().unwrap())
            .join("rollouts.jsonl");
        for line in std::fs::read_to_string(&log).unwrap().lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            if row["provenance"]["author"] == garbage_author.as_str() {
                assert!(row["reward"].as_f64().unwrap() < 1.0, "{row}");
            }
        }
    }
    // Garbage scores zero for every completion, so a group of it has no advantage: receivers
    // discard it on arrival instead of letting it take the place of an informative group.
    let uninformative: u64 = nodes
        .iter()
        .filter(|n| n["adversary"].is_null())
        .flat_map(|n| n["rounds"].as_array().unwrap())
        .map(|r| r["external_uninformative"].as_u64().unwrap())
        .sum();
    assert!(
        uninformative > 0,
        "honest nodes received the garbage node's bundles and judged them uninformative"
    );

    for chart in ["reward-3_3.svg", "cumulative-reward.svg", "accuracy.svg"] {
        let svg = std::fs::read_to_string(out.join(chart)).unwrap();
        assert!(svg.contains("<svg"), "{chart}");
        assert!(
            svg.contains("<polyline") || svg.contains("<path"),
            "{chart} has lines"
        );
    }
    let markdown = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(markdown.contains("Cumulative reward"), "{markdown}");

    // A second run into the same directory is refused, not merged.
    let again = simulate(&plan, &out).output().unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
