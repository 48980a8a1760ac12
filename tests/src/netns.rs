//! A testbed of real NATs: Linux network namespaces joined by veth pairs, a bridge for the
//! "public" segment (198.18.0.0/24, an address block reserved for testing and used only inside
//! the namespaces) and, per home network, a router namespace that forwards, masquerades and drops
//! unsolicited packets from outside with iptables. The binary under test runs inside the namespaces as it would on a host.
//!
//! Needs root, `ip` and `iptables`; [`Testbed::unavailable`] says why it cannot run otherwise.
//! Every namespace is deleted when the [`Testbed`] drops, and namespaces left by a test process
//! that was killed are deleted by the next one.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

/// Prefix of every namespace a testbed creates; followed by the creating process's id.
const PREFIX: &str = "swnat";

/// How a home router translates addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// Plain `MASQUERADE`: an inside address and port keep one public port whatever the
    /// destination (endpoint-independent mapping), the kind hole punching gets through.
    EndpointIndependent,
    /// `MASQUERADE --random-fully`: a new random public port per connection, as a symmetric NAT
    /// does; hole punching cannot predict it.
    Symmetric,
}

/// A machine in the testbed: the namespace it runs in and its address.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name.
    pub namespace: String,
    /// Its address: public for a public host, private (10.0.x.2) for a host at home.
    pub address: String,
    /// For a host at home: its router's namespace and public address.
    pub router: Option<(String, String)>,
}

/// The namespaces of one test, deleted on drop.
pub struct Testbed {
    prefix: String,
    namespaces: Vec<String>,
    public: String,
}

