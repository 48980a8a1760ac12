//! The node's configuration: one TOML document, layered as defaults < file < `SWARM_*` environment <
//! command-line flags, then validated as a whole so every error names the key and the accepted range.

mod layers;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

pub use layers::{ENV_PREFIX, env_name};

/// Everything a node reads from its configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the node keeps its identity, checkpoints and logs.
    pub node: NodeSection,
    /// Peer-to-peer networking.
    pub net: NetSection,
    /// The local HTTP API, metrics and dashboard.
    pub http: HttpSection,
    /// Logging.
    pub log: LogSection,
    /// How the node learns.
    pub learner: swarm_learner::LearnerOptions,
    /// The supervised warm start of a model that has no weights yet.
    pub warmup: swarm_learner::WarmupOptions,
    /// `[[plugin]]`: task families served by other programs (see `docs/tasks.md`).
    #[serde(rename = "plugin")]
    pub plugins: Vec<swarm_tasks::PluginSpec>,
}

/// `[node]`: identity, storage and compute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// Directory for the identity key, checkpoints, metrics.jsonl, warm starts and the rollout log
    /// [default: `$XDG_DATA_HOME/swarm-node`, else `~/.local/share/swarm-node`;
    /// `~/Library/Application Support/swarm-node` on macOS].
    pub data_dir: PathBuf,
    /// Model directory in Hugging Face layout (config.json, *.safetensors, tokenizer.json), or the
    /// name of a built-in model (`tiny`, `tiny-pairs`, `bench-25m`).
    pub model: PathBuf,
    /// Threads for tensor work; 0 chooses: at most two for models under 10M parameters (their
    /// products are too small to split further), every core otherwise.
    pub threads: u32,
    /// Seed for sampling and task selection; runs with equal seeds make equal choices.
    pub seed: u64,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            data_dir: crate::builtin::default_data_dir(),
            model: PathBuf::from("tiny"),
            threads: 0,
            seed: 0,
        }
    }
}

/// `[net]`: which swarm to join and how to reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetSection {
    /// Network name: nodes only exchange rollouts with nodes of the same name.
    pub network: String,
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Multiaddrs of bootstrap nodes, each ending in `/p2p/<peer id>`.
    pub bootstrap: Vec<String>,
    /// Multiaddrs at which peers can reach this node, when known (a bootstrap node's public address
    /// or DNS name, a forwarded port).
    pub external_addresses: Vec<String>,
    /// Local mode: discover peers by mDNS (LAN and simulations).
    pub local: bool,
    /// Maximum number of established connections.
    pub max_connections: u32,
    /// When to reserve a slot on relay servers among the peers so that nodes behind NAT stay
    /// reachable: `when-private` (AutoNAT found peers cannot dial this node), `always`, `never`.
    pub relay_reservations: String,
    /// Also serve as a relay for other nodes (bootstrap nodes always do).
    pub relay_server: bool,
    /// AutoNAT (is this node reachable?) asks only peers at global addresses, and dials back
    /// only global addresses. Turn off for a swarm that lives on private addresses (a LAN, a
    /// VPN, a test network), where no peer would otherwise ever answer.
    pub autonat_global_only: bool,
    /// Gossipsub mesh degree: peers each node forwards full bundles to. Lower saves bandwidth
    /// (see docs/performance.md), higher survives more lost peers.
    pub mesh_degree: u32,
    /// Most of this node's own bundles it publishes per minute (0: no bound); groups past it are
    /// not published. Half the default author quota, so receivers never ignore an honest node.
    pub publish_per_minute: u32,
    /// Bundles one author may have accepted here per minute (token bucket, burst of the same size);
    /// the rest are ignored as `over_quota_author`.
    pub author_quota_per_minute: u32,
    /// Messages one forwarding peer may send here per minute; the rest are ignored as
    /// `over_quota_peer`. Large, because a bootstrap node forwards every author's bundles.
    pub peer_quota_per_minute: u32,
    /// Oldest bundle accepted, in seconds since its creation; older ones are ignored as `stale`.
    pub max_age_seconds: u64,
    /// Furthest in the future a bundle's creation time may be, in seconds (clock skew); further
    /// ones are ignored as `from_future`.
    pub max_clock_skew_seconds: u64,
    /// Message ids, and (author, sequence) pairs, remembered to recognise duplicates; the oldest
    /// are forgotten first.
    pub dedup_capacity: u32,
    /// Largest envelope accepted, in bytes (at most 1047552: the gossip transmit limit less its
    /// framing).
    pub max_envelope_bytes: u32,
}

