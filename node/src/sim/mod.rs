//! In-process multi-node simulations and their reports.

pub mod plot;
