//! The `swarm-node` command line. Every flag can also be given as an environment variable; doc
//! comments below are the help text.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use swarm_node::config::{FlagOverride, LogFormat, NodeConfig};
use swarm_node::identity::Identity;
use toml::Value;

/// A peer-to-peer reinforcement-learning node for language models.
#[derive(Debug, Parser)]
#[command(name = "swarm-node", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand understands.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Configuration file (TOML). Keys can also be set as SWARM_<SECTION>_<KEY> variables.
    #[arg(long, global = true, env = "SWARM_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the identity key, checkpoints and logs [config: node.data_dir].
    #[arg(long, global = true, env = "SWARM_NODE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// HTTP API address, or `off` [config: http.listen].
    #[arg(long, global = true, env = "SWARM_HTTP_LISTEN")]
    http: Option<String>,
    /// Log output format [config: log.format].
    #[arg(long, global = true, value_enum, env = "SWARM_LOG_FORMAT")]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or show this node's identity: its public key and libp2p peer id.
    Identity,
    /// Print the status of a running node, read from its HTTP API.
    Status {
        /// The node's API address [default: config http.listen].
        #[arg(long, env = "SWARM_STATUS_API")]
        api: Option<std::net::SocketAddr>,
        /// Print the raw JSON document instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Build the warm start of the model: supervised training on task demonstrations.
    Warmup {
        /// Model directory with config.json and tokenizer.json [default: config node.model].
        #[arg(long)]
        model: Option<PathBuf>,
        /// Where to write the warmed-up model [default: the cache under the data directory that
        /// `train` uses].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Train on this machine alone: sample, score and update, round after round (resumes from the
    /// newest checkpoint in the data directory).
    Train {
        /// Train without networking (required: `join` trains with peers).
        #[arg(long, required = true)]
        solo: bool,
        /// Rounds to run.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
        rounds: u64,
    },
    /// Run a multi-node simulation on this machine (real libp2p nodes on loopback, one learner
    /// thread each) and write a report with charts. `--config` names the plan
    /// [default: configs/sim-quick.toml].
    Simulate {
        /// Override the number of nodes (plans without [[kind]] tables).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
        nodes: Option<u64>,
        /// Override the rounds per node.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        rounds: Option<u64>,
        /// Own prompts per round (the paper's I); with --external, replaces the plan's
        /// configurations by this one split.
        #[arg(long, requires = "external", value_parser = clap::value_parser!(u64).range(1..=1024))]
        local: Option<u64>,
        /// External groups per round (the paper's J), with --local.
        #[arg(long, requires = "local", value_parser = clap::value_parser!(u64).range(0..=1024))]
        external: Option<u64>,
        /// Run only this seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Output directory [default: runs/<name>-<unix time>]; it must not hold an earlier run.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Join a swarm: train with peers, sharing signed rollouts over libp2p. Runs until SIGINT or
    /// SIGTERM (then checkpoints and leaves cleanly), or for --rounds rounds.
    Join {
        /// Bootstrap peer multiaddr ending in /p2p/<peer id> (repeatable) [config: net.bootstrap].
        #[arg(long = "bootstrap")]
        bootstrap: Vec<String>,
        /// Multiaddr to listen on (repeatable) [config: net.listen].
        #[arg(long = "listen")]
        listen: Vec<String>,
        /// Network name [config: net.network].
        #[arg(long)]
        network: Option<String>,
        /// Model directory [config: node.model].
        #[arg(long)]
        model: Option<PathBuf>,
        /// Stop after this many rounds instead of running until interrupted.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        rounds: Option<u64>,
    },
    /// Run a bootstrap node: no model; peers find each other through it and it relays validated
    /// gossip. Prints its multiaddrs; runs until SIGINT or SIGTERM.
    Bootstrap {
        /// Multiaddr to listen on (repeatable) [config: net.listen].
        #[arg(long = "listen")]
        listen: Vec<String>,
        /// Network name [config: net.network].
        #[arg(long)]
        network: Option<String>,
    },
    /// Evaluate a model on held-out questions: pass@1 and pass@k per family.
    Eval {
        /// Model directory (a checkpoint directory works too) [default: config node.model].
        #[arg(long)]
        model: Option<PathBuf>,
        /// Families to evaluate (repeatable) [default: all].
        #[arg(long = "family")]
        families: Vec<String>,
        /// Difficulty level.
        #[arg(long, default_value_t = 0)]
        difficulty: u32,
        /// Questions per family.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        n: u64,
        /// Completions per question.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
        k: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the per-token log-probs of a completion given a prompt, as JSON (for parity debugging).
    Logprobs {
        /// Model directory in Hugging Face layout [default: config node.model].
        #[arg(long, env = "SWARM_LOGPROBS_MODEL")]
        model: Option<PathBuf>,
        /// Prompt text, exactly as the model sees it.
        #[arg(long)]
        prompt: String,
        /// Completion text whose tokens are scored.
        #[arg(long)]
        completion: String,
    },
    /// Measure sampling or training throughput and print it (JSON with --json).
    Bench {
        /// What to measure.
        #[arg(value_enum)]
        what: BenchKind,
        /// Model directory [default: config node.model]; without weights it is initialised randomly,
        /// which does not change the speed.
        #[arg(long, env = "SWARM_BENCH_MODEL")]
        model: Option<PathBuf>,
        /// Sequences per batch.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
        batch: u64,
        /// Prompt tokens per sequence.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=8192))]
        prompt_tokens: u64,
        /// Generated (sample) or completion (train) tokens per sequence.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=8192))]
        new_tokens: u64,
        /// Timed repetitions.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
        iterations: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Browse the task families: list them, or show sample questions with their answers.
    Tasks {
        #[command(subcommand)]
        action: TasksAction,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BenchKind {
    /// Batched sampling with the KV cache.
    Sample,
    /// Forward, backward and optimizer step.
    Train,
}

#[derive(Debug, Subcommand)]
enum TasksAction {
    /// List the task families with their difficulty range.
    List,
    /// Print sample questions and answers of one family.
    Show {
        /// Family name, as printed by `tasks list`.
        family: String,
        /// Difficulty level (0 is the easiest).
        #[arg(long, default_value_t = 0)]
        difficulty: u32,
        /// How many questions.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        n: u64,
        /// Question stream seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (defaults < file < environment < flags) as TOML.
    Show,
}

/// Environment variables read by flags directly rather than through configuration keys.
const FLAG_ONLY_ENV: &[&str] = &[
    "SWARM_CONFIG",
    "SWARM_STATUS_API",
    "SWARM_LOGPROBS_MODEL",
    "SWARM_BENCH_MODEL",
    "SWARM_HTTP_LISTEN",
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn flag_overrides(common: &CommonArgs) -> Vec<FlagOverride> {
    let mut flags = Vec::new();
    if let Some(dir) = &common.data_dir {
        flags.push(FlagOverride {
            key: "node.data_dir",
            flag: "--data-dir",
            value: Value::String(dir.display().to_string()),
        });
    }
    if let Some(http) = &common.http {
        flags.push(FlagOverride {
            key: "http.listen",
            flag: "--http",
            value: Value::String(http.clone()),
        });
    }
    if let Some(format) = common.log_format {
        let name = match format {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        };
        flags.push(FlagOverride {
            key: "log.format",
            flag: "--log-format",
            value: Value::String(name.to_owned()),
        });
    }
    flags
}

/// Configuration keys set by `join` and `bootstrap` flags.
fn network_overrides(command: &Command) -> Vec<FlagOverride> {
    let (bootstrap, listen, network, model) = match command {
        Command::Join {
            bootstrap,
            listen,
            network,
            model,
            ..
        } => (bootstrap.as_slice(), listen, network, model.as_ref()),
        Command::Bootstrap { listen, network } => (&[][..], listen, network, None),
        _ => return Vec::new(),
    };
    let strings =
        |values: &[String]| Value::Array(values.iter().map(|v| Value::String(v.clone())).collect());
    let mut flags = Vec::new();
    if !bootstrap.is_empty() {
        flags.push(FlagOverride {
            key: "net.bootstrap",
            flag: "--bootstrap",
            value: strings(bootstrap),
        });
    }
    if !listen.is_empty() {
        flags.push(FlagOverride {
            key: "net.listen",
            flag: "--listen",
            value: strings(listen),
        });
    }
    if let Some(network) = network {
        flags.push(FlagOverride {
            key: "net.network",
            flag: "--network",
            value: Value::String(network.clone()),
        });
    }
    if let Some(model) = model {
        flags.push(FlagOverride {
            key: "node.model",
            flag: "--model",
            value: Value::String(model.display().to_string()),
        });
    }
    flags
}

/// Starts the HTTP API and dashboard unless `http.listen` is `off`.
fn start_http(
    config: &NodeConfig,
    board: &std::sync::Arc<swarm_node::status::StatusBoard>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Option<swarm_node::http::HttpServer>> {
    if config.http.listen == "off" {
        return Ok(None);
    }
    let mut registry = prometheus_client::registry::Registry::default();
    swarm_node::http::register_status_metrics(&mut registry, board.clone());
    let server = runtime.block_on(swarm_node::http::HttpServer::start(
        config.http.listen.parse()?,
        board.clone(),
        std::sync::Arc::new(registry),
    ))?;
    eprintln!("HTTP API and dashboard on http://{}/", server.local_addr());
    Ok(Some(server))
}

fn status_board(
    config: &NodeConfig,
    role: &str,
    network: &str,
) -> std::sync::Arc<swarm_node::status::StatusBoard> {
    std::sync::Arc::new(swarm_node::status::StatusBoard::new(
        swarm_node::status::NodeStatus {
            role: role.into(),
            network: network.into(),
            model: config.node.model.display().to_string(),
            ..Default::default()
        },
    ))
}

fn run(cli: Cli) -> Result<()> {
    if let Command::Simulate {
        nodes,
        rounds,
        local,
        external,
        seed,
        out,
    } = &cli.command
    {
        // The plan is a simulation file, not a node configuration: each simulated node's settings
        // come from it.
        // Nodes dial each other while they start, which the network layer reports as unreachable
        // peers; in a simulation that is expected, so only its errors are shown.
        swarm_node::logging::init(
            cli.common.log_format.unwrap_or(LogFormat::Human),
            "warn,swarm_net=error",
        )?;
        let plan = cli
            .common
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(swarm_node::sim::DEFAULT_PLAN));
        let overrides = swarm_node::sim::config::SimOverrides {
            nodes: nodes.map(|n| n as usize),
            rounds: *rounds,
            local_external: local.zip(*external).map(|(i, j)| (i as usize, j as usize)),
            seed: *seed,
        };
        swarm_node::sim::simulate(&plan, &overrides, out.clone())?;
        return Ok(());
    }
    let mut flags = flag_overrides(&cli.common);
    flags.extend(network_overrides(&cli.command));
    let loaded = NodeConfig::load(
        cli.common.config.as_deref(),
        std::env::vars(),
        &flags,
        FLAG_ONLY_ENV,
    )?;
    let config = loaded.config;
    swarm_node::compute::set_threads(config.node.threads);
    swarm_node::logging::init(config.log.format, &config.log.level)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match cli.command {
        Command::Identity => {
            let identity = Identity::load_or_create(&config.node.data_dir)?;
            if identity.was_created() {
                tracing::info!(path = %identity.path().display(), "created a new identity; back this file up");
            }
            println!("public key: {}", identity.public_key_hex());
            println!("peer id:    {}", identity.peer_id());
            println!("key file:   {}", identity.path().display());
        }
        Command::Status { api, json } => {
            let addr = match api {
                Some(addr) => addr,
                None => config.http.listen.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "`http.listen` is `{}`; pass the node's API address with --api ADDR",
                        config.http.listen
                    )
                })?,
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let status = runtime.block_on(swarm_node::http::get_json(
                addr,
                "/api/status",
                std::time::Duration::from_secs(10),
            ))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!(
                    "{}",
                    swarm_node::status::render_text(&serde_json::from_value(status)?)
                );
            }
        }
        Command::Tasks { action } => tasks_command(action)?,
        Command::Simulate { .. } => {
            unreachable!("simulate is handled before the node configuration loads")
        }
        Command::Warmup { model, out } => {
            let model = model.unwrap_or_else(|| config.node.model.clone());
            let out = match out {
                Some(out) => out,
                None => swarm_node::train::warm_start_dir(
                    &config.node.data_dir,
                    &model,
                    &config.warmup,
                    config.node.seed,
                )?,
            };
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let policy = swarm_node::train::build_warm_start(
                &model,
                &config.warmup,
                config.node.seed,
                &out,
            )?;
            println!("warm start written to {}", out.display());
            let options = swarm_tasks::eval::EvalOptions {
                families: config.warmup.families.clone(),
                difficulty: config.warmup.difficulty,
                n: 100,
                ..Default::default()
            };
            print!(
                "{}",
                evaluate(&policy, &options, config.node.seed)?.to_table()
            );
        }
        Command::Train { solo: _, rounds } => {
            let board = status_board(&config, "learner", "solo");
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            let server = start_http(&config, &board, &runtime)?;
            let learner = swarm_node::train::train_solo(&config, rounds, &board)?;
            println!(
                "trained to round {}; checkpoints and metrics.jsonl are in {}",
                learner.round(),
                config.node.data_dir.display()
            );
            if let Some(server) = server {
                runtime.block_on(server.shutdown());
            }
        }
        Command::Join { rounds, .. } => {
            let board = status_board(&config, "learner", &config.net.network);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            swarm_node::join::stop_on_signal(&runtime, stop.clone());
            let server = start_http(&config, &board, &runtime)?;
            let learner = swarm_node::join::join(&config, rounds, &board, &runtime, &stop)?;
            println!(
                "left the network at round {}; checkpoints and metrics.jsonl are in {}",
                learner.round(),
                config.node.data_dir.display()
            );
            if let Some(server) = server {
                runtime.block_on(server.shutdown());
            }
        }
        Command::Bootstrap { .. } => {
            let board = status_board(&config, "bootstrap", &config.net.network);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            swarm_node::join::stop_on_signal(&runtime, stop.clone());
            let server = start_http(&config, &board, &runtime)?;
            swarm_node::join::bootstrap(&config, &board, &runtime, &stop)?;
            if let Some(server) = server {
                runtime.block_on(server.shutdown());
            }
        }
        Command::Eval {
            model,
            families,
            difficulty,
            n,
            k,
            json,
        } => {
            let model = model.unwrap_or_else(|| config.node.model.clone());
            let policy = swarm_policy::Policy::load(&model, &swarm_policy::default_device()?)?;
            let options = swarm_tasks::eval::EvalOptions {
                families,
                difficulty,
                n: n as usize,
                k: k as usize,
                ..Default::default()
            };
            let report = evaluate(&policy, &options, config.node.seed)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_table());
            }
        }
        Command::Logprobs {
            model,
            prompt,
            completion,
        } => {
            let dir = model.unwrap_or_else(|| config.node.model.clone());
            let policy = swarm_policy::Policy::load(&dir, &swarm_policy::default_device()?)?;
            let report = policy.token_logprobs(&prompt, &completion)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Bench {
            what,
            model,
            batch,
            prompt_tokens,
            new_tokens,
            iterations,
            json,
        } => {
            let dir = model.unwrap_or_else(|| config.node.model.clone());
            let policy =
                swarm_policy::Policy::load_or_init(&dir, 0, &swarm_policy::default_device()?)?;
            let shape = swarm_policy::bench::BenchShape {
                batch: batch as usize,
                prompt_tokens: prompt_tokens as usize,
                new_tokens: new_tokens as usize,
                iterations: iterations as usize,
            };
            let report = match what {
                BenchKind::Sample => swarm_policy::bench::bench_sample(&policy, shape)?,
                BenchKind::Train => swarm_policy::bench::bench_train(&policy, shape)?,
            };
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{}: {:.1} tokens/s ({:.3} s per batch of {} x ({} + {}) tokens, {} threads, {} parameters)",
                    report.kind,
                    report.tokens_per_second,
                    report.seconds_per_iteration,
                    report.batch,
                    report.prompt_tokens,
                    report.new_tokens,
                    report.threads,
                    report.parameters
                );
            }
        }
        Command::Config {
            action: ConfigAction::Show,
        } => print!("{}", config.to_toml()?),
    }
    Ok(())
}

fn tasks_command(action: TasksAction) -> Result<()> {
    match action {
        TasksAction::List => {
            println!("{:<26} {:<10} description", "family", "difficulty");
            for family in swarm_tasks::families() {
                println!(
                    "{:<26} {:<10} {}",
                    family.name(),
                    format!("0-{}", family.max_difficulty()),
                    family.description()
                );
            }
        }
        TasksAction::Show {
            family,
            difficulty,
            n,
            seed,
            json,
        } => {
            let questions = swarm_tasks::sample_questions(&family, difficulty, seed, n as usize)?;
            for question in questions {
                if json {
                    println!("{}", serde_json::to_string(&question)?);
                } else {
                    println!(
                        "#{} {}",
                        question.index,
                        question.prompt.replace('\n', "\n   ")
                    );
                    println!("   answer: {}\n", question.answer);
                }
            }
        }
    }
    Ok(())
}

fn evaluate(
    policy: &swarm_policy::Policy,
    options: &swarm_tasks::eval::EvalOptions,
    seed: u64,
) -> Result<swarm_tasks::eval::EvalReport> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("eval {bar:30} {pos}/{len} questions")
            .expect("valid template"),
    );
    let report = swarm_learner::evaluate_policy(policy, options, seed, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    Ok(report)
}
