//! What `train`, `join` and `simulate` share before and after the rounds they run: finding or
//! building the warm start, starting the learner from it, and reporting each finished round on the
//! terminal and to the status board.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use swarm_learner::{Learner, RoundMetrics, WarmupOptions};
use swarm_policy::{Policy, durable};
use swarm_tasks::TaskCatalog;

use crate::config::NodeConfig;
use crate::status::StatusBoard;

/// Whether `dir` holds model weights (any safetensors file).
pub fn has_model_weights(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        })
        .unwrap_or(false)
}

/// Where the warm start of `model` under `options` from initial weights drawn with `init_seed` is
/// cached: keyed by all of them (and the tokenizer), so changing any builds a new one.
pub fn warm_start_dir(
    data_dir: &Path,
    model: &Path,
    options: &WarmupOptions,
    init_seed: u64,
) -> Result<PathBuf> {
    let mut hasher = blake3::Hasher::new();
    for file in ["config.json", "tokenizer.json"] {
        let path = model.join(file);
        hasher.update(
            &std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
        );
    }
    hasher.update(serde_json::to_string(options)?.as_bytes());
    hasher.update(&init_seed.to_le_bytes());
    let key = hex::encode(&hasher.finalize().as_bytes()[..6]);
    Ok(data_dir.join("warm-start").join(key))
}

/// The names in directory `dir`.
fn entry_names(dir: &Path) -> Result<std::collections::BTreeSet<std::ffi::OsString>> {
    std::fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|entry| entry.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
        })
        .with_context(|| format!("cannot list {} (it must be a directory)", dir.display()))
}

