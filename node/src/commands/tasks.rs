//! `swarm-node tasks`: browse the task families.

use anyhow::Result;
use clap::Subcommand;
use swarm_tasks::listing::{families_table, questions_jsonl, questions_text};

#[derive(Debug, Subcommand)]
pub(crate) enum TasksAction {
    /// List the task families with their difficulty range.
    List,
    /// Print sample questions and answers of one family.
    Show {
        /// Family name, as printed by `tasks list`.
        family: String,
        /// Difficulty level (0 is the easiest).
        #[arg(long, default_value_t = 0)]
        difficulty: u32,
        /// How many questions.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        n: u64,
        /// Question stream seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(action: &TasksAction) -> Result<()> {
    match action {
        TasksAction::List => print!("{}", families_table()),
        TasksAction::Show {
            family,
            difficulty,
            n,
            seed,
            json,
        } => {
            let questions = swarm_tasks::sample_questions(family, *difficulty, *seed, *n as usize)?;
            if *json {
                print!("{}", questions_jsonl(&questions));
            } else {
                print!("{}", questions_text(&questions));
            }
        }
    }
    Ok(())
}
