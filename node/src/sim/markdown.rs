//! `summary.md`: the simulation report for people, one table row per configuration, then the
//! diagnostics of sharing and the per-seed figures the intervals come from.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::report::{Comparison, Summary};

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

fn format_comparison(comparison: Option<&Comparison>) -> String {
    let Some(comparison) = comparison else {
        return "baseline".to_owned();
    };
    let d = comparison.difference;
    if d.ci95_low.is_nan() {
        return format!(
            "{:+.2} ({:+.1}%, one seed: no interval)",
            d.mean,
            comparison.relative * 100.0
        );
    }
    format!(
        "{:+.2} [{:+.2}, {:+.2}] ({:+.1}%)",
        d.mean,
        d.ci95_low,
        d.ci95_high,
        comparison.relative * 100.0
    )
}

/// Held-out pass@1 at the end against the baseline, per family, paired by seed.
fn render_pass_at_1_differences(md: &mut String, summary: &Summary) {
    let Some(baseline) = summary.configurations.first() else {
        return;
    };
    if summary.configurations.len() < 2 {
        return;
    }
    let _ = writeln!(
        md,
        "\nHeld-out pass@1 at the end minus {}'s, paired by seed (95% interval):\n",
        baseline.name
    );
    let _ = writeln!(md, "| configuration | family | difference | pairs |");
    let _ = writeln!(md, "|---|---|---|---|");
    for c in summary.configurations.iter().skip(1) {
        for (family, d) in &c.pass_at_1_versus_baseline {
            let interval = if d.ci95_low.is_nan() {
                "no interval (one seed)".to_owned()
            } else {
                format!("[{:+.3}, {:+.3}]", d.ci95_low, d.ci95_high)
            };
            let _ = writeln!(
                md,
                "| {} | {family} | {:+.3} {interval} | {} |",
                c.name, d.mean, d.pairs
            );
        }
    }
}

/// Majority votes on unlabeled questions, for plans that train on them.
fn render_votes(md: &mut String, summary: &Summary) {
    if summary
        .configurations
        .iter()
        .all(|c| c.diagnostics.vote_labeled_fraction.is_none())
    {
        return;
    }
    let _ = writeln!(
        md,
        "\nMajority votes on unlabeled questions (honest nodes, rounds with such questions): share \
         of own questions whose pooled vote gave a label, share of labels equal to the \
         dataset's hidden answer, and completions pooled per vote (own and other nodes').\n"
    );
    let _ = writeln!(
        md,
        "| configuration | labeled | label accuracy | completions per vote |"
    );
    let _ = writeln!(md, "|---|---|---|---|");
    let show = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.3}"));
    for c in &summary.configurations {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            c.name,
            show(c.diagnostics.vote_labeled_fraction),
            show(c.diagnostics.vote_accuracy),
            c.diagnostics
                .vote_ballots
                .map_or("-".to_owned(), |v| format!("{v:.1}"))
        );
    }
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
    let baseline = summary
        .configurations
        .first()
        .map_or("-", |c| c.name.as_str());
    let _ = writeln!(
        md,
        "| configuration | seeds | cumulative reward | vs {baseline}, paired (95% interval) | final reward | pass@1 start | pass@1 end | external share | gated | seconds/run |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for c in &summary.configurations {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} ± {:.2} | {} | {:.3} | {} | {} | {:.2} | {} | {:.0} |",
            c.name,
            c.seeds.len(),
            c.cumulative_reward,
            c.cumulative_reward_std,
            format_comparison(c.versus_baseline.as_ref()),
            c.final_reward,
            format_scores(&c.pass_at_1_start),
            format_scores(&c.pass_at_1_end),
            c.external_share,
            c.gated_external,
            c.seconds
        );
    }
    let _ = writeln!(
        md,
        "\nA difference whose interval contains 0 is within the noise of these seeds.\n\n\
         Diagnostics (honest nodes; per node and round unless stated): zero-advantage share of own \
         groups and of arrived external groups (rescored by the receiver), external groups arrived, \
         waiting to be chosen from and taken, and aha moments delivered (external groups taken that \
         held the only correct answer to their question in the batch; total per seed).\n"
    );
    let _ = writeln!(
        md,
        "| configuration | own zero-advantage | external zero-advantage | arrived | available | taken | aha delivered |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for c in &summary.configurations {
        let d = &c.diagnostics;
        let _ = writeln!(
            md,
            "| {} | {:.3} | {} | {:.1} | {:.1} | {:.2} | {:.1} |",
            c.name,
            d.local_zero_advantage_fraction,
            if d.external_zero_advantage_fraction.is_nan() {
                "-".to_owned()
            } else {
                format!("{:.3}", d.external_zero_advantage_fraction)
            },
            d.external_arrived_per_round,
            d.external_available_per_round,
            d.external_taken_per_round,
            d.aha_delivered
        );
    }
    render_pass_at_1_differences(&mut md, summary);
    render_votes(&mut md, summary);
    let _ = writeln!(md, "\nCumulative reward per seed:\n");
    let _ = writeln!(
        md,
        "| configuration | {} |",
        summary
            .configurations
            .first()
            .map(|c| c
                .seeds
                .iter()
                .map(|s| format!("seed {s}"))
                .collect::<Vec<_>>()
                .join(" | "))
            .unwrap_or_default()
    );
    let columns = summary.configurations.first().map_or(0, |c| c.seeds.len());
    let _ = writeln!(md, "|---|{}", "---|".repeat(columns));
    for c in &summary.configurations {
        let values = c
            .cumulative_reward_per_seed
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(" | ");
        let _ = writeln!(md, "| {} | {values} |", c.name);
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
