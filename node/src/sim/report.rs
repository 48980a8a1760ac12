//! The report of a simulation: `summary.json` (for scripts), `summary.md` (for people) and SVG charts.
//!
//! Definitions, also written into the Markdown: a node's *cumulative reward* is the sum over its
//! rounds of the mean reward of its own completions in that round (the SAPO paper's measure);
//! configuration figures average honest nodes (no adversary) within a seed, then seeds, and give the
//! standard deviation across seeds. The plan's first configuration is the baseline: every other one is
//! compared with it seed by seed (a paired difference with its 95% t interval, see [`super::stats`]).
//! Curves are smoothed with a trailing mean over `SMOOTHING` rounds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::markdown::render_markdown;
use super::plot::{Chart, Series, line_chart};
use super::run::{NodeResult, RunResult, slug};
use super::stats::PairedDifference;

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
    /// The honest nodes' mean cumulative reward on each seed, in the order of `seeds`.
    pub cumulative_reward_per_seed: Vec<f64>,
    /// Cumulative reward minus the baseline's (the plan's first configuration), paired by seed;
    /// absent for the baseline itself.
    pub versus_baseline: Option<Comparison>,
    /// Mean own reward per completion over the last quarter of the rounds.
    pub final_reward: f64,
    /// Held-out pass@1 per family before the first round, honest nodes and seeds averaged.
    pub pass_at_1_start: BTreeMap<String, f64>,
    /// Held-out pass@1 per family after the last round.
    pub pass_at_1_end: BTreeMap<String, f64>,
    /// Held-out pass@1 per family after the last round, honest nodes averaged, per seed in the
    /// order of `seeds`.
    pub pass_at_1_end_per_seed: BTreeMap<String, Vec<f64>>,
    /// Held-out pass@1 at the end minus the baseline's, per family, paired by seed; empty for
    /// the baseline itself.
    pub pass_at_1_versus_baseline: BTreeMap<String, PairedDifference>,
    /// Share of trained completions that came from other nodes.
    pub external_share: f64,
    /// Received gossip messages by validation outcome, summed over all nodes and seeds.
    pub received: BTreeMap<String, u64>,
    /// Negative-advantage external completions dropped by the NLL gate, summed.
    pub gated_external: u64,
    /// Why sharing does or does not help: what the external groups were worth.
    pub diagnostics: Diagnostics,
    /// Mean wall-clock seconds per run.
    pub seconds: f64,
}

/// A configuration against the baseline, seed by seed.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The baseline configuration's name.
    pub baseline: String,
    /// The paired difference in cumulative reward with its 95% interval.
    pub difference: PairedDifference,
    /// The mean difference as a share of the baseline's mean cumulative reward.
    pub relative: f64,
}

/// Per-configuration diagnostics of sharing, over honest nodes, rounds and seeds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diagnostics {
    /// Share of own groups whose completions all scored alike (no learning signal).
    pub local_zero_advantage_fraction: f64,
    /// Share of arrived external groups with zero advantage under the receiver's rewards.
    pub external_zero_advantage_fraction: f64,
    /// External groups that arrived, per node and round.
    pub external_arrived_per_round: f64,
    /// External groups waiting to be chosen from, per node and round.
    pub external_available_per_round: f64,
    /// External groups taken, per node and round.
    pub external_taken_per_round: f64,
    /// External groups taken that held the only correct answer to their question in the batch
    /// ("aha" moments delivered), summed over honest nodes and rounds, averaged over seeds.
    pub aha_delivered: f64,
    /// Share of own unlabeled questions whose pooled majority vote gave a label (rounds with
    /// unlabeled questions only); `None` without any.
    pub vote_labeled_fraction: Option<f64>,
    /// Share of those labels equal to the dataset's hidden answer; `None` when none was checked.
    pub vote_accuracy: Option<f64>,
    /// Completions a vote pooled, on average.
    pub vote_ballots: Option<f64>,
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

