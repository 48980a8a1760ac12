use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::status::{NodeStatus, StatusBoard};

async fn start() -> (HttpServer, Arc<StatusBoard>) {
    start_limited(Limits::default()).await
}

async fn start_limited(limits: Limits) -> (HttpServer, Arc<StatusBoard>) {
    let board = Arc::new(StatusBoard::new(NodeStatus {
        peer_id: "12D3KooWTest".into(),
        network: "lab".into(),
        role: "learner".into(),
        ..NodeStatus::default()
    }));
    board.update(|s| {
        s.round = 7;
        s.bundles_published = 5;
        s.validation.insert("accept".into(), 9);
        s.validation.insert("reject.bad_signature".into(), 2);
    });
    let mut registry = Registry::default();
    register_status_metrics(&mut registry, board.clone());
    let server = HttpServer::start_with(
        "127.0.0.1:0".parse().unwrap(),
        board.clone(),
        Arc::new(registry),
        limits,
    )
    .await
    .unwrap();
    (server, board)
}

/// Sends raw bytes and reads the whole response (the server closes after `Connection: close`).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response))
        .await
        .expect("the server answers")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let code = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        code,
        if chunked {
            unchunk(body)
        } else {
            body.to_owned()
        },
    )
}

fn unchunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

#[tokio::test]
async fn serves_status_history_dashboard_and_404() {
    let (server, board) = start().await;
    board.push_history(serde_json::json!({"round": 1, "reward_local": 0.25}));
    board.push_history(serde_json::json!({"round": 2, "reward_local": 0.5}));
    let addr = server.local_addr();

    let (code, body) = get(addr, "/api/status").await;
    assert_eq!(code, 200);
    let status: NodeStatus = serde_json::from_str(&body).unwrap();
    assert_eq!((status.peer_id.as_str(), status.round), ("12D3KooWTest", 7));

    let (code, body) = get(addr, "/api/history?limit=1").await;
    assert_eq!(code, 200);
    let history: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        history,
        vec![serde_json::json!({"round": 2, "reward_local": 0.5})]
    );

    let (code, body) = get(addr, "/").await;
    assert_eq!(code, 200);
    assert!(body.contains("<svg") || body.contains("svgChart"));
    assert!(
        !body.contains("http://") && !body.contains("https://"),
        "the dashboard must not load anything remote"
    );

    let (code, body) = get(addr, "/admin").await;
    assert_eq!(code, 404);
    assert!(body.contains("/api/status"));
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_parse_and_follow_naming_conventions() {
    let (server, _board) = start().await;
    let (code, body) = get(server.local_addr(), "/metrics").await;
    assert_eq!(code, 200);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let value = |name: &str, reason: Option<&str>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && reason.is_none_or(|r| s.labels.get("reason") == Some(r)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(value("swarm_round", None), Some(7.0));
    assert_eq!(value("swarm_bundles_published_total", None), Some(5.0));
    assert_eq!(
        value("swarm_gossip_validation_total", Some("bad_signature")),
        Some(2.0)
    );
    assert!(value("swarm_uptime_seconds", None).is_some());
    for sample in &scrape.samples {
        assert!(sample.metric.starts_with("swarm_"), "{}", sample.metric);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_metrics_follow_the_node_metrics_in_one_exposition() {
    let (server, board) = start().await;
    let (network, _events) = swarm_net::spawn(
        swarm_net::NetConfig::loopback("metrics-test"),
        [9; 32],
        Arc::new(|_: &swarm_protocol::TaskRef, _: &str| Ok::<(), swarm_protocol::TaskCheck>(())),
    )
    .await
    .unwrap();
    board.attach_network_metrics(network.metrics_registry());
    let (code, body) = get(server.local_addr(), "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(body.matches("# EOF").count(), 1, "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    assert!(
        scrape.samples.iter().any(|s| s.metric == "swarm_round"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE libp2p_swarm_") && body.contains("# TYPE libp2p_gossipsub_"),
        "{body}"
    );
    network.shutdown().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn hostile_requests_do_not_disturb_the_server() {
    let (server, _board) = start().await;
    let addr = server.local_addr();

    let post = raw(
        addr,
        b"POST /api/status HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = raw(addr, huge.as_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // A client that never finishes its headers holds no resources past the header deadline, and others
    // are served meanwhile.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (code, _) = get(addr, "/api/status").await;
    assert_eq!(code, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 512];
    loop {
        assert!(
            Instant::now() < deadline,
            "slow client was never disconnected"
        );
        match tokio::time::timeout(Duration::from_millis(500), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => break, // a 408 answer also ends the connection
            Err(_) => continue,
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn client_reads_status_and_reports_unreachable_nodes() {
    let (server, _board) = start().await;
    let status = get_json(server.local_addr(), "/api/status", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status["round"], 7);
    let missing = get_json(server.local_addr(), "/nope", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("404"), "{missing}");
    let addr = server.local_addr();
    server.shutdown().await;
    let err = get_json(addr, "/api/status", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("is the node running"),
        "{err:#}"
    );
}

#[tokio::test]
async fn past_the_connection_cap_clients_are_told_to_retry() {
    let limits = Limits {
        connections: 4,
        header_read_timeout: Duration::from_secs(600),
    };
    let (server, _board) = start_limited(limits).await;
    let addr = server.local_addr();
    let mut idle = Vec::new();
    for _ in 0..limits.connections {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // The accept loop takes connections in order, so the next one finds every slot held.
    let busy = raw(
        addr,
        b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(busy.contains("Retry-After: 1"), "{busy}");

    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = get(addr, "/api/status").await;
        if code == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "closed connections never gave their slots back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn status_and_metrics_answer_beside_two_hundred_idle_connections() {
    let (server, _board) = start().await;
    let addr = server.local_addr();
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    for path in ["/api/status", "/metrics"] {
        let (code, _) = get(addr, path).await;
        assert_eq!(code, 200, "{path}");
    }
    drop(idle);
    server.shutdown().await;
}
