//! The swarm learner: sample completions to verifiable tasks, score them, and improve the policy with a
//! group-relative, PPO-clipped policy gradient (the SAPO loop; this crate runs it on one node, with the
//! network's share of rollouts to be plugged in through the same round).

pub mod advantage;
pub mod loss;
pub mod metrics;
pub mod options;
pub mod solo;
pub mod warmup;

pub use metrics::RoundMetrics;
pub use options::LearnerOptions;
pub use solo::{Learner, PolicySolver};
pub use warmup::{WarmupOptions, WarmupReport, warmup};

/// How a question is shown to the model: the prompt, then a newline after which the answer starts.
/// Warm-up, training and evaluation all use it, so the model sees one format.
pub fn render_prompt(prompt: &str) -> String {
    format!("{prompt}\n")
}
