//! The learner's integration tests, one binary: learning end to end on the tiny model.

mod datasets;
mod external_rollouts;
mod kl_reference;
mod reward_goes_up;
