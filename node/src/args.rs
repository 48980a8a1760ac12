//! The command-line surface of `swarm-node`: subcommands, flags and their help text. Every flag
//! can also be given as an environment variable.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use swarm_node::config::LogFormat;

/// A peer-to-peer reinforcement-learning node for language models.
#[derive(Debug, Parser)]
#[command(name = "swarm-node", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(flatten)]
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
pub(crate) struct ConfigArgs {
    /// Configuration file (TOML). Keys can also be set as SWARM_<SECTION>_<KEY> variables.
    #[arg(long, env = "SWARM_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

/// Subcommands that keep state in the data directory and log as they work.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
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

impl From<&ConfigArgs> for CommonArgs {
    fn from(args: &ConfigArgs) -> Self {
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
    Identity {
        #[command(flatten)]
        common: NodeArgs,
    },
    /// Print the status of a running node, read from its HTTP API.
    Status {
        /// The node's API address [default: config http.listen].
        #[arg(long, env = "SWARM_STATUS_API")]
        api: Option<std::net::SocketAddr>,
        /// Print the raw JSON document instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: ConfigArgs,
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
        #[command(flatten)]
        common: NodeArgs,
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
        #[command(flatten)]
        common: ServeArgs,
    },
    /// Run a multi-node simulation on this machine (real libp2p nodes on loopback, one learner
    /// thread each) and write a report with charts.
    Simulate {
        /// The simulation plan (TOML), which also sets every simulated node's configuration
        /// [default: configs/sim-quick.toml].
        #[arg(long = "config", env = "SWARM_CONFIG")]
        plan: Option<PathBuf>,
        /// Serve the dashboard and API for the running swarm on this address (none unless given).
        #[arg(long, env = "SWARM_HTTP_LISTEN")]
        http: Option<String>,
        /// Log output format.
        #[arg(long, value_enum, env = "SWARM_LOG_FORMAT")]
        log_format: Option<LogFormat>,
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
        #[command(flatten)]
        common: ServeArgs,
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
        #[command(flatten)]
        common: ServeArgs,
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
        #[command(flatten)]
        common: ConfigArgs,
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
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Measure sampling, training or gossip throughput, or the matrix-multiply rate they are read
    /// against, and print it (JSON with --json).
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
        /// Distinct prompts in a sampling batch, each completed by an equal group of sequences as in
        /// a learner's batch (1: one prompt for the whole batch).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
        distinct_prompts: u64,
        /// Timed repetitions (gossip: bundles each node publishes).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
        iterations: u64,
        /// Nodes in the swarm (gossip).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=256))]
        nodes: u64,
        /// Gossipsub mesh degree (gossip).
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(2..=32))]
        mesh_degree: u64,
        /// Rows and columns of the square operands (matmul).
        #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=16384))]
        size: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: ConfigArgs,
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

impl Command {
    /// The shared options given after the subcommand name (`simulate` reads its own).
    pub(crate) fn common(&self) -> CommonArgs {
        match self {
            Command::Identity { common } | Command::Warmup { common, .. } => common.into(),
            Command::Train { common, .. }
            | Command::Join { common, .. }
            | Command::Bootstrap { common, .. }
            | Command::Config {
                action: ConfigAction::Show { common },
            } => common.into(),
            Command::Status { common, .. }
            | Command::Eval { common, .. }
            | Command::Logprobs { common, .. }
            | Command::Bench { common, .. } => common.into(),
            Command::Simulate { .. } | Command::Tasks { .. } => CommonArgs::default(),
        }
    }
}

impl Command {
    /// The model whose size decides the automatic thread count: the command's own `--model`, which
    /// overrides `node.model` for this command only (`join` passes its flag through the
    /// configuration), else `configured`; none for the matmul benchmark, which measures the device's
    /// ceiling on every core.
    pub(crate) fn sized_by_model<'a>(&'a self, configured: &'a Path) -> Option<&'a Path> {
        let own = match self {
            Command::Bench {
                what: BenchKind::Matmul,
                ..
            } => return None,
            Command::Warmup { model, .. }
            | Command::Eval { model, .. }
            | Command::Logprobs { model, .. }
            | Command::Bench { model, .. } => model.as_deref(),
            _ => None,
        };
        Some(own.unwrap_or(configured))
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum BenchKind {
    /// Batched sampling with the KV cache.
    Sample,
    /// Forward, backward and optimizer step.
    Train,
    /// Delivery ratio and propagation latency of signed bundles among in-process nodes on loopback
    /// (each bundle: --batch completions of 48 tokens).
    Gossip,
    /// One float32 product of two --size x --size matrices, the way the policy multiplies: the
    /// practical GFLOP/s ceiling of this device for the sample and train figures.
    Matmul,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TasksAction {
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
pub(crate) enum ConfigAction {
    /// Print the effective configuration (defaults < file < environment < flags) as TOML.
    Show {
        #[command(flatten)]
        common: ServeArgs,
    },
}

/// Environment variables read by flags directly rather than through configuration keys.
pub(crate) const FLAG_ONLY_ENV: &[&str] = &[
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
            (&["tasks", "show"], &[]),
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
