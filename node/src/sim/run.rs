//! Runs a simulation: for every configuration and seed, a fresh swarm of in-process nodes, each a
//! real libp2p node on loopback and a learner on its own thread, exchanging signed bundles through
//! gossipsub exactly as separate processes would. Nodes run their rounds at their own pace; nothing
//! synchronises them but the network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use swarm_learner::{Learner, LearnerOptions, Network, RoundMetrics, WarmupOptions};
use swarm_net::{NetConfig, NetHandle};
use swarm_policy::Policy;
use swarm_protocol::SigningKey;
use swarm_tasks::TaskCatalog;
use swarm_tasks::eval::EvalOptions;

use super::adversary::AdversarialNetwork;
use super::config::{Adversary, Configuration, NodeKind, SimConfig};
use crate::gossip::{GossipNetwork, task_checker};
use crate::setup::{cached_warm_start, has_model_weights, start_learner};

/// How one node of one run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeResult {
    /// `node-<i>`.
    pub name: String,
    /// Its kind's name.
    pub kind: String,
    /// Its public key (hex): the author of its bundles in other nodes' logs.
    pub author: String,
    /// What it publishes instead of honest rollouts, if anything.
    pub adversary: Option<Adversary>,
    /// Families it trains on.
    pub families: Vec<String>,
    /// Its metrics, one entry per round.
    pub rounds: Vec<RoundMetrics>,
    /// Held-out pass@1 per family of its starting policy.
    pub pass_at_1_start: BTreeMap<String, f64>,
    /// Held-out pass@1 per family after the last round.
    pub pass_at_1_end: BTreeMap<String, f64>,
    /// Bundles it published.
    pub published: u64,
    /// Groups it could not publish because no peer was subscribed yet.
    pub unpublished: u64,
    /// Validation outcomes of the gossip messages it received, by reason.
    pub received: BTreeMap<String, u64>,
}

impl NodeResult {
    /// Sum over rounds of the round's mean reward per own completion: the cumulative reward of
    /// the report.
    pub fn cumulative_reward(&self) -> f64 {
        self.rounds.iter().map(|r| r.reward_local).sum()
    }
}

/// One configuration on one seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Configuration name.
    pub configuration: String,
    /// Seed.
    pub seed: u64,
    /// Every node.
    pub nodes: Vec<NodeResult>,
    /// Wall-clock seconds of the run, warm starts excluded.
    pub seconds: f64,
}

/// What a node sends to the progress display after each round.
pub struct Progress<'a> {
    /// Configuration name.
    pub configuration: &'a str,
    /// Seed.
    pub seed: u64,
    /// Node index.
    pub node: usize,
    /// Nodes in this run.
    pub nodes: usize,
    /// Rounds every node runs.
    pub rounds: u64,
    /// The round just finished.
    pub metrics: &'a RoundMetrics,
}

/// One node's plan within a run.
struct NodePlan {
    name: String,
    kind: NodeKind,
    options: LearnerOptions,
    warm_start: PathBuf,
    data_dir: PathBuf,
}

/// Runs every configuration on every seed and returns the results in that order. Each run writes its
/// nodes' data directories (metrics.jsonl, checkpoints) under `out/<configuration>/seed-<seed>/`.
/// When `stop` is set, the run in progress finishes its nodes' current rounds, checkpoints them and
/// is left out; the runs finished before it are returned.
pub fn run_simulation(
    config: &SimConfig,
    out: &Path,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<RunResult>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("sim-net")
        .build()
        .context("cannot start the network runtime")?;
    let tasks = Arc::new(sim_tasks(config)?);
    let mut results = Vec::new();
    let mut start_scores: BTreeMap<(PathBuf, Vec<String>), BTreeMap<String, f64>> = BTreeMap::new();
    for seed in &config.sim.seeds {
        for configuration in config.configurations() {
            let run_dir = out
                .join(slug(&configuration.name))
                .join(format!("seed-{seed}"));
            let plans = plan_nodes(config, &configuration, *seed, &run_dir)?;
            let result = run_one(
                config,
                &configuration,
                *seed,
                plans,
                Shared {
                    runtime: &runtime,
                    stop,
                    tasks: &tasks,
                },
                &mut start_scores,
                progress,
            )
            .with_context(|| {
                format!(
                    "simulation run of configuration {:?} with seed {seed} failed",
                    configuration.name
                )
            })?;
            let Some(result) = result else {
                return Ok(results);
            };
            std::fs::write(
                run_dir.join("result.json"),
                serde_json::to_string_pretty(&result)?,
            )?;
            results.push(result);
        }
    }
    Ok(results)
}

