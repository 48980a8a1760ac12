//! Process-wide settings of the tensor backend.

use std::path::Path;

/// Models below this size run their tensor work on one thread: splitting their small matrix
/// products across threads costs more than it saves (measured in the README on a 2-core machine:
/// the 1.6M-parameter tiny policy samples about 1.5x faster on one thread than on two and trains
/// about as fast, while a 24M-parameter model gains 10-22% from the second thread).
pub const SMALL_MODEL_PARAMETERS: usize = 10_000_000;

/// The thread count `node.threads = 0` means for the model in `model_dir`: one for small models,
/// every core (0) otherwise or when the model's configuration cannot be read (loading the model
/// reports that error properly).
pub fn auto_threads(model_dir: &Path) -> u32 {
    match swarm_policy::ModelConfig::load(model_dir) {
        Ok(config) if config.parameter_count() < SMALL_MODEL_PARAMETERS => 1,
        _ => 0,
    }
}

/// Caps the threads of tensor work at `threads` (0 keeps every core). Must run before any tensor work
/// starts; an explicit `RAYON_NUM_THREADS` in the environment wins.
pub fn set_threads(threads: u32) {
    if threads == 0 || std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    // The backend reads RAYON_NUM_THREADS when it first sizes its thread pool.
    #[allow(unsafe_code)]
    // SAFETY: called from `main` after argument and configuration parsing, before the async runtime,
    // the learner thread or any tensor work exist, so no other thread can read the environment.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_models_get_one_thread_and_others_every_core() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/models");
        assert_eq!(auto_threads(&root.join("tiny")), 1);
        assert_eq!(auto_threads(&root.join("bench-25m")), 0);
        assert_eq!(auto_threads(&root.join("no-such-model")), 0);
    }
}
