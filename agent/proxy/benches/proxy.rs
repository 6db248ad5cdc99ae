//! Service proxy benchmark (root): netlink full sync and delta against `nft -f` of the same
//! ruleset, and first-packet TCP connect latency through a ClusterIP with 10 and 1000
//! services installed. Run with `cargo bench -p edge-proxy`; prints one table.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use edge_proxy::{render_nft, Kernel, Proxier, ProxyConfig, ServicePort};
use support::*;

const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn cfg(table: &str) -> ProxyConfig {
    ProxyConfig {
        table: table.into(),
        node_name: "node-a".into(),
        node_ips: vec!["10.0.1.1".parse().unwrap()],
        cluster_cidr: "10.42.0.0/16".into(),
    }
}

/// `nft -f` of the rendered script, run inside `ns` (a child forked from a thread that
/// entered the namespace lives there too; no `ip netns exec` in the measurement).
fn nft_file(ns: &Netns, cfg: &ProxyConfig, services: &[ServicePort]) -> Duration {
    let path = std::env::temp_dir().join(format!("{}.nft", ns.name));
    std::fs::write(&path, render_nft(cfg, services)).unwrap();
    let took = ns.enter(|| {
        let started = Instant::now();
        let st = Command::new("nft").arg("-f").arg(&path).status().unwrap();
        assert!(st.success());
        started.elapsed()
    });
    let _ = std::fs::remove_file(&path);
    took
}

fn with_changed_endpoints(services: &[ServicePort], round: usize) -> Vec<ServicePort> {
    let mut v = services.to_vec();
    let ip = format!("10.42.250.{}", round % 200 + 1);
    v[500].endpoints[0] = endpoint(&ip, 8080);
    v
}

fn latency(topo: &Topology, table: &str, extra: u32) -> Duration {
    let mut p = Proxier::new(cfg(table), topo.node.enter(|| Kernel::new().unwrap()));
    let web = service("web", "10.43.0.10", SERVER_IPS.iter().map(|ip| endpoint(ip, 8080)).collect());
    let mut desired = many_services(extra);
    desired.push(web);
    p.sync(&desired).unwrap();
    let to = "10.43.0.10:80".parse().unwrap();
    topo.connect_latencies(to, 20); // warm up ARP and caches
    median(topo.connect_latencies(to, 200))
}

/// A kernel that accepts everything: what a sync costs in user space alone.
struct NoKernel;

impl edge_proxy::Netfilter for NoKernel {
    fn apply(&mut self, _: &edge_nft::Batch) -> Result<(), edge_nft::Error> {
        Ok(())
    }

    fn read(&mut self, _: &edge_nft::Table, _: &[String]) -> Result<Option<edge_proxy::TableState>, edge_nft::Error> {
        Ok(None)
    }
}

fn main() {
    if !privileged() {
        println!("SKIPPED: the proxy benchmark needs root and nft");
        return;
    }
    let services = many_services(1000);
    let ns = Netns::new("bench");
    let table = "edge-proxy-b";
    let c = cfg(table);

    let mut full_netlink = Vec::new();
    let mut messages = 0;
    for _ in 0..RUNS {
        let mut p = Proxier::new(c.clone(), ns.enter(|| Kernel::new().unwrap()));
        let started = Instant::now();
        messages = p.sync(&services).unwrap().messages;
        full_netlink.push(started.elapsed());
    }
    let full_nft: Vec<Duration> = (0..RUNS).map(|_| nft_file(&ns, &c, &services)).collect();

    let mut p = Proxier::new(c.clone(), ns.enter(|| Kernel::new().unwrap()));
    p.sync(&services).unwrap();
    let mut delta_netlink = Vec::new();
    let mut delta_messages = 0;
    for round in 0..RUNS * 4 {
        let changed = with_changed_endpoints(&services, round);
        let started = Instant::now();
        let stats = p.sync(&changed).unwrap();
        delta_netlink.push(started.elapsed());
        assert!(!stats.full);
        delta_messages = stats.messages;
    }
    let delta_nft: Vec<Duration> =
        (0..RUNS).map(|round| nft_file(&ns, &c, &with_changed_endpoints(&services, round))).collect();
    drop(ns);
    let mut fake = Proxier::new(c.clone(), NoKernel);
    fake.sync(&services).unwrap();
    let delta_user: Vec<Duration> = (0..RUNS * 4)
        .map(|round| {
            let changed = with_changed_endpoints(&services, round);
            let started = Instant::now();
            fake.sync(&changed).unwrap();
            started.elapsed()
        })
        .collect();

    let topo = Topology::new();
    let lat10 = latency(&topo, "edge-proxy-l10", 9);
    let lat1000 = latency(&topo, "edge-proxy-l1000", 999);

    let (fnl, fnft, dnl, dnft) = (median(full_netlink), median(full_nft), median(delta_netlink), median(delta_nft));
    println!("edge-proxy benchmark (median; 1000 services x 3 endpoints)");
    println!("{:<58} {:>12} {:>12}", "", "netlink", "nft -f");
    println!("{:<58} {:>12} {:>12}", format!("full sync ({messages} messages)"), ms(fnl), ms(fnft));
    println!(
        "{:<58} {:>12} {:>12}   ({:.0}x)",
        format!("one service's endpoints changed (delta: {delta_messages} messages)"),
        ms(dnl),
        ms(dnft),
        dnft.as_secs_f64() / dnl.as_secs_f64()
    );
    println!("{:<58} {:>12}", "  of which planning and diffing (no kernel)", ms(median(delta_user)));
    println!("{:<58} {:>12}", "TCP connect to a ClusterIP, 10 services (200 connects)", ms(lat10));
    println!("{:<58} {:>12}", "TCP connect to a ClusterIP, 1000 services (200 connects)", ms(lat1000));
}
