//! The swarm learner: sample completions to verifiable tasks, score them, share them, and improve the
//! policy on a mix of own and other nodes' rollouts with a group-relative, PPO-clipped policy gradient
//! and off-policy weights chosen by provenance (the SAPO loop).

pub mod advantage;
pub mod ballots;
pub mod batch;
pub mod loss;
pub mod metrics;
pub mod options;
pub mod pool;
pub mod rollout;
pub mod round;
pub mod scoring;
pub mod solver;
pub mod task_mix;
pub mod update;
pub mod warmup;

pub use batch::Grouping;
pub use metrics::RoundMetrics;
pub use options::{DatasetSource, LearnerOptions};
pub use pool::ExternalSelection;
pub use rollout::{
    ExternalCompletion, ExternalGroup, LocalGroup, Network, NullNetwork, Provenance,
};
pub use round::{Learner, TrainReport};
pub use scoring::{Scorer, VoteTally};
pub use solver::{PolicySolver, evaluate_policy};
pub use task_mix::{Drawn, TaskMix, dataset_name};
pub use warmup::{WarmupOptions, WarmupReport, warmup};

/// How a question is shown to the model: the prompt, then a newline after which the answer starts.
/// Warm-up, training and evaluation all use it, so the model sees one format.
pub fn render_prompt(prompt: &str) -> String {
    format!("{prompt}\n")
}

/// The catalog a learner with `options` needs: its datasets loaded (each under its path, with or
/// without labels as configured) and `plugins` started. Errors name the file or plug-in at fault.
pub fn load_tasks(
    options: &LearnerOptions,
    plugins: &[swarm_tasks::PluginSpec],
) -> anyhow::Result<swarm_tasks::TaskCatalog> {
    let mut catalog = swarm_tasks::TaskCatalog::new();
    for spec in plugins {
        catalog.add_plugin(swarm_tasks::Plugin::start(spec)?)?;
    }
    for source in &options.datasets {
        let dataset = swarm_tasks::Dataset::load(&source.path)?;
        if source.hide_labels {
            catalog.add_dataset_hiding_labels(dataset);
        } else {
            catalog.add_dataset(dataset);
        }
    }
    Ok(catalog)
}
