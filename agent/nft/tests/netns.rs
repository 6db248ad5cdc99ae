//! Root integration tests against the real kernel. Each test runs in a network namespace of
//! its own, created by unsharing CLONE_NEWNET in a fresh thread: the host's ruleset is never
//! touched, and the namespace disappears with the thread, also when the test fails.
//! `nft -j` (Debian package `nftables`) is the independent reader of what was programmed.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use edge_nft::*;
use serde_json::Value;

/// Runs `f` in a new network namespace; skips (with a message) when not privileged.
fn in_netns(name: &str, f: impl FnOnce() + Send + 'static) {
    let handle = std::thread::spawn(move || match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        Ok(()) => {
            f();
            true
        }
        Err(nix::errno::Errno::EPERM) => false,
        Err(e) => panic!("unshare(CLONE_NEWNET): {e}"),
    });
    match handle.join() {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("SKIPPED {name}: needs root (CAP_SYS_ADMIN) for a network namespace")
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

const TABLE: &str = "edge-test";
const MARK_MASQ: u32 = 0x4000;

fn table() -> Table {
    Table::new(Family::Inet, TABLE)
}

fn services_map() -> Set {
    Set::verdict_map(&table(), "service-ips", &[KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService])
}

fn affinity_set(svc: &str) -> Set {
    Set::new(&table(), format!("affinity-{svc}"), &[KeyType::Ipv4Addr])
        .dynamic()
        .with_timeout(Duration::from_secs(10800))
}

struct Service {
    name: String,
    ip: Ipv4Addr,
    port: u16,
    endpoints: Vec<SocketAddr>,
}

fn svc_chain(s: &Service) -> Chain {
    Chain::new(&table(), format!("svc-{}", s.name))
}

fn ep_chain(s: &Service, ep: &SocketAddr) -> Chain {
    Chain::new(&table(), format!("ep-{}-{}", s.name, ep.ip()).replace('.', "-"))
}

fn service_key(s: &Service) -> Key {
    Key::new().addr(s.ip.into()).proto(proto::TCP).port(s.port)
}

/// Endpoint chains plus the service chain's load-balancing rule (kube-proxy's shape).
fn add_service_chains(b: &mut Batch, s: &Service) {
    for ep in &s.endpoints {
        let c = ep_chain(s, ep);
        b.add_chain(&c);
        b.add_rule(&Rule::new(&c).match_saddr(ep.ip()).set_mark_or(MARK_MASQ));
        b.add_rule(&Rule::new(&c).match_l4proto(proto::TCP).dnat(*ep));
    }
    let svc = svc_chain(s);
    b.add_chain(&svc);
    if s.endpoints.is_empty() {
        b.add_rule(&Rule::new(&svc).reject_port_unreachable());
        return;
    }
    let arms = s
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| (Key::new().host_u32(i as u32), Verdict::Goto(ep_chain(s, ep).name)))
        .collect();
    let pick = b.add_anonymous_map(&table(), &[KeyType::HostU32], arms);
    b.add_rule(&Rule::new(&svc).numgen_vmap(s.endpoints.len() as u32, &pick));
}

/// The whole ruleset: base chains, services map, per-service and per-endpoint chains.
fn full_ruleset(services: &[Service]) -> Batch {
    let t = table();
    let pre = Chain::base(&t, "nat-prerouting", ChainType::Nat, Hook::Prerouting, priority::DSTNAT);
    let out = Chain::base(&t, "nat-output", ChainType::Nat, Hook::Output, priority::DSTNAT);
    let post = Chain::base(&t, "nat-postrouting", ChainType::Nat, Hook::Postrouting, priority::SRCNAT);
    let mut b = Batch::new();
    b.add_table(&t).add_chain(&pre).add_chain(&out).add_chain(&post);
    let map = b.add_set(&services_map());
    for s in services {
        add_service_chains(&mut b, s);
    }
    b.add_rule(&Rule::new(&pre).vmap_daddr_proto_dport(&map, false));
    b.add_rule(&Rule::new(&out).vmap_daddr_proto_dport(&map, false));
    b.add_rule(&Rule::new(&post).match_mark(MARK_MASQ, 0, true).ret());
    b.add_rule(&Rule::new(&post).set_mark_xor(MARK_MASQ));
    b.add_rule(&Rule::new(&post).masquerade(true));
    let elems: Vec<Elem> =
        services.iter().map(|s| Elem::verdict(service_key(s), Verdict::Goto(svc_chain(s).name))).collect();
    b.add_elements(&services_map(), &elems);
    b
}