/// The mean of the values present; `None` when none is.
fn mean_of_some(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let present: Vec<f64> = values.flatten().collect();
    (!present.is_empty()).then(|| mean(present))
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

/// Held-out pass@1 at the end per family, honest nodes averaged, one value per run (seed).
fn per_seed_scores(runs: &[&RunResult]) -> BTreeMap<String, Vec<f64>> {
    let mut per_family: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in runs {
        for (family, score) in mean_scores(honest(run).map(|n| &n.pass_at_1_end)) {
            per_family.entry(family).or_default().push(score);
        }
    }
    per_family
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
            let diagnostics = diagnose(&runs);
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
                cumulative_reward_per_seed: per_seed,
                versus_baseline: None,
                final_reward: mean(honest_nodes.iter().flat_map(|n| {
                    let skip = n.rounds.len().saturating_sub(tail);
                    n.rounds[skip..].iter().map(|m| m.reward_local)
                })),
                pass_at_1_start: mean_scores(honest_nodes.iter().map(|n| &n.pass_at_1_start)),
                pass_at_1_end: mean_scores(honest_nodes.iter().map(|n| &n.pass_at_1_end)),
                pass_at_1_end_per_seed: per_seed_scores(&runs),
                pass_at_1_versus_baseline: BTreeMap::new(),
                external_share: external as f64 / (local + external).max(1) as f64,
                received,
                gated_external: runs
                    .iter()
                    .flat_map(|r| &r.nodes)
                    .flat_map(|n| &n.rounds)
                    .map(|m| m.gated_external as u64)
                    .sum(),
                diagnostics,
                seconds: mean(runs.iter().map(|r| r.seconds)),
            }
        })
        .collect::<Vec<_>>();
    Summary {
        name: name.to_owned(),
        rounds,
        configurations: compare_with_baseline(configurations),
    }
}

/// Fills in each configuration's paired difference to the first one, over the seeds both ran.
fn compare_with_baseline(
    mut configurations: Vec<ConfigurationSummary>,
) -> Vec<ConfigurationSummary> {
    let Some(baseline) = configurations.first().cloned() else {
        return configurations;
    };
    for configuration in configurations.iter_mut().skip(1) {
        let (values, base): (Vec<f64>, Vec<f64>) = configuration
            .seeds
            .iter()
            .zip(&configuration.cumulative_reward_per_seed)
            .filter_map(|(seed, &value)| {
                let at = baseline.seeds.iter().position(|s| s == seed)?;
                Some((value, baseline.cumulative_reward_per_seed[at]))
            })
            .unzip();
        for (family, scores) in &configuration.pass_at_1_end_per_seed {
            let Some(base_scores) = baseline.pass_at_1_end_per_seed.get(family) else {
                continue;
            };
            let (values, base): (Vec<f64>, Vec<f64>) = configuration
                .seeds
                .iter()
                .zip(scores)
                .filter_map(|(seed, &value)| {
                    let at = baseline.seeds.iter().position(|s| s == seed)?;
                    Some((value, *base_scores.get(at)?))
                })
                .unzip();
            configuration
                .pass_at_1_versus_baseline
                .insert(family.clone(), PairedDifference::of(&values, &base));
        }
        let difference = PairedDifference::of(&values, &base);
        configuration.versus_baseline = Some(Comparison {
            baseline: baseline.name.clone(),
            relative: difference.mean / mean(base.iter().copied()),
            difference,
        });
    }
    configurations
}

fn diagnose(runs: &[&RunResult]) -> Diagnostics {
    let rounds: Vec<&swarm_learner::RoundMetrics> = runs
        .iter()
        .flat_map(|r| honest(r))
        .flat_map(|n| &n.rounds)
        .collect();
    let per_round = |value: fn(&swarm_learner::RoundMetrics) -> usize| {
        mean(rounds.iter().map(|m| value(m) as f64))
    };
    let arrived: usize = rounds.iter().map(|m| m.external_arrived).sum();
    let uninformative: usize = rounds.iter().map(|m| m.external_uninformative).sum();
    let aha: usize = rounds.iter().map(|m| m.external_aha).sum();
    Diagnostics {
        local_zero_advantage_fraction: mean(rounds.iter().map(|m| m.local_zero_variance_fraction)),
        external_zero_advantage_fraction: if arrived == 0 {
            f64::NAN
        } else {
            uninformative as f64 / arrived as f64
        },
        external_arrived_per_round: per_round(|m| m.external_arrived),
        external_available_per_round: per_round(|m| m.external_available),
        external_taken_per_round: per_round(|m| m.external_groups),
        aha_delivered: aha as f64 / runs.len().max(1) as f64,
        vote_labeled_fraction: mean_of_some(rounds.iter().map(|m| m.vote_labeled_fraction)),
        vote_accuracy: mean_of_some(rounds.iter().map(|m| m.vote_accuracy)),
        vote_ballots: mean_of_some(rounds.iter().map(|m| m.vote_ballots)),
    }
}

