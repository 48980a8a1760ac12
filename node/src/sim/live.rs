//! A running simulation on the node's HTTP surface (`simulate --http ADDR`): the dashboard, the
//! status API and `/metrics` show the swarm as a whole, one history row per round once every node
//! finished it: mean reward and accuracy across nodes, summed throughput, and each node's reward.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use swarm_learner::RoundMetrics;

use crate::sim::run::Progress;
use crate::status::StatusBoard;

/// Collects per-node rounds into swarm-wide rows on a [`StatusBoard`].
pub struct LiveView {
    board: Arc<StatusBoard>,
    run: Option<String>,
    pending: BTreeMap<u64, BTreeMap<usize, RoundMetrics>>,
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (count > 0).then(|| sum / count as f64)
}

/// One row for the dashboard: the same field names as a node's own history, so the same charts
/// draw it, plus `reward_by_node`.
fn swarm_row(round: u64, nodes: &BTreeMap<usize, RoundMetrics>) -> Value {
    let all = || nodes.values();
    let families: BTreeSet<&String> = all().flat_map(|m| m.accuracy.keys()).collect();
    let accuracy: Map<String, Value> = families
        .into_iter()
        .filter_map(|family| {
            let value = mean(all().filter_map(|m| m.accuracy.get(family).copied()))?;
            Some((family.clone(), json!(value)))
        })
        .collect();
    let reward_by_node: Map<String, Value> = nodes
        .iter()
        .map(|(node, m)| (format!("node-{node}"), json!(m.reward_local)))
        .collect();
    json!({
        "round": round,
        "policy_version": all().map(|m| m.policy_version).max().unwrap_or(0),
        "reward_local": mean(all().map(|m| m.reward_local)),
        "reward_external": mean(all().filter_map(|m| m.reward_external)),
        "accuracy": accuracy,
        "tokens_per_second": all().map(|m| m.tokens_per_second).sum::<f64>(),
        "step_seconds": mean(all().map(|m| m.step_seconds)),
        "external_groups": all().map(|m| m.external_groups).sum::<usize>(),
        "reward_by_node": reward_by_node,
    })
}

impl LiveView {
    /// A view publishing to `board`.
    pub fn new(board: Arc<StatusBoard>) -> Self {
        LiveView {
            board,
            run: None,
            pending: BTreeMap::new(),
        }
    }

    /// Takes one node's finished round; a new configuration or seed starts a fresh history.
    pub fn record(&mut self, progress: &Progress<'_>) {
        let run = format!("{} seed {}", progress.configuration, progress.seed);
        if self.run.as_ref() != Some(&run) {
            self.pending.clear();
            self.board.clear_history();
            self.board.update(|s| {
                s.network = run.clone();
                s.peers = progress.nodes.saturating_sub(1);
                s.round = 0;
            });
            self.run = Some(run);
        }
        let round = progress.metrics.round;
        let nodes = self.pending.entry(round).or_default();
        nodes.insert(progress.node, progress.metrics.clone());
        if nodes.len() < progress.nodes {
            return;
        }
        let Some(nodes) = self.pending.remove(&round) else {
            return;
        };
        let row = swarm_row(round, &nodes);
        self.board.update(|s| {
            s.round = round;
            s.policy_version = row["policy_version"].as_u64().unwrap_or(0);
            s.last_reward = row["reward_local"].as_f64();
            s.tokens_per_second = row["tokens_per_second"].as_f64();
        });
        self.board.push_history(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::NodeStatus;

    fn metrics(round: u64, reward: f64, accuracy: f64) -> RoundMetrics {
        RoundMetrics {
            round,
            reward_local: reward,
            accuracy: [("sorting".to_owned(), accuracy)].into(),
            tokens_per_second: 100.0,
            ..RoundMetrics::default()
        }
    }

    fn progress<'a>(node: usize, seed: u64, metrics: &'a RoundMetrics) -> Progress<'a> {
        Progress {
            configuration: "4/4",
            seed,
            node,
            nodes: 2,
            rounds: 10,
            metrics,
        }
    }

    #[test]
    fn a_row_appears_once_every_node_finished_the_round() {
        let board = Arc::new(StatusBoard::new(NodeStatus::default()));
        let mut view = LiveView::new(board.clone());
        let (a1, b1, a2) = (
            metrics(1, 0.2, 0.25),
            metrics(1, 0.6, 0.75),
            metrics(2, 1.0, 1.0),
        );
        view.record(&progress(0, 1, &a1));
        view.record(&progress(0, 1, &a2));
        assert!(
            board.history(10).is_empty(),
            "node 1 has not finished round 1"
        );
        view.record(&progress(1, 1, &b1));
        let rows = board.history(10);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["round"], 1);
        assert!((rows[0]["reward_local"].as_f64().unwrap() - 0.4).abs() < 1e-12);
        assert!((rows[0]["accuracy"]["sorting"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(rows[0]["tokens_per_second"], 200.0);
        assert_eq!(rows[0]["reward_by_node"]["node-1"], 0.6);
        let status = board.snapshot();
        assert_eq!((status.round, status.network.as_str()), (1, "4/4 seed 1"));

        // The next seed is another swarm: its rounds start a new history.
        view.record(&progress(0, 2, &a1));
        view.record(&progress(1, 2, &b1));
        assert_eq!(board.history(10).len(), 1);
        assert_eq!(board.snapshot().network, "4/4 seed 2");
    }
}