fn sample_services() -> Vec<Service> {
    vec![
        Service {
            name: "web".into(),
            ip: Ipv4Addr::new(10, 43, 0, 10),
            port: 80,
            endpoints: vec![SocketAddr::from(([10, 42, 0, 5], 8080)), SocketAddr::from(([10, 42, 1, 5], 8080))],
        },
        Service {
            name: "db".into(),
            ip: Ipv4Addr::new(10, 43, 0, 20),
            port: 5432,
            endpoints: vec![SocketAddr::from(([10, 42, 0, 9], 5432))],
        },
        Service { name: "empty".into(), ip: Ipv4Addr::new(10, 43, 0, 30), port: 80, endpoints: vec![] },
    ]
}

/// `nft -j list table inet edge-test`, as the list of objects under "nftables".
fn nft_objects() -> Vec<Value> {
    let out = Command::new("nft")
        .args(["-j", "list", "table", "inet", TABLE])
        .output()
        .expect("running nft (apt-get install nftables)");
    assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("nft -j output is JSON");
    v["nftables"].as_array().expect("nftables array").clone()
}

/// Objects of one kind ("chain", "rule", "map", …) keyed for comparison.
fn by_kind(objs: &[Value], kind: &str) -> Vec<Value> {
    objs.iter().filter_map(|o| o.get(kind).cloned()).collect()
}

