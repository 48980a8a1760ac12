//! Learner options: the `[learner]` section of the node configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A dataset in `learner.datasets`: a JSONL path, or a table with the path and how to train it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "DatasetEntry", into = "DatasetEntry")]
pub struct DatasetSource {
    /// The JSONL file.
    pub path: PathBuf,
    /// Share of the question stream, against weight 1 for each family.
    pub weight: u32,
    /// Train with majority-vote rewards even where the file has answers; the answers then only
    /// measure how often the vote was right.
    pub hide_labels: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum DatasetEntry {
    Path(PathBuf),
    Table {
        path: PathBuf,
        #[serde(default = "one")]
        weight: u32,
        #[serde(default)]
        hide_labels: bool,
    },
}

fn one() -> u32 {
    1
}

impl From<DatasetEntry> for DatasetSource {
    fn from(entry: DatasetEntry) -> Self {
        match entry {
            DatasetEntry::Path(path) => Self {
                path,
                weight: 1,
                hide_labels: false,
            },
            DatasetEntry::Table {
                path,
                weight,
                hide_labels,
            } => Self {
                path,
                weight,
                hide_labels,
            },
        }
    }
}

impl From<DatasetSource> for DatasetEntry {
    fn from(source: DatasetSource) -> Self {
        Self::Table {
            path: source.path,
            weight: source.weight,
            hide_labels: source.hide_labels,
        }
    }
}

/// How a node learns. Every field has a default; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearnerOptions {
    /// Task families to train on, in rotation (built in, or served by a `[[plugin]]`).
    pub families: Vec<String>,
    /// JSONL datasets to train on besides the families: paths, or tables
    /// `{ path, weight = 1, hide_labels = false }`. Rows without an answer are trained with
    /// majority-vote rewards.
    pub datasets: Vec<DatasetSource>,
    /// Smallest share of a question's pooled completions that must agree for their answer to
    /// become its label under majority voting; below it (or on a tie) the question is skipped.
    pub majority_min_share: f32,
    /// Train own unlabeled questions one round after sampling them, so that their votes also
    /// count the completions other nodes sampled of the same prompts meanwhile (received
    /// completions count only when `external_per_round` is above 0).
    pub defer_unlabeled: bool,
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
    /// Optimizer steps per round: the round's batch is split into this many shuffled minibatches,
    /// all measured against the policy the round started with (the proximal policy).
    pub steps_per_round: usize,
    /// Most external groups (other nodes' prompt groups) trained on per round (the paper's J).
    pub external_per_round: usize,
    /// Largest share of a round's groups that may be external; 1 lifts the cap.
    pub external_share_cap: f64,
    /// Largest share of a round's external groups that may come from one author.
    pub author_share_cap: f64,
    /// How external groups are chosen: `"informative-uniform"` discards groups with zero advantage
    /// under this node's rewards and draws uniformly from the rest (the SAPO paper's rule);
    /// `"freshest"` takes the newest arrivals whatever their advantage.
    pub external_selection: crate::pool::ExternalSelection,
    /// External groups buffered at most between rounds.
    pub external_pool_size: usize,
    /// External groups older than this many rounds are dropped unused.
    pub external_max_age_rounds: u64,
    /// `"pooled"`: own and external completions of the same question share one baseline;
    /// `"per-source"`: every sampled group is its own (the SAPO paper's code).
    pub grouping: crate::Grouping,
    /// Keep only the maximum-variance subset of this many completions per group (PODS); 0 keeps all.
    pub max_variance_subset: usize,
    /// Replay own groups in later rounds, weighted by truncated importance ratios, while at most
    /// `max_staleness` policy versions old.
    pub replay_local: bool,
    /// Oldest own rollouts (in policy versions) that are still trained on.
    pub max_staleness: u64,
    /// Negative-advantage external completions whose per-byte NLL under this policy exceeds that of
    /// own completions (this round's, else the latest round's that had any) by more than this many
    /// nats are dropped.
    pub nll_gate_margin: f64,
    /// Weight of a k3 KL penalty towards the policy the node started from (its warm start or the
    /// given weights); 0 (the default) turns it off and loads no reference copy.
    pub kl_coef: f64,
    /// Append every own and external completion to `rollouts.jsonl` in the data directory.
    pub rollout_log: bool,
    /// Write a checkpoint every this many rounds.
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk.
    pub keep_checkpoints: usize,
}