/// The datasets every node of the plan trains on, and those it is evaluated on (with their
/// answers).
fn sim_tasks(config: &SimConfig) -> Result<TaskCatalog> {
    let mut tasks = swarm_learner::load_tasks(&config.learner, &config.plugins)?;
    for path in &config.sim.eval_datasets {
        tasks.add_dataset(swarm_tasks::Dataset::load(path)?);
    }
    Ok(tasks)
}

/// A directory name for a configuration label such as "4/4".
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The warm start every node of `kind` begins from in runs with `seed`, built on first use.
fn kind_warm_start(config: &SimConfig, kind: &NodeKind, seed: u64) -> Result<PathBuf> {
    let model = crate::builtin::resolve_model(&kind.model, &config.sim.cache_dir)?;
    if has_model_weights(&model) {
        return Ok(model);
    }
    let options = WarmupOptions {
        families: kind
            .warmup_families
            .clone()
            .unwrap_or_else(|| config.warmup.families.clone()),
        ..config.warmup.clone()
    };
    cached_warm_start(&config.sim.cache_dir, &model, &options, seed)
}

fn plan_nodes(
    config: &SimConfig,
    configuration: &Configuration,
    seed: u64,
    run_dir: &Path,
) -> Result<Vec<NodePlan>> {
    if run_dir.exists() {
        // A data directory with checkpoints would make the learner resume instead of starting fresh.
        bail!(
            "{} already exists; simulations never overwrite results: choose another --out",
            run_dir.display()
        );
    }
    let base = configuration.apply(&config.learner);
    let mut plans = Vec::new();
    for kind in config.node_kinds() {
        let warm_start = kind_warm_start(config, &kind, seed)?;
        for _ in 0..kind.count {
            let index = plans.len();
            let mut options = base.clone();
            if let Some(families) = &kind.families {
                options.families = families.clone();
            }
            if !config.sim.shared_questions {
                options.task_seed = base.task_seed + index as u64;
            }
            // One checkpoint, at the end: the run is short and never resumed.
            options.checkpoint_every = config.sim.rounds;
            options.keep_checkpoints = 1;
            let name = format!("node-{index}");
            plans.push(NodePlan {
                data_dir: run_dir.join(&name),
                name,
                kind: kind.clone(),
                options,
                warm_start: warm_start.clone(),
            });
        }
    }
    Ok(plans)
}

/// Deterministic per-node secrets, so a rerun has the same peer ids and sampling streams.
fn node_seed(seed: u64, configuration: &str, index: usize, purpose: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"swarm/sim/v1");
    hasher.update(&seed.to_le_bytes());
    hasher.update(configuration.as_bytes());
    hasher.update(&(index as u64).to_le_bytes());
    hasher.update(purpose.as_bytes());
    *hasher.finalize().as_bytes()
}

