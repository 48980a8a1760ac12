//! Running `swarm-node` as separate OS processes, the way users and operators run it: the binary
//! of this workspace, started from the repository root with a data directory of the test's own and
//! small training settings, its output read line by line with deadlines.
//!
//! The binary is the one `cargo test --workspace` builds beside the test executables
//! (`target/<profile>/swarm-node`); `SWARM_NODE_BIN` points elsewhere.

mod gossip_peer;
pub mod netns;

pub use gossip_peer::{GossipPeer, gossip_peer, spec_message_id};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `swarm-node` binary under test.
pub fn node_binary() -> PathBuf {
    // Checked once per test process: the crash tests start the binary hundreds of times.
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(checked_node_binary).clone()
}

fn checked_node_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWARM_NODE_BIN") {
        return PathBuf::from(path);
    }
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let binary = profile_dir.join("swarm-node");
    let built = std::fs::metadata(&binary).and_then(|m| m.modified());
    let Ok(built) = built else {
        panic!(
            "{} does not exist: run these tests with `cargo test --workspace`, which builds it, \
             or build it first (`cargo build -p swarm-node`), or set SWARM_NODE_BIN",
            binary.display()
        );
    };
    // `cargo test -p swarm-tests` alone does not rebuild the binary: testing an old one would
    // report on code that is no longer there.
    if let Some((source, changed)) = newest_source()
        && changed > built
    {
        panic!(
            "{} is older than {}: rebuild it (`cargo build -p swarm-node`) or run `cargo test \
             --workspace`, which does",
            binary.display(),
            source.display()
        );
    }
    binary
}

/// The most recently modified source file of the crates the binary is built from.
fn newest_source() -> Option<(PathBuf, std::time::SystemTime)> {
    fn walk(dir: &Path, newest: &mut Option<(PathBuf, std::time::SystemTime)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(changed) = entry.metadata().and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(_, t)| changed > *t)
            {
                *newest = Some((path, changed));
            }
        }
    }
    let root = repo_root();
    let mut newest = None;
    for krate in ["protocol", "policy", "tasks", "learner", "net", "node"] {
        walk(&root.join(krate).join("src"), &mut newest);
    }
    newest
}

/// The repository root: the binary's default model and plans are found relative to it.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository root")
        .to_owned()
}

/// A `swarm-node` command run from the repository root with `data_dir` as its data directory, a
/// 3-step warm start and small rounds, and nothing inherited from the caller's `SWARM_*` or
/// `RUST_LOG` variables.
pub fn small_node(data_dir: &Path) -> Command {
    small_node_of(&node_binary(), data_dir)
}

/// [`small_node`] for a given binary (a package's own tests use the one cargo built for them).
pub fn small_node_of(binary: &Path, data_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("SWARM_")) {
        command.env_remove(name);
    }
    command
        .current_dir(repo_root())
        .env_remove("RUST_LOG")
        .env("SWARM_WARMUP_STEPS", "3")
        .env("SWARM_WARMUP_BATCH", "4")
        .env("SWARM_LEARNER_PROMPTS_PER_ROUND", "2")
        .env("SWARM_LEARNER_GROUP_SIZE", "4")
        .env("SWARM_LEARNER_MAX_NEW_TOKENS", "4")
        .arg("--data-dir")
        .arg(data_dir);
    command
}

/// `command` run with core dumps off (through `sh -c 'ulimit -c 0; exec ...'`, so the process is
/// still the command itself): the crash tests abort the node on purpose, many times, and a machine
/// that dumps cores into the working directory would fill its disk.
pub fn without_core_dumps(command: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.args(["-c", "ulimit -c 0; exec \"$0\" \"$@\""]);
    run_through(sh, command)
}

/// `command` run by `launcher` (a program that ends by executing what follows its own arguments):
/// the command's program and arguments are appended, and its environment and working directory
/// carried over.
pub fn run_through(mut launcher: Command, command: &Command) -> Command {
    launcher.arg(command.get_program()).args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => launcher.env(name, value),
            None => launcher.env_remove(name),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        launcher.current_dir(dir);
    }
    launcher
}

/// A child process that is killed when the test ends, whatever happens.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl KillOnDrop {
    /// Sends `signal` (a name such as `TERM`, `KILL`, `STOP`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.0.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "cannot send SIG{signal} to process {pid}");
    }
}

/// A node process: its stdout read line by line (continuously, so the pipe never fills) and its
/// stderr appended to a log file, which a restarted node on the same path continues.
pub struct Running {
    /// The process, killed when this drops.
    pub process: KillOnDrop,
    /// Its stdout lines.
    pub stdout: mpsc::Receiver<String>,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl Running {
    /// Spawns `command` with stdout piped and stderr appended to `log`.
    pub fn spawn(mut command: Command, log: PathBuf) -> Running {
        let stderr = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
        let stdout = lines(&mut child);
        Running {
            process: KillOnDrop(child),
            stdout,
            log,
        }
    }

    /// Sends SIGTERM and expects a clean exit (status 0) with no panic in the log.
    pub fn stop(mut self, name: &str) {
        self.process.signal("TERM");
        let status = self.process.0.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "{name} exited with {status}: {log}");
        assert!(!log.contains("panicked"), "{name} panicked: {log}");
    }
}

/// Lines of a child's stdout, read on a thread so the test can wait with a deadline.
pub fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits up to `timeout` for a line that `matches`, panicking with `what` otherwise.
pub fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    what: &str,
    timeout: Duration,
    matches: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if matches(&line) => return line,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("timed out waiting for {what}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the process exited before {what} (run it by hand to see its error)")
            }
        }
    }
}

/// The `round` of every line of a JSONL file, in file order (unreadable lines skipped).
pub fn rounds_in(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()?
                .get("round")?
                .as_u64()
        })
        .collect()
}

/// A loopback address free at the time of the call.
pub fn free_local_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("loopback is available")
}

/// The body of `GET path` from the HTTP API at `addr`, or why there is none (not listening yet,
/// not a 200).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    // HTTP/1.0: the answer is not chunked and ends when the server closes.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete answer from {addr}: {response:?}"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("{path} answered {head}"));
    }
    Ok(body.to_owned())
}

/// `/api/status` of the node whose API is at `addr`, when it answers.
pub fn status(addr: std::net::SocketAddr) -> Option<serde_json::Value> {
    serde_json::from_str(&http_get(addr, "/api/status").ok()?).ok()
}

/// Calls `probe` until it returns a value or `timeout` passes (then panics naming `what`).
pub fn poll<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `command` (a node command with its global options set) as a bootstrap node of `network`
/// on a loopback port; returns the process, its remaining stdout lines and the multiaddr (with
/// `/p2p/<peer id>`) it printed.
pub fn start_bootstrap(
    mut command: Command,
    network: &str,
) -> (KillOnDrop, mpsc::Receiver<String>, String) {
    let mut child = command
        .args(["bootstrap", "--network", network])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the bootstrap node starts");
    let stdout = lines(&mut child);
    let address = wait_for_line(
        &stdout,
        "the bootstrap address",
        Duration::from_secs(180),
        |l| l.starts_with("listening on ") && l.contains("/p2p/"),
    )
    .trim_start_matches("listening on ")
    .to_owned();
    (KillOnDrop(child), stdout, address)
}
