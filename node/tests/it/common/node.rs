//! `swarm-node` processes as the tests start them: this package's binary through the helpers the
//! cross-process suite (`swarm-tests`) uses too.

use std::path::{Path, PathBuf};
use std::process::Command;

pub use swarm_tests::{KillOnDrop, lines};

/// The home directory the tests give the binary, so that nothing they run writes under the real one
/// (the default data directory and a simulation's warm-start cache live there).
pub fn test_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("home")
}

/// A `swarm-node` command run from the repository root with `data_dir` as its data directory, a
/// 3-step warm start and small rounds, and nothing inherited from the caller's `SWARM_*` or
/// `RUST_LOG` variables.
pub fn small_node(data_dir: &Path) -> Command {
    swarm_tests::small_node_of(Path::new(env!("CARGO_BIN_EXE_swarm-node")), data_dir)
}
