//! A minimal HTTP/1.1 client for `swarm-node status`: one GET to a node's own API, with deadlines, so
//! the command never hangs on an unresponsive node.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

/// Largest response body accepted; the status document is a few kilobytes.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Fetches `path` from the node API at `addr` and parses the body as JSON.
pub async fn get_json(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value> {
    tokio::time::timeout(timeout, get_json_inner(addr, path))
        .await
        .with_context(|| format!("the node API at {addr} did not answer within {timeout:?}"))?
}

async fn get_json_inner(addr: SocketAddr, path: &str) -> Result<serde_json::Value> {
    let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| {
        format!("cannot connect to the node API at {addr}; is the node running, and is --api the address from its `http.listen`?")
    })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|err| anyhow::anyhow!("reading the response from {addr}: {err}"))?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        bail!("{addr}{path} answered HTTP {status}");
    }
    serde_json::from_slice(&body).with_context(|| format!("{addr}{path} did not return JSON"))
}
