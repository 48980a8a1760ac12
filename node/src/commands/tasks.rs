//! `swarm-node tasks`: browse the task families and datasets, and export a family as a dataset.

use std::path::Path;

use anyhow::{Result, bail};
use clap::Subcommand;
use swarm_learner::LearnerOptions;
use swarm_node::config::NodeConfig;
use swarm_tasks::listing::{families_table, questions_jsonl, questions_text};
use swarm_tasks::{Dataset, EVAL_SEED_BASE, Question, TaskCatalog};

use crate::args::ConfigFile;

#[derive(Debug, Subcommand)]
pub(crate) enum TasksAction {
    /// List the task families, built in and from the configuration's `[[plugin]]`s, with their
    /// difficulty range.
    List {
        #[command(flatten)]
        common: ConfigFile,
    },
    /// Print sample questions and answers of a family, or the rows of a JSONL dataset.
    Show {
        /// Family name, as printed by `tasks list`, or the path of a dataset file.
        source: String,
        /// Difficulty level (0 is the easiest).
        #[arg(long, default_value_t = 0)]
        difficulty: u32,
        /// How many questions (rows).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        n: u64,
        /// Question stream seed (first row, for a dataset).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: ConfigFile,
    },
    /// Write questions of a built-in family to standard output as a JSONL dataset (`question`,
    /// `answer`, and `answer_type` naming the family's verifier), for `learner.datasets`.
    Export {
        /// Built-in family name.
        family: String,
        /// Difficulty level.
        #[arg(long, default_value_t = 0)]
        difficulty: u32,
        /// How many rows.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        n: u64,
        /// Question stream seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Take the held-out evaluation questions (those `eval --family` asks with seed 0)
        /// instead of training ones.
        #[arg(long)]
        held_out: bool,
        /// Leave the answers out: an unlabeled dataset, trained by majority vote.
        #[arg(long)]
        no_answers: bool,
    },
}

impl TasksAction {
    /// The configuration file option, for the actions that read the configuration.
    pub(crate) fn config_file(&self) -> Option<&ConfigFile> {
        match self {
            TasksAction::List { common } | TasksAction::Show { common, .. } => Some(common),
            TasksAction::Export { .. } => None,
        }
    }
}

pub(crate) fn run(action: &TasksAction, config: &NodeConfig) -> Result<()> {
    match action {
        TasksAction::List { .. } => print!("{}", families_table(&plugin_tasks(config)?)),
        TasksAction::Show {
            source,
            difficulty,
            n,
            seed,
            json,
            ..
        } => {
            let questions = if Path::new(source).is_file() {
                dataset_rows(Path::new(source), *seed, *n)?
            } else {
                let tasks = plugin_tasks(config)?;
                (0..*n)
                    .map(|index| tasks.generate(source, *difficulty, *seed, index))
                    .collect::<Result<_, _>>()?
            };
            if *json {
                print!("{}", questions_jsonl(&questions));
            } else {
                print!("{}", questions_text(&questions));
            }
        }
        TasksAction::Export {
            family,
            difficulty,
            n,
            seed,
            held_out,
            no_answers,
        } => {
            if swarm_tasks::family(family).is_none() {
                bail!(
                    "`{family}` is not a built-in family; `tasks export` writes built-in families \
                     only (a dataset row's answer_type must name a verifier every node has)"
                );
            }
            let seed = if *held_out {
                EVAL_SEED_BASE.checked_add(*seed).ok_or_else(|| {
                    anyhow::anyhow!("--seed {seed} is too large for --held-out (at most 2^63 - 1)")
                })?
            } else {
                *seed
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for index in 0..*n {
                let question = swarm_tasks::procedural(family, *difficulty, seed, index)?;
                let row = if *no_answers {
                    serde_json::json!({"question": question.prompt})
                } else {
                    serde_json::json!({
                        "question": question.prompt,
                        "answer": question.answer,
                        "answer_type": family,
                    })
                };
                std::io::Write::write_all(&mut out, format!("{row}\n").as_bytes())?;
            }
            std::io::Write::flush(&mut out)?;
        }
    }
    Ok(())
}

/// The built-in families and those of the configuration's plug-ins (started here).
fn plugin_tasks(config: &NodeConfig) -> Result<TaskCatalog> {
    swarm_learner::load_tasks(
        &LearnerOptions {
            datasets: Vec::new(),
            ..LearnerOptions::default()
        },
        &config.plugins,
    )
}

/// `n` rows of the dataset at `path` from row `first`; unlabeled rows show no answer.
fn dataset_rows(path: &Path, first: u64, n: u64) -> Result<Vec<Question>> {
    let dataset = Dataset::load(path)?;
    let rows = dataset.len() as u64;
    if first >= rows {
        bail!(
            "{} has {rows} rows; --seed picks the first row shown and must be below that",
            path.display()
        );
    }
    (first..rows.min(first.saturating_add(n)))
        .map(|row| {
            dataset
                .question(row)
                .or_else(|_| dataset.unlabeled_question(row))
                .map(|question| Question {
                    index: row,
                    ..question
                })
                .map_err(anyhow::Error::from)
        })
        .collect()
}
