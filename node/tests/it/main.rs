//! The node's integration tests, one binary: the `swarm-node` commands as users run them.

mod cli_basics;
mod common;
mod dashboard_page;
mod join;
mod simulate;
mod train_solo;