impl Default for NetSection {
    fn default() -> Self {
        let defaults = swarm_net::NetConfig::default();
        Self {
            network: "swarm-dev".to_owned(),
            listen: vec![
                "/ip4/0.0.0.0/tcp/0".to_owned(),
                "/ip4/0.0.0.0/udp/0/quic-v1".to_owned(),
            ],
            bootstrap: Vec::new(),
            external_addresses: Vec::new(),
            local: false,
            max_connections: 64,
            relay_reservations: "when-private".to_owned(),
            relay_server: false,
            autonat_global_only: defaults.autonat_global_only,
            mesh_degree: 6,
            publish_per_minute: 600,
            author_quota_per_minute: defaults.author_quota_per_minute,
            peer_quota_per_minute: defaults.peer_quota_per_minute,
            max_age_seconds: defaults.staleness.max_age_ms / 1000,
            max_clock_skew_seconds: defaults.staleness.max_future_skew_ms / 1000,
            dedup_capacity: defaults.dedup_capacity as u32,
            max_envelope_bytes: defaults.limits.max_envelope_bytes as u32,
        }
    }
}

/// `[http]`: the local status API, Prometheus metrics and dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// Socket address to serve on, or `off`. Binds loopback by default: the API is for the operator.
    pub listen: String,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9180".to_owned(),
        }
    }
}

/// `[log]`: how the node reports what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `human` for terminals, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `swarm_net=debug,info`.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".to_owned(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line.
    Json,
}

/// A value set on the command line for a dotted configuration key.
#[derive(Debug, Clone)]
pub struct FlagOverride {
    /// Dotted key, e.g. `node.data_dir`.
    pub key: &'static str,
    /// The flag as the user typed it, for error messages.
    pub flag: &'static str,
    /// The value.
    pub value: Value,
}

/// The result of loading: the configuration and warnings worth logging once logging is up.
#[derive(Debug)]
pub struct Loaded {
    /// The effective configuration.
    pub config: NodeConfig,
    /// Human-readable warnings (for example an unknown `SWARM_*` variable).
    pub warnings: Vec<String>,
}

