//! Root-only end-to-end test: two "nodes" (network namespaces on a LAN bridge that lives in its
//! own namespace), each running this crate for its own pod CIDR, with one pod each. Nothing here
//! touches the host namespace: the library only runs on threads that entered a node namespace,
//! and every `ip` command names a namespace this test created. Namespaces carry a per-run prefix
//! and are deleted by a Drop guard, also when an assertion fails.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use edge_net::overlay::{Change, Entry, RemoteNode};
use edge_net::{NodeConfig, NodeNetwork, RtNetlink};

struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn add(&mut self, name: String) -> String {
        sh("ip", &["netns", "add", &name]);
        self.names.push(name.clone());
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in self.names.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run(prog: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| panic!("running {prog}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn sh(prog: &str, args: &[&str]) -> String {
    let (ok, text) = run(prog, args);
    assert!(ok, "{prog} {args:?} failed: {text}");
    text
}

fn ping(from_ns: &str, to: Ipv4Addr) -> bool {
    // A couple of tries: the first packet may race the bridge port reaching forwarding state.
    (0..3).any(|_| run("ip", &["netns", "exec", from_ns, "ping", "-c1", "-W2", &to.to_string()]).0)
}

/// Runs `f` on a fresh thread that has entered namespace `ns`, with a tokio runtime.
fn on_node<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = PathBuf::from("/run/netns").join(ns);
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

struct Node {
    ns: String,
    pod_ns: String,
    cfg: NodeConfig,
}

impl Node {
    /// Sets the node network up (idempotently, as an agent restart would) and runs `f` on it.
    fn with<T: Send>(&self, f: impl AsyncFnOnce(&NodeNetwork<RtNetlink>) -> T + Send) -> T {
        let cfg = self.cfg.clone();
        on_node(&self.ns, move || {
            block_on(async move {
                let nl = RtNetlink::new().unwrap();
                let node = NodeNetwork::setup(nl, cfg).await.unwrap();
                f(&node).await
            })
        })
    }
}

struct Cluster {
    _guard: Namespaces,
    nodes: Vec<Node>,
    _data: tempfile::TempDir,
}

fn cluster(tag: &str) -> Cluster {
    let prefix = format!("edgenet-{}-{tag}", std::process::id());
    let data = tempfile::tempdir().unwrap();
    let mut g = Namespaces { names: vec![] };
    let lan = g.add(format!("{prefix}-lan"));
    sh("ip", &["-n", &lan, "link", "add", "br0", "type", "bridge"]);
    sh("ip", &["-n", &lan, "link", "set", "br0", "up"]);
    let mut nodes = vec![];
    for i in 1..=2u8 {
        let ns = g.add(format!("{prefix}-n{i}"));
        let pod_ns = g.add(format!("{prefix}-p{i}"));
        let port = format!("l{i}");
        sh("ip", &["-n", &lan, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        sh("ip", &["-n", &lan, "link", "set", &port, "master", "br0", "up"]);
        sh("ip", &["-n", &ns, "addr", "add", &format!("192.168.77.{i}/24"), "dev", "eth0"]);
        sh("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        sh("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        let cfg = NodeConfig {
            data_dir: data.path().join(format!("n{i}")),
            pod_cidr: format!("10.42.{i}.0/24").parse().unwrap(),
            node_ip: format!("192.168.77.{i}").parse().unwrap(),
            uplink: None,
        };
        nodes.push(Node { ns, pod_ns, cfg });
    }
    Cluster { _guard: g, nodes, _data: data }
}

fn remote(node: &Node, mac: [u8; 6]) -> RemoteNode {
    RemoteNode { pod_cidr: node.cfg.pod_cidr, node_ip: node.cfg.node_ip, vtep_mac: mac }
}

#[test]
fn two_nodes_pod_to_pod_over_vxlan() {
    if !is_root() {
        eprintln!("SKIPPED: two_nodes_pod_to_pod_over_vxlan needs root");
        return;
    }
    let c = cluster("vx");
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);

    // Wire one pod per node; learn each node's VTEP MAC as the annotations would carry it.
    let mut macs = vec![];
    let mut pod_ips = vec![];
    for n in &c.nodes {
        let pod_path = Path::new("/run/netns").join(&n.pod_ns);
        let (mac, att, took) = n.with(async |node| {
            let t = std::time::Instant::now();
            let att = node.add_pod(&format!("uid-{}", n.pod_ns), &pod_path).await.unwrap();
            (node.vtep_mac().unwrap(), att, t.elapsed())
        });
        eprintln!("wiring one pod's network took {took:?} (goal < 20 ms)");
        assert!(n.cfg.pod_cidr.contains(&att.address.addr()), "{att:?} outside {}", n.cfg.pod_cidr);
        assert_eq!(att.gateway, n.cfg.pod_cidr.hosts().next().unwrap());
        macs.push(mac);
        pod_ips.push(att.address.addr());
    }
    assert_ne!(pod_ips[0], pod_ips[1]);

    // Pod side as the kernel sees it: eth0 with the address and uplink MTU − 50, default route.
    let addr = sh("ip", &["-n", &n1.pod_ns, "-4", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains(&format!("{}/24", pod_ips[0])) && addr.contains("mtu 1450"), "{addr}");
    let route = sh("ip", &["-n", &n1.pod_ns, "route", "show", "default"]);
    assert!(route.contains("via 10.42.1.1 dev eth0"), "{route}");
    let hairpin = sh("ip", &["-n", &n1.ns, "-d", "link", "show", "master", "cni0"]);
    assert!(hairpin.contains("hairpin on"), "{hairpin}");
    let fwd = sh("ip", &["netns", "exec", &n1.ns, "cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(fwd.trim(), "1");
    let brnf = sh(
        "ip",
        &[
            "netns",
            "exec",
            &n1.ns,
            "sh",
            "-c",
            "cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo absent",
        ],
    );
    assert!(matches!(brnf.trim(), "1" | "absent"), "{brnf}");

    let peers = [remote(n2, macs[1]), remote(n1, macs[0])];
    for (i, n) in c.nodes.iter().enumerate() {
        let peer = peers[i];
        let changes = n.with(async |node| node.reconcile(&[peer]).await.unwrap());
        assert_eq!(changes, peer.entries().iter().map(|e| Change::Add(*e)).collect::<Vec<_>>());
    }
    let vx = sh("ip", &["-n", &n1.ns, "-d", "link", "show", "flannel.1"]);
    for want in ["vxlan id 1", "local 192.168.77.1", "dev eth0", "dstport 8472", "nolearning", "mtu 1450"] {
        assert!(vx.contains(want), "flannel.1 lacks {want:?}: {vx}");
    }

    assert!(ping(&n1.pod_ns, pod_ips[1]), "pod on node 1 cannot reach pod on node 2");
    assert!(ping(&n2.pod_ns, pod_ips[0]), "pod on node 2 cannot reach pod on node 1");

    // Idempotent: setup again (an agent restart) keeps flannel.1 and its MAC, and a resync of a
    // converged node changes nothing.
    let (mac_again, noop) =
        n1.with(async |node| (node.vtep_mac().unwrap(), node.reconcile(&[peers[0]]).await.unwrap()));
    assert_eq!(mac_again, macs[0]);
    assert_eq!(noop, vec![]);

    // Drift: a deleted route and FDB entry come back on the next resync.
    let mac2 = edge_net::overlay::format_mac(&macs[1]);
    sh("ip", &["-n", &n1.ns, "route", "del", "10.42.2.0/24"]);
    sh("bridge", &["-n", &n1.ns, "fdb", "del", &mac2, "dev", "flannel.1", "dst", "192.168.77.2", "self"]);
    assert!(!ping(&n1.pod_ns, pod_ips[1]));
    let repaired = n1.with(async |node| node.reconcile(&[peers[0]]).await.unwrap());
    let route_entry = Entry::Route { dst: "10.42.2.0/24".parse().unwrap(), gateway: "10.42.2.0".parse().unwrap() };
    let fdb_entry = Entry::Fdb { mac: macs[1], dst: "192.168.77.2".parse().unwrap() };
    assert_eq!(repaired, vec![Change::Add(fdb_entry), Change::Add(route_entry)]);
    let r = sh("ip", &["-n", &n1.ns, "route", "show", "10.42.2.0/24"]);
    assert!(r.contains("via 10.42.2.0 dev flannel.1") && r.contains("onlink"), "{r}");
    assert!(ping(&n1.pod_ns, pod_ips[1]));

    // A removed peer loses exactly its three entries.
    let removed = n1.with(async |node| node.reconcile(&[]).await.unwrap());
    assert_eq!(removed.len(), 3);
    assert!(removed.iter().all(|c| matches!(c, Change::Del(_))));
    assert_eq!(sh("ip", &["-n", &n1.ns, "route", "show", "dev", "flannel.1"]).trim(), "");
    assert_eq!(sh("ip", &["-n", &n1.ns, "neigh", "show", "dev", "flannel.1", "nud", "permanent"]).trim(), "");
    let fdb = sh("bridge", &["-n", &n1.ns, "fdb", "show", "dev", "flannel.1"]);
    assert!(!fdb.contains(&mac2), "{fdb}");
    assert!(!ping(&n1.pod_ns, pod_ips[1]));

    // Cleanup leaves only what the test made (lo, eth0) and no state on disk.
    for n in &c.nodes {
        n.with(async |node| node.cleanup().await.unwrap());
        let links = sh("ip", &["-n", &n.ns, "-o", "link", "show"]);
        let names: Vec<&str> =
            links.lines().filter_map(|l| l.split(": ").nth(1)).map(|s| s.split('@').next().unwrap_or(s)).collect();
        assert_eq!(names, vec!["lo", "eth0"], "{links}");
        assert!(!n.cfg.data_dir.join("net").exists());
        let pod_links = sh("ip", &["-n", &n.pod_ns, "-o", "link", "show"]);
        assert!(!pod_links.contains("eth0"), "{pod_links}");
    }
}

#[test]
fn pod_removal_and_restart_keep_addresses_unique() {
    if !is_root() {
        eprintln!("SKIPPED: pod_removal_and_restart_keep_addresses_unique needs root");
        return;
    }
    let c = cluster("ip");
    let n1 = &c.nodes[0];
    let pod_path = Path::new("/run/netns").join(&n1.pod_ns);
    let first = n1.with(async |node| node.add_pod("a", &pod_path).await.unwrap());
    // A fresh NodeNetwork over the same data dir stands for an agent restart.
    let (again, other) = n1.with(async |node| {
        let again = node.ipam().lookup("a").unwrap();
        let other = node.ipam().allocate("b").unwrap();
        (again, other)
    });
    assert_eq!(again, Some(first.address.addr()));
    assert_ne!(other, first.address.addr());
    n1.with(async |node| node.remove_pod("a").await.unwrap());
    let pod_links = sh("ip", &["-n", &n1.pod_ns, "-o", "link", "show"]);
    assert!(!pod_links.contains("eth0"), "{pod_links}");
    let host_links = sh("ip", &["-n", &n1.ns, "-o", "link", "show"]);
    assert!(!host_links.contains(&first.host_ifname), "{host_links}");
    n1.with(async |node| node.cleanup().await.unwrap());
}
