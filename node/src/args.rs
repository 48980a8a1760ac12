//! The command-line surface of `swarm-node` that the subcommands share: the subcommand list, the
//! options several of them take, and the environment variables flags read directly. Each
//! subcommand's own flags and help text are beside its code in `commands/`. Every flag can also be
//! given as an environment variable.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use swarm_node::config::LogFormat;

use crate::commands::bench::{BenchArgs, BenchKind};
use crate::commands::config::ConfigAction;
use crate::commands::eval::EvalArgs;
use crate::commands::identity::IdentityArgs;
use crate::commands::join::{BootstrapArgs, JoinArgs};
use crate::commands::logprobs::LogprobsArgs;
use crate::commands::simulate::SimulateArgs;
use crate::commands::status::StatusArgs;
use crate::commands::tasks::TasksAction;
use crate::commands::train::TrainArgs;
use crate::commands::warmup::WarmupArgs;

/// `--version`: the software version, the wire protocol it speaks and the commit it was built from.
fn version_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{} (protocol {}, commit {})",
            env!("CARGO_PKG_VERSION"),
            swarm_protocol::PROTOCOL_VERSION,
            env!("SWARM_GIT_COMMIT")
        )
    })
}

/// A peer-to-peer reinforcement-learning node for language models.
#[derive(Debug, Parser)]
#[command(name = "swarm-node", version = version_text(), about, long_about = None)]
pub(crate) struct Cli {
    #[command(
        flatten,
        next_help_heading = "Before the subcommand name, for those that use them"
    )]
    pub(crate) leading: CommonArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The options subcommands share, as one set. Before the subcommand name every one of them is
/// accepted, as when they were global, and a subcommand that does not use one ignores it; after
/// the name each subcommand takes only those it lists.
#[derive(Debug, Default, Args)]
pub(crate) struct CommonArgs {
    /// Configuration file (TOML), for the subcommands that read it. Keys can also be set as
    /// SWARM_<SECTION>_<KEY> variables.
    #[arg(long, env = "SWARM_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Directory for the identity key, checkpoints and logs [config: node.data_dir].
    #[arg(long, env = "SWARM_NODE_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// HTTP API and dashboard address, or `off` [config: http.listen]; `simulate` serves one only
    /// when given.
    #[arg(long, env = "SWARM_HTTP_LISTEN")]
    pub(crate) http: Option<String>,
    /// Log output format [config: log.format].
    #[arg(long, value_enum, env = "SWARM_LOG_FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
}

impl CommonArgs {
    /// These options, each given after the subcommand name winning over the same one given before.
    pub(crate) fn or(self, leading: CommonArgs) -> CommonArgs {
        CommonArgs {
            config: self.config.or(leading.config),
            data_dir: self.data_dir.or(leading.data_dir),
            http: self.http.or(leading.http),
            log_format: self.log_format.or(leading.log_format),
        }
    }
}

/// `--config` alone: subcommands that read the node configuration but keep no data directory,
/// serve nothing and log little.
#[derive(Debug, Args)]
pub(crate) struct ConfigFile {
    /// Configuration file (TOML). Keys can also be set as SWARM_<SECTION>_<KEY> variables.
    #[arg(long, env = "SWARM_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

/// Subcommands that keep state in the data directory and log as they work.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    #[command(flatten)]
    pub(crate) config: ConfigFile,
    /// Directory for the identity key, checkpoints and logs [config: node.data_dir].
    #[arg(long, env = "SWARM_NODE_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Log output format [config: log.format].
    #[arg(long, value_enum, env = "SWARM_LOG_FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
}

/// Subcommands that run a node, which serves the HTTP API and dashboard.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// HTTP API and dashboard address, or `off` [config: http.listen].
    #[arg(long, env = "SWARM_HTTP_LISTEN")]
    pub(crate) http: Option<String>,
}

impl From<&ConfigFile> for CommonArgs {
    fn from(args: &ConfigFile) -> Self {
        CommonArgs {
            config: args.config.clone(),
            ..CommonArgs::default()
        }
    }
}

impl From<&NodeArgs> for CommonArgs {
    fn from(args: &NodeArgs) -> Self {
        CommonArgs {
            data_dir: args.data_dir.clone(),
            log_format: args.log_format,
            ..CommonArgs::from(&args.config)
        }
    }
}

