//! The report of a simulation: `summary.json` (for scripts), `summary.md` (for people) and SVG charts.
//!
//! Definitions, also written into the Markdown: a node's *cumulative reward* is the sum over its
//! rounds of the mean reward of its own completions in that round (the SAPO paper's measure);
//! configuration figures average honest nodes (no adversary) within a seed, then seeds, and give the
//! standard deviation across seeds. Curves are smoothed with a trailing mean over `SMOOTHING`
//! rounds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::plot::{Chart, Series, line_chart};
use super::run::{NodeResult, RunResult, slug};

/// Rounds in the trailing mean of the reward and accuracy curves.
pub const SMOOTHING: usize = 5;

/// Aggregates of one configuration over its seeds.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigurationSummary {
    /// Configuration name.
    pub name: String,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Honest nodes per run.
    pub honest_nodes: usize,
    /// Mean over seeds of the honest nodes' mean cumulative reward.
    pub cumulative_reward: f64,
    /// Standard deviation of that across seeds (0 for one seed).
    pub cumulative_reward_std: f64,
    /// Mean own reward per completion over the last quarter of the rounds.
    pub final_reward: f64,
    /// Held-out pass@1 per family before the first round, honest nodes and seeds averaged.
    pub pass_at_1_start: BTreeMap<String, f64>,
    /// Held-out pass@1 per family after the last round.
    pub pass_at_1_end: BTreeMap<String, f64>,
    /// Share of trained completions that came from other nodes.
    pub external_share: f64,
    /// Received gossip messages by validation outcome, summed over all nodes and seeds.
    pub received: BTreeMap<String, u64>,
    /// Negative-advantage external completions dropped by the NLL gate, summed.
    pub gated_external: u64,
    /// Mean wall-clock seconds per run.
    pub seconds: f64,
}

/// Everything `summary.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Experiment name.
    pub name: String,
    /// Rounds per node.
    pub rounds: u64,
    /// One entry per configuration, in the file's order.
    pub configurations: Vec<ConfigurationSummary>,
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

fn std_dev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values.iter().copied());
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

fn honest(run: &RunResult) -> impl Iterator<Item = &NodeResult> {
    run.nodes.iter().filter(|n| n.adversary.is_none())
}

fn mean_scores<'a>(
    scores: impl Iterator<Item = &'a BTreeMap<String, f64>>,
) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for map in scores {
        for (family, value) in map {
            let entry = sums.entry(family.clone()).or_default();
            entry.0 += value;
            entry.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(family, (sum, n))| (family, sum / n as f64))
        .collect()
}

/// Aggregates the runs per configuration, in first-seen order.
pub fn summarize(name: &str, rounds: u64, runs: &[RunResult]) -> Summary {
    let mut order: Vec<&str> = Vec::new();
    for run in runs {
        if !order.contains(&run.configuration.as_str()) {
            order.push(&run.configuration);
        }
    }
    let configurations = order
        .into_iter()
        .map(|configuration| {
            let runs: Vec<&RunResult> = runs
                .iter()
                .filter(|r| r.configuration == configuration)
                .collect();
            let per_seed: Vec<f64> = runs
                .iter()
                .map(|run| mean(honest(run).map(NodeResult::cumulative_reward)))
                .collect();
            let tail = (rounds as usize / 4).max(1);
            let honest_nodes: Vec<&NodeResult> = runs.iter().flat_map(|r| honest(r)).collect();
            let (local, external) = runs
                .iter()
                .flat_map(|r| &r.nodes)
                .flat_map(|n| &n.rounds)
                .fold((0usize, 0usize), |(l, e), m| {
                    (l + m.trained_local, e + m.trained_external)
                });
            let mut received = BTreeMap::new();
            for node in runs.iter().flat_map(|r| &r.nodes) {
                for (reason, count) in &node.received {
                    *received.entry(reason.clone()).or_insert(0) += count;
                }
            }
            ConfigurationSummary {
                name: configuration.to_owned(),
                seeds: runs.iter().map(|r| r.seed).collect(),
                honest_nodes: runs.first().map_or(0, |r| honest(r).count()),
                cumulative_reward: mean(per_seed.iter().copied()),
                cumulative_reward_std: std_dev(&per_seed),
                final_reward: mean(honest_nodes.iter().flat_map(|n| {
                    let skip = n.rounds.len().saturating_sub(tail);
                    n.rounds[skip..].iter().map(|m| m.reward_local)
                })),
                pass_at_1_start: mean_scores(honest_nodes.iter().map(|n| &n.pass_at_1_start)),
                pass_at_1_end: mean_scores(honest_nodes.iter().map(|n| &n.pass_at_1_end)),
                external_share: external as f64 / (local + external).max(1) as f64,
                received,
                gated_external: runs
                    .iter()
                    .flat_map(|r| &r.nodes)
                    .flat_map(|n| &n.rounds)
                    .map(|m| m.gated_external as u64)
                    .sum(),
                seconds: mean(runs.iter().map(|r| r.seconds)),
            }
        })
        .collect();
    Summary {
        name: name.to_owned(),
        rounds,
        configurations,
    }
}

fn smooth(values: &[f64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let from = (i + 1).saturating_sub(SMOOTHING);
            ((i + 1) as f64, mean(values[from..=i].iter().copied()))
        })
        .collect()
}

