//! swarm-node: a peer-to-peer reinforcement-learning node for language models.
//!
//! The binary's subcommands are thin wrappers over this library so that tests and simulations drive
//! exactly the code a volunteer runs.

pub mod bench_gossip;
pub mod builtin;
pub mod compute;
pub mod config;
pub mod connectivity;
pub mod gossip;
pub mod http;
pub mod identity;
pub mod join;
pub mod logging;
pub mod net_config;
pub mod setup;
pub mod signals;
pub mod sim;
pub mod solo;
pub mod status;