/// The honest nodes' mean cumulative reward after each round of one run.
fn cumulative_curve(run: &RunResult) -> Vec<f64> {
    let nodes: Vec<&NodeResult> = honest(run).collect();
    let len = nodes.iter().map(|n| n.rounds.len()).min().unwrap_or(0);
    let mut total = 0.0;
    (0..len)
        .map(|i| {
            total += mean(nodes.iter().map(|n| n.rounds[i].reward_local));
            total
        })
        .collect()
}

/// For each configuration after the baseline, its cumulative reward minus the baseline's round by
/// round, paired by seed, with the 95% interval as a band; `None` when there is nothing to compare.
fn paired_difference_curves(summary: &Summary, runs: &[RunResult]) -> Option<Vec<Series>> {
    let baseline = &summary.configurations.first()?.name;
    let curves = |name: &str| -> BTreeMap<u64, Vec<f64>> {
        runs.iter()
            .filter(|r| r.configuration == name)
            .map(|r| (r.seed, cumulative_curve(r)))
            .collect()
    };
    let base = curves(baseline);
    let series: Vec<Series> = summary
        .configurations
        .iter()
        .skip(1)
        .map(|configuration| {
            let pairs: Vec<(Vec<f64>, &Vec<f64>)> = curves(&configuration.name)
                .into_iter()
                .filter_map(|(seed, curve)| Some((curve, base.get(&seed)?)))
                .collect();
            let len = pairs
                .iter()
                .map(|(a, b)| a.len().min(b.len()))
                .min()
                .unwrap_or(0);
            let at = |i: usize| {
                let (values, base): (Vec<f64>, Vec<f64>) =
                    pairs.iter().map(|(a, b)| (a[i], b[i])).unzip();
                PairedDifference::of(&values, &base)
            };
            let differences: Vec<(f64, PairedDifference)> =
                (0..len).map(|i| ((i + 1) as f64, at(i))).collect();
            Series {
                name: format!("{} - {baseline}", configuration.name),
                points: differences.iter().map(|(x, d)| (*x, d.mean)).collect(),
                band: differences
                    .iter()
                    .map(|(x, d)| (*x, d.ci95_low, d.ci95_high))
                    .collect(),
            }
        })
        .collect();
    (!series.is_empty()).then_some(series)
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
                band: Vec::new(),
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
            band: Vec::new(),
        });
        // The families trained on, as the rounds name them (a dataset's rows are named by their
        // verifier, unlabeled ones `unlabeled`), not the evaluated ones.
        let families: std::collections::BTreeSet<String> = runs
            .iter()
            .flat_map(|r| honest(r))
            .flat_map(|n| &n.rounds)
            .flat_map(|m| m.accuracy.keys().cloned())
            .collect();
        for family in families {
            let curve = honest_curve(&runs, |m| m.accuracy.get(&family).copied());
            if curve.iter().all(|v| v.is_nan()) {
                continue;
            }
            accuracy.push(Series {
                name: format!("{} {family}", configuration.name),
                points: smooth(&curve),
                band: Vec::new(),
            });
        }
    }
    if let Some(differences) = paired_difference_curves(summary, runs) {
        let path = out.join("difference.svg");
        line_chart(
            &path,
            Chart {
                title: &format!(
                    "cumulative reward minus {}'s, paired by seed (band: 95% interval)",
                    summary.configurations[0].name
                ),
                x_label: "round",
                y_label: "cumulative reward difference",
            },
            &differences,
        )?;
        written.push(path);
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
    if !accuracy.is_empty() {
        let path = out.join("accuracy.svg");
        line_chart(
            &path,
            Chart {
                title: &format!(
                    "training accuracy per family, honest nodes ({SMOOTHING}-round mean)"
                ),
                x_label: "round",
                y_label: "share of own completions correct",
            },
            &accuracy,
        )?;
        written.push(path);
    }

    let markdown = out.join("summary.md");
    std::fs::write(&markdown, render_markdown(summary))?;
    written.push(markdown);
    Ok(written)
}
