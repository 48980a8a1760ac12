//! The binary as a volunteer runs it after installing: from directories that are not the
//! repository, with only a home directory. The built-in model and plans are used, the data lives
//! under the home directory (so a second directory sees the same identity), and nothing is
//! written to the working directory but what a command is asked to write there.

use std::path::Path;
use std::process::{Command, Output};

use swarm_tests::{node_binary, start_bootstrap};

const NETWORK: &str = "anywhere";

/// The binary run in `cwd` with `home` as the home directory and nothing from the caller's
/// `SWARM_*`, `XDG_*` or `RUST_LOG` variables; small rounds, as the other process tests use.
fn node_in(cwd: &Path, home: &Path) -> Command {
    let mut command = Command::new(node_binary());
    for (name, _) in
        std::env::vars().filter(|(name, _)| name.starts_with("SWARM_") || name.starts_with("XDG_"))
    {
        command.env_remove(name);
    }
    command
        .current_dir(cwd)
        .env("HOME", home)
        .env_remove("RUST_LOG")
        .env("SWARM_WARMUP_STEPS", "3")
        .env("SWARM_WARMUP_BATCH", "4")
        .env("SWARM_LEARNER_PROMPTS_PER_ROUND", "2")
        .env("SWARM_LEARNER_GROUP_SIZE", "4")
        .env("SWARM_LEARNER_MAX_NEW_TOKENS", "4");
    command
}

fn succeeds(what: &str, command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{what}: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The peer id in a `listening on .../p2p/<id>` line of a command's output.
fn peer_id(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("listening on ")?.split("/p2p/").nth(1))
        .map(str::to_owned)
        .expect("the node prints its address")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_binary_works_from_any_directory_with_its_data_at_home() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let [first, second, third] = ["first", "second", "third"].map(|d| root.path().join(d));
    for dir in [&home, &first, &second, &third] {
        std::fs::create_dir(dir).unwrap();
    }

    let mut operator = node_in(&first, &home);
    operator
        .arg("--data-dir")
        .arg(root.path().join("operator"))
        .args(["--http", "off"]);
    let (_boot, _boot_lines, address) = start_bootstrap(operator, NETWORK);
    let join = |cwd: &Path| {
        succeeds(
            "join --rounds 1",
            node_in(cwd, &home)
                .args([
                    "--http",
                    "off",
                    "join",
                    "--rounds",
                    "1",
                    "--network",
                    NETWORK,
                ])
                .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", &address]),
        )
    };
    let joined = join(&first);
    let announced = String::from_utf8_lossy(&joined.stderr).into_owned();
    let data = home.join(".local/share/swarm-node");
    assert!(
        announced.contains(&data.display().to_string()),
        "the first start says where the data lives: {announced}"
    );
    assert!(data.join("identity.key").exists());
    let rejoined = join(&second);
    assert_eq!(
        peer_id(&joined),
        peer_id(&rejoined),
        "one identity, whatever the directory"
    );

    succeeds(
        "train --solo --rounds 1",
        node_in(&second, &home).args(["train", "--solo", "--rounds", "1", "--http", "off"]),
    );
    succeeds(
        "simulate --config sim-quick",
        node_in(&third, &home).args([
            "simulate",
            "--config",
            "sim-quick",
            "--rounds",
            "2",
            "--nodes",
            "2",
            "--out",
            "report",
        ]),
    );
    assert!(third.join("report/summary.md").exists());
    succeeds(
        "eval --n 2",
        node_in(&third, &home).args(["eval", "--n", "2"]),
    );

    // Only what was asked for lands in the working directories.
    assert_eq!(entries(&first), Vec::<String>::new());
    assert_eq!(entries(&second), Vec::<String>::new());
    assert_eq!(entries(&third), ["report"]);
}
