//! One module per subcommand: each runs from its parsed arguments and, where it reads one, the node
//! configuration, which is loaded here the same way for all of them.

pub(crate) mod bench;
pub(crate) mod config;
pub(crate) mod eval;
pub(crate) mod identity;
pub(crate) mod join;
pub(crate) mod logprobs;
mod serve;
pub(crate) mod simulate;
pub(crate) mod status;
pub(crate) mod tasks;
pub(crate) mod train;
pub(crate) mod warmup;

use anyhow::Result;
use swarm_node::config::{FlagOverride, LogFormat, NodeConfig};
use toml::Value;

use crate::args::{Command, CommonArgs, FLAG_ONLY_ENV};

/// The node configuration for `command` (defaults < file < environment < flags, with `leading`
/// the shared options given before its name), after which the tensor thread pool is sized and
/// logging started: both read it, and both must be settled before any work starts.
pub(crate) fn load_config(command: &Command, leading: CommonArgs) -> Result<NodeConfig> {
    let common = command.common().or(leading);
    let mut flags = flag_overrides(&common);
    flags.extend(match command {
        Command::Join(args) => args.overrides(),
        Command::Bootstrap(args) => args.overrides(),
        _ => Vec::new(),
    });
    let loaded = NodeConfig::load(
        common.config.as_deref(),
        std::env::vars(),
        &flags,
        FLAG_ONLY_ENV,
    )?;
    let config = loaded.config;
    swarm_node::compute::set_threads(match config.node.threads {
        0 => command
            .sized_by_model(&config.node.model)
            .map_or(0, swarm_node::compute::auto_threads),
        threads => threads,
    });
    swarm_node::logging::init(config.log.format, &config.log.level)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if command.writes_data_dir() {
        announce_data_dir(&config.node.data_dir);
    }
    Ok(config)
}

/// Says where a node's data will live the first time that place is used, and points at a `./data`
/// of an earlier version (which kept its data relative to the working directory) rather than
/// silently starting a second identity beside it.
fn announce_data_dir(data_dir: &std::path::Path) {
    let legacy = std::path::Path::new("data");
    if data_dir == swarm_node::builtin::default_data_dir()
        && legacy.join(swarm_node::identity::IDENTITY_FILE).exists()
        && !data_dir.join(swarm_node::identity::IDENTITY_FILE).exists()
    {
        tracing::warn!(
            "./data holds a node identity from an earlier version, which kept its data under the \
             working directory; this run uses {} instead. To stay the same node, pass --data-dir \
             data (or set SWARM_NODE_DATA_DIR), or move ./data's contents there",
            data_dir.display()
        );
    }
    if !data_dir.exists() {
        eprintln!(
            "this node keeps its identity, checkpoints and warm starts in {} (--data-dir or \
             SWARM_NODE_DATA_DIR to choose another place)",
            data_dir.display()
        );
    }
}

/// Configuration keys set by the shared flags.
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