impl NodeConfig {
    /// Builds the effective configuration from the layers and validates it.
    ///
    /// `flag_env_names` lists the environment variables that flags read on their own (such as
    /// `SWARM_CONFIG`), so they are not reported as unknown configuration keys.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[FlagOverride],
        flag_env_names: &[&str],
    ) -> Result<Loaded> {
        let defaults = Table::try_from(NodeConfig::default())
            .context("internal: the default configuration does not serialize")?;
        let mut table = defaults.clone();
        // Which source last set each key, so a value that fails to deserialize is traced to it.
        let mut origins: Vec<(String, String)> = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let overlay: Table = toml::from_str(&text)
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            let before = table.clone();
            layers::merge(&mut table, overlay, &path.display().to_string(), "")?;
            record_changes(&mut origins, &before, &table, |_| {
                format!("config file {}", path.display())
            });
        }
        let before = table.clone();
        let unknown = layers::apply_env(&mut table, env, flag_env_names)?;
        record_changes(&mut origins, &before, &table, |key| {
            format!("environment variable {}", layers::env_name(key))
        });
        for flag in flags {
            layers::set(&mut table, flag.key, flag.value.clone(), flag.flag)?;
            origins.push((flag.key.to_owned(), format!("flag {}", flag.flag)));
        }
        let config = deserialize_sections(table.clone()).map_err(|error| {
            match culprit(&defaults, &table, &origins) {
                Some((key, source)) => anyhow::anyhow!("`{key}` from {source}: {error:#}"),
                None => error,
            }
        })?;
        config.validate()?;
        let warnings = unknown
            .into_iter()
            .map(|name| {
                format!(
                    "environment variable {name} matches no configuration key and is ignored; \
                     `swarm-node config show` lists the keys (variable names are SWARM_<SECTION>_<KEY>)"
                )
            })
            .collect();
        Ok(Loaded { config, warnings })
    }

    /// Checks ranges and cross-field rules that types alone cannot express.
    pub fn validate(&self) -> Result<()> {
        let data_dir = &self.node.data_dir;
        if data_dir.exists() && !data_dir.is_dir() {
            bail!(
                "`node.data_dir` = {} is a file, not a directory; pass --data-dir (or set \
                 SWARM_NODE_DATA_DIR) a directory, which is created when missing",
                data_dir.display()
            );
        }
        if self.net.network.is_empty()
            || !self
                .net
                .network
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            bail!(
                "`net.network` = {:?}: must be non-empty and use only ASCII letters, digits, '-', '_' and '.' \
                 (it becomes part of the gossip topic)",
                self.net.network
            );
        }
        for (key, addrs) in [
            ("net.listen", &self.net.listen),
            ("net.bootstrap", &self.net.bootstrap),
            ("net.external_addresses", &self.net.external_addresses),
        ] {
            for addr in addrs.iter() {
                addr.parse::<libp2p::Multiaddr>().map_err(|err| {
                    anyhow::anyhow!(
                        "`{key}` entry {addr:?} is not a multiaddr ({err}); example: /ip4/127.0.0.1/tcp/4001"
                    )
                })?;
            }
        }
        if let Err(err) = self
            .net
            .relay_reservations
            .parse::<swarm_net::RelayReservations>()
        {
            bail!("`net.relay_reservations`: {err}");
        }
        if !(2..=32).contains(&self.net.mesh_degree) {
            bail!(
                "`net.mesh_degree` = {}: must be between 2 and 32 (6 is the default)",
                self.net.mesh_degree
            );
        }
        if !(1..=10_000).contains(&self.net.max_connections) {
            bail!(
                "`net.max_connections` = {}: must be between 1 and 10000",
                self.net.max_connections
            );
        }
        for (key, value) in [
            (
                "net.author_quota_per_minute",
                self.net.author_quota_per_minute,
            ),
            ("net.peer_quota_per_minute", self.net.peer_quota_per_minute),
            ("net.dedup_capacity", self.net.dedup_capacity),
        ] {
            if value == 0 {
                bail!("`{key}` = 0: must be at least 1");
            }
        }
        if self.net.max_age_seconds == 0 {
            bail!("`net.max_age_seconds` = 0: must be at least 1 (600 is the default)");
        }
        let ceiling = swarm_protocol::MAX_ENVELOPE_BYTES_CEILING;
        if !(1024..=ceiling).contains(&(self.net.max_envelope_bytes as usize)) {
            bail!(
                "`net.max_envelope_bytes` = {}: must be between 1024 and {ceiling} (the gossip \
                 transmit limit less its framing)",
                self.net.max_envelope_bytes
            );
        }
        if self.http.listen != "off" {
            self.http
                .listen
                .parse::<std::net::SocketAddr>()
                .map_err(|_| {
                    anyhow::anyhow!(
                        "`http.listen` = {:?}: must be a socket address such as 127.0.0.1:9180, or `off`",
                        self.http.listen
                    )
                })?;
        }
        if self.node.threads > 1024 {
            bail!(
                "`node.threads` = {}: must be between 0 (chosen by model size) and 1024",
                self.node.threads
            );
        }
        let plugin_families: Vec<String> = self
            .plugins
            .iter()
            .flat_map(|p| p.families.iter().cloned())
            .collect();
        for (index, plugin) in self.plugins.iter().enumerate() {
            if plugin.command.is_empty() || plugin.families.is_empty() {
                bail!(
                    "`plugin` entry {}: give `command` (the program and its arguments) and \
                     `families` (the names this node uses from it)",
                    index + 1
                );
            }
        }
        self.learner
            .validate_with_plugins(&plugin_families)
            .map_err(anyhow::Error::msg)?;
        if self.warmup.steps == 0 || self.warmup.batch == 0 {
            bail!("`warmup.steps` and `warmup.batch` must be at least 1");
        }
        for name in &self.warmup.families {
            if swarm_tasks::family(name).is_none() {
                bail!("`warmup.families`: unknown family {name:?}; see `swarm-node tasks list`");
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|err| {
            anyhow::anyhow!(
                "`log.level` = {:?} is not a valid filter ({err}); examples: info, debug, swarm_net=debug,info",
                self.log.level
            )
        })?;
        Ok(())
    }

    /// The effective configuration as TOML, as `swarm-node config show` prints it.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).context("internal: configuration does not serialize")
    }
}

/// Deserializes section by section so a bad enum value or similar names its section.
fn record_changes(
    origins: &mut Vec<(String, String)>,
    before: &Table,
    after: &Table,
    source: impl Fn(&str) -> String,
) {
    let before = layers::leaves(before);
    for ((key, old), (_, new)) in before.iter().zip(layers::leaves(after)) {
        if *old != new {
            origins.push((key.clone(), source(key)));
        }
    }
}

/// The key (and its source) whose value alone, set over the defaults, fails to deserialize.
fn culprit(
    defaults: &Table,
    table: &Table,
    origins: &[(String, String)],
) -> Option<(String, String)> {
    let values = layers::leaves(table);
    origins.iter().rev().find_map(|(key, source)| {
        let (_, value) = values.iter().find(|(leaf, _)| leaf == key)?;
        let mut alone = defaults.clone();
        layers::replace(&mut alone, key, value.clone());
        deserialize_sections(alone)
            .is_err()
            .then(|| (key.clone(), source.clone()))
    })
}

