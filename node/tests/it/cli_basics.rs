//! The binary as a user runs it: exit codes, output and error messages of `identity`, `config` and
//! `warmup`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary with a clean `SWARM_*` environment so the caller's shell cannot change the outcome.
fn command(args: &[&str], cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_swarm-node"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", crate::common::node::test_home());
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("SWARM_")) {
        command.env_remove(name);
    }
    command
}

fn swarm_node(args: &[&str], cwd: &Path) -> Output {
    command(args, cwd)
        .output()
        .expect("the swarm-node binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn identity_is_created_once_and_then_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let first = swarm_node(&["identity", "--data-dir", "node-a"], dir.path());
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = swarm_node(&["identity", "--data-dir", "node-a"], dir.path());
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(text(&first.stdout), text(&second.stdout));
    assert!(text(&first.stdout).contains("peer id:    12D3KooW"));

    let key = dir.path().join("node-a/identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = swarm_node(&["identity", "--data-dir", "node-a"], dir.path());
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("chmod 600"),
        "{}",
        text(&refused.stderr)
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let original = std::fs::read_to_string(&key).unwrap();
    std::fs::write(&key, &original[..20]).unwrap();
    let damaged = swarm_node(&["identity", "--data-dir", "node-a"], dir.path());
    assert_eq!(damaged.status.code(), Some(1));
    assert!(
        text(&damaged.stderr).contains("damaged"),
        "{}",
        text(&damaged.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        &original[..20],
        "the file is kept for the operator"
    );
}

#[test]
fn config_show_prints_the_effective_layers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("node.toml"), "[net]\nnetwork = \"lab\"\n").unwrap();
    let out = command(
        &[
            "config",
            "show",
            "--config",
            "node.toml",
            "--data-dir",
            "elsewhere",
        ],
        dir.path(),
    )
    .env("SWARM_NODE_SEED", "42")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: toml::Table = toml::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(shown["net"]["network"].as_str(), Some("lab"));
    assert_eq!(shown["node"]["seed"].as_integer(), Some(42));
    assert_eq!(shown["node"]["data_dir"].as_str(), Some("elsewhere"));
}

#[test]
fn bad_config_is_a_clear_error_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("node.toml"), "[net]\nmax_conections = 5\n").unwrap();
    let out = swarm_node(&["config", "show", "--config", "node.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("`net.max_conections`") && stderr.contains("max_connections"),
        "{stderr}"
    );

    let missing = swarm_node(&["config", "show", "--config", "absent.toml"], dir.path());
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("absent.toml"));
}

#[test]
fn tasks_list_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let list = swarm_node(&["tasks", "list"], dir.path());
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listed = text(&list.stdout);
    for family in [
        "basic_arithmetic",
        "countdown",
        "arc_1d",
        "calendar_arithmetic",
    ] {
        assert!(listed.contains(family), "{listed}");
    }

    let show = swarm_node(
        &[
            "tasks",
            "show",
            "sorting",
            "--difficulty",
            "1",
            "--n",
            "3",
            "--json",
        ],
        dir.path(),
    );
    assert!(show.status.success(), "{}", text(&show.stderr));
    let rows: Vec<serde_json::Value> = text(&show.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[0]["prompt"].as_str().unwrap().starts_with("Sort"));

    let unknown = swarm_node(&["tasks", "show", "poetry"], dir.path());
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("unknown task family `poetry`"));
    let too_hard = swarm_node(
        &["tasks", "show", "sorting", "--difficulty", "9"],
        dir.path(),
    );
    assert_eq!(too_hard.status.code(), Some(1));
    assert!(text(&too_hard.stderr).contains("maximum 3"));
}

