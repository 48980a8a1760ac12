//! The `swarm-node` command line: configuration layering and the subcommands (their flags and help
//! text are in `args.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use swarm_node::config::{FlagOverride, LogFormat, NodeConfig};
use swarm_node::identity::Identity;
use toml::Value;

mod args;

use args::{BenchKind, Cli, Command, CommonArgs, ConfigAction, FLAG_ONLY_ENV, TasksAction};

fn main() -> ExitCode {
    swarm_node::compute::keep_tensor_buffers();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a benchmark's report as one JSON line with `--json`, else as the line `text` makes.
fn print_report(
    report: &impl serde::Serialize,
    json: bool,
    text: impl FnOnce() -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{}", text());
    }
    Ok(())
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
        Command::Bootstrap {
            listen, network, ..
        } => (&[][..], listen, network, None),
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
    let server = serve_http(config.http.listen.parse()?, board, runtime)?;
    eprintln!("HTTP API and dashboard on http://{}/", server.local_addr());
    Ok(Some(server))
}

/// The HTTP API, dashboard and `/metrics` for `board` on `addr`.
fn serve_http(
    addr: std::net::SocketAddr,
    board: &std::sync::Arc<swarm_node::status::StatusBoard>,
    runtime: &tokio::runtime::Runtime,
) -> Result<swarm_node::http::HttpServer> {
    let mut registry = prometheus_client::registry::Registry::default();
    swarm_node::http::register_status_metrics(&mut registry, board.clone());
    runtime.block_on(swarm_node::http::HttpServer::start(
        addr,
        board.clone(),
        std::sync::Arc::new(registry),
    ))
}

/// `simulate --http ADDR`: the dashboard and API for the running swarm. Off unless asked for, so
/// a simulation never competes for a running node's port.
fn simulation_http(
    listen: Option<&str>,
) -> Result<
    Option<(
        std::sync::Arc<swarm_node::status::StatusBoard>,
        tokio::runtime::Runtime,
        swarm_node::http::HttpServer,
    )>,
