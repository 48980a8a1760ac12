//! `swarm-node eval`: pass@1 and pass@k of a model on held-out questions.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use swarm_learner::{DatasetSource, LearnerOptions};
use swarm_node::config::NodeConfig;
use swarm_policy::Policy;
use swarm_tasks::TaskCatalog;
use swarm_tasks::eval::{EvalOptions, EvalReport};

use crate::args::ConfigFile;

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// Model directory (a checkpoint directory works too) or a built-in model's name [default:
    /// what this node trains: its newest checkpoint, else its starting model or warm start].
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Families to evaluate (repeatable), built in or from a `[[plugin]]` of the configuration
    /// [default: all, unless --dataset is given].
    #[arg(long = "family")]
    pub(crate) families: Vec<String>,
    /// A JSONL dataset to evaluate on (repeatable): its first n rows that have an answer.
    #[arg(long = "dataset")]
    pub(crate) datasets: Vec<PathBuf>,
    /// Difficulty level.
    #[arg(long, default_value_t = 0)]
    pub(crate) difficulty: u32,
    /// Questions per family (rows per dataset).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) n: u64,
    /// Completions per question.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) k: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) common: ConfigFile,
}

pub(crate) fn run(args: EvalArgs, config: &NodeConfig) -> Result<()> {
    let model = match &args.model {
        Some(model) => swarm_node::builtin::resolve_model(model, &config.node.data_dir)?,
        None => swarm_node::setup::current_model(config)?,
    };
    let policy = Policy::load(&model, &swarm_policy::default_device()?)?;
    let tasks = swarm_learner::load_tasks(
        &LearnerOptions {
            datasets: args
                .datasets
                .iter()
                .map(|path| DatasetSource {
                    path: path.clone(),
                    weight: 1,
                    hide_labels: false,
                })
                .collect(),
            ..LearnerOptions::default()
        },
        &config.plugins,
    )?;
    let options = EvalOptions {
        families: args.families,
        datasets: args
            .datasets
            .iter()
            .map(|path| swarm_learner::dataset_name(path))
            .collect(),
        difficulty: args.difficulty,
        n: args.n as usize,
        k: args.k as usize,
        ..Default::default()
    };
    let report = evaluate(&policy, &tasks, &options, config.node.seed)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// Evaluates `policy` with a progress bar, which is cleared before the report is printed.
pub(crate) fn evaluate(
    policy: &Policy,
    tasks: &TaskCatalog,
    options: &EvalOptions,
    seed: u64,
) -> Result<EvalReport> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("eval {bar:30} {pos}/{len} questions")
            .expect("valid template"),
    );
    let report =
        swarm_learner::evaluate_policy(policy, tasks, options, seed, &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
    bar.finish_and_clear();
    Ok(report)
}
