//! The dashboard page in a real (headless) browser, against the node's HTTP server: charts must show the
//! data the API serves, and a node with no rounds yet must say so instead of drawing charts.

use crate::common;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use swarm_node::http::HttpServer;
use swarm_node::status::{NodeStatus, StatusBoard};

fn artifacts_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn dashboard_draws_charts_from_the_api_data() {
    let Some(browser) = common::chromium::find() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let board = Arc::new(StatusBoard::new(NodeStatus {
        peer_id: "12D3KooWDashboardTest".into(),
        network: "lab".into(),
        role: "learner".into(),
        ..NodeStatus::default()
    }));
    board.update(|s| {
        s.round = 20;
        s.validation.insert("reject.bad_signature".into(), 4);
    });
    let server = runtime
        .block_on(HttpServer::start(
            "127.0.0.1:0".parse().unwrap(),
            board.clone(),
            Arc::new(Registry::default()),
        ))
        .unwrap();
    let url = format!("http://{}/", server.local_addr());
    let profile = tempfile::tempdir().unwrap();

    // Before any round the page must say so rather than draw anything.
    let dom = common::chromium::dump_dom(&browser, profile.path(), &url);
    assert_eq!(
        common::chromium::body_attribute(&dom, "state").as_deref(),
        Some("empty"),
        "{dom}"
    );

    for round in 1..=20u64 {
        let r = round as f64;
        board.push_history(serde_json::json!({
            "round": round,
            "reward_local": 0.2 + r / 50.0,
            "reward_external": 0.1 + r / 40.0,
            "accuracy": { "basic_arithmetic": r / 25.0 },
            "peers": 3,
            "tokens_per_second": 400.0 + r,
        }));
    }
    let dom = common::chromium::dump_dom(&browser, profile.path(), &url);
    assert_eq!(
        common::chromium::body_attribute(&dom, "state").as_deref(),
        Some("data"),
        "{dom}"
    );
    let points: usize = common::chromium::body_attribute(&dom, "points")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        points,
        20 * 2 + 20 + 20 + 20,
        "reward (2 series), accuracy, peers, tokens/s"
    );
    assert!(dom.contains("reject.bad_signature"));
    assert!(dom.contains("class=\"series\""), "lines are drawn");
    let shot = artifacts_dir().join("dashboard.png");
    common::chromium::screenshot(&browser, profile.path(), &url, &shot);
    eprintln!("dashboard screenshot: {}", shot.display());

    runtime.block_on(server.shutdown());
}
