//! Learner options: the `[learner]` section of the node configuration.

use serde::{Deserialize, Serialize};

/// How a node learns. Every field has a default; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearnerOptions {
    /// Task families to train on, in rotation.
    pub families: Vec<String>,
    /// Difficulty level of the training questions.
    pub difficulty: u32,
    /// Seed of the training question stream (must be below 2^63: higher seeds are held out for evaluation).
    pub task_seed: u64,
    /// Prompts sampled per round (the paper's I).
    pub prompts_per_round: usize,
    /// Completions sampled per prompt (the group size G).
    pub group_size: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Longest completion, in tokens.
    pub max_new_tokens: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// PPO lower clip.
    pub eps_low: f64,
    /// PPO upper clip (clip-higher).
    pub eps_high: f64,
    /// Cap of the truncated importance weight between the proximal and behaviour policies.
    pub tis_cap: f64,
    /// Divide advantages by the group's standard deviation (GRPO) instead of the mean baseline only.
    pub scale_advantages_by_std: bool,
    /// Reward for a well-formed wrong answer.
    pub format_reward: f32,
    /// Write a checkpoint every this many rounds.
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk.
    pub keep_checkpoints: usize,
}

impl Default for LearnerOptions {
    fn default() -> Self {
        Self {
            families: vec!["basic_arithmetic".to_owned()],
            difficulty: 0,
            task_seed: 1,
            prompts_per_round: 8,
            group_size: 8,
            temperature: 1.0,
            max_new_tokens: 8,
            lr: 1e-4,
            max_grad_norm: 1.0,
            eps_low: 0.2,
            eps_high: 0.28,
            tis_cap: 2.0,
            scale_advantages_by_std: false,
            format_reward: 0.1,
            checkpoint_every: 10,
            keep_checkpoints: 3,
        }
    }
}

impl LearnerOptions {
    /// Checks every range; the error names the key (`learner.<field>`) and what is accepted.
    pub fn validate(&self) -> Result<(), String> {
        let fail = |key: &str, what: &str| Err(format!("`learner.{key}`: {what}"));
        if self.families.is_empty() {
            return fail(
                "families",
                "list at least one task family (see `swarm-node tasks list`)",
            );
        }
        for name in &self.families {
            match swarm_tasks::family(name) {
                None => {
                    return fail(
                        "families",
                        &format!("unknown family {name:?}; see `swarm-node tasks list`"),
                    );
                }
                Some(f) if self.difficulty > f.max_difficulty() => {
                    return fail(
                        "difficulty",
                        &format!(
                            "{} is above {name}'s maximum {}",
                            self.difficulty,
                            f.max_difficulty()
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        if self.task_seed >= swarm_tasks::EVAL_SEED_BASE {
            return fail(
                "task_seed",
                "must be below 2^63 (higher seeds are reserved for evaluation)",
            );
        }
        if !(1..=1024).contains(&self.prompts_per_round) {
            return fail("prompts_per_round", "must be between 1 and 1024");
        }
        if !(2..=64).contains(&self.group_size) {
            return fail(
                "group_size",
                "must be between 2 and 64 (advantages compare completions within a group)",
            );
        }
        if !(self.temperature > 0.0 && self.temperature <= 4.0) {
            return fail("temperature", "must be in (0, 4]");
        }
        if !(1..=4096).contains(&self.max_new_tokens) {
            return fail("max_new_tokens", "must be between 1 and 4096");
        }
        if !(self.lr > 0.0 && self.lr < 1.0) {
            return fail("lr", "must be in (0, 1)");
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm <= 0.0 {
            return fail("max_grad_norm", "must be positive");
        }
        if !(0.0..1.0).contains(&self.eps_low) || !(0.0..10.0).contains(&self.eps_high) {
            return fail(
                "eps_low",
                "eps_low must be in [0, 1) and eps_high in [0, 10)",
            );
        }
        if self.tis_cap.is_nan() || self.tis_cap < 1.0 {
            return fail("tis_cap", "must be at least 1");
        }
        if !(0.0..0.5).contains(&self.format_reward) {
            return fail("format_reward", "must be in [0, 0.5)");
        }
        if self.checkpoint_every == 0 || self.keep_checkpoints == 0 {
            return fail(
                "checkpoint_every",
                "checkpoint_every and keep_checkpoints must be at least 1",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        LearnerOptions::default().validate().unwrap();
        type Change = fn(&mut LearnerOptions);
        let cases: [(Change, &str); 5] = [
            (|o| o.families = vec!["poetry".into()], "learner.families"),
            (|o| o.difficulty = 9, "learner.difficulty"),
            (|o| o.group_size = 1, "learner.group_size"),
            (|o| o.lr = 0.0, "learner.lr"),
            (|o| o.task_seed = u64::MAX, "learner.task_seed"),
        ];
        for (change, key) in cases {
            let mut options = LearnerOptions::default();
            change(&mut options);
            let err = options.validate().unwrap_err();
            assert!(err.contains(key), "{err}");
        }
    }
}