/// Per-round mean over runs (seeds) of `value(node, metrics)` for node index `node`.
fn node_curve(
    runs: &[&RunResult],
    node: usize,
    value: impl Fn(&swarm_learner::RoundMetrics) -> f64,
) -> Vec<f64> {
    let len = runs
        .iter()
        .filter_map(|r| r.nodes.get(node))
        .map(|n| n.rounds.len())
        .min()
        .unwrap_or(0);
    (0..len)
        .map(|i| {
            mean(
                runs.iter()
                    .filter_map(|r| r.nodes.get(node))
                    .map(|n| value(&n.rounds[i])),
            )
        })
        .collect()
}

/// Mean over honest nodes and seeds, round by round.
fn honest_curve(
    runs: &[&RunResult],
    value: impl Fn(&swarm_learner::RoundMetrics) -> Option<f64>,
) -> Vec<f64> {
    let nodes: Vec<&NodeResult> = runs.iter().flat_map(|r| honest(r)).collect();
    let len = nodes.iter().map(|n| n.rounds.len()).min().unwrap_or(0);
    (0..len)
        .map(|i| mean(nodes.iter().filter_map(|n| value(&n.rounds[i]))))
        .collect()
}

/// Writes `summary.json`, `summary.md` and the charts into `out`; returns the files written.
pub fn write_report(out: &Path, summary: &Summary, runs: &[RunResult]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let json = out.join("summary.json");
    std::fs::write(&json, serde_json::to_string_pretty(summary)?)?;
    written.push(json);

    let mut cumulative = Vec::new();
    let mut accuracy = Vec::new();
    for configuration in &summary.configurations {
        let runs: Vec<&RunResult> = runs
            .iter()
            .filter(|r| r.configuration == configuration.name)
            .collect();
        let Some(first) = runs.first() else { continue };
        let series: Vec<Series> = first
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| Series {
                name: match node.adversary {
                    Some(adversary) => format!("{} ({}, {adversary:?})", node.name, node.kind),
                    None => format!("{} ({})", node.name, node.kind),
                },
                points: smooth(&node_curve(&runs, i, |m| m.reward_local)),
            })
            .collect();
        let path = out.join(format!("reward-{}.svg", slug(&configuration.name)));
        line_chart(
            &path,
            Chart {
                title: &format!(
                    "{}: reward per node ({SMOOTHING}-round mean, {} seed(s))",
                    configuration.name,
                    runs.len()
                ),
                x_label: "round",
                y_label: "mean reward of own completions",
            },
            &series,
        )?;
        written.push(path);

        let mut total = 0.0;
        cumulative.push(Series {
            name: configuration.name.clone(),
            points: honest_curve(&runs, |m| Some(m.reward_local))
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    total += r;
                    ((i + 1) as f64, total)
                })
                .collect(),
        });
        let families: Vec<String> = configuration.pass_at_1_end.keys().cloned().collect();
        for family in families {
            let curve = honest_curve(&runs, |m| m.accuracy.get(&family).copied());
            if curve.iter().all(|v| v.is_nan()) {
                continue;
            }
            accuracy.push(Series {
                name: format!("{} {family}", configuration.name),
                points: smooth(&curve),
            });
        }
    }
    let path = out.join("cumulative-reward.svg");
    line_chart(
        &path,
        Chart {
            title: "cumulative reward of honest nodes (mean over nodes and seeds)",
            x_label: "round",
            y_label: "cumulative reward",
        },
        &cumulative,
    )?;
    written.push(path);
    let path = out.join("accuracy.svg");
    line_chart(
        &path,
        Chart {
            title: &format!("training accuracy per family, honest nodes ({SMOOTHING}-round mean)"),
            x_label: "round",
            y_label: "share of own completions correct",
        },
        &accuracy,
    )?;
    written.push(path);

    let markdown = out.join("summary.md");
    std::fs::write(&markdown, render_markdown(summary))?;
    written.push(markdown);
    Ok(written)
}

fn format_scores(scores: &BTreeMap<String, f64>) -> String {
    if scores.is_empty() {
        return "-".to_owned();
    }
    scores
        .iter()
        .map(|(family, value)| format!("{family} {value:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown summary: one table row per configuration.
pub fn render_markdown(summary: &Summary) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Simulation {}\n", summary.name);
    let _ = writeln!(
        md,
        "{} rounds per node. Cumulative reward: per honest node, the sum over rounds of the mean \
         reward of its own completions; averaged over honest nodes, then seeds (± standard deviation \
         across seeds). Final reward: mean over the last quarter of the rounds. pass@1: held-out \
         questions, sampled at temperature 1.\n",
        summary.rounds
    );
    let _ = writeln!(
        md,
        "| configuration | seeds | cumulative reward | final reward | pass@1 start | pass@1 end | external share | gated | seconds/run |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for c in &summary.configurations {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} ± {:.2} | {:.3} | {} | {} | {:.2} | {} | {:.0} |",
            c.name,
            c.seeds.len(),
            c.cumulative_reward,
            c.cumulative_reward_std,
            c.final_reward,
            format_scores(&c.pass_at_1_start),
            format_scores(&c.pass_at_1_end),
            c.external_share,
            c.gated_external,
            c.seconds
        );
    }
    let _ = writeln!(md, "\nReceived gossip messages by validation outcome:\n");
    for c in &summary.configurations {
        let outcomes = c
            .received
            .iter()
            .map(|(reason, count)| format!("{reason} {count}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            md,
            "- {}: {}",
            c.name,
            if outcomes.is_empty() {
                "none"
            } else {
                &outcomes
            }
        );
    }
    md
}
