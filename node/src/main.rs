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
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (defaults < file < environment < flags) as TOML.
    Show,
}

/// Environment variables read by flags directly rather than through configuration keys.
const FLAG_ONLY_ENV: &[&str] = &["SWARM_CONFIG", "SWARM_STATUS_API"];

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

fn run(cli: Cli) -> Result<()> {
    let loaded = NodeConfig::load(
        cli.common.config.as_deref(),
        std::env::vars(),
        &flag_overrides(&cli.common),
        FLAG_ONLY_ENV,
    )?;
    let config = loaded.config;
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
        Command::Config {
            action: ConfigAction::Show,
        } => print!("{}", config.to_toml()?),
    }
    Ok(())
}