/// Runs the supervised warm start of `model` with a progress bar and saves it to `out`.
pub fn build_warm_start(
    model: &Path,
    options: &WarmupOptions,
    seed: u64,
    out: &Path,
) -> Result<Policy> {
    let policy = Policy::init_random(model, seed, &swarm_policy::default_device()?)?;
    let bar = ProgressBar::new(options.steps).with_style(
        ProgressStyle::with_template(
            "warm start {bar:30} {pos}/{len} steps, loss {msg} ({eta} left)",
        )
        .expect("valid template"),
    );
    let report = swarm_learner::warmup(&policy, options, &mut |step, _, loss| {
        bar.set_position(step);
        bar.set_message(format!("{loss:.3}"));
    })?;
    bar.finish_and_clear();
    tracing::info!(
        first_loss = report.first_loss,
        final_loss = report.final_loss,
        steps = report.steps,
        "warm start trained"
    );
    // Write beside, then rename: a crash never leaves a half-written warm start that later runs trust.
    let tmp = out.with_file_name(format!(
        ".{}.tmp-{}",
        out.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    if let Err(error) = policy.save(&tmp) {
        let _ = durable::remove_tree(&tmp);
        return Err(error);
    }
    if out.exists() {
        // Only an earlier warm start may be replaced: a directory holding anything a warm start does
        // not write (an identity key, checkpoints, metrics) is someone else's and is left whole.
        let written = entry_names(&tmp)?;
        let foreign: Vec<String> = entry_names(out)?
            .into_iter()
            .filter(|name| !written.contains(name))
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        if !foreign.is_empty() {
            durable::remove_tree(&tmp)?;
            anyhow::bail!(
                "{} already holds files a warm start does not write ({}); it is left as it is: \
                 pass an --out that does not exist yet, or an earlier warm start's directory",
                out.display(),
                foreign.join(", ")
            );
        }
        durable::remove_dir(out)?;
    }
    durable::publish_dir(&tmp, out)?;
    Ok(policy)
}

/// The directory of the warm start of `model` (see [`warm_start_dir`]), built on first use. Later
/// runs load the same file, so the first run and the cached ones start from identical weights.
pub fn cached_warm_start(
    cache_dir: &Path,
    model: &Path,
    options: &WarmupOptions,
    init_seed: u64,
) -> Result<PathBuf> {
    let cached = warm_start_dir(cache_dir, model, options, init_seed)?;
    if has_model_weights(&cached) {
        tracing::info!(path = %cached.display(), "using cached warm start");
        return Ok(cached);
    }
    tracing::info!(
        model = %model.display(),
        "the model has no weights yet: building its warm start once (cached in {})",
        cached.display()
    );
    std::fs::create_dir_all(cached.parent().expect("warm-start dir has a parent"))?;
    build_warm_start(model, options, init_seed, &cached)?;
    Ok(cached)
}

/// The model directory a node starts from: `node.model` if it has weights, else its cached warm
/// start (built on first use).
pub fn starting_dir(config: &NodeConfig) -> Result<PathBuf> {
    let model = &crate::builtin::resolve_model(&config.node.model, &config.node.data_dir)?;
    if has_model_weights(model) {
        return Ok(model.clone());
    }
    cached_warm_start(
        &config.node.data_dir,
        model,
        &config.warmup,
        config.node.seed,
    )
}

/// The model this node has now: its newest whole checkpoint, else the model it starts from.
pub fn current_model(config: &NodeConfig) -> Result<PathBuf> {
    let checkpoints = config.node.data_dir.join("checkpoints");
    match swarm_policy::checkpoint::latest(&checkpoints)? {
        Some(newest) => Ok(newest),
        None => starting_dir(config),
    }
}

/// The tasks a node with `config` knows: its datasets loaded and its task plug-ins started.
pub fn node_tasks(config: &NodeConfig) -> Result<Arc<TaskCatalog>> {
    Ok(Arc::new(swarm_learner::load_tasks(
        &config.learner,
        &config.plugins,
    )?))
}

/// A learner starting from `dir` (resuming from its data directory's newest checkpoint), with a
/// frozen second copy of `dir` as the KL reference when `kl_coef` is set.
pub fn start_learner(
    dir: &Path,
    model: &Path,
    data_dir: &Path,
    options: swarm_learner::LearnerOptions,
    seed: u64,
    tasks: Arc<TaskCatalog>,
) -> Result<Learner> {
    let device = swarm_policy::default_device()?;
    let kl = options.kl_coef > 0.0;
    let mut learner = Learner::start(
        Policy::load(dir, &device)?,
        &model_name(model),
        data_dir,
        options,
        seed,
        tasks,
    )?;
    if kl {
        learner.set_reference(Policy::load(dir, &device)?);
    }
    Ok(learner)
}

/// The learner of a node as configured: from its starting model, resuming from its data
/// directory, with the tasks of [`node_tasks`].
pub fn node_learner(config: &NodeConfig, tasks: Arc<TaskCatalog>) -> Result<Learner> {
    start_learner(
        &starting_dir(config)?,
        &config.node.model,
        &config.node.data_dir,
        config.learner.clone(),
        config.node.seed,
        tasks,
    )
}

/// The name other nodes see for a model directory: its last path component.
pub fn model_name(model: &Path) -> String {
    model
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_owned())
}

/// A finished round as the node prints it: one line, with the peer count when on a network.
pub struct RoundLine<'a> {
    /// The round's metrics.
    pub metrics: &'a RoundMetrics,
    /// Peers connected at its end; `None` alone.
    pub peers: Option<usize>,
}

impl std::fmt::Display for RoundLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let metrics = self.metrics;
        let network = match self.peers {
            Some(peers) => format!(
                "  peers {peers}  peer groups {}  trained external {}/{}",
                metrics.external_groups,
                metrics.trained_external,
                metrics.trained_local + metrics.trained_external
            ),
            None => String::new(),
        };
        write!(
            f,
            "round {:>4}  reward {:.3}  accuracy {}  zero-var {:.2}  entropy {:.3}  {:.0} tok/s  {:.2} s{network}",
            metrics.round,
            metrics.reward_local,
            metrics
                .accuracy
                .iter()
                .map(|(family, acc)| format!("{family}={acc:.2}"))
                .collect::<Vec<_>>()
                .join(","),
            metrics.zero_variance_fraction,
            metrics.entropy,
            metrics.tokens_per_second,
            metrics.round_seconds
        )
    }
}

/// Prints one line for a finished round (with the peer count on the network).
pub fn print_round(metrics: &RoundMetrics, peers: Option<usize>) {
    println!("{}", RoundLine { metrics, peers });
}

/// Publishes a finished round to the status board (HTTP API and dashboard).
pub fn record_round(board: &StatusBoard, metrics: &RoundMetrics) -> Result<()> {
    board.update(|s| {
        s.round = metrics.round;
        s.policy_version = metrics.policy_version;
        s.last_reward = Some(metrics.reward_local);
        s.tokens_per_second = Some(metrics.tokens_per_second);
    });
    board.push_history(serde_json::to_value(metrics)?);
    Ok(())
}
