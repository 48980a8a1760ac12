//! Stopping on a signal: long-running subcommands finish the work in progress instead of dying
//! mid-round. A second signal exits at once; every write to the data directory is atomic, so that
//! loses only the unfinished round.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::runtime::Runtime;

/// Exit status after a second signal: 128 + SIGINT, as shells report an interrupted command.
const INTERRUPTED_EXIT_CODE: i32 = 130;

/// Sets `stop` on the first SIGINT or SIGTERM, so the work in progress can finish and be saved;
/// exits the process on the second.
pub fn stop_on_signal(runtime: &Runtime, stop: Arc<AtomicBool>) {
    runtime.spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        for received in 0.. {
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = terminated => {}
            }
            if received == 0 {
                tracing::info!(
                    "signal received: finishing the current round and saving a checkpoint \
                     (a second signal stops at once)"
                );
                stop.store(true, Ordering::SeqCst);
            } else {
                eprintln!("second signal: stopping now; the unfinished round is not saved");
                std::process::exit(INTERRUPTED_EXIT_CODE);
            }
        }
    });
}
