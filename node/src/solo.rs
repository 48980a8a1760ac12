//! Solo training as `swarm-node train --solo` runs it: the configured learner's rounds, one after
//! another, with no network.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use swarm_learner::{Learner, NullNetwork};

use crate::config::NodeConfig;
use crate::setup::{node_learner, node_tasks, print_round, record_round};
use crate::status::StatusBoard;

/// Trains alone for `rounds` more rounds (resuming from the newest checkpoint), or until `stop` is
/// set, printing a line per round and publishing each round to `board`; checkpoints at the end.
pub fn train_solo(
    config: &NodeConfig,
    rounds: u64,
    board: &StatusBoard,
    stop: &AtomicBool,
) -> Result<Learner> {
    let mut learner = node_learner(config, node_tasks(config)?)?;
    let target = learner.round() + rounds;
    while learner.round() < target && !stop.load(Ordering::SeqCst) {
        let metrics = learner.run_round(&mut NullNetwork)?;
        print_round(&metrics, None);
        record_round(board, &metrics)?;
    }
    learner.checkpoint()?;
    Ok(learner)
}