#[test]
fn bench_prints_json_and_logprobs_needs_weights() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bench = |kind: &str, shape: &[&str]| {
        let common = [
            "--prompt-tokens",
            "4",
            "--new-tokens",
            "2",
            "--iterations",
            "1",
            "--json",
        ];
        let args: Vec<&str> = ["bench", kind]
            .iter()
            .chain(shape)
            .chain(&common)
            .copied()
            .collect();
        swarm_node(&args, &root)
    };
    let out = bench("train", &["--batch", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(report["kind"], "train");
    assert!(report["tokens_per_second"].as_f64().unwrap() > 0.0);
    let sample =
        |distinct: &str| bench("sample", &["--batch", "4", "--distinct-prompts", distinct]);
    let out = sample("2");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(
        (&report["kind"], &report["distinct_prompts"]),
        (&"sample".into(), &2.into())
    );
    let refused = sample("5");
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("between 1 and the batch size"));
    let matmul = swarm_node(
        &[
            "bench",
            "matmul",
            "--size",
            "64",
            "--iterations",
            "2",
            "--json",
        ],
        &root,
    );
    assert!(matmul.status.success(), "{}", text(&matmul.stderr));
    let report: serde_json::Value = serde_json::from_str(text(&matmul.stdout).trim()).unwrap();
    assert_eq!(
        (&report["kind"], &report["size"]),
        (&"matmul".into(), &64.into())
    );
    assert!(report["gflop_per_second"].as_f64().unwrap() > 0.0);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        report["threads"], cores,
        "the ceiling is measured on every core"
    );

    let dir = tempfile::tempdir().unwrap();
    let model = root.join("configs/models/tiny");
    let missing = swarm_node(
        &[
            "logprobs",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "1+1=",
            "--completion",
            "2",
        ],
        dir.path(),
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("no *.safetensors weights"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn warmup_leaves_a_directory_it_did_not_write_whole() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/models/tiny");
    let dir = tempfile::tempdir().unwrap();
    let made = swarm_node(&["identity", "--data-dir", "node-a"], dir.path());
    assert!(made.status.success(), "{}", text(&made.stderr));
    let key = dir.path().join("node-a/identity.key");
    let original = std::fs::read(&key).unwrap();

    let refused = command(
        &[
            "warmup",
            "--model",
            model.to_str().unwrap(),
            "--out",
            "node-a",
        ],
        dir.path(),
    )
    .env("SWARM_WARMUP_STEPS", "2")
    .output()
    .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("node-a") && stderr.contains("identity.key"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        original,
        "the identity survives"
    );
    assert!(
        !dir.path().join("node-a.tmp").exists(),
        "the refused warm start is cleaned up"
    );

    // A warm start may replace an earlier warm start in the same place.
    for _ in 0..2 {
        let written = command(
            &["warmup", "--model", model.to_str().unwrap(), "--out", "ws"],
            dir.path(),
        )
        .env("SWARM_WARMUP_STEPS", "2")
        .output()
        .unwrap();
        assert!(written.status.success(), "{}", text(&written.stderr));
        let log = text(&written.stderr);
        assert!(log.contains("warm start trained"), "{log}");
        assert!(
            !log.contains('\u{1b}'),
            "no colour codes in a log that is not a terminal: {log:?}"
        );
    }
    assert!(dir.path().join("ws/config.json").exists());
}

#[test]
fn version_completions_and_manual_page() {
    let dir = tempfile::tempdir().unwrap();
    let version = swarm_node(&["--version"], dir.path());
    assert!(version.status.success());
    let version = text(&version.stdout);
    assert!(
        version.starts_with(&format!("swarm-node {}", env!("CARGO_PKG_VERSION")))
            && version.contains(&format!("protocol {}", swarm_protocol::PROTOCOL_VERSION))
            && version.contains("commit "),
        "{version}"
    );
    let completions = swarm_node(&["completions", "bash"], dir.path());
    assert!(completions.status.success());
    let completions = text(&completions.stdout);
    assert!(
        completions.contains("swarm-node") && completions.contains("simulate"),
        "{completions}"
    );
    let manual = swarm_node(&["man"], dir.path());
    assert!(manual.status.success());
    assert!(
        text(&manual.stdout).starts_with(".ie"),
        "{}",
        text(&manual.stdout)
    );
    let listing = swarm_node(&["simulate", "--list-plans"], dir.path());
    assert!(listing.status.success());
    let listing = text(&listing.stdout);
    for name in ["sim-quick", "sim-sapo-sweep", "tiny", "tiny-pairs"] {
        assert!(listing.contains(name), "{listing}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written to the working directory"
    );
}
