//! Stopping on a signal: long-running subcommands finish the work in progress instead of dying
//! mid-round.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::runtime::Runtime;

/// Sets `stop` on SIGINT or SIGTERM, so the work in progress can finish and be saved.
pub fn stop_on_signal(runtime: &Runtime, stop: Arc<AtomicBool>) {
    runtime.spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => {}
            _ = terminate => {}
        }
        tracing::info!("signal received: finishing the current round, then stopping");
        stop.store(true, Ordering::SeqCst);
    });
}
