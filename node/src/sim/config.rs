//! The simulation description: `configs/sim-*.toml`. A simulation runs every configuration (a
//! local/external split, a grouping) once per seed, each run being a fresh swarm of the node kinds
//! listed, so configurations are compared on the same seeds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use swarm_learner::{Grouping, LearnerOptions, WarmupOptions};

/// A whole simulation file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Size, length and seeds.
    pub sim: SimSection,
    /// Learner options every node starts from.
    pub learner: LearnerOptions,
    /// Warm start of node kinds whose model has no weights.
    pub warmup: WarmupOptions,
    /// Node kinds; none means `sim.nodes` honest nodes of the default model.
    #[serde(rename = "kind")]
    pub kinds: Vec<NodeKind>,
    /// Configurations compared; none means one, named "default", with the learner options as given.
    #[serde(rename = "configuration")]
    pub configurations: Vec<Configuration>,
    /// Task plug-ins, started once and shared by every simulated node (commands run from the
    /// working directory).
    #[serde(rename = "plugin")]
    pub plugins: Vec<swarm_tasks::PluginSpec>,
}

/// `[sim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimSection {
    /// Name of the experiment, used in the report.
    pub name: String,
    /// Number of nodes when no `[[kind]]` is listed.
    pub nodes: usize,
    /// Rounds every node runs.
    pub rounds: u64,
    /// One run per seed and configuration.
    pub seeds: Vec<u64>,
    /// All nodes draw questions from the same stream (so pooled grouping can merge groups);
    /// otherwise each node has its own stream.
    pub shared_questions: bool,
    /// Held-out questions per family (and rows per evaluation dataset) for each node's pass@1 at
    /// the start and end (0 skips it).
    pub eval_questions: u64,
    /// Held-out datasets (JSONL with answers) every node is also evaluated on; relative paths are
    /// read from the plan file's directory, like `learner.datasets`.
    pub eval_datasets: Vec<PathBuf>,
    /// Where warm starts are cached, shared with `swarm-node train`.
    pub cache_dir: PathBuf,
}

impl Default for SimSection {
    fn default() -> Self {
        Self {
            name: "sim".to_owned(),
            nodes: 3,
            rounds: 20,
            seeds: vec![1],
            shared_questions: false,
            eval_questions: 64,
            eval_datasets: Vec::new(),
            cache_dir: crate::builtin::default_data_dir(),
        }
    }
}

/// `[[kind]]`: a group of identical nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeKind {
    /// Label in the report.
    pub name: String,
    /// Nodes of this kind.
    pub count: usize,
    /// Model directory, or the name of a built-in model.
    pub model: PathBuf,
    /// Families this kind trains on (default: `learner.families`).
    pub families: Option<Vec<String>>,
    /// Families of this kind's warm start (default: `warmup.families`), to make specialists.
    pub warmup_families: Option<Vec<String>>,
    /// Each round takes this many times as long as it computes (1 = full speed).
    pub slowdown: f64,
    /// What this kind publishes instead of honest rollouts.
    pub adversary: Option<Adversary>,
}

impl Default for NodeKind {
    fn default() -> Self {
        Self {
            name: "honest".to_owned(),
            count: 1,
            model: PathBuf::from("tiny"),
            families: None,
            warmup_families: None,
            slowdown: 1.0,
            adversary: None,
        }
    }
}

/// Misbehaviour of an adversarial node kind. It still trains honestly on its own rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Adversary {
    /// Random text as completions, claiming reward 1.
    Garbage,
    /// Well-formed wrong answers, claiming reward 1.
    WrongAnswers,
    /// Prompts that do not match their task reference (receivers reject them).
    ForgedPrompts,
}

/// `[[configuration]]`: what varies between compared runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Configuration {
    /// Label, e.g. "4/4".
    pub name: String,
    /// Own prompts per round (the paper's I); default `learner.prompts_per_round`.
    pub local: Option<usize>,
    /// External groups per round (the paper's J); default `learner.external_per_round`.
    pub external: Option<usize>,
    /// Baseline grouping; default `learner.grouping`.
    pub grouping: Option<Grouping>,
    /// Whether adversarial kinds misbehave; `false` makes them publish honestly, giving the clean
    /// run to compare an attacked one with (same nodes, same seeds).
    pub adversaries: bool,
}

impl Default for Configuration {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            local: None,
            external: None,
            grouping: None,
            adversaries: true,
        }
    }
}

impl Configuration {
    /// The learner options of this configuration.
    pub fn apply(&self, base: &LearnerOptions) -> LearnerOptions {
        let mut options = base.clone();
        if let Some(local) = self.local {
            options.prompts_per_round = local;
        }
        if let Some(external) = self.external {
            options.external_per_round = external;
        }
        if let Some(grouping) = self.grouping {
            options.grouping = grouping;
        }
        options
    }
}

/// Command-line changes to a simulation file.
#[derive(Debug, Clone, Default)]
pub struct SimOverrides {
    /// Node count (only for files without `[[kind]]`s).
    pub nodes: Option<usize>,
    /// Rounds.
    pub rounds: Option<u64>,
    /// Replace the configurations by one with this local/external split.
    pub local_external: Option<(usize, usize)>,
    /// Run only this seed.
    pub seed: Option<u64>,
}