fn first_u64(bytes: &[u8; 32]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// Held-out pass@1 per family of `families` and per evaluation dataset of the plan.
fn evaluate(
    policy: &Policy,
    tasks: &TaskCatalog,
    families: &[String],
    config: &SimConfig,
    seed: u64,
) -> Result<BTreeMap<String, f64>> {
    let n = config.sim.eval_questions;
    let datasets: Vec<String> = config
        .sim
        .eval_datasets
        .iter()
        .map(|path| swarm_learner::dataset_name(path))
        .collect();
    if n == 0 || families.is_empty() && datasets.is_empty() {
        return Ok(BTreeMap::new());
    }
    let options = EvalOptions {
        families: families.to_vec(),
        datasets,
        n: n as usize,
        ..EvalOptions::default()
    };
    let report = swarm_learner::evaluate_policy(policy, tasks, &options, seed, &mut |_, _| {})?;
    Ok(report
        .families
        .into_iter()
        .map(|score| (score.family, score.pass_at_1))
        .collect())
}

/// Starts every node's network, dialling every earlier node, and waits until each sees all others
/// subscribed to the topic (or at least the gossip mesh size, for large swarms).
fn start_network(
    runtime: &tokio::runtime::Runtime,
    network_name: &str,
    keys: &[SigningKey],
    tasks: &Arc<TaskCatalog>,
) -> Result<Vec<(NetHandle, crate::gossip::GossipEvents)>> {
    let mut nodes: Vec<(NetHandle, _)> = Vec::new();
    for key in keys {
        let mut net = NetConfig::loopback(network_name);
        // Quotas protect public networks from floods; in a simulation every node is ours and
        // rounds are fast, so they are lifted to avoid dropping honest bundles.
        net.author_quota_per_minute = 1_000_000;
        net.peer_quota_per_minute = 1_000_000;
        net.bootstrap = nodes
            .iter()
            .flat_map(|(handle, _): &(NetHandle, _)| handle.listen_addrs())
            .collect();
        // The next node dials this one's address; spawn returns once it is listening.
        let node = runtime.block_on(swarm_net::spawn(
            net,
            key.to_bytes(),
            task_checker(Arc::clone(tasks)),
        ))?;
        nodes.push(node);
    }
    let wanted = (keys.len() - 1).min(4);
    let deadline = Instant::now() + Duration::from_secs(30);
    for (index, (handle, _)) in nodes.iter().enumerate() {
        runtime
            .block_on(handle.wait_for_topic_peers(wanted, deadline))
            .with_context(|| {
                format!(
                    "simulated node {index} of {} did not see {wanted} topic peers within 30 s",
                    nodes.len()
                )
            })?;
    }
    Ok(nodes)
}

struct NodeOutcome {
    learner: Learner,
    rounds: Vec<RoundMetrics>,
    unpublished: u64,
}

/// What every run of a simulation shares: the network runtime and the stop flag.
#[derive(Clone, Copy)]
struct Shared<'a> {
    runtime: &'a tokio::runtime::Runtime,
    stop: &'a AtomicBool,
    tasks: &'a Arc<TaskCatalog>,
}