impl Default for LearnerOptions {
    fn default() -> Self {
        Self {
            families: vec!["sorting".to_owned()],
            datasets: Vec::new(),
            majority_min_share: 0.0,
            defer_unlabeled: true,
            difficulty: 0,
            task_seed: 1,
            prompts_per_round: 8,
            group_size: 8,
            temperature: 1.0,
            max_new_tokens: 8,
            lr: 3e-4,
            max_grad_norm: 1.0,
            eps_low: 0.2,
            eps_high: 0.28,
            tis_cap: 2.0,
            scale_advantages_by_std: false,
            format_reward: 0.1,
            steps_per_round: 1,
            external_per_round: 8,
            external_share_cap: 0.5,
            author_share_cap: 0.5,
            external_selection: crate::pool::ExternalSelection::InformativeUniform,
            external_pool_size: 256,
            external_max_age_rounds: 4,
            grouping: crate::Grouping::Pooled,
            max_variance_subset: 0,
            replay_local: false,
            max_staleness: 4,
            nll_gate_margin: 2.0,
            kl_coef: 0.0,
            rollout_log: false,
            checkpoint_every: 10,
            keep_checkpoints: 3,
        }
    }
}

impl LearnerOptions {
    /// Checks that every family is known (`max_difficulty` gives a family's highest level, `None`
    /// for an unknown name) and supports `difficulty`.
    pub fn validate_families(
        &self,
        max_difficulty: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<(), String> {
        for name in &self.families {
            match max_difficulty(name) {
                None => {
                    return Err(format!(
                        "`learner.families`: unknown family {name:?}; see `swarm-node tasks list` \
                         (a plug-in's families need its `[[plugin]]` entry)"
                    ));
                }
                Some(max) if self.difficulty > max => {
                    return Err(format!(
                        "`learner.difficulty`: {} is above {name}'s maximum {max}",
                        self.difficulty
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Checks every range, and the families against the built-in ones; the error names the key
    /// (`learner.<field>`) and what is accepted. A node with plug-ins checks with
    /// [`LearnerOptions::validate_with_plugins`].
    pub fn validate(&self) -> Result<(), String> {
        self.validate_with_plugins(&[])
    }

    /// [`LearnerOptions::validate`], accepting also the families named in `plugin_families`
    /// (their difficulty range is checked once the plug-in says it).
    pub fn validate_with_plugins(&self, plugin_families: &[String]) -> Result<(), String> {
        let fail = |key: &str, what: &str| Err(format!("`learner.{key}`: {what}"));
        if self.families.is_empty() && self.datasets.is_empty() {
            return fail(
                "families",
                "list at least one task family (see `swarm-node tasks list`) or a dataset \
                 in `learner.datasets`",
            );
        }
        self.validate_families(&|name| {
            swarm_tasks::family(name)
                .map(|f| f.max_difficulty())
                .or_else(|| {
                    plugin_families
                        .iter()
                        .any(|p| p == name)
                        .then_some(u32::MAX)
                })
        })?;
        for source in &self.datasets {
            if !(1..=1000).contains(&source.weight) {
                return fail(
                    "datasets",
                    &format!(
                        "weight {} of {} must be between 1 and 1000",
                        source.weight,
                        source.path.display()
                    ),
                );
            }
        }
        if !(0.0..=1.0).contains(&self.majority_min_share) {
            return fail("majority_min_share", "must be in [0, 1]");
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
        if !(1..=64).contains(&self.steps_per_round) {
            return fail("steps_per_round", "must be between 1 and 64");
        }
        if self.external_per_round > 1024 {
            return fail("external_per_round", "must be at most 1024");
        }
        if !(self.external_share_cap >= 0.0 && self.external_share_cap <= 1.0) {
            return fail("external_share_cap", "must be in [0, 1]");
        }
        if !(self.author_share_cap > 0.0 && self.author_share_cap <= 1.0) {
            return fail("author_share_cap", "must be in (0, 1]");
        }
        if !(1..=65_536).contains(&self.external_pool_size) {
            return fail("external_pool_size", "must be between 1 and 65536");
        }
        if self.max_variance_subset == 1 || self.max_variance_subset > 64 {
            return fail("max_variance_subset", "must be 0 (off) or between 2 and 64");
        }
        if !(0.0..=100.0).contains(&self.kl_coef) {
            return fail("kl_coef", "must be between 0 (off) and 100");
        }
        if self.nll_gate_margin.is_nan() || self.nll_gate_margin < 0.0 {
            return fail("nll_gate_margin", "must be at least 0 (nats per byte)");
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
        let cases: [(Change, &str); 8] = [
            (|o| o.steps_per_round = 0, "learner.steps_per_round"),
            (|o| o.external_share_cap = 1.5, "learner.external_share_cap"),
            (|o| o.max_variance_subset = 1, "learner.max_variance_subset"),
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