> {
    let Some(listen) = listen.filter(|listen| *listen != "off") else {
        return Ok(None);
    };
    let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
        anyhow::anyhow!(
            "--http {listen:?}: must be a socket address such as 127.0.0.1:9180, or `off`"
        )
    })?;
    let board = std::sync::Arc::new(swarm_node::status::StatusBoard::new(
        swarm_node::status::NodeStatus {
            role: "simulation".into(),
            ..Default::default()
        },
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let server = serve_http(addr, &board, &runtime)?;
    eprintln!("simulation dashboard on http://{}/", server.local_addr());
    Ok(Some((board, runtime, server)))
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

/// Runs `work` with a network runtime, the HTTP API, and a stop flag that SIGINT and SIGTERM set.
fn run_networked<T>(
    config: &NodeConfig,
    role: &str,
    work: impl FnOnce(
        &swarm_node::status::StatusBoard,
        &tokio::runtime::Runtime,
        &std::sync::atomic::AtomicBool,
    ) -> Result<T>,
) -> Result<T> {
    let board = status_board(config, role, &config.net.network);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    swarm_node::join::stop_on_signal(&runtime, stop.clone());
    let server = start_http(config, &board, &runtime)?;
    let result = work(&board, &runtime, &stop);
    if let Some(server) = server {
        runtime.block_on(server.shutdown());
    }
    result
}

fn run(cli: Cli) -> Result<()> {
    if let Command::Simulate {
        plan,
        http,
        log_format,
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
        // Nodes dial each other while they start (and a one-node run has nobody to find), which the
        // network layer reports as unreachable peers; in a simulation that is expected, so only
        // errors are shown.
        swarm_node::logging::init(
            log_format
                .or(cli.leading.log_format)
                .unwrap_or(LogFormat::Human),
            "warn,swarm_net=error,libp2p_kad=error",
        )?;
        // Every simulated node trains on its own thread, so the nodes already use the cores;
        // splitting each small matrix product across threads as well only adds contention (the
        // quick plan runs faster with one thread per operation).
        swarm_node::compute::set_threads(1);
        let plan = plan
            .clone()
            .or(cli.leading.config)
            .unwrap_or_else(|| PathBuf::from(swarm_node::sim::DEFAULT_PLAN));
        let overrides = swarm_node::sim::config::SimOverrides {
            nodes: nodes.map(|n| n as usize),
            rounds: *rounds,
            local_external: local.zip(*external).map(|(i, j)| (i as usize, j as usize)),
            seed: *seed,
        };
        let http = simulation_http(http.as_deref().or(cli.leading.http.as_deref()))?;
        swarm_node::sim::simulate(
            &plan,
            &overrides,
            out.clone(),
            http.as_ref().map(|(board, _, _)| board.clone()),
        )?;
        if let Some((_, runtime, server)) = http {
            runtime.block_on(server.shutdown());
        }
        return Ok(());
    }
    let common = cli.command.common().or(cli.leading);
    let mut flags = flag_overrides(&common);
    flags.extend(network_overrides(&cli.command));
    let loaded = NodeConfig::load(
        common.config.as_deref(),
        std::env::vars(),
        &flags,
        FLAG_ONLY_ENV,
    )?;
    let config = loaded.config;
    swarm_node::compute::set_threads(match config.node.threads {
        0 => cli
            .command
            .sized_by_model(&config.node.model)
            .map_or(0, swarm_node::compute::auto_threads),
        threads => threads,
    });
    swarm_node::logging::init(config.log.format, &config.log.level)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match cli.command {
        Command::Identity { .. } => {
            let identity = Identity::load_or_create(&config.node.data_dir)?;
            if identity.was_created() {
                tracing::info!(path = %identity.path().display(), "created a new identity; back this file up");
            }
            println!("public key: {}", identity.public_key_hex());
            println!("peer id:    {}", identity.peer_id());
            println!("key file:   {}", identity.path().display());
        }
        Command::Status { api, json, .. } => {
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
        Command::Warmup { model, out, .. } => {
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
        Command::Train { rounds, .. } => {
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
            let learner = run_networked(&config, "learner", |board, runtime, stop| {
                swarm_node::join::join(&config, rounds, board, runtime, stop)
            })?;
            println!(
                "left the network at round {}; checkpoints and metrics.jsonl are in {}",
                learner.round(),
                config.node.data_dir.display()
            );
        }
        Command::Bootstrap { .. } => {
            run_networked(&config, "bootstrap", |board, runtime, stop| {
                swarm_node::join::bootstrap(&config, board, runtime, stop)
            })?;
        }
        Command::Eval {
            model,
            families,
            difficulty,
            n,
            k,
            json,
            ..
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
            ..
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
            distinct_prompts,
            iterations,
            nodes,
            mesh_degree,
            size,
            json,
            ..
        } => {
            if let BenchKind::Matmul = what {
                let report = swarm_policy::bench::bench_matmul(
                    &swarm_policy::default_device()?,
                    size as usize,
                    iterations as usize,
                )?;
                return print_report(&report, json, || {
                    format!(
                        "matmul: {:.1} GFLOP/s ({:.4} s per {} x {} float32 product, {} threads)",
                        report.gflop_per_second,
                        report.seconds_per_iteration,
                        report.size,
                        report.size,
                        report.threads
                    )
                });
            }
            if let BenchKind::Gossip = what {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                let report = swarm_node::bench_gossip::bench_gossip(
                    swarm_node::bench_gossip::GossipBenchOptions {
                        nodes: nodes as usize,
                        messages_per_node: iterations as usize,
                        completions: batch as usize,
                        mesh_degree: mesh_degree as usize,
                    },
                    &runtime,
                )?;
                return print_report(&report, json, || {
                    format!(
                        "gossip: {} nodes, {}/{} deliveries ({:.3}), latency p50 {:.1} ms, p99 {:.1} ms, \
                         {} payload bytes per bundle, {:.2} bytes sent per payload byte delivered",
                        report.nodes,
                        report.delivered,
                        report.expected,
                        report.delivery_ratio,
                        report.latency_ms_p50,
                        report.latency_ms_p99,
                        report.payload_bytes,
                        report.wire_bytes_per_delivered_payload_byte
                    )
                });
            }
            let dir = model.unwrap_or_else(|| config.node.model.clone());
            let policy =
                swarm_policy::Policy::load_or_init(&dir, 0, &swarm_policy::default_device()?)?;
            let shape = swarm_policy::bench::BenchShape {
                batch: batch as usize,
                prompt_tokens: prompt_tokens as usize,
                new_tokens: new_tokens as usize,
                distinct_prompts: distinct_prompts as usize,
                iterations: iterations as usize,
            };
            let report = if let BenchKind::Train = what {
                swarm_policy::bench::bench_train(&policy, shape)?
            } else {
                swarm_policy::bench::bench_sample(&policy, shape)?
            };
            print_report(&report, json, || {
                format!(
                    "{}: {:.1} tokens/s ({:.3} s per batch of {} x ({} + {}) tokens, {} distinct prompts, {} threads, {} parameters)",
                    report.kind,
                    report.tokens_per_second,
                    report.seconds_per_iteration,
                    report.batch,
                    report.prompt_tokens,
                    report.new_tokens,
                    report.distinct_prompts,
                    report.threads,
                    report.parameters
                )
            })?;
        }
        Command::Config {
            action: ConfigAction::Show { .. },
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
