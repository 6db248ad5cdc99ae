//! Root tests against the real kernel, each in fresh network namespaces that are deleted
//! afterwards (also on failure). `nft -j` is the independent reader of what was programmed;
//! a client, a node and a server namespace carry real connections through the rules.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use edge_proxy::{remove_table, Kernel, Proxier, ProxyConfig};
use serde_json::Value;
use support::*;

fn cfg(table: &str) -> ProxyConfig {
    ProxyConfig {
        table: table.into(),
        node_name: "node-a".into(),
        node_ips: vec!["10.0.1.1".parse().unwrap()],
        cluster_cidr: "10.42.0.0/16".into(),
    }
}

macro_rules! require_root {
    ($name:expr) => {
        if !privileged() {
            eprintln!("SKIPPED {}: needs root and nft", $name);
            return;
        }
    };
}

fn chains(objs: &[Value]) -> Vec<String> {
    let mut v: Vec<String> =
        objs.iter().filter_map(|o| o.get("chain")).map(|c| c["name"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

fn rules(objs: &[Value], chain: &str) -> Vec<Value> {
    objs.iter().filter_map(|o| o.get("rule")).filter(|r| r["chain"] == chain).cloned().collect()
}

/// `"key" -> verdict` of a named map, keys and verdicts as nft prints them.
fn map_elements(objs: &[Value], map: &str) -> Vec<(String, String)> {
    let m = objs.iter().filter_map(|o| o.get("map")).find(|m| m["name"] == map).unwrap();
    let mut out: Vec<(String, String)> = m["elem"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let k = e[0]["concat"].as_array().unwrap().iter().map(|p| p.to_string().trim_matches('"').to_owned());
            let v = match e[1].as_object().and_then(|o| o.keys().next().cloned()) {
                Some(verb) if verb == "goto" => format!("goto {}", e[1]["goto"]["target"].as_str().unwrap()),
                Some(verb) => verb,
                None => e[1].to_string(),
            };
            (k.collect::<Vec<_>>().join(" . "), v)
        })
        .collect();
    out.sort();
    out
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn full_sync_delta_and_drift_read_back_with_nft() {
    require_root!("full_sync_delta_and_drift_read_back_with_nft");
    let node = Netns::new("rb");
    let table = "edge-proxy-t";
    let mut p = Proxier::new(cfg(table), node.enter(|| Kernel::new().unwrap()));
    let mut web = service("web", "10.43.0.10", vec![endpoint("10.42.0.5", 8080), endpoint("10.42.1.5", 8080)]);
    web.node_port = Some(30080);
    let empty = service("empty", "10.43.0.20", vec![]);
    let stats = p.sync(&[web.clone(), empty.clone()]).unwrap();
    assert!(stats.full);

    let objs = node.nft_json(table);
    let names = chains(&objs);
    for want in ["filter-input", "nat-prerouting", "services", "endpoints-check", "masquerading", "reject-chain"] {
        assert!(names.contains(&want.to_owned()), "{want} missing: {names:?}");
    }
    let svc_chain = names.iter().find(|n| n.starts_with("service-") && n.ends_with("default/web/tcp/http")).unwrap();
    let ext_chain = names.iter().find(|n| n.starts_with("external-")).unwrap();
    assert_eq!(names.iter().filter(|n| n.starts_with("endpoint-")).count(), 2, "{names:?}");
    assert_eq!(map_elements(&objs, "service-ips"), vec![("10.43.0.10 . tcp . 80".into(), format!("goto {svc_chain}"))]);
    assert_eq!(map_elements(&objs, "service-nodeports"), vec![("tcp . 30080".into(), format!("goto {ext_chain}"))]);
    assert_eq!(
        map_elements(&objs, "no-endpoint-services"),
        vec![("10.43.0.20 . tcp . 80".into(), "goto reject-chain".into())]
    );
    let lb = rules(&objs, svc_chain);
    assert_eq!(lb.len(), 2, "masquerade rule + numgen: {lb:?}");
    assert_eq!(lb[1]["expr"][0]["vmap"]["key"]["numgen"]["mod"], 2, "{lb:?}");
    let fe = rules(&objs, "filter-forward");
    assert!(fe[0]["expr"].to_string().contains("endpoints-check"), "{fe:?}");
    assert!(!p.drifted().unwrap(), "fresh table reads back as applied");

    // Delta: one endpoint replaced; the other service is untouched.
    let before_empty = map_elements(&objs, "no-endpoint-services");
    web.endpoints[0] = endpoint("10.42.2.7", 8080);
    let stats = p.sync(&[web.clone(), empty.clone()]).unwrap();
    assert!(!stats.full && stats.messages > 0 && stats.services == 1, "{stats:?}");
    let objs = node.nft_json(table);
    let names = chains(&objs);
    assert!(names.iter().any(|n| n.ends_with("__10.42.2.7/8080")), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with("__10.42.0.5/8080")), "{names:?}");
    assert_eq!(map_elements(&objs, "no-endpoint-services"), before_empty);
    assert!(!p.drifted().unwrap());
    // A no-op sync sends nothing.
    assert_eq!(p.sync(&[web.clone(), empty.clone()]).unwrap().messages, 0);

    // Removing a service removes its element and chains in the same kind of delta.
    let stats = p.sync(std::slice::from_ref(&empty)).unwrap();
    assert!(!stats.full, "{stats:?}");
    let objs = node.nft_json(table);
    assert!(!chains(&objs).iter().any(|n| n.contains("default/web/")), "{:?}", chains(&objs));
    assert!(map_elements(&objs, "service-ips").is_empty());
    assert!(!p.drifted().unwrap());

    // Someone flushes a chain or deletes an element behind our back.
    node.exec(&["nft", "flush", "chain", "inet", table, "services"]);
    assert!(p.drifted().unwrap());
    p.force_full_sync();
    assert!(p.sync(&[empty.clone(), web.clone()]).unwrap().full);
    assert!(!p.drifted().unwrap());
    node.exec(&["nft", "delete", "element", "inet", table, "no-endpoint-services", "{ 10.43.0.20 . tcp . 80 }"]);
    assert!(p.drifted().unwrap());

    node.enter(|| remove_table(table).unwrap());
    node.enter(|| remove_table(table).unwrap()); // idempotent
    assert!(node.exec(&["nft", "list", "tables"]).trim().is_empty());
}

#[test]
fn rendered_script_loads_and_matches_the_netlink_ruleset() {
    require_root!("rendered_script_loads_and_matches_the_netlink_ruleset");
    let (a, b) = (Netns::new("ra"), Netns::new("rb"));
    let table = "edge-proxy-r";
    let mut desired = many_services(3);
    desired[0].affinity_timeout_seconds = Some(600);
    desired[1].node_port = Some(30001);
    desired[1].external_policy_local = true;
    desired[1].endpoints[0].node_name = Some("node-a".into());
    desired.push(service("v6", "fd00:43::a", vec![endpoint("fd00:42::5", 8080)]));
    let mut p = Proxier::new(cfg(table), a.enter(|| Kernel::new().unwrap()));
    p.sync(&desired).unwrap();
    let script = edge_proxy::render_nft(&cfg(table), &desired);
    let path = std::env::temp_dir().join(format!("{}.nft", b.name));
    std::fs::write(&path, &script).unwrap();
    b.exec(&["nft", "-f", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    // nft prints both tables identically (handles aside).
    let strip = |s: String| s.lines().map(|l| l.split(" # handle").next().unwrap_or("").to_owned()).collect::<Vec<_>>();
    let via_netlink = strip(a.exec(&["nft", "list", "table", "inet", table]));
    let via_nft = strip(b.exec(&["nft", "list", "table", "inet", table]));
    assert_eq!(via_netlink, via_nft);
}

#[test]
fn packets_are_dnatted_refused_and_pinned() {
    require_root!("packets_are_dnatted_refused_and_pinned");
    let topo = Topology::new();
    let table = "edge-proxy-p";
    let mut p = Proxier::new(cfg(table), topo.node.enter(|| Kernel::new().unwrap()));
    let both = || SERVER_IPS.iter().map(|ip| endpoint(ip, 8080)).collect::<Vec<_>>();
    let web = service("web", "10.43.0.10", both());
    let empty = service("empty", "10.43.0.20", vec![]);
    let mut sticky = service("sticky", "10.43.0.30", both());
    sticky.affinity_timeout_seconds = Some(600);
    p.sync(&[web, empty, sticky]).unwrap();

    // DNAT: the server answers with the address the connection reached; both endpoints get used.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (r, _) = topo.connect(addr("10.43.0.10:80"));
        seen.insert(r.unwrap());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec!["10.42.0.5", "10.42.0.6"]);

    // No endpoints: refused at once, not a timeout.
    let (r, took) = topo.connect(addr("10.43.0.20:80"));
    let err = r.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // Affinity: every connection from this client lands on the same endpoint.
    let answers: std::collections::BTreeSet<String> =
        (0..20).map(|_| topo.connect(addr("10.43.0.30:80")).0.unwrap()).collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
}
