//! Process-wide settings of the tensor backend.

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
