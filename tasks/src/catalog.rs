//! The tasks one node knows: the built-in families, the families of its task plug-ins and the
//! datasets it loaded. Everything that turns a task reference into a question, or a completion into
//! a reward, goes through here, so that a plug-in family or a dataset row is generated, checked and
//! scored the same way on the training path, in evaluation and when validating other nodes' bundles.

use std::collections::BTreeMap;
use std::sync::Arc;

use swarm_protocol::{TaskRef, prompt_hash};

use crate::plugin::{Plugin, PluginFamily};
use crate::{
    Dataset, Question, RewardConfig, TaskError, UNLABELED_FAMILY, Verdict, answer, dataset,
    families, family, unlabeled_question,
};

/// A family as listed for people and checked against configurations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyInfo {
    /// Name used in task references.
    pub name: String,
    /// What it asks.
    pub description: String,
    /// Highest difficulty.
    pub max_difficulty: u32,
    /// The command of the plug-in serving it; `None` for a built-in family.
    pub plugin: Option<String>,
}

/// A dataset a node loaded, and how its rows are trained.
#[derive(Debug, Clone)]
pub struct LoadedDataset {
    /// The rows.
    pub dataset: Arc<Dataset>,
    /// Rows are trained with majority-vote rewards even where the file has answers (those are kept
    /// only to measure the votes against).
    pub hide_labels: bool,
}

/// The datasets and plug-ins a node resolves references into, besides the built-in families.
#[derive(Debug, Clone, Default)]
pub struct TaskCatalog {
    loaded: Vec<LoadedDataset>,
    /// Datasets whose labels are used, by hash: the ones `TaskRef::Dataset` resolves into.
    labeled: BTreeMap<[u8; 32], Arc<Dataset>>,
    plugins: Vec<Arc<Plugin>>,
    /// Plug-in family name → (index into `plugins`, description).
    plugin_families: BTreeMap<String, (usize, PluginFamily)>,
    /// Ground truth of rows trained without their labels, by prompt hash.
    hidden: BTreeMap<[u8; 32], Question>,
}

impl TaskCatalog {
    /// A catalog that knows the built-in families only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `dataset`'s rows resolvable by `TaskRef::Dataset`; returns its hash. Adding the same
    /// file twice keeps one copy.
    pub fn add_dataset(&mut self, dataset: Dataset) -> [u8; 32] {
        self.add(dataset, false)
    }

    /// Loads `dataset` to be trained by majority vote: its rows are named by prompt hash, and the
    /// answers the file may have are never used as rewards, only to say how often the votes agree
    /// with them ([`TaskCatalog::hidden_answer`]).
    pub fn add_dataset_hiding_labels(&mut self, dataset: Dataset) -> [u8; 32] {
        self.add(dataset, true)
    }

    fn add(&mut self, dataset: Dataset, hide_labels: bool) -> [u8; 32] {
        let hash = dataset.hash();
        let dataset = Arc::new(dataset);
        if hide_labels {
            for row in 0..dataset.len() as u64 {
                if let Ok(question) = dataset.question(row) {
                    self.hidden.insert(prompt_hash(&question.prompt), question);
                }
            }
        } else {
            self.labeled.insert(hash, Arc::clone(&dataset));
        }
        self.loaded.push(LoadedDataset {
            dataset,
            hide_labels,
        });
        hash
    }

    /// The datasets loaded, in the order they were added.
    pub fn datasets(&self) -> &[LoadedDataset] {
        &self.loaded
    }

    /// The dataset loaded under `name` (the path it was read from).
    pub fn dataset_named(&self, name: &str) -> Option<&LoadedDataset> {
        self.loaded.iter().find(|d| d.dataset.name() == name)
    }

    /// The labeled dataset with this hash.
    pub fn dataset(&self, hash: &[u8; 32]) -> Option<&Dataset> {
        self.labeled.get(hash).map(Arc::as_ref)
    }

    /// The file's answer to an unlabeled prompt of a dataset loaded with hidden labels.
    pub fn hidden_answer(&self, prompt: &str) -> Option<&Question> {
        self.hidden.get(&prompt_hash(prompt))
    }

    /// Serves `plugin`'s families. A family name already known (built in, or from another plug-in)
    /// is refused, so that a reference always names one generator.
    pub fn add_plugin(&mut self, plugin: Plugin) -> Result<(), TaskError> {
        for offered in plugin.families() {
            if family(&offered.name).is_some() || self.plugin_families.contains_key(&offered.name) {
                return Err(TaskError::FamilyClash {
                    family: offered.name.clone(),
                    plugin: plugin.command().to_owned(),
                });
            }
        }
        let index = self.plugins.len();
        for offered in plugin.families() {
            self.plugin_families
                .insert(offered.name.clone(), (index, offered.clone()));
        }
        self.plugins.push(Arc::new(plugin));
        Ok(())
    }

