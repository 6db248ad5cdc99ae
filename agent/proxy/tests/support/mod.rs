//! Network namespaces for root tests and the benchmark: named per run (`edp<pid>-<n>-<tag>`),
//! deleted on drop (also when a test panics), plus a small node/client/server topology.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edge_proxy::{Endpoint, ServicePort};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs a command, panicking with its stderr on failure.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when this process may create network namespaces.
pub fn privileged() -> bool {
    nix::unistd::geteuid().is_root() && Command::new("nft").arg("--version").output().is_ok()
}

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("edp{}-{n}-{tag}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `ip netns exec NAME args…`
    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Runs `f` on a thread that has entered this namespace (sockets it opens stay there).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).unwrap();
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// `nft -j list table inet T`, as the list under "nftables".
    pub fn nft_json(&self, table: &str) -> Vec<serde_json::Value> {
        let out = self.exec(&["nft", "-j", "list", "table", "inet", table]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["nftables"].as_array().unwrap().clone()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// client (10.0.1.2) — node (10.0.1.1 | 10.42.0.1) — server (10.42.0.5 and 10.42.0.6,
/// answering on :8080 with the address it was reached at). The proxy's rules go in `node`.
pub struct Topology {
    pub node: Netns,
    pub client: Netns,
    pub server: Netns,
    listener: Child,
}

pub const SERVER_IPS: [&str; 2] = ["10.42.0.5", "10.42.0.6"];

const LISTENER: &str = r#"
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(512)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try: c.sendall(c.getsockname()[0].encode())
    finally: c.close()
"#;

impl Topology {
    pub fn new() -> Topology {
        let node = Netns::new("node");
        let client = Netns::new("cli");
        let server = Netns::new("srv");
        node.exec(&["ip", "link", "add", "nc", "type", "veth", "peer", "name", "c0", "netns", &client.name]);
        node.exec(&["ip", "link", "add", "ns", "type", "veth", "peer", "name", "s0", "netns", &server.name]);
        node.exec(&["ip", "addr", "add", "10.0.1.1/24", "dev", "nc"]);
        node.exec(&["ip", "addr", "add", "10.42.0.1/24", "dev", "ns"]);
        node.exec(&["ip", "link", "set", "nc", "up"]);
        node.exec(&["ip", "link", "set", "ns", "up"]);
        node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // Like a real node, a default route: unknown destinations reach the forward hook
        // (where services without endpoints are rejected) instead of "network unreachable".
        node.exec(&["ip", "route", "add", "default", "via", "10.42.0.6"]);
        client.exec(&["ip", "addr", "add", "10.0.1.2/24", "dev", "c0"]);
        client.exec(&["ip", "link", "set", "c0", "up"]);
        client.exec(&["ip", "route", "add", "default", "via", "10.0.1.1"]);
        for ip in SERVER_IPS {
            server.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "s0"]);
        }
        server.exec(&["ip", "link", "set", "s0", "up"]);
        server.exec(&["ip", "route", "add", "default", "via", "10.42.0.1"]);
        let mut listener = Command::new("ip")
            .args(["netns", "exec", &server.name, "python3", "-u", "-c", LISTENER])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for "ready" so that the first connect does not race the bind.
        let mut ready = [0u8; 5];
        std::io::Read::read_exact(listener.stdout.as_mut().unwrap(), &mut ready).unwrap();
        Topology { node, client, server, listener }
    }

    /// Connects from the client; `Ok(answer)` or the connect error, and how long connect took.
    pub fn connect(&self, to: SocketAddr) -> (std::io::Result<String>, Duration) {
        self.client.enter(|| {
            let started = Instant::now();
            let r = TcpStream::connect_timeout(&to, Duration::from_secs(3));
            let took = started.elapsed();
            let r = r.and_then(|mut s| {
                let mut out = String::new();
                std::io::Read::read_to_string(&mut s, &mut out)?;
                Ok(out)
            });
            (r, took)
        })
    }

    /// Connect latencies only, `n` times, from one client thread.
    pub fn connect_latencies(&self, to: SocketAddr, n: usize) -> Vec<Duration> {
        self.client.enter(|| {
            (0..n)
                .map(|_| {
                    let started = Instant::now();
                    let s = TcpStream::connect_timeout(&to, Duration::from_secs(3)).unwrap();
                    let took = started.elapsed();
                    drop(s);
                    took
                })
                .collect()
        })
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Ours: the `ip netns exec` child; the python it execs is the same process.
        let _ = self.listener.kill();
        let _ = self.listener.wait();
    }
}

pub fn endpoint(ip: &str, port: u16) -> Endpoint {
    Endpoint { ip: ip.parse().unwrap(), port, ready: true, serving: true, terminating: false, node_name: None }
}

pub fn service(name: &str, ip: &str, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: "http".into(),
        cluster_ips: vec![ip.parse().unwrap()],
        port: 80,
        endpoints,
        ..ServicePort::default()
    }
}

/// `n` services `s0..` on 10.43.x.y with three endpoints each (addresses that never answer).
pub fn many_services(n: u32) -> Vec<ServicePort> {
    (0..n)
        .map(|i| {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a2b_1000 + i));
            let eps = (0..3u32)
                .map(|e| endpoint(&std::net::Ipv4Addr::from(0x0a2a_1000 + i * 4 + e).to_string(), 8080))
                .collect();
            service(&format!("s{i}"), &ip.to_string(), eps)
        })
        .collect()
}