fn chain_names(objs: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = by_kind(objs, "chain").iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

fn rules_of(objs: &[Value], chain: &str) -> Vec<Value> {
    by_kind(objs, "rule").into_iter().filter(|r| r["chain"] == chain).collect()
}

/// Map elements as `"daddr . proto . port" -> goto target`.
fn service_elements(objs: &[Value]) -> BTreeMap<String, String> {
    let map = by_kind(objs, "map").into_iter().find(|m| m["name"] == "service-ips").expect("service-ips map");
    let mut out = BTreeMap::new();
    for e in map["elem"].as_array().cloned().unwrap_or_default() {
        let concat = e[0]["concat"].as_array().expect("concat key");
        let key = concat.iter().map(|p| p.to_string().trim_matches('"').to_owned()).collect::<Vec<_>>().join(" . ");
        out.insert(key, e[1]["goto"]["target"].as_str().unwrap_or("?").to_owned());
    }
    out
}

/// The numgen vmap of a service chain as `(modulus, [(key, target)])`.
fn numgen_arms(objs: &[Value], chain: &str) -> (u64, Vec<(u64, String)>) {
    let rules = rules_of(objs, chain);
    assert_eq!(rules.len(), 1, "{chain}: {rules:?}");
    let vmap = &rules[0]["expr"][0]["vmap"];
    let ng = &vmap["key"]["numgen"];
    assert_eq!(ng["mode"], "random", "{vmap}");
    let arms = vmap["data"]["set"]
        .as_array()
        .expect("inline map")
        .iter()
        .map(|a| (a[0].as_u64().expect("integer key"), a[1]["goto"]["target"].as_str().unwrap().to_owned()))
        .collect();
    (ng["mod"].as_u64().unwrap(), arms)
}

fn dnat_target(objs: &[Value], chain: &str) -> (String, u64) {
    let rules = rules_of(objs, chain);
    let dnat = rules
        .iter()
        .flat_map(|r| r["expr"].as_array().cloned().unwrap_or_default())
        .find_map(|e| e.get("dnat").cloned());
    let dnat = dnat.unwrap_or_else(|| panic!("{chain} has no dnat: {rules:?}"));
    (dnat["addr"].as_str().unwrap().to_owned(), dnat["port"].as_u64().unwrap())
}

#[test]
fn kube_proxy_like_ruleset_is_programmed_and_reads_back() {
    in_netns("kube_proxy_like_ruleset_is_programmed_and_reads_back", || {
        let services = sample_services();
        let mut sock = NftSocket::new().unwrap();
        sock.apply(&full_ruleset(&services)).unwrap();

        let objs = nft_objects();
        assert_eq!(
            chain_names(&objs),
            vec![
                "ep-db-10-42-0-9",
                "ep-web-10-42-0-5",
                "ep-web-10-42-1-5",
                "nat-output",
                "nat-postrouting",
                "nat-prerouting",
                "svc-db",
                "svc-empty",
                "svc-web",
            ]
        );
        let pre = by_kind(&objs, "chain").into_iter().find(|c| c["name"] == "nat-prerouting").unwrap();
        assert_eq!(
            (pre["type"].as_str(), pre["hook"].as_str(), pre["prio"].as_i64()),
            (Some("nat"), Some("prerouting"), Some(-100))
        );
        let post = by_kind(&objs, "chain").into_iter().find(|c| c["name"] == "nat-postrouting").unwrap();
        assert_eq!(
            (post["hook"].as_str(), post["prio"].as_i64(), post["policy"].as_str()),
            (Some("postrouting"), Some(100), Some("accept"))
        );

        let elems = service_elements(&objs);
        let want: BTreeMap<String, String> = [
            ("10.43.0.10 . tcp . 80", "svc-web"),
            ("10.43.0.20 . tcp . 5432", "svc-db"),
            ("10.43.0.30 . tcp . 80", "svc-empty"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(elems, want);

        // nft reads the host-order numgen keys as 0 and 1: the byte order is right.
        assert_eq!(
            numgen_arms(&objs, "svc-web"),
            (2, vec![(0, "ep-web-10-42-0-5".to_owned()), (1, "ep-web-10-42-1-5".to_owned())])
        );
        assert_eq!(numgen_arms(&objs, "svc-db"), (1, vec![(0, "ep-db-10-42-0-9".to_owned())]));
        assert_eq!(dnat_target(&objs, "ep-web-10-42-1-5"), ("10.42.1.5".to_owned(), 8080));
        let reject = rules_of(&objs, "svc-empty");
        assert_eq!(reject[0]["expr"][0]["reject"]["type"], "icmpx", "{reject:?}");
        assert_eq!(reject[0]["expr"][0]["reject"]["expr"], "port-unreachable", "{reject:?}");
        // nft folds the implicit `meta nfproto ipv4` back into `ip daddr`, so the rule reads
        // exactly as kube-proxy writes it.
        let pre_rule = &rules_of(&objs, "nat-prerouting")[0]["expr"];
        assert_eq!(pre_rule.as_array().unwrap().len(), 1, "{pre_rule}");
        assert_eq!(pre_rule[0]["vmap"]["data"], "@service-ips", "{pre_rule}");
        assert_eq!(
            pre_rule[0]["vmap"]["key"]["concat"],
            serde_json::json!([
                {"payload": {"protocol": "ip", "field": "daddr"}},
                {"meta": {"key": "l4proto"}},
                {"payload": {"protocol": "th", "field": "dport"}}
            ])
        );
        let masq = rules_of(&objs, "nat-postrouting");
        assert_eq!(masq.len(), 3);
        assert!(masq[2]["expr"][0]["masquerade"]["flags"].to_string().contains("fully-random"), "{:?}", masq[2]);

        // Our own dumps agree.
        let chains = sock.list_chains(&table()).unwrap();
        assert_eq!(chains.len(), 9);
        let pre = chains.iter().find(|c| c.name == "nat-prerouting").unwrap();
        assert_eq!((pre.hook, pre.kind.as_deref()), (Some((0, -100)), Some("nat")));
        let sets = sock.list_sets(&table()).unwrap();
        // service-ips plus one anonymous map per service with endpoints.
        assert_eq!(sets.len(), 3, "{sets:?}");
        let elems = sock.list_elements(&services_map()).unwrap();
        assert_eq!(elems.len(), 3);
        let web = elems.iter().find(|e| e.key == service_key(&services[0]).into_bytes()).unwrap();
        assert_eq!(web.verdict, Some(Verdict::Goto("svc-web".into())));
        let rules = sock.list_rules(&table()).unwrap();
        let svc_web: Vec<_> = rules.iter().filter(|r| r.chain == "svc-web").collect();
        assert_eq!(svc_web.len(), 1);
        assert_eq!(svc_web[0].exprs, vec!["numgen", "lookup"]);
        assert!(sock.list_tables().unwrap().iter().any(|t| t.name == TABLE && t.family == Some(Family::Inet)));
    });
}

/// Everything `nft -j` shows except what belongs to one service, for "nothing else moved".
fn unrelated(objs: &[Value], svc: &str) -> Vec<Value> {
    let mine = |name: &str| name == format!("svc-{svc}") || name.starts_with(&format!("ep-{svc}-"));
    objs.iter()
        .filter(|o| {
            let name = o.get("chain").and_then(|c| c["name"].as_str());
            let rule_chain = o.get("rule").and_then(|r| r["chain"].as_str());
            // Anonymous maps belong to the service chain that holds them.
            let anon = o.get("map").map(|m| m["name"].as_str().unwrap_or("").starts_with("__map")).unwrap_or(false);
            !(name.is_some_and(mine) || rule_chain.is_some_and(mine) || anon || o.get("metainfo").is_some())
        })
        .cloned()
        .collect()
}

#[test]
fn replacing_one_services_endpoints_touches_only_that_service() {
    in_netns("replacing_one_services_endpoints_touches_only_that_service", || {
        let services = sample_services();
        let mut sock = NftSocket::new().unwrap();
        sock.apply(&full_ruleset(&services)).unwrap();
        let before = nft_objects();

        // web: 10.42.0.5 and 10.42.1.5 -> 10.42.1.5 and 10.42.2.7, in one batch.
        let old = &services[0];
        let new = Service {
            name: "web".into(),
            ip: old.ip,
            port: old.port,
            endpoints: vec![SocketAddr::from(([10, 42, 1, 5], 8080)), SocketAddr::from(([10, 42, 2, 7], 8080))],
        };
        let mut b = Batch::new();
        b.flush_chain(&svc_chain(old));
        for ep in &old.endpoints {
            b.flush_chain(&ep_chain(old, ep));
        }
        add_service_chains(&mut b, &new);
        for ep in old.endpoints.iter().filter(|e| !new.endpoints.contains(e)) {
            b.delete_chain(&ep_chain(old, ep));
        }
        let started = Instant::now();
        sock.apply(&b).unwrap();
        eprintln!("one-service delta ({} messages): {:?}", b.len(), started.elapsed());

        let after = nft_objects();
        assert_eq!(unrelated(&after, "web"), unrelated(&before, "web"), "objects outside svc-web changed");
        assert_eq!(
            numgen_arms(&after, "svc-web"),
            (2, vec![(0, "ep-web-10-42-1-5".to_owned()), (1, "ep-web-10-42-2-7".to_owned())])
        );
        let names = chain_names(&after);
        assert!(!names.contains(&"ep-web-10-42-0-5".to_owned()), "{names:?}");
        assert_eq!(dnat_target(&after, "ep-web-10-42-2-7"), ("10.42.2.7".to_owned(), 8080));
        // The kept endpoint's chain was flushed and refilled, not duplicated.
        assert_eq!(rules_of(&after, "ep-web-10-42-1-5").len(), 2);
        // The replaced anonymous map went away with its rule.
        assert_eq!(sock.list_sets(&table()).unwrap().len(), 3);
    });
}

#[test]
fn a_batch_with_one_bad_message_is_rejected_whole() {
    in_netns("a_batch_with_one_bad_message_is_rejected_whole", || {
        let services = sample_services();
        let mut sock = NftSocket::new().unwrap();
        sock.apply(&full_ruleset(&services)).unwrap();
        let before = nft_objects();

        let extra = Service { name: "new".into(), ip: Ipv4Addr::new(10, 43, 0, 40), port: 443, endpoints: vec![] };
        let mut b = Batch::new();
        add_service_chains(&mut b, &extra);
        b.add_elements(&services_map(), &[Elem::verdict(service_key(&extra), Verdict::Goto("svc-new".into()))]);
        // A jump to a chain that does not exist: the kernel says ENOENT for this message.
        b.add_rule(&Rule::new(&svc_chain(&services[1])).jump("no-such-chain"));
        b.add_chain(&Chain::new(&table(), "after-the-bad-one"));
        let bad_index = b.len() - 2;

        let err = sock.apply(&b).unwrap_err();
        eprintln!("rejected as expected: {err}");
        let Error::Rejected { first, others } = &err else { panic!("unexpected error {err}") };
        assert_eq!(*others, 0, "{err}");
        assert_eq!(first.errno, libc::ENOENT, "{err}");
        assert_eq!(first.index, bad_index, "{err}");
        assert_eq!(first.what, format!("NEWRULE inet {TABLE} svc-db"));
        assert_eq!(nft_objects(), before, "a rejected batch left traces");

        // The socket stays usable, and a good batch after a bad one applies.
        let mut ok = Batch::new();
        add_service_chains(&mut ok, &extra);
        sock.apply(&ok).unwrap();
        assert!(chain_names(&nft_objects()).contains(&"svc-new".to_owned()));
    });
}

#[test]
fn commit_time_errors_and_missing_objects_are_reported() {
    in_netns("commit_time_errors_and_missing_objects_are_reported", || {
        let mut sock = NftSocket::new().unwrap();
        // Deleting a table that is not there.
        let mut b = Batch::new();
        b.delete_table(&table());
        let err = sock.apply(&b).unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
        // "delete if present": add then delete in one batch succeeds either way.
        let mut b = Batch::new();
        b.add_table(&table()).delete_table(&table());
        sock.apply(&b).unwrap();
        // Element keys of the wrong size never reach the kernel.
        let mut b = Batch::new();
        b.add_table(&table());
        b.add_set(&services_map());
        b.add_elements(&services_map(), &[Elem::key(Key::new().port(1))]);
        assert!(matches!(sock.apply(&b), Err(Error::InvalidElement { .. })));
        assert!(sock.list_tables().unwrap().is_empty());
    });
}

#[test]
fn affinity_set_with_timeout_and_dynamic_update() {
    in_netns("affinity_set_with_timeout_and_dynamic_update", || {
        let t = table();
        let svc = Chain::new(&t, "svc-sticky");
        let ep = Chain::new(&t, "ep-sticky-0");
        let aff = affinity_set("sticky");
        let mut b = Batch::new();
        b.add_table(&t).add_chain(&svc).add_chain(&ep);
        let aff_ref = b.add_set(&aff);
        b.add_rule(&Rule::new(&svc).match_saddr_in(&aff_ref, false).goto(ep.name.clone()));
        b.add_rule(&Rule::new(&ep).update_saddr_in(&aff_ref, false));
        b.add_rule(&Rule::new(&ep).match_l4proto(proto::TCP).dnat(SocketAddr::from(([10, 42, 0, 5], 80))));
        // Elements can also be seeded from user space, with their own timeout.
        let mut seeded = Elem::key(Key::new().addr(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 9))));
        seeded.timeout = Some(Duration::from_secs(60));
        b.add_elements(&aff, &[seeded]);
        let mut sock = NftSocket::new().unwrap();
        sock.apply(&b).unwrap();

        let objs = nft_objects();
        let set = by_kind(&objs, "set").into_iter().find(|s| s["name"] == "affinity-sticky").expect("set");
        assert_eq!(set["timeout"], 10800, "{set}");
        assert_eq!(set["flags"], serde_json::json!(["timeout"]), "{set}");
        // nft 1.0.6's JSON leaves out `dynamic`; the kernel's own flags show it.
        let info = sock.list_sets(&t).unwrap();
        assert_eq!(info[0].flags, edge_nft::sys::NFT_SET_TIMEOUT | edge_nft::sys::NFT_SET_EVAL);
        assert!(set["elem"].to_string().contains("192.168.1.9"), "{set}");
        let upd = &rules_of(&objs, "ep-sticky-0")[0]["expr"];
        assert_eq!(upd[0]["set"]["op"], "update", "{upd}");
        assert_eq!(upd[0]["set"]["set"], "@affinity-sticky", "{upd}");
        assert_eq!(upd[0]["set"]["elem"]["payload"]["field"], "saddr", "{upd}");
        let lookup = &rules_of(&objs, "svc-sticky")[0]["expr"];
        assert_eq!(lookup[0]["match"]["right"], "@affinity-sticky", "{lookup}");
        assert_eq!(lookup[1]["goto"]["target"], "ep-sticky-0", "{lookup}");
    });
}

#[test]
fn thousand_services_install_in_one_batch() {
    in_netns("thousand_services_install_in_one_batch", || {
        let services: Vec<Service> = (0..1000u32)
            .map(|i| Service {
                name: format!("s{i}"),
                ip: Ipv4Addr::from(0x0a2b_0000 + 10 + i),
                port: 80,
                endpoints: (0..3u32)
                    .map(|e| SocketAddr::new(Ipv4Addr::from(0x0a2a_0000 + i * 4 + e).into(), 8080))
                    .collect(),
            })
            .collect();
        let started = Instant::now();
        let b = full_ruleset(&services);
        let size = b.encode(1).unwrap().bytes.len();
        eprintln!("building and encoding the batch: {:?}", started.elapsed());
        let mut sock = NftSocket::new().unwrap();
        let started = Instant::now();
        sock.apply(&b).unwrap();
        eprintln!(
            "1000 services x 3 endpoints: {} messages, {size} bytes, applied in {:?}",
            b.len(),
            started.elapsed()
        );
        assert!(size > 1 << 20, "a batch over the default socket buffer ({size} bytes)");
        assert_eq!(sock.list_elements(&services_map()).unwrap().len(), 1000);
        assert_eq!(sock.list_chains(&table()).unwrap().len(), 3 + 1000 * 4);
    });
}

#[test]
fn ipv6_services_and_rule_deletion_by_handle() {
    in_netns("ipv6_services_and_rule_deletion_by_handle", || {
        let t = table();
        let pre = Chain::base(&t, "nat-prerouting", ChainType::Nat, Hook::Prerouting, priority::DSTNAT);
        let ep = Chain::new(&t, "ep-v6");
        let map6 =
            Set::verdict_map(&t, "service-ips-v6", &[KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService]);
        let svc_ip: IpAddr = "fd00:43::a".parse().unwrap();
        let ep_addr: SocketAddr = "[fd00:42::5]:8080".parse().unwrap();
        let mut b = Batch::new();
        b.add_table(&t).add_chain(&pre).add_chain(&ep);
        let m = b.add_set(&map6);
        b.add_rule(&Rule::new(&pre).counter());
        b.add_rule(&Rule::new(&pre).vmap_daddr_proto_dport(&m, true));
        b.add_rule(&Rule::new(&ep).match_l4proto(proto::TCP).dnat(ep_addr));
        let key = Key::new().addr(svc_ip).proto(proto::TCP).port(80);
        b.add_elements(&map6, &[Elem::verdict(key, Verdict::Goto("ep-v6".into()))]);
        let mut sock = NftSocket::new().unwrap();
        sock.apply(&b).unwrap();

        let objs = nft_objects();
        let map = by_kind(&objs, "map").into_iter().find(|m| m["name"] == "service-ips-v6").unwrap();
        assert_eq!(map["elem"][0][0]["concat"], serde_json::json!(["fd00:43::a", "tcp", 80]), "{map}");
        assert_eq!(dnat_target(&objs, "ep-v6"), ("fd00:42::5".to_owned(), 8080));
        let vmap = &rules_of(&objs, "nat-prerouting")[1]["expr"][0]["vmap"];
        assert_eq!(vmap["key"]["concat"][0]["payload"]["protocol"], "ip6", "{vmap}");

        // Delete the counter rule by its handle; the vmap rule stays.
        let rules = sock.list_rules(&t).unwrap();
        let counter = rules.iter().find(|r| r.chain == "nat-prerouting" && r.exprs == ["counter"]).unwrap();
        let mut del = Batch::new();
        del.delete_rule(&pre, counter.handle);
        sock.apply(&del).unwrap();
        let left: Vec<Vec<String>> =
            sock.list_rules(&t).unwrap().into_iter().filter(|r| r.chain == "nat-prerouting").map(|r| r.exprs).collect();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].last().map(String::as_str), Some("lookup"));
    });
}

