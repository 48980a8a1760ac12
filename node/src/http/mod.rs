//! The operator's HTTP surface: `/api/status`, `/api/history`, `/metrics` (OpenMetrics text) and `/`, a
//! self-contained live dashboard. Everything served is read-only.
//!
//! The accept loop is written out (instead of a one-line `serve`) to bound what a hostile client can
//! hold: a cap on concurrent connections (past it, a short `503` with `Retry-After`), a deadline for
//! request headers that also closes idle keep-alive connections, a small header buffer and a
//! lifetime limit per connection.

mod client;
mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub use client::get_json;
pub use metrics::register_status_metrics;

use crate::status::StatusBoard;

/// Idle connections cost a task and a small buffer, so the cap sits well above what an operator's
/// tools hold open: a few hundred idle ones still leave room for `/api/status` and `/metrics`.
const MAX_CONNECTIONS: usize = 256;
/// Connections being told `503` at once; past this, further ones are closed unanswered.
const MAX_REJECTIONS_IN_FLIGHT: usize = 64;
const REJECTION_TIMEOUT: Duration = Duration::from_secs(2);
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: text/plain\r\nContent-Length: 46\r\nConnection: close\r\n\r\n\
too many connections to this node; retry soon\n";
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Also bounds request header size: hyper answers 431 past it. (The header deadline runs from the
/// moment a connection waits for a request, so it is also the keep-alive idle timeout.)
const MAX_BUFFER_BYTES: usize = 16 * 1024;
const DASHBOARD: &str = include_str!("dashboard.html");

#[derive(Clone)]
struct AppState {
    board: Arc<StatusBoard>,
    registry: Arc<Registry>,
}

/// A running HTTP server; dropping the handle leaves it running until [`HttpServer::shutdown`].
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Binds `addr` and starts serving on the current tokio runtime.
    pub async fn start(
        addr: SocketAddr,
        board: Arc<StatusBoard>,
        registry: Arc<Registry>,
    ) -> Result<Self> {
        Self::start_with(addr, board, registry, Limits::default()).await
    }

    async fn start_with(
        addr: SocketAddr,
        board: Arc<StatusBoard>,
        registry: Arc<Registry>,
        limits: Limits,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen for HTTP on {addr}; choose another address with --http ADDR or `--http off`")
        })?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let app = router(AppState { board, registry });
        let task = tokio::spawn(accept_loop(listener, app, limits, stopped));
        Ok(Self {
            local_addr,
            stop,
            task,
        })
    }

    /// The bound address (useful when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/api/status", get(status))
        .route("/api/history", get(history))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .with_state(state)
}

/// What one server lets its clients hold.
#[derive(Debug, Clone, Copy)]
struct Limits {
    connections: usize,
    header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// Tells a connection past the cap to come back later, then waits (briefly) for the client to
/// close: closing with its request unread would reset the connection and lose the answer.
async fn answer_busy(mut stream: tokio::net::TcpStream) {
    let _ = tokio::time::timeout(REJECTION_TIMEOUT, async {
        stream.write_all(BUSY_RESPONSE).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let rejections = Arc::new(Semaphore::new(MAX_REJECTIONS_IN_FLIGHT));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(%err, "HTTP accept failed; if this repeats, raise the open-file limit (ulimit -n)");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("HTTP connection limit reached; answering 503");
            if let Ok(rejection) = rejections.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    answer_busy(stream).await;
                    drop(rejection);
                });
            }
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(MAX_BUFFER_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

async fn status(State(state): State<AppState>) -> Json<crate::status::NodeStatus> {
    Json(state.board.snapshot())
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(
    State(state): State<AppState>,
    Query(query): Query<HistoryQuery>,
) -> Json<Vec<serde_json::Value>> {
    Json(state.board.history(query.limit.unwrap_or(usize::MAX)))
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    use prometheus_client::encoding::text::{encode_eof, encode_registry};
    let mut body = String::new();
    let encoded = encode_registry(&mut body, &state.registry)
        .and_then(|()| match state.board.network_metrics() {
            Some(network) => encode_registry(&mut body, network),
            None => Ok(()),
        })
        .and_then(|()| encode_eof(&mut body));
    match encoded {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed").into_response(),
    }
}

async fn not_found() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "error": "no such endpoint",
            "endpoints": ["/", "/api/status", "/api/history", "/metrics"],
        })),
    )
}

#[cfg(test)]
mod tests;