fn deserialize_sections(table: Table) -> Result<NodeConfig> {
    let mut config = NodeConfig::default();
    for (section, value) in table {
        let context = || format!("invalid value in [{section}]");
        match section.as_str() {
            "node" => config.node = value.try_into().with_context(context)?,
            "net" => config.net = value.try_into().with_context(context)?,
            "http" => config.http = value.try_into().with_context(context)?,
            "log" => config.log = value.try_into().with_context(context)?,
            "learner" => config.learner = value.try_into().with_context(context)?,
            "warmup" => config.warmup = value.try_into().with_context(context)?,
            "plugin" => config.plugins = value.try_into().with_context(context)?,
            other => bail!("internal: section [{other}] has no field"),
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(file: &str, env: &[(&str, &str)], flags: &[FlagOverride]) -> Result<Loaded> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, file).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        NodeConfig::load(Some(&path), env, flags, &["SWARM_CONFIG"])
    }

    #[test]
    fn the_demo_network_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/demo-network.toml");
        let loaded = NodeConfig::load(Some(&path), Vec::new(), &[], &[]).unwrap();
        assert_eq!(loaded.config.net.network, "swarm-demo");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn the_reasoning_gym_node_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/reasoning-gym/node.toml");
        let loaded = NodeConfig::load(Some(&path), Vec::new(), &[], &[]).unwrap();
        assert_eq!(loaded.config.learner.families.len(), 9);
        assert_eq!(
            loaded.config.plugins[0].families,
            loaded.config.learner.families
        );
    }

    #[test]
    fn defaults_round_trip_through_show() {
        let shown = NodeConfig::default().to_toml().unwrap();
        let loaded = load_str(&shown, &[], &[]).unwrap();
        assert_eq!(loaded.config, NodeConfig::default());
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let file = "[node]\nseed = 1\nthreads = 1\n[net]\nnetwork = \"from-file\"\n";
        let flag = FlagOverride {
            key: "node.seed",
            flag: "--seed",
            value: Value::Integer(3),
        };
        let loaded = load_str(
            file,
            &[("SWARM_NODE_SEED", "2"), ("SWARM_NODE_THREADS", "2")],
            &[flag],
        )
        .unwrap();
        assert_eq!(loaded.config.node.seed, 3, "flag beats env");
        assert_eq!(loaded.config.node.threads, 2, "env beats file");
        assert_eq!(loaded.config.net.network, "from-file", "file beats default");
        assert_eq!(loaded.config.http, HttpSection::default());
    }

    #[test]
    fn bad_values_name_the_key_and_the_range() {
        let cases = [
            ("[net]\nnetwork = \"a b\"\n", "`net.network`"),
            ("[net]\nbootstrap = [\"not-an-addr\"]\n", "`net.bootstrap`"),
            ("[net]\nmax_connections = 0\n", "`net.max_connections`"),
            ("[net]\nmesh_degree = 1\n", "`net.mesh_degree`"),
            (
                "[net]\npeer_quota_per_minute = 0\n",
                "`net.peer_quota_per_minute`",
            ),
            ("[net]\nmax_age_seconds = 0\n", "`net.max_age_seconds`"),
            (
                "[net]\nmax_envelope_bytes = 2000000\n",
                "`net.max_envelope_bytes`",
            ),
            (
                "[net]\nrelay_reservations = \"sometimes\"\n",
                "`net.relay_reservations`",
            ),
            ("[http]\nlisten = \"localhost\"\n", "`http.listen`"),
            ("[log]\nformat = \"xml\"\n", "`log.format` from config file"),
            ("[log]\nlevel = \"info,=[\"\n", "`log.level`"),
            ("[node]\nthreads = -1\n", "`node.threads` from config file"),
            ("[nodes]\nseed = 1\n", "`nodes`"),
        ];
        for (file, expected) in cases {
            let err = format!("{:#}", load_str(file, &[], &[]).unwrap_err());
            assert!(err.contains(expected), "{file:?}: {err}");
        }
    }

    #[test]
    fn a_value_that_fits_no_type_names_its_variable_or_flag() {
        let err = format!(
            "{:#}",
            load_str("", &[("SWARM_NODE_SEED", "-1")], &[]).unwrap_err()
        );
        assert!(
            err.contains("`node.seed` from environment variable SWARM_NODE_SEED"),
            "{err}"
        );
        let flag = FlagOverride {
            key: "node.data_dir",
            flag: "--data-dir",
            value: Value::String("x".into()),
        };
        let err = format!(
            "{:#}",
            load_str("[node]\nthreads = -3\n", &[], &[flag]).unwrap_err()
        );
        assert!(err.contains("`node.threads` from config file"), "{err}");
    }

    #[test]
    fn a_data_directory_that_is_a_file_is_named() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let flag = FlagOverride {
            key: "node.data_dir",
            flag: "--data-dir",
            value: Value::String(file.path().display().to_string()),
        };
        let err = format!("{:#}", load_str("", &[], &[flag]).unwrap_err());
        assert!(
            err.contains("`node.data_dir`") && err.contains("is a file, not a directory"),
            "{err}"
        );
    }

    #[test]
    fn unknown_environment_variables_become_warnings() {
        let loaded = load_str("", &[("SWARM_NODE_SEDE", "1"), ("SWARM_CONFIG", "x")], &[]).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("SWARM_NODE_SEDE"));
    }

    #[test]
    fn plugins_and_datasets_are_read_and_their_families_accepted() {
        let file = r#"
            [[plugin]]
            command = ["python3", "scripts/reasoning_gym_plugin.py"]
            families = ["rg/base_conversion"]

            [learner]
            families = ["sorting", "rg/base_conversion"]
            datasets = ["a.jsonl", { path = "b.jsonl", weight = 3, hide_labels = true }]
        "#;
        let config = load_str(file, &[], &[]).unwrap().config;
        assert_eq!(config.plugins[0].families, ["rg/base_conversion"]);
        assert_eq!(config.plugins[0].timeout_seconds, 30.0);
        let datasets = &config.learner.datasets;
        assert_eq!((datasets[0].weight, datasets[0].hide_labels), (1, false));
        assert_eq!(
            (
                datasets[1].path.to_str(),
                datasets[1].weight,
                datasets[1].hide_labels
            ),
            (Some("b.jsonl"), 3, true)
        );
        let shown = load_str(&config.to_toml().unwrap(), &[], &[]).unwrap();
        assert_eq!(shown.config, config);
        let undeclared =
            load_str("[learner]\nfamilies = [\"rg/base_conversion\"]\n", &[], &[]).unwrap_err();
        assert!(
            format!("{undeclared:#}").contains("[[plugin]]"),
            "{undeclared:#}"
        );
        let empty =
            load_str("[[plugin]]\ncommand = []\nfamilies = [\"x\"]\n", &[], &[]).unwrap_err();
        assert!(
            format!("{empty:#}").contains("`plugin` entry 1"),
            "{empty:#}"
        );
    }

    #[test]
    fn random_files_and_variables_give_errors_not_panics() {
        use rand::{Rng, SeedableRng};
        let defaults = Table::try_from(NodeConfig::default()).unwrap();
        let leaves = layers::leaves(&defaults);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let random_value = |rng: &mut rand_chacha::ChaCha8Rng| -> String {
            match rng.random_range(0..7) {
                0 => rng.random::<i64>().to_string(),
                1 => format!("{:e}", rng.random::<f64>() * 1e30 - 5e29),
                2 => ["true", "false", "nan", "inf", "-0"][rng.random_range(0..5)].to_owned(),
                3 => format!(
                    "{:?}",
                    ["", "a b", "/ip4/x", "off", "\u{0}"][rng.random_range(0..5)]
                ),
                4 => "[1, \"two\", 3.0]".to_owned(),
                5 => "{ nested = 1 }".to_owned(),
                _ => "\"127.0.0.1:99999\"".to_owned(),
            }
        };
        let mut errors = 0;
        for _ in 0..400 {
            // Top-level keys (the `plugin` list) must come before the first section.
            let mut top = String::new();
            let mut file = String::new();
            let mut env = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                let (key, _) = &leaves[rng.random_range(0..leaves.len())];
                let value = random_value(&mut rng);
                if rng.random_bool(0.5) {
                    match key.split_once('.') {
                        Some((section, name)) => {
                            file.push_str(&format!("[{section}]\n{name} = {value}\n"));
                        }
                        None => top.push_str(&format!("{key} = {value}\n")),
                    }
                } else {
                    env.push((layers::env_name(key), value.trim_matches('"').to_owned()));
                }
            }
            if rng.random_bool(0.1) {
                file.push_str("[[broken\n");
            }
            let file = top + &file;
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if let Err(error) = load_str(&file, &env, &[]) {
                errors += 1;
                assert!(!format!("{error:#}").is_empty());
            }
        }
        assert!(errors > 100, "most random values are refused: {errors}");
    }
}