/// Runs `ip` or `iptables` and says what failed.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `program args...` run inside namespace `ns`.
fn run_in(ns: &str, program: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

fn found(program: &str) -> bool {
    Command::new(program)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Testbed {
    /// Why a testbed cannot be built on this machine, if it cannot.
    pub fn unavailable() -> Option<String> {
        for tool in ["ip", "iptables"] {
            if !found(tool) {
                return Some(format!(
                    "`{tool}` is not installed (Debian: apt-get install iproute2 iptables)"
                ));
            }
        }
        let probe = format!("{PREFIX}{}-probe", std::process::id());
        if let Err(why) = run("ip", &["netns", "add", &probe]) {
            return Some(format!(
                "cannot create a network namespace (it takes root): {why}"
            ));
        }
        let nat = run_in(
            &probe,
            "iptables",
            &["-t", "nat", "-A", "POSTROUTING", "-j", "MASQUERADE"],
        );
        let _ = run("ip", &["netns", "del", &probe]);
        nat.err()
            .map(|why| format!("iptables cannot add a NAT rule in a namespace: {why}"))
    }

    /// An empty testbed with its public segment (a bridge in a namespace of its own), after
    /// deleting what earlier test processes that no longer run left behind.
    pub fn new() -> Result<Self, String> {
        remove_abandoned();
        let mut testbed = Testbed {
            prefix: format!("{PREFIX}{}", std::process::id()),
            namespaces: Vec::new(),
            public: String::new(),
        };
        testbed.public = testbed.add_namespace("pub")?;
        let public = testbed.public.clone();
        run_in(&public, "ip", &["link", "add", "br0", "type", "bridge"])?;
        run_in(&public, "ip", &["link", "set", "br0", "up"])?;
        Ok(testbed)
    }

    fn add_namespace(&mut self, name: &str) -> Result<String, String> {
        let ns = format!("{}-{name}", self.prefix);
        run("ip", &["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        run_in(&ns, "ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A veth pair from `ns`'s `eth` (given `address`) to a port of the public bridge.
    fn plug_into_public(&self, ns: &str, eth: &str, address: &str) -> Result<(), String> {
        let port = format!("p{}", self.namespaces.len());
        run(
            "ip",
            &[
                "-n",
                ns,
                "link",
                "add",
                eth,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.public,
            ],
        )?;
        run_in(&self.public, "ip", &["link", "set", &port, "master", "br0"])?;
        run_in(&self.public, "ip", &["link", "set", &port, "up"])?;
        run_in(
            ns,
            "ip",
            &["addr", "add", &format!("{address}/24"), "dev", eth],
        )?;
        run_in(ns, "ip", &["link", "set", eth, "up"])
    }

    /// A host on the public segment at 198.18.0.`octet`.
    pub fn public_host(&mut self, name: &str, octet: u8) -> Result<Host, String> {
        let ns = self.add_namespace(name)?;
        let address = format!("198.18.0.{octet}");
        self.plug_into_public(&ns, "eth0", &address)?;
        Ok(Host {
            namespace: ns,
            address,
            router: None,
        })
    }

    /// A host at home in 10.0.`index`.0/24 behind a router whose public address is
    /// 198.18.0.(100 + `index`) and which translates with `nat`.
    pub fn home(&mut self, name: &str, index: u8, nat: Nat) -> Result<Host, String> {
        let router = self.add_namespace(&format!("{name}-gw"))?;
        let router_address = format!("198.18.0.{}", 100 + u16::from(index));
        self.plug_into_public(&router, "wan", &router_address)?;
        let host = self.add_namespace(name)?;
        let gateway = format!("10.0.{index}.1");
        let address = format!("10.0.{index}.2");
        run(
            "ip",
            &[
                "-n", &router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0",
                "netns", &host,
            ],
        )?;
        run_in(
            &router,
            "ip",
            &["addr", "add", &format!("{gateway}/24"), "dev", "lan"],
        )?;
        run_in(&router, "ip", &["link", "set", "lan", "up"])?;
        run_in(
            &host,
            "ip",
            &["addr", "add", &format!("{address}/24"), "dev", "eth0"],
        )?;
        run_in(&host, "ip", &["link", "set", "eth0", "up"])?;
        run_in(&host, "ip", &["route", "add", "default", "via", &gateway])?;
        run_in(&router, "sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"])?;
        let mut masquerade = vec!["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j"];
        masquerade.push("MASQUERADE");
        if nat == Nat::Symmetric {
            masquerade.push("--random-fully");
        }
        run_in(&router, "iptables", &masquerade)?;
        // Like a home router's firewall, unsolicited packets from outside are dropped, not
        // answered with a reset: a hole-punching SYN that arrives before the local one left
        // is then retransmitted instead of ending the attempt.
        run_in(
            &router,
            "iptables",
            &[
                "-A",
                "INPUT",
                "-i",
                "wan",
                "-m",
                "conntrack",
                "--ctstate",
                "NEW,INVALID",
                "-j",
                "DROP",
            ],
        )?;
        Ok(Host {
            namespace: host,
            address,
            router: Some((router, router_address)),
        })
    }

    /// Takes a home's link to the public segment down (`up` false) or back up.
    pub fn set_home_link(&self, home: &Host, up: bool) -> Result<(), String> {
        let (router, _) = home
            .router
            .as_ref()
            .ok_or_else(|| format!("{} is not behind a router", home.namespace))?;
        run_in(
            router,
            "ip",
            &["link", "set", "wan", if up { "up" } else { "down" }],
        )
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends, which deletes their peers too.
        for ns in self.namespaces.iter().rev() {
            if let Err(why) = run("ip", &["netns", "del", ns]) {
                eprintln!("cannot delete namespace {ns}: {why}");
            }
        }
    }
}

/// Deletes the namespaces of testbeds whose process no longer runs (a test killed mid-way).
fn remove_abandoned() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}

/// `command` run inside `host`'s namespace, with the same arguments, environment and working
/// directory (through `ip netns exec`, which executes the program in place, so the child process
/// is the program itself).
pub fn in_namespace(host: &Host, command: &Command) -> Command {
    let mut ip = Command::new("ip");
    ip.args(["netns", "exec", &host.namespace]);
    crate::run_through(ip, command)
}

/// The body of `GET path` from `addr` as seen from inside `host`'s namespace: a thread enters the
/// namespace (setns affects only the calling thread) and makes the request there.
pub fn http_get_in(host: &Host, addr: SocketAddr, path: &str) -> Result<String, String> {
    let ns_path = format!("/run/netns/{}", host.namespace);
    let path = path.to_owned();
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let ns = std::fs::File::open(&ns_path).map_err(|e| format!("{ns_path}: {e}"))?;
        #[allow(unsafe_code)]
        // SAFETY: the descriptor is a valid open namespace file for the duration of the call, and
        // the namespace change is confined to this thread, which ends after the request.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "cannot enter {ns_path}: {}",
                std::io::Error::last_os_error()
            ));
        }
        crate::http_get(addr, &path)
    })
    .join()
    .map_err(|_| "the request thread panicked".to_owned())?
}

/// `/api/status` of the node in `host` whose API listens on `addr`, when it answers.
pub fn status_in(host: &Host, addr: SocketAddr) -> Option<serde_json::Value> {
    serde_json::from_str(&http_get_in(host, addr, "/api/status").ok()?).ok()
}
