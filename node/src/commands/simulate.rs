//! `swarm-node simulate`: a multi-node swarm on this machine, with a report and, when asked, a live
//! dashboard.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;
use swarm_node::config::LogFormat;
use swarm_node::http::HttpServer;
use swarm_node::sim::config::SimOverrides;
use swarm_node::status::{NodeStatus, StatusBoard};
use tokio::runtime::Runtime;

use super::serve::serve_http;
use crate::args::CommonArgs;

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// The simulation plan: a TOML file, or the name of a built-in plan (`--list-plans`); it also
    /// sets every simulated node's configuration [default: sim-quick].
    #[arg(long = "config", env = "SWARM_CONFIG")]
    pub(crate) plan: Option<PathBuf>,
    /// List the built-in plans and models, then exit.
    #[arg(long)]
    pub(crate) list_plans: bool,
    /// Serve the dashboard and API for the running swarm on this address (none unless given).
    #[arg(long, env = "SWARM_HTTP_LISTEN")]
    pub(crate) http: Option<String>,
    /// Log output format.
    #[arg(long, value_enum, env = "SWARM_LOG_FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
    /// Override the number of nodes (plans without [[kind]] tables).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) nodes: Option<u64>,
    /// Override the rounds per node.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) rounds: Option<u64>,
    /// Own prompts per round (the paper's I); with --external, replaces the plan's
    /// configurations by this one split.
    #[arg(long, requires = "external", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) local: Option<u64>,
    /// External groups per round (the paper's J), with --local.
    #[arg(long, requires = "local", value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub(crate) external: Option<u64>,
    /// Run only this seed.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Output directory [default: runs/<name>-<unix time>]; it must not hold an earlier run.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Write the report of the finished simulation in this directory again (from its plan.toml
    /// and result.json files) instead of running one.
    #[arg(long, conflicts_with_all = ["plan", "nodes", "rounds", "local", "seed", "out"])]
    pub(crate) report: Option<PathBuf>,
}

/// Runs the simulation; `leading` are the shared options given before `simulate`. The plan is a
/// simulation file, not a node configuration: each simulated node's settings come from it, so no
/// node configuration is loaded.
pub(crate) fn run(args: SimulateArgs, leading: CommonArgs) -> Result<()> {
    if args.list_plans {
        print!("{}", builtin_listing());
        return Ok(());
    }
    if let Some(dir) = &args.report {
        return swarm_node::sim::report_again(dir);
    }
    // Nodes dial each other while they start (and a one-node run has nobody to find), which the
    // network layer reports as unreachable peers; in a simulation that is expected, so only
    // errors are shown.
    swarm_node::logging::init(
        args.log_format
            .or(leading.log_format)
            .unwrap_or(LogFormat::Human),
        "warn,swarm_net=error,libp2p_kad=error",
    )?;
    // Every simulated node trains on its own thread, so the nodes already use the cores;
    // splitting each small matrix product across threads as well only adds contention (the
    // quick plan runs faster with one thread per operation).
    swarm_node::compute::set_threads(1);
    let plan = args
        .plan
        .or(leading.config)
        .unwrap_or_else(|| PathBuf::from(swarm_node::sim::DEFAULT_PLAN));
    let overrides = SimOverrides {
        nodes: args.nodes.map(|n| n as usize),
        rounds: args.rounds,
        local_external: args
            .local
            .zip(args.external)
            .map(|(i, j)| (i as usize, j as usize)),
        seed: args.seed,
    };
    // Signal handling and the dashboard share one small runtime; the simulated nodes have their own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let http = simulation_http(args.http.as_deref().or(leading.http.as_deref()), &runtime)?;
    let stop = Arc::new(AtomicBool::new(false));
    swarm_node::signals::stop_on_signal(&runtime, stop.clone());
    swarm_node::sim::simulate(
        &plan,
        &overrides,
        args.out,
        http.as_ref().map(|(board, _)| board.clone()),
        &stop,
    )?;
    if let Some((_, server)) = http {
        runtime.block_on(server.shutdown());
    }
    Ok(())
}

/// `simulate --http ADDR`: the dashboard and API for the running swarm. Off unless asked for, so
/// a simulation never competes for a running node's port.
fn simulation_http(
    listen: Option<&str>,
    runtime: &Runtime,
) -> Result<Option<(Arc<StatusBoard>, HttpServer)>> {
    let Some(listen) = listen.filter(|listen| *listen != "off") else {
        return Ok(None);
    };
    let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
        anyhow::anyhow!(
            "--http {listen:?}: must be a socket address such as 127.0.0.1:9180, or `off`"
        )
    })?;
    let board = Arc::new(StatusBoard::new(NodeStatus {
        role: "simulation".into(),
        ..Default::default()
    }));
    let server = serve_http(addr, &board, runtime)?;
    eprintln!("simulation dashboard on http://{}/", server.local_addr());
    Ok(Some((board, server)))
}

/// The plans and models compiled into the binary, for `simulate --list-plans`.
fn builtin_listing() -> String {
    use std::fmt::Write;
    let mut out = String::from("built-in plans (simulate --config NAME; a path means the file):\n");
    for plan in swarm_node::builtin::PLANS {
        let summary = plan
            .text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# "))
            .unwrap_or("");
        let _ = writeln!(out, "  {:<16} {summary}", plan.name);
    }
    out.push_str("built-in models (--model NAME; a path means the directory):\n");
    for model in swarm_node::builtin::MODELS {
        let _ = writeln!(out, "  {:<16} {}", model.name, model.about);
    }
    out
}
