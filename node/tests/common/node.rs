//! `swarm-node` processes as the tests start them.

use std::path::Path;
use std::process::{Child, Command};

/// A child process that is killed when the test ends, whatever happens.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `swarm-node` command run from the repository root with `data_dir` as its data directory, a
/// 3-step warm start and small rounds, and nothing inherited from the caller's `SWARM_*` or
/// `RUST_LOG` variables.
pub fn small_node(data_dir: &Path) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut command = Command::new(env!("CARGO_BIN_EXE_swarm-node"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("SWARM_")) {
        command.env_remove(name);
    }
    command
        .current_dir(root)
        .env_remove("RUST_LOG")
        .env("SWARM_WARMUP_STEPS", "3")
        .env("SWARM_WARMUP_BATCH", "4")
        .env("SWARM_LEARNER_PROMPTS_PER_ROUND", "2")
        .env("SWARM_LEARNER_GROUP_SIZE", "4")
        .env("SWARM_LEARNER_MAX_NEW_TOKENS", "4")
        .arg("--data-dir")
        .arg(data_dir);
    command
}