#[test]
fn changing_an_elements_verdict_takes_delete_then_add() {
    in_netns("changing_an_elements_verdict_takes_delete_then_add", || {
        let services = sample_services();
        let mut sock = NftSocket::new().unwrap();
        sock.apply(&full_ruleset(&services)).unwrap();
        let web = &services[0];
        let to_db = Elem::verdict(service_key(web), Verdict::Goto("svc-db".into()));

        // Re-adding the key with other data is refused...
        let mut b = Batch::new();
        b.add_elements(&services_map(), std::slice::from_ref(&to_db));
        let err = sock.apply(&b).unwrap_err();
        assert!(matches!(err.errno(), Some(libc::EEXIST) | Some(libc::EBUSY)), "{err}");
        // ...re-adding it unchanged is not (add is idempotent)...
        let mut same = Batch::new();
        same.add_elements(&services_map(), &[Elem::verdict(service_key(web), Verdict::Goto("svc-web".into()))]);
        sock.apply(&same).unwrap();
        // ...and delete + add in one batch swaps it atomically.
        let mut b = Batch::new();
        b.delete_elements(&services_map(), std::slice::from_ref(&to_db));
        b.add_elements(&services_map(), std::slice::from_ref(&to_db));
        sock.apply(&b).unwrap();
        let elems = service_elements(&nft_objects());
        assert_eq!(elems["10.43.0.10 . tcp . 80"], "svc-db");
        assert_eq!(elems.len(), 3);
    });
}
