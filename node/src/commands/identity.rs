//! `swarm-node identity`: create or show the node's identity.

use std::fmt;

use anyhow::Result;
use clap::Args;
use swarm_node::config::NodeConfig;
use swarm_node::identity::Identity;

use crate::args::NodeArgs;

#[derive(Debug, Args)]
pub(crate) struct IdentityArgs {
    #[command(flatten)]
    pub(crate) common: NodeArgs,
}

/// What an operator needs to share or back up: the key others verify, the peer id they dial, and
/// where the secret lives.
struct IdentityReport<'a>(&'a Identity);

impl fmt::Display for IdentityReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let identity = self.0;
        writeln!(f, "public key: {}", identity.public_key_hex())?;
        writeln!(f, "peer id:    {}", identity.peer_id())?;
        write!(f, "key file:   {}", identity.path().display())
    }
}

pub(crate) fn run(config: &NodeConfig) -> Result<()> {
    let identity = Identity::load_or_create(&config.node.data_dir)?;
    if identity.was_created() {
        tracing::info!(path = %identity.path().display(), "created a new identity; back this file up");
    }
    println!("{}", IdentityReport(&identity));
    Ok(())
}