impl SimConfig {
    /// Reads and validates a simulation file.
    pub fn load(path: &Path) -> Result<Self> {
        let (source, text) = crate::builtin::plan(path)?;
        let mut config: SimConfig = toml::from_str(&text).with_context(|| {
            format!("{source} is not a valid simulation config (see configs/sim-quick.toml for the format)")
        })?;
        // Datasets and model directories travel with the plan that names them: a plan file's
        // relative paths are read from its directory, whatever the working directory (a
        // built-in plan's, from the working directory). A built-in model's name stays a name.
        if path.is_file()
            && let Some(base) = path.parent()
        {
            for kind in &mut config.kinds {
                let plan_relative = base.join(&kind.model);
                if kind.model.is_relative()
                    && (crate::builtin::model(&kind.model).is_none() || plan_relative.is_dir())
                {
                    kind.model = plan_relative;
                }
            }
            for source in &mut config.learner.datasets {
                source.path = base.join(&source.path);
            }
            for dataset in &mut config.sim.eval_datasets {
                *dataset = base.join(&*dataset);
            }
        }
        Ok(config)
    }

    /// Applies command-line changes and checks the result.
    pub fn with_overrides(mut self, overrides: &SimOverrides) -> Result<Self> {
        if let Some(nodes) = overrides.nodes {
            if !self.kinds.is_empty() {
                bail!(
                    "--nodes cannot resize a simulation whose config lists [[kind]] tables; change their `count`s instead"
                );
            }
            self.sim.nodes = nodes;
        }
        if let Some(rounds) = overrides.rounds {
            self.sim.rounds = rounds;
        }
        if let Some((local, external)) = overrides.local_external {
            self.configurations = vec![Configuration {
                name: format!("{local}/{external}"),
                local: Some(local),
                external: Some(external),
                ..Configuration::default()
            }];
        }
        if let Some(seed) = overrides.seed {
            self.sim.seeds = vec![seed];
        }
        self.validate()?;
        Ok(self)
    }

    /// The node kinds, with the default kind filled in when the file lists none.
    pub fn node_kinds(&self) -> Vec<NodeKind> {
        if self.kinds.is_empty() {
            vec![NodeKind {
                count: self.sim.nodes,
                ..NodeKind::default()
            }]
        } else {
            self.kinds.clone()
        }
    }

    /// The configurations, with the default one filled in when the file lists none.
    pub fn configurations(&self) -> Vec<Configuration> {
        if self.configurations.is_empty() {
            vec![Configuration::default()]
        } else {
            self.configurations.clone()
        }
    }

    /// Checks every range; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let nodes: usize = self.node_kinds().iter().map(|k| k.count).sum();
        if !(1..=64).contains(&nodes) {
            bail!(
                "the simulation has {nodes} nodes; `sim.nodes` (or the kinds' counts) must add up to 1..=64"
            );
        }
        if !(1..=100_000).contains(&self.sim.rounds) {
            bail!("`sim.rounds` must be between 1 and 100000");
        }
        if self.sim.seeds.is_empty() {
            bail!("`sim.seeds` must list at least one seed");
        }
        let plugin_families: Vec<String> = self
            .plugins
            .iter()
            .flat_map(|p| p.families.iter().cloned())
            .collect();
        for kind in &self.node_kinds() {
            if !(kind.slowdown >= 1.0 && kind.slowdown <= 100.0) {
                bail!("kind {:?}: `slowdown` must be between 1 and 100", kind.name);
            }
            let mut options = self.learner.clone();
            if let Some(families) = &kind.families {
                options.families = families.clone();
            }
            options
                .validate_with_plugins(&plugin_families)
                .map_err(|err| anyhow::anyhow!("kind {:?}: {err}", kind.name))?;
            if crate::builtin::model(&kind.model).is_none()
                && !kind.model.join("config.json").exists()
            {
                bail!(
                    "kind {:?}: model directory {} has no config.json (nor is it a built-in \
                     model's name)",
                    kind.name,
                    kind.model.display()
                );
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for configuration in &self.configurations() {
            if !names.insert(configuration.name.clone()) {
                bail!(
                    "two [[configuration]] tables are named {:?}; names must be unique",
                    configuration.name
                );
            }
            configuration
                .apply(&self.learner)
                .validate_with_plugins(&plugin_families)
                .map_err(|err| anyhow::anyhow!("configuration {:?}: {err}", configuration.name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_validate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for preset in [
            "sim-quick",
            "sim-sapo-sweep",
            "sim-mix-sweep",
            "sim-skills-sweep",
            "sim-specialists",
            "sim-adversarial",
            "ttrl/plan",
            "reasoning-gym/plan",
        ] {
            let path = root.join(format!("configs/{preset}.toml"));
            let config = SimConfig::load(&path).unwrap();
            config
                .validate()
                .unwrap_or_else(|err| panic!("{preset}: {err:#}"));
            for dataset in config
                .learner
                .datasets
                .iter()
                .map(|d| &d.path)
                .chain(&config.sim.eval_datasets)
            {
                assert!(
                    dataset.is_file(),
                    "{preset}: {} is missing",
                    dataset.display()
                );
            }
        }
    }

    #[test]
    fn bad_files_and_flags_are_explained() {
        let err = toml::from_str::<SimConfig>("[sim]\nnode = 3\n").unwrap_err();
        assert!(err.to_string().contains("node"), "{err}");
        let config: SimConfig = toml::from_str("[[kind]]\ncount = 2\n").unwrap();
        let err = config
            .with_overrides(&SimOverrides {
                nodes: Some(4),
                ..SimOverrides::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("count"), "{err}");
        let missing = SimConfig::load(Path::new("no-such-plan.toml")).unwrap_err();
        assert!(
            format!("{missing:#}").contains("--list-plans"),
            "{missing:#}"
        );
        let config: SimConfig = toml::from_str("[sim]\nrounds = 0\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("sim.rounds")
        );
    }
}
