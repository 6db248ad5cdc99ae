//! `cargo test -p edge-agent --test bench_net -- --ignored --nocapture` (root): pod-to-pod TCP
//! throughput and round-trip time across the VXLAN overlay (two nodes of the test harness) beside the
//! same over a plain veth pair between two namespaces, measured in one run; and the time to wire one
//! pod's network (netns + veth + address) with edge-net.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BYTES: usize = 512 << 20;
const ROUND_TRIPS: usize = 2000;

fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Throughput (MB/s) and mean RTT (µs) from a client in `client_ns` to a server in `server_ns`.
fn measure(server_ns: &Path, server_ip: &str, client_ns: &Path) -> (f64, f64) {
    let listener = edge_net::rtnl::with_netns(server_ns, || TcpListener::bind((server_ip, 5001))).unwrap().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        while got < BYTES {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            got += n;
        }
        let mut one = [0u8; 1];
        for _ in 0..ROUND_TRIPS {
            s.read_exact(&mut one).unwrap();
            s.write_all(&one).unwrap();
        }
    });
    let mut c = edge_net::rtnl::with_netns(client_ns, || TcpStream::connect((server_ip, 5001))).unwrap().unwrap();
    c.set_nodelay(true).unwrap();
    let chunk = vec![7u8; 1 << 16];
    let started = Instant::now();
    let mut sent = 0;
    while sent < BYTES {
        c.write_all(&chunk).unwrap();
        sent += chunk.len();
    }
    let mut one = [1u8; 1];
    // The first echo also waits for the receiver to drain the bulk transfer.
    c.write_all(&one).unwrap();
    c.read_exact(&mut one).unwrap();
    let mbps = BYTES as f64 / started.elapsed().as_secs_f64() / 1e6;
    let t = Instant::now();
    for _ in 1..ROUND_TRIPS {
        c.write_all(&one).unwrap();
        c.read_exact(&mut one).unwrap();
    }
    let rtt_us = t.elapsed().as_secs_f64() * 1e6 / (ROUND_TRIPS - 1) as f64;
    server.join().unwrap();
    (mbps, rtt_us)
}

struct Veth(String);
impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &format!("{}a", self.0)]).status();
        let _ = Command::new("ip").args(["netns", "del", &format!("{}b", self.0)]).status();
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn overlay_vs_veth_and_pod_wiring() {
    let Some(c) = support::Cluster::start(2) else { return };
    let pod = |name: &str, node: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: nginx:1.7.9\n"
        )
    };
    c.apply(&pod("bench-a", &c.nodes[0].name));
    c.apply(&pod("bench-b", &c.nodes[1].name));
    c.wait_for(&["pod", "bench-a"], "{.status.phase}", "Running", Duration::from_secs(60));
    c.wait_for(&["pod", "bench-b"], "{.status.phase}", "Running", Duration::from_secs(60));
    let get = |name: &str, jp: &str| c.ok(&["get", "pod", name, "-o", &format!("jsonpath={jp}")]);
    let (uid_a, ip_a, uid_b) =
        (get("bench-a", "{.metadata.uid}"), get("bench-a", "{.status.podIP}"), get("bench-b", "{.metadata.uid}"));
    let ns_a: PathBuf = c.nodes[0].agent_dir(true).join("netns").join(&uid_a);
    let ns_b: PathBuf = c.nodes[1].agent_dir(false).join("netns").join(&uid_b);
    let (overlay_mbps, overlay_rtt) = measure(&ns_a, &ip_a, &ns_b);

    // Baseline: a plain veth pair between two namespaces on the same machine.
    let v = Veth(format!("eb{}", std::process::id() % 100_000));
    let (a, b) = (format!("{}a", v.0), format!("{}b", v.0));
    sh(&format!("ip netns add {a} && ip netns add {b} && ip -n {a} link add eth0 type veth peer name eth0 netns {b}"));
    sh(&format!("ip -n {a} addr add 10.251.0.1/24 dev eth0 && ip -n {a} link set eth0 up && ip -n {a} link set lo up"));
    sh(&format!("ip -n {b} addr add 10.251.0.2/24 dev eth0 && ip -n {b} link set eth0 up && ip -n {b} link set lo up"));
    let (veth_mbps, veth_rtt) =
        measure(Path::new(&format!("/run/netns/{a}")), "10.251.0.1", Path::new(&format!("/run/netns/{b}")));

    // Wiring one pod: a fresh netns plus edge-net's add_pod, on a node network inside its own namespace.
    sh(&format!(
        "ip -n {a} link add up0 type veth peer name up1 && ip -n {a} link set up1 up && ip -n {a} addr add 10.252.0.1/24 dev up0 && ip -n {a} link set up0 up"
    ));
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let netns_a = PathBuf::from(format!("/run/netns/{a}"));
    let mut wire = Vec::new();
    rt.block_on(async {
        let nl = edge_net::RtNetlink::in_netns(&netns_a).unwrap();
        let cfg = edge_net::NodeConfig {
            data_dir: dir.path().to_path_buf(),
            pod_cidr: "10.60.1.0/24".parse().unwrap(),
            node_ip: "10.252.0.1".parse().unwrap(),
            uplink: Some("up0".into()),
        };
        let net = edge_net::NodeNetwork::setup(nl, cfg).await.unwrap();
        for i in 0..20 {
            let ns = dir.path().join(format!("pod{i}"));
            let t = Instant::now();
            edge_net::netns::create(&ns).unwrap();
            net.add_pod(&format!("pod{i}"), &ns).await.unwrap();
            wire.push(t.elapsed());
        }
        for i in 0..20 {
            net.remove_pod(&format!("pod{i}")).await.unwrap();
            edge_net::netns::remove(&dir.path().join(format!("pod{i}"))).unwrap();
        }
    });
    wire.sort();
    println!("pod network benchmark ({} build of the agent)", support::profile());
    println!("TCP throughput pod→pod across VXLAN: {overlay_mbps:.0} MB/s; plain veth pair: {veth_mbps:.0} MB/s ({:.0} %, goal ≥ 90 %)", overlay_mbps / veth_mbps * 100.0);
    println!("TCP round trip pod→pod across VXLAN: {overlay_rtt:.1} µs; plain veth pair: {veth_rtt:.1} µs");
    println!(
        "wiring one pod (netns + veth + IPAM): p50 {:.1} ms, max {:.1} ms over 20 (goal < 20 ms)",
        wire[10].as_secs_f64() * 1e3,
        wire[19].as_secs_f64() * 1e3
    );
}
