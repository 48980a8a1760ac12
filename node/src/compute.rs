//! Process-wide settings of the tensor backend.

use std::path::Path;

/// Models below this size use at most [`SMALL_MODEL_THREADS`] threads for tensor work: their matrix
/// products are small enough that handing them to many threads costs more than it saves.
pub const SMALL_MODEL_PARAMETERS: usize = 10_000_000;

/// The thread cap for small models: the tiny policy trains and samples faster on two threads than
/// on one (see docs/performance.md). More threads were not measured for a model this small, so they
/// are not assumed to help.
pub const SMALL_MODEL_THREADS: u32 = 2;

/// The thread count `node.threads = 0` means for the model `model_dir` (a directory or a built-in
/// model's name): at most
/// [`SMALL_MODEL_THREADS`] for small models, every core (0) otherwise or when the model's
/// configuration cannot be read (loading the model reports that error properly).
pub fn auto_threads(model_dir: &Path) -> u32 {
    let config = crate::builtin::model_config_text(model_dir)
        .and_then(|text| serde_json::from_str(&text).ok())
        .and_then(|json| swarm_policy::ModelConfig::from_json(&json).ok());
    match config {
        Some(config) if config.parameter_count() < SMALL_MODEL_PARAMETERS => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            SMALL_MODEL_THREADS.min(u32::try_from(cores).unwrap_or(u32::MAX))
        }
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

/// Heap memory glibc keeps for reuse, instead of handing it back to the kernel, while this much or
/// less is free at the top of the heap.
pub const ALLOCATOR_TRIM_THRESHOLD: usize = 128 << 20;

/// Allocations up to this size come from the heap rather than from their own `mmap`.
pub const ALLOCATOR_MMAP_THRESHOLD: usize = 32 << 20;

/// Keeps tensor buffers of a training step in the heap between steps. Every step allocates and frees
/// the same activations and gradients, a few MB each for mid-sized models; with glibc's defaults
/// most of them are returned to the kernel when freed and page-faulted back in, zeroed, on the next
/// step. Keeping them makes the fused kernels and multi-threaded training steps faster (see
/// docs/performance.md). An operator's own `GLIBC_TUNABLES` malloc settings win. Must run before other threads start.
pub fn keep_tensor_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let operator_tuned = std::env::var("GLIBC_TUNABLES")
            .is_ok_and(|tunables| tunables.contains("glibc.malloc."));
        if operator_tuned {
            return;
        }
        let settings = [
            (libc::M_TRIM_THRESHOLD, ALLOCATOR_TRIM_THRESHOLD),
            (libc::M_MMAP_THRESHOLD, ALLOCATOR_MMAP_THRESHOLD),
        ];
        for (parameter, bytes) in settings {
            let value = libc::c_int::try_from(bytes).expect("the thresholds fit a C int");
            #[allow(unsafe_code)]
            // SAFETY: `mallopt` only changes allocator parameters; it is called from `main` before
            // any other thread exists. A rejected value leaves glibc's default, which is correct too.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_models_get_at_most_two_threads_and_others_every_core() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/models");
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(auto_threads(&root.join("tiny")) as usize, cores.min(2));
        assert_eq!(auto_threads(&root.join("bench-25m")), 0);
        assert_eq!(auto_threads(&root.join("no-such-model")), 0);
    }
}