impl From<&ServeArgs> for CommonArgs {
    fn from(args: &ServeArgs) -> Self {
        CommonArgs {
            http: args.http.clone(),
            ..CommonArgs::from(&args.node)
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or show this node's identity: its public key and libp2p peer id.
    Identity(IdentityArgs),
    /// Print the status of a running node, read from its HTTP API.
    Status(StatusArgs),
    /// Build the warm start of the model: supervised training on task demonstrations.
    Warmup(WarmupArgs),
    /// Train on this machine alone: sample, score and update, round after round (resumes from the
    /// newest checkpoint in the data directory).
    Train(TrainArgs),
    /// Run a multi-node simulation on this machine (real libp2p nodes on loopback, one learner
    /// thread each) and write a report with charts.
    Simulate(SimulateArgs),
    /// Join a swarm: train with peers, sharing signed rollouts over libp2p. Runs until SIGINT or
    /// SIGTERM (then checkpoints and leaves cleanly), or for --rounds rounds.
    Join(JoinArgs),
    /// Run a bootstrap node: no model; peers find each other through it and it relays validated
    /// gossip. Prints its multiaddrs; runs until SIGINT or SIGTERM.
    Bootstrap(BootstrapArgs),
    /// Evaluate a model on held-out questions: pass@1 and pass@k per family.
    Eval(EvalArgs),
    /// Print the per-token log-probs of a completion given a prompt, as JSON (for parity debugging).
    Logprobs(LogprobsArgs),
    /// Measure sampling, training or gossip throughput, or the matrix-multiply rate they are read
    /// against, and print it (JSON with --json).
    Bench(BenchArgs),
    /// Browse the task families and datasets: list them, show sample questions with their
    /// answers, or export a family as a dataset.
    Tasks {
        #[command(subcommand)]
        action: TasksAction,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print a shell completion script (for example `swarm-node completions bash >
    /// ~/.local/share/bash-completion/completions/swarm-node`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff (`swarm-node man > swarm-node.1; man ./swarm-node.1`).
    Man,
}

impl Command {
    /// The shared options given after the subcommand name (`simulate` reads its own).
    pub(crate) fn common(&self) -> CommonArgs {
        match self {
            Command::Identity(IdentityArgs { common })
            | Command::Warmup(WarmupArgs { common, .. }) => common.into(),
            Command::Train(TrainArgs { common, .. })
            | Command::Join(JoinArgs { common, .. })
            | Command::Bootstrap(BootstrapArgs { common, .. })
            | Command::Config {
                action: ConfigAction::Show { common },
            } => common.into(),
            Command::Status(StatusArgs { common, .. })
            | Command::Eval(EvalArgs { common, .. })
            | Command::Logprobs(LogprobsArgs { common, .. })
            | Command::Bench(BenchArgs { common, .. }) => common.into(),
            Command::Tasks { action } => action
                .config_file()
                .map(CommonArgs::from)
                .unwrap_or_default(),
            Command::Simulate(_) | Command::Completions { .. } | Command::Man => {
                CommonArgs::default()
            }
        }
    }

    /// Whether the command keeps anything in the data directory (an identity, checkpoints, warm
    /// starts, a built-in model's files).
    pub(crate) fn writes_data_dir(&self) -> bool {
        !matches!(
            self,
            Command::Status(_)
                | Command::Simulate(_)
                | Command::Tasks { .. }
                | Command::Config { .. }
                | Command::Completions { .. }
                | Command::Man
        )
    }

    /// The model whose size decides the automatic thread count: the command's own `--model`, which
    /// overrides `node.model` for this command only (`join` passes its flag through the
    /// configuration), else `configured`; none for the matmul benchmark, which measures the device's
    /// ceiling on every core.
    pub(crate) fn sized_by_model<'a>(&'a self, configured: &'a Path) -> Option<&'a Path> {
        let own = match self {
            Command::Bench(BenchArgs {
                what: BenchKind::Matmul,
                ..
            }) => return None,
            Command::Warmup(WarmupArgs { model, .. })
            | Command::Eval(EvalArgs { model, .. })
            | Command::Logprobs(LogprobsArgs { model, .. })
            | Command::Bench(BenchArgs { model, .. }) => model.as_deref(),
            _ => None,
        };
        Some(own.unwrap_or(configured))
    }
}

/// Environment variables read by flags (or, for the fault tests' crash hook, by the write layer)
/// directly rather than through configuration keys.
pub(crate) const FLAG_ONLY_ENV: &[&str] = &[
    swarm_policy::durable::CRASH_AT_WRITE_VARIABLE,
    "SWARM_CONFIG",
    "SWARM_STATUS_API",
    "SWARM_LOGPROBS_MODEL",
    "SWARM_BENCH_MODEL",
    "SWARM_HTTP_LISTEN",
];

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// The long options a subcommand's help lists.
    fn options(path: &[&str]) -> Vec<String> {
        let mut command = Cli::command();
        for name in path {
            command = command
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"))
                .clone();
        }
        command
            .get_arguments()
            .filter_map(|arg| arg.get_long().map(str::to_owned))
            .collect()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn each_subcommand_lists_only_the_shared_options_it_uses() {
        let shared = ["config", "data-dir", "http", "log-format"];
        let expected: [(&[&str], &[&str]); 12] = [
            (&["identity"], &["config", "data-dir", "log-format"]),
            (&["status"], &["config"]),
            (&["warmup"], &["config", "data-dir", "log-format"]),
            (&["train"], &shared),
            (&["simulate"], &["config", "http", "log-format"]),
            (&["join"], &shared),
            (&["bootstrap"], &shared),
            (&["eval"], &["config"]),
            (&["logprobs"], &["config"]),
            (&["bench"], &["config"]),
            (&["tasks", "show"], &["config"]),
            (&["config", "show"], &shared),
        ];
        for (path, want) in expected {
            let mut listed: Vec<String> = options(path)
                .into_iter()
                .filter(|long| shared.contains(&long.as_str()))
                .collect();
            listed.sort();
            assert_eq!(listed, want, "swarm-node {}", path.join(" "));
        }
    }

    #[test]
    fn shared_options_are_still_accepted_before_the_subcommand() {
        let cli = Cli::try_parse_from([
            "swarm-node",
            "--data-dir",
            "node-a",
            "--http",
            "off",
            "train",
            "--solo",
            "--data-dir",
            "node-b",
        ])
        .unwrap();
        let common = cli.command.common().or(cli.leading);
        assert_eq!(common.data_dir, Some(PathBuf::from("node-b")));
        assert_eq!(common.http.as_deref(), Some("off"));
        assert!(Cli::try_parse_from(["swarm-node", "tasks", "list", "--http", "off"]).is_err());
    }
}
