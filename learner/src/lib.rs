//! The swarm learner: sample completions to verifiable tasks, score them, share them, and improve the
//! policy on a mix of own and other nodes' rollouts with a group-relative, PPO-clipped policy gradient
//! and off-policy weights chosen by provenance (the SAPO loop).

pub mod advantage;
pub mod batch;
pub mod loss;
pub mod metrics;
pub mod options;
pub mod pool;
pub mod rollout;
pub mod round;
pub mod solver;
pub mod update;
pub mod warmup;

pub use batch::Grouping;
pub use metrics::RoundMetrics;
pub use options::LearnerOptions;
pub use pool::ExternalSelection;
pub use rollout::{
    ExternalCompletion, ExternalGroup, LocalGroup, Network, NullNetwork, Provenance,
};
pub use round::{Learner, TrainReport};
pub use solver::{PolicySolver, evaluate_policy};
pub use warmup::{WarmupOptions, WarmupReport, warmup};

/// How a question is shown to the model: the prompt, then a newline after which the answer starts.
/// Warm-up, training and evaluation all use it, so the model sees one format.
pub fn render_prompt(prompt: &str) -> String {
    format!("{prompt}\n")
}
