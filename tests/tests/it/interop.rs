//! A client written from PROTOCOL.md alone (`tests/interop/swarm_client.py`, Python, sharing no code
//! with the Rust crates) against live nodes: it decodes and verifies the envelopes a learner
//! publishes, signs a bundle that a bootstrap node accepts, and sends the front-running pair (a copy
//! with a corrupted signature first), which must not suppress the genuine bundle. The gossip side is
//! a bare rust-libp2p peer configured from PROTOCOL.md section 10, not `swarm-net`.
//!
//! The client needs the PyPI packages `blake3` and `PyNaCl`; the test installs them into a virtual
//! environment under `target/tmp/` and skips, saying why, where Python or the registry is missing.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use swarm_tests::{
    KillOnDrop, free_local_addr, gossip_peer, http_get, lines, poll, repo_root, small_node,
    spec_message_id, start_bootstrap,
};

const NETWORK: &str = "interop";
const WAIT: Duration = Duration::from_secs(180);

/// A Python with the client's packages, installed on first use.
fn python() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-venv");
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import blake3, nacl.signing"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .map_err(|e| format!("no python3 ({e})"))?;
    if !created.status.success() {
        return Err(format!(
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&created.stderr).trim()
        ));
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--timeout", "30", "blake3", "pynacl"])
        .output()
        .map_err(|e| format!("cannot run pip ({e})"))?;
    if !installed.status.success() || !ready(&python) {
        return Err(format!(
            "cannot install blake3 and pynacl from PyPI: {}",
            String::from_utf8_lossy(&installed.stderr).trim()
        ));
    }
    Ok(python)
}

fn client_script() -> PathBuf {
    repo_root().join("tests/interop/swarm_client.py")
}

/// The client's `serve` loop: one JSON request, one JSON answer.
struct Client {
    process: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    fn start(python: &Path) -> Self {
        let mut process = Command::new(python)
            .arg(client_script())
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = process.stdin.take().unwrap();
        let stdout = BufReader::new(process.stdout.take().unwrap());
        Self {
            process,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, request: &Value) -> Value {
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("client answered {line:?}: {e}"))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A counter of the bootstrap node's `swarm_gossip_validation_total`.
fn outcome_count(api: SocketAddr, outcome: &str, reason: &str) -> Option<u64> {
    let metrics = http_get(api, "/metrics").ok()?;
    let prefix =
        format!("swarm_gossip_validation_total{{outcome=\"{outcome}\",reason=\"{reason}\"}} ");
    Some(
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64,
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn a_client_written_from_the_spec_interoperates_with_live_nodes() {
    let python = match python() {
        Ok(python) => python,
        Err(why) => {
            println!("skipped: the Python interoperability client cannot run here: {why}");
            return;
        }
    };
    let selftest = Command::new(&python)
        .arg(client_script())
        .arg("selftest")
        .output()
        .unwrap();
    assert!(
        selftest.status.success(),
        "the client disagrees with PROTOCOL.md's test vector: {}{}",
        String::from_utf8_lossy(&selftest.stdout),
        String::from_utf8_lossy(&selftest.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let api = free_local_addr();
    let mut operator = small_node(&dir.path().join("boot"));
    operator.args(["--http", &api.to_string()]);
    let (_boot, _boot_lines, address) = start_bootstrap(operator, NETWORK);
    let mut learner = KillOnDrop(
        small_node(&dir.path().join("learner"))
            .env("SWARM_LEARNER_FORMAT_REWARD", "0.4")
            .args(["--http", "off", "join", "--network", NETWORK])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", &address])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _learner_lines = lines(&mut learner.0);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let topic = format!("/swarm/{NETWORK}/rollouts/2");
    let peer = gossip_peer(runtime.handle(), &topic, address.parse().unwrap());
    let mut client = Client::start(&python);

    // Live envelopes of the learner, relayed by the bootstrap node: each decodes and verifies.
    let deadline = Instant::now() + WAIT;
    let mut decoded = Vec::new();
    while decoded.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        let data = peer
            .received
            .recv_timeout(left)
            .expect("the learner's bundles reach the peer");
        let answer = client.ask(&json!({
            "op": "decode", "envelope": hex::encode(&data), "network": NETWORK,
        }));
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(answer["message_id"], hex::encode(spec_message_id(&data)));
        decoded.push(answer["bundle"].clone());
    }
    // No more traffic from the learner: the counts below are the client's alone.
    learner.signal("TERM");
    assert!(learner.0.wait().unwrap().success());
    // Bundles of the learner's still in flight reach the bootstrap's count a little later: the
    // baseline is the count once it has not moved for a second.
    let mut last_change: Option<(u64, Instant)> = None;
    let accepted = poll("the bootstrap's accept count to settle", WAIT, || {
        let now = outcome_count(api, "accept", "")?;
        match last_change {
            Some((count, since)) if count == now => {
                (since.elapsed() >= Duration::from_secs(1)).then_some(now)
            }
            _ => {
                last_change = Some((now, Instant::now()));
                None
            }
        }
    });
    let bad_signatures = outcome_count(api, "reject", "bad_signature").unwrap();

    // A bundle of the client's own (its own key, the learner's question), which the node accepts.
    let sign = |client: &mut Client, sequence: u64| {
        let mut bundle = decoded[0].clone();
        bundle["sequence"] = json!(sequence);
        bundle["created_at_ms"] = json!(now_ms());
        let answer = client.ask(&json!({
            "op": "sign", "seed": "42".repeat(32), "bundle": bundle,
        }));
        hex::decode(
            answer["envelope"]
                .as_str()
                .unwrap_or_else(|| panic!("{answer}")),
        )
        .unwrap()
    };
    let own = sign(&mut client, 1);
    runtime.block_on(peer.messages.send(own)).unwrap();
    poll("the client's bundle accepted", WAIT, || {
        (outcome_count(api, "accept", "")? == accepted + 1).then_some(())
    });

    // The front-running pair: a corrupted copy first, then the genuine envelope.
    let genuine = sign(&mut client, 2);
    let mut forged = genuine.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let refused = client.ask(&json!({
        "op": "decode", "envelope": hex::encode(&forged), "network": NETWORK,
    }));
    assert_eq!(refused["error"], "bad_signature", "{refused}");
    for message in [forged, genuine] {
        runtime.block_on(peer.messages.send(message)).unwrap();
    }
    poll(
        "the genuine bundle accepted after its forged copy",
        WAIT,
        || {
            let rejected = outcome_count(api, "reject", "bad_signature")? == bad_signatures + 1;
            (rejected && outcome_count(api, "accept", "")? == accepted + 2).then_some(())
        },
    );
    crate::summary(&format!(
        "interop: {} live envelopes decoded and verified by the Python client, its own bundle \
         accepted, the genuine bundle accepted after a forged copy",
        decoded.len()
    ));
}
