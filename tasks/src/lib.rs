//! Verifiable tasks for swarm nodes: deterministic question generators, generous answer verifiers,
//! JSONL datasets, majority-vote rewards for unlabeled prompts, and pass@k evaluation.
//!
//! A question is named without trusting anyone: a procedural family regenerates it from
//! `(difficulty, seed, index)` bit for bit on every machine (integer arithmetic, a ChaCha stream seeded by
//! blake3, no hash-map order), so a receiver can check that a gossiped prompt is the one its reference
//! names, and score the answers with its own ground truth.

pub mod answer;
mod catalog;
pub mod dataset;
pub mod eval;
mod families;
pub mod listing;
pub mod majority;
pub mod plugin;
mod rng;
mod task_ref;

use serde::{Deserialize, Serialize};

pub use catalog::{FamilyInfo, LoadedDataset, TaskCatalog};
pub use dataset::{Dataset, DatasetError};
pub use families::{families, family};
pub use plugin::{Plugin, PluginError, PluginSpec};
/// The protocol's task reference and prompt hash, re-exported so that users of the catalog name the
/// very types it resolves.
pub use swarm_protocol::{TaskRef, prompt_hash};
pub use task_ref::{TaskRefExt, UNLABELED_FAMILY, resolve, unlabeled_question};

/// A generated question with its ground truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Family name, as in the registry.
    pub family: String,
    /// Difficulty level, 0 being the easiest.
    pub difficulty: u32,
    /// Seed of the question stream.
    pub seed: u64,
    /// Position in the stream.
    pub index: u64,
    /// The prompt shown to the model.
    pub prompt: String,
    /// The canonical answer.
    pub answer: String,
}

/// How a completion was scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Reward in [0, 1]: 1 for a correct answer, the format reward for a well-formed wrong one, else 0.
    pub reward: f32,
    /// The answer is correct.
    pub correct: bool,
    /// The answer has the shape the question asks for (a number, a fraction, a day name...).
    pub well_formed: bool,
    /// The answer text the verifier read from the completion.
    pub extracted: Option<String>,
}

/// Reward shaping shared by all families.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Reward for a well-formed but wrong answer; small, so that format is learned without
    /// drowning out correctness.
    pub format_reward: f32,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self { format_reward: 0.1 }
    }
}

impl RewardConfig {
    /// Checks the ranges of the fields.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..0.5).contains(&self.format_reward) {
            return Err(format!(
                "format_reward = {}: must be at least 0 and below 0.5 (a wrong answer must earn less than half a right one)",
                self.format_reward
            ));
        }
        Ok(())
    }

    /// Turns a correctness judgement into a verdict.
    pub fn verdict(&self, extracted: Option<String>, well_formed: bool, correct: bool) -> Verdict {
        let reward = if correct {
            1.0
        } else if well_formed {
            self.format_reward
        } else {
            0.0
        };
        Verdict {
            reward,
            correct,
            well_formed: well_formed || correct,
            extracted,
        }
    }
}

/// A family of procedurally generated questions with a verifier.
pub trait TaskFamily: Send + Sync {
    /// Stable name, used in task references on the wire.
    fn name(&self) -> &'static str;
    /// One line saying what the family asks.
    fn description(&self) -> &'static str;
    /// Highest supported difficulty (difficulties are `0..=max_difficulty()`).
    fn max_difficulty(&self) -> u32;
    /// The question at `index` of the stream `seed`, at `difficulty` (clamped to the maximum).
    /// Identical on every machine.
    fn generate(&self, difficulty: u32, seed: u64, index: u64) -> Question;
    /// Scores a completion against the question's ground truth.
    fn verify(&self, question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict;
    /// The canonical completion for supervised warm-up: the bare answer.
    fn demonstration(&self, question: &Question) -> String {
        question.answer.clone()
    }
}

/// Seeds at or above this value are reserved for held-out evaluation: training streams must use seeds
/// below it, so that evaluation questions are never trained on (apart from chance collisions of tiny
/// question spaces, which the easiest levels cannot avoid).
pub const EVAL_SEED_BASE: u64 = 1 << 63;

/// The held-out evaluation question `index` of `family` at `difficulty`.
pub fn eval_question(family: &dyn TaskFamily, difficulty: u32, index: u64) -> Question {
    family.generate(difficulty, EVAL_SEED_BASE, index)
}

/// Errors naming a question that cannot be produced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaskError {
    /// No family of that name in this build.
    #[error("unknown task family `{0}`; `swarm-node tasks list` shows the known ones")]
    UnknownFamily(String),
    /// The difficulty is above the family's maximum.
    #[error(
        "difficulty {difficulty} is above the maximum {max} of family `{family}`; \
         `swarm-node tasks list` shows each family's range"
    )]
    Difficulty {
        /// Family name.
        family: String,
        /// Requested level.
        difficulty: u32,
        /// Highest level.
        max: u32,
    },
    /// No loaded dataset has that hash.
    #[error("no loaded dataset has hash {0}")]
    UnknownDataset(String),
    /// The row is past the end of the dataset.
    #[error("row {row} is past the end of dataset {hash} ({rows} rows)")]
    Row {
        /// Dataset hash (hex).
        hash: String,
        /// Requested row.
        row: u64,
        /// Rows in the dataset.
        rows: usize,
    },
    /// An unlabeled reference names a prompt by hash only, so there is nothing to regenerate.
    #[error("an unlabeled task names no ground truth; check its prompt against the hash instead")]
    Unlabeled,
    /// The prompt that came with a reference is not the one the reference names.
    #[error("the prompt differs from the one its task reference names")]
    PromptMismatch,
    /// A task plug-in failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Two sources offer a family of the same name.
    #[error(
        "task plug-in `{plugin}` offers family `{family}`, which this node already has; \
         a family name must name one generator (rename it in the plug-in)"
    )]
    FamilyClash {
        /// The family name.
        family: String,
        /// The plug-in's command.
        plugin: String,
    },
}

/// Regenerates a procedural question, refusing unknown families and difficulties instead of clamping,
/// because a reference from the network must name exactly one question.
pub fn procedural(
    family_name: &str,
    difficulty: u32,
    seed: u64,
    index: u64,
) -> Result<Question, TaskError> {
    let found = family(family_name).ok_or_else(|| TaskError::UnknownFamily(family_name.into()))?;
    if difficulty > found.max_difficulty() {
        return Err(TaskError::Difficulty {
            family: family_name.into(),
            difficulty,
            max: found.max_difficulty(),
        });
    }
    Ok(found.generate(difficulty, seed, index))
}

/// Scores a completion for a question from any source: its family's verifier for procedural questions,
/// the answer-type verifier for dataset rows.
pub fn verify(question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
    match family(&question.family) {
        Some(found) => found.verify(question, completion, rewards),
        None => dataset::verify_row(question, completion, rewards),
    }
}

/// `n` sample questions of a family, for `swarm-node tasks show`.
pub fn sample_questions(
    family_name: &str,
    difficulty: u32,
    seed: u64,
    n: usize,
) -> Result<Vec<Question>, TaskError> {
    (0..n as u64)
        .map(|index| procedural(family_name, difficulty, seed, index))
        .collect()
}