    /// The family called `name`, built in or served by a plug-in.
    pub fn family_info(&self, name: &str) -> Option<FamilyInfo> {
        if let Some(found) = family(name) {
            return Some(FamilyInfo {
                name: found.name().to_owned(),
                description: found.description().to_owned(),
                max_difficulty: found.max_difficulty(),
                plugin: None,
            });
        }
        self.plugin_families
            .get(name)
            .map(|(index, offered)| FamilyInfo {
                name: offered.name.clone(),
                description: offered.description.clone(),
                max_difficulty: offered.max_difficulty,
                plugin: Some(self.plugins[*index].command().to_owned()),
            })
    }

    /// Every family: the built-in ones, then the plug-ins'.
    pub fn families(&self) -> Vec<FamilyInfo> {
        families()
            .iter()
            .map(|f| f.name())
            .chain(self.plugin_families.keys().map(String::as_str))
            .filter_map(|name| self.family_info(name))
            .collect()
    }

    /// The question `index` of stream `seed` of `family_name` at `difficulty`, refusing unknown
    /// families and difficulties instead of clamping, since a reference must name one question.
    pub fn generate(
        &self,
        family_name: &str,
        difficulty: u32,
        seed: u64,
        index: u64,
    ) -> Result<Question, TaskError> {
        let info = self
            .family_info(family_name)
            .ok_or_else(|| TaskError::UnknownFamily(family_name.into()))?;
        if difficulty > info.max_difficulty {
            return Err(TaskError::Difficulty {
                family: family_name.into(),
                difficulty,
                max: info.max_difficulty,
            });
        }
        match self.plugin_families.get(family_name) {
            Some((plugin, _)) => {
                Ok(self.plugins[*plugin].generate(family_name, difficulty, seed, index)?)
            }
            None => crate::procedural(family_name, difficulty, seed, index),
        }
    }

    /// Regenerates the question a labeled reference names. Unlabeled references name no ground
    /// truth and are refused here; use [`TaskCatalog::check`] with the prompt that came with them.
    pub fn resolve(&self, task: &TaskRef) -> Result<Question, TaskError> {
        match task {
            TaskRef::Procedural {
                family,
                difficulty,
                seed,
                index,
            } => self.generate(family, *difficulty, *seed, *index),
            TaskRef::Dataset { dataset_hash, row } => self
                .labeled
                .get(dataset_hash)
                .ok_or_else(|| TaskError::UnknownDataset(hex::encode(dataset_hash)))?
                .question(*row),
            TaskRef::Unlabeled { .. } => Err(TaskError::Unlabeled),
        }
    }

    /// Checks that `prompt` is the one `task` names and returns the question to score against. For
    /// an unlabeled reference that is a question with an empty answer (family
    /// [`UNLABELED_FAMILY`]), to be scored by majority vote.
    pub fn check(&self, task: &TaskRef, prompt: &str) -> Result<Question, TaskError> {
        let question = match task {
            TaskRef::Unlabeled { prompt_hash: hash } => {
                if prompt_hash(prompt) != *hash {
                    return Err(TaskError::PromptMismatch);
                }
                unlabeled_question(prompt)
            }
            labeled => self.resolve(labeled)?,
        };
        if question.prompt != prompt {
            return Err(TaskError::PromptMismatch);
        }
        Ok(question)
    }

    /// Scores a completion against the question's ground truth: its family's verifier, the
    /// plug-in's score, or the answer-type verifier of a dataset row. An unlabeled question has no
    /// ground truth ([`TaskError::Unlabeled`]): its rewards come from a vote over its completions.
    pub fn verify(
        &self,
        question: &Question,
        completion: &str,
        rewards: &RewardConfig,
    ) -> Result<Verdict, TaskError> {
        if let Some(found) = family(&question.family) {
            return Ok(found.verify(question, completion, rewards));
        }
        if let Some((plugin, _)) = self.plugin_families.get(&question.family) {
            let extracted = answer::extract(completion);
            let score = self.plugins[*plugin].score(question, completion, extracted.as_deref())?;
            let correct = score >= 1.0;
            let well_formed = extracted.is_some();
            let mut verdict = rewards.verdict(extracted, well_formed, correct);
            // Partial credit from the plug-in's scorer counts when it beats the format reward.
            verdict.reward = verdict.reward.max(score as f32);
            return Ok(verdict);
        }
        if question.family == UNLABELED_FAMILY {
            return Err(TaskError::Unlabeled);
        }
        Ok(dataset::verify_row(question, completion, rewards))
    }
}
