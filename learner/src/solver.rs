//! Answers evaluation prompts with a policy, for `swarm_tasks::eval`.

use anyhow::Result;
use rand_chacha::ChaCha8Rng;
use swarm_policy::{Policy, SampleOptions};

use crate::render_prompt;

/// Answers evaluation prompts with a policy, for `swarm_tasks::eval`.
pub struct PolicySolver<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// Sampling settings.
    pub options: SampleOptions,
    /// Random stream.
    pub rng: ChaCha8Rng,
}

impl swarm_tasks::eval::Solver for PolicySolver<'_> {
    fn solve(&mut self, prompts: &[String], k: usize) -> Result<Vec<Vec<String>>> {
        let mut ids = Vec::with_capacity(prompts.len() * k);
        for prompt in prompts {
            let encoded = self.policy.encode(&render_prompt(prompt))?;
            ids.extend(std::iter::repeat_n(encoded, k));
        }
        let samples = self.policy.sample(&ids, &self.options, &mut self.rng)?;
        Ok(samples
            .chunks(k)
            .map(|group| group.iter().map(|s| s.text.clone()).collect())
            .collect())
    }
}

/// Held-out pass@1 and pass@k of `policy` as the learner samples it (temperature 1, up to 16 new
/// tokens), seeded so that the same policy and seed give the same report.
pub fn evaluate_policy(
    policy: &Policy,
    tasks: &swarm_tasks::TaskCatalog,
    options: &swarm_tasks::eval::EvalOptions,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<swarm_tasks::eval::EvalReport> {
    use rand::SeedableRng;
    let mut solver = PolicySolver {
        policy,
        options: SampleOptions {
            max_new_tokens: 16,
            ..SampleOptions::default()
        },
        rng: ChaCha8Rng::seed_from_u64(seed),
    };
    swarm_tasks::eval::evaluate(
        &mut solver,
        tasks,
        options,
        &swarm_tasks::RewardConfig::default(),
        progress,
    )
}
