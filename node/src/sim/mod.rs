//! In-process multi-node simulations and their reports.

pub mod adversary;
pub mod config;
pub mod live;
pub mod markdown;
pub mod plot;
pub mod report;
pub mod run;
pub mod stats;

use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::status::StatusBoard;
use config::{SimConfig, SimOverrides};

/// The plan `simulate` runs without `--config`.
pub const DEFAULT_PLAN: &str = "sim-quick";

/// Where a simulation writes when no `--out` is given: `runs/<name>-<unix seconds>`, so that reruns
/// never overwrite earlier results.
pub fn default_out_dir(config: &SimConfig) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("runs").join(format!("{}-{stamp}", run::slug(&config.sim.name)))
}

/// `swarm-node simulate`: loads the plan, runs it with a progress bar per run, writes the report and
/// prints the Markdown summary; with a `board`, also shows the swarm live on it (see [`live`]).
/// Returns the output directory. When `stop` is set the run in progress is checkpointed and left
/// out, and no report is written: an error says which runs finished.
pub fn simulate(
    plan: &Path,
    overrides: &SimOverrides,
    out: Option<PathBuf>,
    board: Option<Arc<StatusBoard>>,
    stop: &AtomicBool,
) -> Result<PathBuf> {
    let config = SimConfig::load(plan)?.with_overrides(overrides)?;
    let out = out.unwrap_or_else(|| default_out_dir(&config));
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("plan.toml"), toml::to_string_pretty(&config)?)?;
    let nodes: usize = config.node_kinds().iter().map(|k| k.count).sum();
    let total = nodes as u64 * config.sim.rounds;
    let style = ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} node-rounds {msg}")
        .expect("valid template");
    let mut bar: Option<(String, ProgressBar)> = None;
    let mut live = board.map(live::LiveView::new);
    let runs = run::run_simulation(&config, &out, stop, &mut |progress| {
        if let Some(live) = &mut live {
            live.record(&progress);
        }
        let key = format!("{} seed {}", progress.configuration, progress.seed);
        if bar.as_ref().is_none_or(|(k, _)| *k != key) {
            if let Some((_, old)) = bar.take() {
                old.finish();
            }
            let fresh = ProgressBar::new(total)
                .with_style(style.clone())
                .with_prefix(key.clone());
            bar = Some((key, fresh));
        }
        if let Some((_, bar)) = &bar {
            bar.inc(1);
            bar.set_message(format!(
                "node-{} round {} reward {:.3}",
                progress.node, progress.metrics.round, progress.metrics.reward_local
            ));
        }
    })?;
    if let Some((_, bar)) = bar {
        bar.finish();
    }
    if stop.load(Ordering::SeqCst) {
        let planned = config.sim.seeds.len() * config.configurations().len();
        anyhow::bail!(
            "simulation stopped by a signal after {} of {planned} runs; each finished run's \
             result.json and the stopped run's checkpoints are under {}; no report was written \
             (a report needs every configuration on every seed)",
            runs.len(),
            out.display()
        );
    }
    print_report(&config, &out, &runs)?;
    Ok(out)
}

fn print_report(config: &SimConfig, out: &Path, runs: &[run::RunResult]) -> Result<()> {
    let summary = report::summarize(&config.sim.name, config.sim.rounds, runs);
    let files = report::write_report(out, &summary, runs)?;
    println!("{}", markdown::render_markdown(&summary));
    for file in files {
        println!("wrote {}", file.display());
    }
    Ok(())
}

/// `swarm-node simulate --report DIR`: writes the report of a finished simulation again from its
/// `plan.toml` and every run's `result.json` (after a change to the report, or when writing it
/// failed), without running anything.
pub fn report_again(dir: &Path) -> Result<()> {
    let config = SimConfig::load(&dir.join("plan.toml"))?;
    let mut runs = Vec::new();
    for seed in &config.sim.seeds {
        for configuration in config.configurations() {
            let path = dir
                .join(run::slug(&configuration.name))
                .join(format!("seed-{seed}"))
                .join("result.json");
            let text = std::fs::read_to_string(&path).map_err(|err| {
                anyhow::anyhow!(
                    "cannot read {} ({err}); a report needs every configuration on every seed \
                     of the plan",
                    path.display()
                )
            })?;
            runs.push(
                serde_json::from_str(&text).map_err(|err| {
                    anyhow::anyhow!("{} is not a run result: {err}", path.display())
                })?,
            );
        }
    }
    print_report(&config, dir, &runs)
}
