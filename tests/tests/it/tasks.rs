//! Bring-your-own tasks across processes: learners train on a task plug-in's family and on a
//! dataset file and exchange both; a learner without the plug-in and the file ignores those
//! bundles, counting why, and still takes the unlabeled rows, which need neither. A plug-in that
//! dies stops its node with an error naming it. With a Python environment holding reasoning-gym,
//! two learners train and exchange on a ReasoningGYM family through `scripts/reasoning_gym_plugin.py`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use swarm_tests::{Running, free_local_addr, poll, repo_root, small_node, start_bootstrap, status};

const WAIT: Duration = Duration::from_secs(180);
const PLUGIN: &str = env!("CARGO_BIN_EXE_addition-plugin");

/// A node configuration file in `dir`: the plug-in (if any), the families and the datasets.
fn config_file(
    dir: &Path,
    name: &str,
    plugin: Option<&[&str]>,
    families: &[&str],
    datasets: &[String],
) -> PathBuf {
    let mut text = String::new();
    if let Some(command) = plugin {
        text.push_str(&format!(
            "[[plugin]]\ncommand = {command:?}\nfamilies = {families:?}\n\n"
        ));
    }
    text.push_str(&format!(
        "[learner]\nfamilies = {families:?}\ndatasets = [{}]\n",
        datasets.join(", ")
    ));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A bootstrap node for `network` with its data in `dir`, its API off.
fn bootstrap(dir: &Path, network: &str) -> (swarm_tests::KillOnDrop, String) {
    let mut node = small_node(&dir.join("boot"));
    node.args(["--http", "off"]);
    let (process, _lines, address) = start_bootstrap(node, network);
    (process, address)
}

/// A learner joining `network` through `bootstrap` with `config`.
fn join(
    dir: &Path,
    name: &str,
    config: &Path,
    network: &str,
    bootstrap: &str,
) -> (Running, SocketAddr) {
    let api = free_local_addr();
    let mut node = small_node(&dir.join(name));
    node.env("SWARM_LEARNER_FORMAT_REWARD", "0.4")
        .args(["--config", config.to_str().unwrap()])
        .args(["--http", &api.to_string()])
        .args([
            "join",
            "--network",
            network,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .args(["--bootstrap", bootstrap]);
    (Running::spawn(node, dir.join(format!("{name}.log"))), api)
}

fn count(status: &serde_json::Value, outcome: &str) -> u64 {
    status["validation"][outcome].as_u64().unwrap_or(0)
}

/// Waits until the learner at `api` has counted each outcome in `outcomes` at least once.
fn counted(name: &str, api: SocketAddr, outcomes: &[&str]) -> serde_json::Value {
    poll(
        &format!("learner {name} to count {outcomes:?}"),
        WAIT,
        || {
            let now = status(api)?;
            outcomes.iter().all(|o| count(&now, o) > 0).then_some(now)
        },
    )
}

/// A labeled dataset of sums and an unlabeled one, written into `dir`.
fn datasets(dir: &Path) -> (PathBuf, PathBuf) {
    let labeled = dir.join("sums.jsonl");
    let unlabeled = dir.join("open.jsonl");
    let mut rows = String::new();
    let mut open = String::new();
    for a in 0..40 {
        rows.push_str(&format!(
            "{{\"question\": \"Add {a} and 3.\", \"answer\": {}}}\n",
            a + 3
        ));
        open.push_str(&format!("{{\"question\": \"Name a number above {a}.\"}}\n"));
    }
    std::fs::write(&labeled, rows).unwrap();
    std::fs::write(&unlabeled, open).unwrap();
    (labeled, unlabeled)
}

#[test]
fn plugin_families_and_datasets_travel_to_nodes_that_have_them() {
    let dir = tempfile::tempdir().unwrap();
    let network = "byo-tasks";
    let (labeled, unlabeled) = datasets(dir.path());
    let both = [
        format!("{:?}", labeled.display().to_string()),
        format!(
            "{{ path = {:?}, hide_labels = true }}",
            unlabeled.display().to_string()
        ),
    ];
    let with = config_file(
        dir.path(),
        "with",
        Some(&[PLUGIN]),
        &["test-addition"],
        &both,
    );
    let open_only = [both[1].clone()];
    let without = config_file(dir.path(), "without", None, &["sorting"], &open_only);

    let (_boot, _boot_lines, bootstrap) =
        start_bootstrap(small_node(&dir.path().join("boot")), network);
    let (a, a_api) = join(dir.path(), "a", &with, network, &bootstrap);
    let (b, b_api) = join(dir.path(), "b", &with, network, &bootstrap);
    let (c, c_api) = join(dir.path(), "c", &without, network, &bootstrap);

    // a and b accept each other's plug-in, dataset and unlabeled bundles; c, which has neither
    // the plug-in nor the labeled file, ignores those and names why.
    for (name, api) in [("a", a_api), ("b", b_api)] {
        counted(name, api, &["accept"]);
    }
    let c_status = counted(
        "c",
        c_api,
        &[
            "accept",
            "ignore.unknown_task_family",
            "ignore.unknown_dataset",
        ],
    );
    assert_eq!(count(&c_status, "reject.task_mismatch"), 0, "{c_status}");
    let a_status = status(a_api).unwrap();
    let metrics = std::fs::read_to_string(dir.path().join("a/metrics.jsonl")).unwrap();
    for family in ["test-addition", "dataset/number", "unlabeled"] {
        assert!(
            metrics.contains(&format!("\"{family}\"")),
            "a trains on {family}: {metrics}"
        );
    }
    for (name, node) in [("a", a), ("b", b), ("c", c)] {
        node.stop(name);
    }
    crate::summary(&format!(
        "byo tasks: plug-in, dataset and unlabeled bundles accepted by nodes with them \
         (a accepted {}); the node without ignored {} for an unknown family and {} for an \
         unknown dataset, accepted {} unlabeled ones",
        count(&a_status, "accept"),
        count(&c_status, "ignore.unknown_task_family"),
        count(&c_status, "ignore.unknown_dataset"),
        count(&c_status, "accept"),
    ));
}

#[test]
fn a_plugin_that_dies_stops_its_node_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        "dying",
        Some(&[PLUGIN, "--exit-after", "30"]),
        &["test-addition"],
        &[],
    );
    let output = small_node(&dir.path().join("data"))
        .args(["--config", config.to_str().unwrap(), "--http", "off"])
        .args(["train", "--solo", "--rounds", "50"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the node went on without its plug-in: {stderr}"
    );
    assert!(
        stderr.contains("task plug-in `")
            && stderr.contains("--exit-after 30")
            && stderr.contains("exited"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The Python that has reasoning-gym: `SWARM_TEST_REASONING_GYM_PYTHON`, else the virtual
/// environment `.ci/run` makes in `target/reasoning-gym-venv`.
fn reasoning_gym_python() -> Option<PathBuf> {
    let python = std::env::var_os("SWARM_TEST_REASONING_GYM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/reasoning-gym-venv/bin/python"));
    let works = std::process::Command::new(&python)
        .args(["-c", "import reasoning_gym"])
        .output()
        .is_ok_and(|o| o.status.success());
    works.then_some(python)
}

#[test]
fn two_learners_train_and_exchange_on_a_reasoning_gym_family() {
    let Some(python) = reasoning_gym_python() else {
        println!(
            "skipped: no Python with reasoning-gym (create one with `python3 -m venv \
             target/reasoning-gym-venv && target/reasoning-gym-venv/bin/pip install \
             reasoning-gym==0.1.25`, or set SWARM_TEST_REASONING_GYM_PYTHON)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let network = "byo-reasoning-gym";
    let script = repo_root().join("scripts/reasoning_gym_plugin.py");
    let command = [python.to_str().unwrap(), script.to_str().unwrap()];
    let family = "rg/basic_arithmetic";
    let config = config_file(dir.path(), "rg", Some(&command), &[family], &[]);

    // A solo round first: the plug-in generates and scores on the training path.
    let solo = small_node(&dir.path().join("solo"))
        .args(["--config", config.to_str().unwrap(), "--http", "off"])
        .args(["train", "--solo", "--rounds", "1"])
        .output()
        .unwrap();
    assert!(
        solo.status.success(),
        "{}",
        String::from_utf8_lossy(&solo.stderr)
    );
    let metrics = std::fs::read_to_string(dir.path().join("solo/metrics.jsonl")).unwrap();
    assert!(metrics.contains(family), "{metrics}");

    let (_boot, bootstrap) = bootstrap(dir.path(), network);
    let (a, a_api) = join(dir.path(), "a", &config, network, &bootstrap);
    let (b, b_api) = join(dir.path(), "b", &config, network, &bootstrap);
    let a_status = counted("a", a_api, &["accept"]);
    let b_status = counted("b", b_api, &["accept"]);
    for (name, node) in [("a", a), ("b", b)] {
        node.stop(name);
    }
    crate::summary(&format!(
        "reasoning gym: a solo round and an exchange on {family}; accepted {} and {}",
        count(&a_status, "accept"),
        count(&b_status, "accept")
    ));
}