fn run_one(
    config: &SimConfig,
    configuration: &Configuration,
    seed: u64,
    plans: Vec<NodePlan>,
    shared: Shared<'_>,
    start_scores: &mut BTreeMap<(PathBuf, Vec<String>), BTreeMap<String, f64>>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Option<RunResult>> {
    let Shared {
        runtime,
        stop,
        tasks,
    } = shared;
    let started = Instant::now();
    let device = swarm_policy::default_device()?;
    let keys: Vec<SigningKey> = (0..plans.len())
        .map(|i| SigningKey::from_bytes(&node_seed(seed, &configuration.name, i, "identity")))
        .collect();
    let network_name = format!(
        "sim-{}-{}-{seed}",
        config.sim.name,
        slug(&configuration.name)
    );
    let nets = start_network(runtime, &network_name, &keys, tasks)?;
    let handles: Vec<NetHandle> = nets.iter().map(|(handle, _)| handle.clone()).collect();

    let mut learners = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let key = (plan.warm_start.clone(), plan.options.families.clone());
        if let std::collections::btree_map::Entry::Vacant(entry) = start_scores.entry(key) {
            entry.insert(evaluate(
                &Policy::load(&plan.warm_start, &device)?,
                tasks,
                &plan.options.families,
                config,
                seed,
            )?);
        }
        learners.push(start_learner(
            &plan.warm_start,
            &plan.kind.model,
            &plan.data_dir,
            plan.options.clone(),
            // The same sampling stream in every configuration of a seed, so that configurations
            // are compared on equal draws (paired by seed), not only on the same warm start.
            first_u64(&node_seed(seed, "", i, "sampling")),
            Arc::clone(tasks),
        )?);
    }

    let rounds = config.sim.rounds;
    let (tx, rx) = mpsc::channel::<(usize, RoundMetrics)>();
    let outcomes: Vec<Result<NodeOutcome>> = std::thread::scope(|scope| {
        let mut threads = Vec::new();
        for (i, ((learner, (handle, events)), key)) in
            learners.into_iter().zip(nets).zip(&keys).enumerate()
        {
            let plan = &plans[i];
            let tx = tx.clone();
            let gossip = GossipNetwork::new(
                handle,
                events,
                runtime.handle().clone(),
                key.clone(),
                &network_name,
                // Unpaced: a simulation's nodes share this machine's cores and publish slower
                // than a node alone; receivers' quotas still apply and the report counts them.
                0,
            );
            let adversary = plan.kind.adversary.filter(|_| configuration.adversaries);
            let slowdown = plan.kind.slowdown;
            let corruption_seed = first_u64(&node_seed(seed, &configuration.name, i, "adversary"));
            threads.push(scope.spawn(move || -> Result<NodeOutcome> {
                match adversary {
                    Some(adversary) => {
                        let mut net = AdversarialNetwork::new(gossip, adversary, corruption_seed);
                        let (learner, rounds) =
                            run_rounds(learner, &mut net, rounds, slowdown, i, stop, &tx)?;
                        Ok(NodeOutcome {
                            learner,
                            rounds,
                            unpublished: net.inner().unpublished,
                        })
                    }
                    None => {
                        let mut net = gossip;
                        let (learner, rounds) =
                            run_rounds(learner, &mut net, rounds, slowdown, i, stop, &tx)?;
                        Ok(NodeOutcome {
                            learner,
                            rounds,
                            unpublished: net.unpublished,
                        })
                    }
                }
            }));
        }
        drop(tx);
        for (node, metrics) in rx {
            progress(Progress {
                configuration: &configuration.name,
                seed,
                node,
                nodes: plans.len(),
                rounds,
                metrics: &metrics,
            });
        }
        threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a simulated node's thread panicked")))
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    if stop.load(Ordering::SeqCst) {
        for (plan, outcome) in plans.iter().zip(outcomes) {
            let outcome = outcome.with_context(|| format!("{} failed", plan.name))?;
            outcome.learner.checkpoint()?;
        }
        shut_down(runtime, &handles);
        return Ok(None);
    }

    let mut nodes = Vec::new();
    for (((plan, outcome), handle), key) in plans.iter().zip(outcomes).zip(&handles).zip(&keys) {
        let outcome = outcome.with_context(|| format!("{} failed", plan.name))?;
        let stats = handle.stats();
        let pass_at_1_end = evaluate(
            outcome.learner.policy(),
            tasks,
            &plan.options.families,
            config,
            seed,
        )?;
        nodes.push(NodeResult {
            name: plan.name.clone(),
            kind: plan.kind.name.clone(),
            author: hex::encode(key.verifying_key().to_bytes()),
            adversary: plan.kind.adversary.filter(|_| configuration.adversaries),
            families: plan.options.families.clone(),
            rounds: outcome.rounds,
            pass_at_1_start: start_scores
                .get(&(plan.warm_start.clone(), plan.options.families.clone()))
                .cloned()
                .unwrap_or_default(),
            pass_at_1_end,
            published: stats.published,
            unpublished: outcome.unpublished,
            received: stats.outcomes_by_label(),
        });
    }
    shut_down(runtime, &handles);
    Ok(Some(RunResult {
        configuration: configuration.name.clone(),
        seed,
        nodes,
        seconds,
    }))
}

fn shut_down(runtime: &tokio::runtime::Runtime, handles: &[NetHandle]) {
    for handle in handles {
        if let Err(err) = runtime.block_on(handle.shutdown()) {
            tracing::debug!(%err, "simulated node already stopped");
        }
    }
}

/// Runs a node's rounds until `rounds` or `stop`, stretching each by `slowdown` to model a slower
/// machine.
fn run_rounds(
    mut learner: Learner,
    network: &mut dyn Network,
    rounds: u64,
    slowdown: f64,
    node: usize,
    stop: &AtomicBool,
    progress: &mpsc::Sender<(usize, RoundMetrics)>,
) -> Result<(Learner, Vec<RoundMetrics>)> {
    let mut history = Vec::with_capacity(rounds as usize);
    while learner.round() < rounds && !stop.load(Ordering::SeqCst) {
        let metrics = learner.run_round(network)?;
        if slowdown > 1.0 {
            std::thread::sleep(Duration::from_secs_f64(
                metrics.round_seconds * (slowdown - 1.0),
            ));
        }
        // The display may have gone; the run still completes and is reported.
        let _ = progress.send((node, metrics.clone()));
        history.push(metrics);
    }
    Ok((learner, history))
}
