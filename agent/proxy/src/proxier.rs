//! The Proxier: keeps the `edge-proxy` table equal to the desired service ports, with one
//! atomic batch per sync — the whole table the first time (and after any failure), only the
//! difference against the last applied plan afterwards.

#[cfg(test)]
use std::collections::BTreeMap;
use std::net::IpAddr;

use edge_nft::{Batch, Family, Key, Table};

use crate::cidr::Cidr;
use crate::error::ProxyError;
use crate::model::ServicePort;
use crate::netfilter::{Netfilter, TableState};
use crate::plan::{nodeport_ips_set, plan_services, static_plan, Plan, PlanCache, Settings, StaticPlan};
use crate::render::render;
use crate::transaction::{self, chain, elem_key, verdict};

/// What the proxy needs to know about its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `edge-proxy` (tests use a per-run name).
    pub table: String,
    /// Endpoints whose `node_name` equals this are local.
    pub node_name: String,
    /// NodePorts answer on these; when empty, on every local address (`fib daddr type local`).
    pub node_ips: Vec<IpAddr>,
    /// `10.42.0.0/16` (or a comma-separated IPv4,IPv6 pair): traffic from outside it to a
    /// ClusterIP is masqueraded.
    pub cluster_cidr: String,
}

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    /// The whole table was replaced.
    pub full: bool,
    /// nf_tables messages sent (0: nothing changed, nothing sent).
    pub messages: usize,
    /// Service ports (per IP family) whose rules were written: all of them for a full sync,
    /// the changed ones for a delta.
    pub services: usize,
}

fn settings(cfg: &ProxyConfig) -> Settings {
    let (cluster_cidrs, bad) = Cidr::parse_list(&cfg.cluster_cidr);
    if !bad.is_empty() {
        tracing::warn!(?bad, "ignoring invalid cluster CIDR entries: no off-cluster masquerade for them");
    }
    Settings { node_name: cfg.node_name.clone(), node_ips: cfg.node_ips.clone(), cluster_cidrs }
}

/// Keeps one nftables table in step with the desired service ports.
pub struct Proxier<N: Netfilter> {
    nf: N,
    table: Table,
    settings: Settings,
    statics: StaticPlan,
    /// Per service port, what it was last planned as: a sync plans only what changed.
    cache: PlanCache,
    /// What the kernel holds, as far as we know; `None` forces the next sync to be full.
    applied: Option<Plan>,
    /// The number for the next anonymous map in the table (see `transaction`).
    next_anonymous: u32,
}

/// Past this many anonymous map numbers the next sync is a full one, which starts again
/// from 0: numbers must never wrap onto maps still in the table.
const ANONYMOUS_NUMBERS: u32 = 1 << 31;

impl<N: Netfilter> Proxier<N> {
    pub fn new(cfg: ProxyConfig, nf: N) -> Self {
        let settings = settings(&cfg);
        let statics = static_plan(&settings);
        Proxier {
            nf,
            table: Table::new(Family::Inet, cfg.table),
            settings,
            statics,
            cache: PlanCache::default(),
            applied: None,
            next_anonymous: 0,
        }
    }

    /// The kernel side (tests inspect their fake through it).
    pub fn netfilter(&mut self) -> &mut N {
        &mut self.nf
    }

    /// Full sync the first time and after an error; otherwise only the difference.
    pub fn sync(&mut self, desired: &[ServicePort]) -> Result<SyncStats, ProxyError> {
        let plan = self.cache.plan(&self.settings, desired);
        if self.next_anonymous >= ANONYMOUS_NUMBERS {
            self.applied = None;
        }
        if let Some(old) = &self.applied {
            match transaction::delta(&self.table, old, &plan, self.next_anonymous) {
                Some((batch, _)) if batch.is_empty() => {
                    return Ok(SyncStats { full: false, messages: 0, services: 0 });
                }
                Some((batch, changed)) => match self.nf.apply(&batch) {
                    Ok(()) => {
                        self.applied = Some(plan);
                        self.next_anonymous = batch.next_anonymous_number().unwrap_or(ANONYMOUS_NUMBERS);
                        return Ok(SyncStats { full: false, messages: batch.len(), services: changed });
                    }
                    // The table is not what we think (or an older kernel refused an order of
                    // deletions): replacing it whole is always possible.
                    Err(e) => tracing::warn!(error = %e, "incremental nftables sync failed, replacing the table"),
                },
                None => {}
            }
        }
        self.applied = None;
        let batch = transaction::full(&self.table, &self.statics, &plan);
        self.nf.apply(&batch)?;
        Ok(self.applied_full(plan, &batch))
    }

    fn applied_full(&mut self, plan: Plan, batch: &Batch) -> SyncStats {
        self.next_anonymous = batch.next_anonymous_number().unwrap_or(ANONYMOUS_NUMBERS);
        let services = plan.services.len();
        self.applied = Some(plan);
        SyncStats { full: true, messages: batch.len(), services }
    }

    /// Reads the table back and reports whether it differs from what was last applied
    /// (someone flushed a chain, deleted an element, or the table is gone). Dynamic
    /// affinity sets' contents are not compared. True also when nothing was applied yet.
    pub fn drifted(&mut self) -> Result<bool, ProxyError> {
        let Some(want) = self.expected_state() else {
            return Ok(true);
        };
        let names: Vec<String> = want.elements.keys().cloned().collect();
        let got = self.nf.read(&self.table, &names)?;
        let drifted = got.as_ref() != Some(&want);
        if drifted {
            tracing::info!(table = %self.table.name, "nftables table differs from the last applied ruleset");
        }
        Ok(drifted)
    }

    pub fn force_full_sync(&mut self) {
        self.applied = None;
    }

    /// What the kernel should report for the last applied plan.
    pub(crate) fn expected_state(&self) -> Option<TableState> {
        let plan = self.applied.as_ref()?;
        let mut st = TableState::default();
        for c in self.statics.chains.iter().chain(plan.services.values().flat_map(|p| &p.chains)) {
            let ch = chain(&self.table, c);
            let rules = c.rules.iter().map(|r| r.expr_names(&ch).into_iter().map(str::to_owned).collect()).collect();
            st.chains.insert(c.name.clone(), rules);
        }
        for id in crate::plan::MapId::all() {
            st.sets.insert(id.name());
            st.elements.insert(id.name(), Vec::new());
        }
        for (fam, ips) in &self.statics.nodeport_ips {
            let name = nodeport_ips_set(*fam);
            st.sets.insert(name.clone());
            let mut keys: Vec<_> = ips.iter().map(|ip| (Key::new().addr(*ip).into_bytes(), None)).collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            st.elements.insert(name, keys);
        }
        for p in plan.services.values() {
            for a in &p.sets {
                st.sets.insert(a.name.clone());
            }
            for e in &p.elements {
                let entry = st.elements.entry(e.map.name()).or_default();
                entry.push((elem_key(&e.key).into_bytes(), Some(verdict(&e.target))));
            }
        }
        for list in st.elements.values_mut() {
            list.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Some(st)
    }
}

/// Removes the table (agent uninstall); no error if it is not there.
pub fn remove_table(table: &str) -> Result<(), ProxyError> {
    let t = Table::new(Family::Inet, table);
    let mut b = Batch::new();
    b.add_table(&t).delete_table(&t);
    edge_nft::NftSocket::new()?.apply(&b)?;
    Ok(())
}

/// The same ruleset as an `nft -f` script.
pub fn render_nft(cfg: &ProxyConfig, desired: &[ServicePort]) -> String {
    let s = settings(cfg);
    render(&cfg.table, &static_plan(&s), &plan_services(&s, desired))
}

/// Per-chain rule texts of the plan, for tests that read the ruleset like nft would print it.
#[cfg(test)]
pub(crate) fn rule_texts(cfg: &ProxyConfig, desired: &[ServicePort]) -> BTreeMap<String, Vec<String>> {
    let plan = plan_services(&settings(cfg), desired);
    plan.services
        .values()
        .flat_map(|p| &p.chains)
        .map(|c| (c.name.clone(), c.rules.iter().map(|r| r.to_text()).collect()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol};

    /// Records batches; can fail the next apply; `read` returns whatever `state` holds.
    #[derive(Default)]
    struct Fake {
        batches: Vec<Batch>,
        fail_next: usize,
        state: Option<TableState>,
    }

    impl Netfilter for Fake {
        fn apply(&mut self, batch: &Batch) -> Result<(), edge_nft::Error> {
            if self.fail_next > 0 {
                self.fail_next -= 1;
                return Err(edge_nft::Error::CommitFailed { errno: 16 });
            }
            self.batches.push(batch.clone());
            Ok(())
        }

        fn read(&mut self, _: &Table, _: &[String]) -> Result<Option<TableState>, edge_nft::Error> {
            Ok(self.state.clone())
        }
    }

    fn cfg() -> ProxyConfig {
        ProxyConfig {
            table: "edge-proxy".into(),
            node_name: "node-a".into(),
            node_ips: vec!["192.168.1.10".parse().unwrap()],
            cluster_cidr: "10.42.0.0/16,fd00:42::/56".into(),
        }
    }

    fn ep(ip: &str, node: &str) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some(node.into()),
        }
    }

    fn svc(name: &str, ip: &str, endpoints: Vec<Endpoint>) -> ServicePort {
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

    fn web() -> ServicePort {
        svc("web", "10.43.0.10", vec![ep("10.42.0.5", "node-a"), ep("10.42.1.5", "node-b")])
    }

    /// The rendered script without the static part, for "contains" checks.
    fn script(desired: &[ServicePort]) -> String {
        render_nft(&cfg(), desired)
    }

    /// Chain name with the given prefix for service `name` (the hash part is opaque here).
    fn chain_of(texts: &BTreeMap<String, Vec<String>>, prefix: &str, contains: &str) -> (String, Vec<String>) {
        texts
            .iter()
            .find(|(k, _)| k.starts_with(prefix) && k.contains(contains))
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap_or_else(|| panic!("no {prefix}…{contains} in {:?}", texts.keys().collect::<Vec<_>>()))
    }

    #[test]
    fn full_sync_content_for_each_kind_of_service() {
        let mut nodeport = web();
        nodeport.node_port = Some(30080);
        let mut lb = web();
        lb.load_balancer_ips = vec!["192.168.1.200".parse().unwrap()];
        lb.external_ips = vec!["192.168.1.201".parse().unwrap()];
        let mut sticky = web();
        sticky.affinity_timeout_seconds = Some(600);
        let empty_np = ServicePort { node_port: Some(30081), ..svc("web", "10.43.0.10", vec![]) };
        let mut ext_local = web();
        ext_local.node_port = Some(30080);
        ext_local.external_policy_local = true;
        let mut ext_local_none = ext_local.clone();
        ext_local_none.endpoints = vec![ep("10.42.1.5", "node-b")];
        let mut int_local = web();
        int_local.internal_policy_local = true;
        let mut int_local_none = int_local.clone();
        int_local_none.endpoints = vec![ep("10.42.1.5", "node-b")];
        let mut terminating = web();
        for e in &mut terminating.endpoints {
            e.ready = false;
        }
        terminating.endpoints[1].terminating = true;
        let mut udp = svc("dns", "10.43.0.10", vec![ep("10.42.0.5", "node-a")]);
        udp.protocol = Protocol::Udp;
        udp.port = 53;
        let v6 = svc("web", "fd00:43::a", vec![ep("fd00:42::5", "node-a")]);
        let mut headless = web();
        headless.cluster_ips.clear();

        // (case, service, lines the script must have, lines it must not have)
        let cases: Vec<(&str, ServicePort, Vec<&str>, Vec<&str>)> = vec![
            (
                "clusterip",
                web(),
                vec![
                    "add element inet edge-proxy service-ips { 10.43.0.10 . tcp . 80 : goto service-",
                    "ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
                    "numgen random mod 2 vmap { 0 : goto endpoint-",
                    "ip saddr 10.42.0.5 jump mark-for-masquerade",
                    "meta l4proto tcp dnat ip to 10.42.1.5:8080",
                ],
                vec!["external-", "add element inet edge-proxy no-endpoint-", "affinity-"],
            ),
            (
                "nodeport",
                nodeport,
                vec!["service-nodeports { tcp . 30080 : goto external-", "external-", "jump mark-for-masquerade"],
                vec!["add element inet edge-proxy no-endpoint-nodeports"],
            ),
            (
                "loadbalancer and externalIPs",
                lb,
                vec!["192.168.1.200 . tcp . 80 : goto external-", "192.168.1.201 . tcp . 80 : goto external-"],
                vec![],
            ),
            (
                "affinity",
                sticky,
                vec!["flags dynamic,timeout; timeout 600s;", "ip saddr @affinity-", "update @affinity-"],
                vec![],
            ),
            (
                "no endpoints",
                empty_np,
                vec![
                    "no-endpoint-services { 10.43.0.10 . tcp . 80 : goto reject-chain }",
                    "no-endpoint-nodeports { tcp . 30081 : goto reject-chain }",
                ],
                vec!["add chain inet edge-proxy service-", "add element inet edge-proxy service-ips {"],
            ),
            (
                "external Local with a local endpoint",
                ext_local,
                vec![
                    "ip saddr 10.42.0.0/16 goto service-",
                    "fib saddr type local jump mark-for-masquerade",
                    "fib saddr type local goto service-",
                    "numgen random mod 1 vmap { 0 : goto endpoint-",
                ],
                vec!["add element inet edge-proxy no-endpoint-nodeports"],
            ),
            (
                "external Local without local endpoints",
                ext_local_none,
                vec![
                    "no-endpoint-nodeports { tcp . 30080 : drop }",
                    "service-nodeports { tcp . 30080 : goto external-",
                ],
                vec!["add chain inet edge-proxy local-"],
            ),
            (
                "internal Local",
                int_local,
                vec!["service-ips { 10.43.0.10 . tcp . 80 : goto local-", "numgen random mod 1 vmap"],
                vec!["add chain inet edge-proxy service-", "__10.42.1.5/8080"],
            ),
            (
                "internal Local without local endpoints",
                int_local_none,
                vec!["no-endpoint-services { 10.43.0.10 . tcp . 80 : drop }"],
                vec!["add element inet edge-proxy service-ips {", "add chain inet edge-proxy endpoint-"],
            ),
            (
                "terminating fallback",
                terminating,
                vec!["numgen random mod 1 vmap { 0 : goto endpoint-", "__10.42.1.5/8080"],
                vec!["__10.42.0.5/8080"],
            ),
            (
                "udp",
                udp,
                vec![
                    "10.43.0.10 . udp . 53 : goto service-",
                    "meta l4proto udp dnat ip to 10.42.0.5:8080",
                    "/udp/http",
                ],
                vec![],
            ),
            (
                "ipv6",
                v6,
                vec![
                    "service-ips-v6 { fd00:43::a . tcp . 80 : goto service6-",
                    "ip6 daddr fd00:43::a tcp dport 80 ip6 saddr != fd00:42::/56 jump mark-for-masquerade",
                    "meta l4proto tcp dnat ip6 to [fd00:42::5]:8080",
                ],
                vec!["add element inet edge-proxy service-ips {"],
            ),
            (
                "headless",
                headless,
                vec![],
                vec!["add chain inet edge-proxy service-", "add element inet edge-proxy service-"],
            ),
        ];
        for (name, sp, want, unwanted) in cases {
            let text = script(std::slice::from_ref(&sp));
            for w in want {
                assert!(text.contains(w), "{name}: missing {w:?} in\n{text}");
            }
            for u in unwanted {
                assert!(!text.contains(u), "{name}: unexpected {u:?} in\n{text}");
            }
            // The netlink batch is built from the same plan and must encode.
            let mut p = Proxier::new(cfg(), Fake::default());
            let stats = p.sync(&[sp]).unwrap();
            assert!(stats.full, "{name}");
            p.netfilter().batches[0].encode(1).unwrap();
        }
    }

    #[test]
    fn external_chain_order_follows_upstream() {
        let mut s = web();
        s.node_port = Some(30080);
        s.external_policy_local = true;
        let texts = rule_texts(&cfg(), &[s]);
        let (_, ext) = chain_of(&texts, "external-", "default/web/tcp/http");
        let (local, _) = chain_of(&texts, "local-", "default/web/tcp/http");
        let (cluster, _) = chain_of(&texts, "service-", "default/web/tcp/http");
        assert_eq!(
            ext,
            vec![
                format!("ip saddr 10.42.0.0/16 goto {cluster}"),
                "fib saddr type local jump mark-for-masquerade".to_owned(),
                format!("fib saddr type local goto {cluster}"),
                format!("goto {local}"),
            ]
        );
    }

    #[test]
    fn full_sync_replaces_the_table_in_one_batch() {
        let mut p = Proxier::new(cfg(), Fake::default());
        let stats = p.sync(&[web()]).unwrap();
        assert_eq!((stats.full, stats.services), (true, 1));
        let b = &p.netfilter().batches[0];
        let what: Vec<&str> = b.messages().iter().map(|m| m.what.as_str()).collect();
        assert_eq!(&what[..3], &["NEWTABLE inet edge-proxy", "DELTABLE inet edge-proxy", "NEWTABLE inet edge-proxy"]);
        assert_eq!(stats.messages, b.len());
        // Map elements come last, after the chains they point at.
        assert!(what.last().unwrap().starts_with("NEWSETELEM inet edge-proxy service-ips"), "{what:?}");
    }

    fn chain_messages(b: &Batch) -> Vec<String> {
        b.messages().iter().map(|m| m.what.clone()).filter(|w| w.contains("CHAIN") || w.contains("RULE")).collect()
    }

    #[test]
    fn deltas_touch_only_the_changed_service() {
        let db = svc("db", "10.43.0.20", vec![ep("10.42.0.9", "node-a")]);
        let mut p = Proxier::new(cfg(), Fake::default());
        p.sync(&[web(), db.clone()]).unwrap();

        // Nothing changed (endpoints listed in another order): nothing sent, no apply at all.
        let mut shuffled = web();
        shuffled.endpoints.reverse();
        let stats = p.sync(&[db.clone(), shuffled]).unwrap();
        assert_eq!(stats, SyncStats { full: false, messages: 0, services: 0 });
        assert_eq!(p.netfilter().batches.len(), 1);

        // web: 10.42.0.5 replaced by 10.42.2.7.
        let mut moved = web();
        moved.endpoints[0] = ep("10.42.2.7", "node-c");
        let stats = p.sync(&[moved.clone(), db.clone()]).unwrap();
        assert_eq!((stats.full, stats.services), (false, 1));
        let b = p.netfilter().batches.last().unwrap().clone();
        let msgs = chain_messages(&b);
        assert!(msgs.iter().all(|m| m.contains("default/web/tcp/http")), "{msgs:#?}");
        let new_chain = msgs.iter().position(|m| m.starts_with("NEWCHAIN") && m.contains("10.42.2.7")).unwrap();
        let flush_svc = msgs.iter().position(|m| m.starts_with("DELRULE (flush)") && m.contains(" service-")).unwrap();
        let delete_old = msgs.iter().position(|m| m.starts_with("DELCHAIN") && m.contains("10.42.0.5")).unwrap();
        assert!(new_chain < flush_svc && flush_svc < delete_old, "{msgs:#?}");
        // The kept endpoint's chain is untouched; no map element changes (same service chain).
        assert!(!msgs.iter().any(|m| m.contains("10.42.1.5")), "{msgs:#?}");
        // Only the numgen rule's anonymous map has elements in this batch.
        assert!(!b.messages().iter().any(|m| m.what.contains("SETELEM") && !m.what.contains("__map")), "{msgs:#?}");

        // db removed: its element, then its chains (flushed before deleted).
        let stats = p.sync(&[moved]).unwrap();
        assert_eq!((stats.full, stats.services), (false, 1));
        let b = p.netfilter().batches.last().unwrap();
        let what: Vec<&str> = b.messages().iter().map(|m| m.what.as_str()).collect();
        assert!(what[0].starts_with("DELSETELEM inet edge-proxy service-ips"), "{what:?}");
        assert!(what.iter().all(|w| w.contains("SETELEM") || w.contains("default/db/tcp/http")), "{what:?}");
        let dels = what.iter().filter(|w| w.starts_with("DELCHAIN")).count();
        assert_eq!(dels, 2, "service and endpoint chain: {what:?}");
    }

    #[test]
    fn a_key_moving_between_services_is_deleted_before_it_is_added() {
        let mut p = Proxier::new(cfg(), Fake::default());
        p.sync(&[web()]).unwrap();
        let other = svc("other", "10.43.0.10", vec![ep("10.42.0.7", "node-a")]);
        p.sync(&[other]).unwrap();
        let b = p.netfilter().batches.last().unwrap();
        let elems: Vec<&str> =
            b.messages().iter().map(|m| m.what.as_str()).filter(|w| w.contains("service-ips")).collect();
        assert_eq!(elems.len(), 2, "{elems:?}");
        assert!(elems[0].starts_with("DELSETELEM") && elems[1].starts_with("NEWSETELEM"), "{elems:?}");
    }

    #[test]
    fn failures_fall_back_to_full_syncs() {
        let mut p = Proxier::new(cfg(), Fake::default());
        // A failed full sync: error, and the next one is full again.
        p.netfilter().fail_next = 1;
        assert!(p.sync(&[web()]).is_err());
        assert!(p.sync(&[web()]).unwrap().full);
        // A failed delta is replaced by a full sync within the same call.
        let mut changed = web();
        changed.endpoints.pop();
        p.netfilter().fail_next = 1;
        let stats = p.sync(&[changed.clone()]).unwrap();
        assert!(stats.full);
        // An affinity timeout change cannot be made in place.
        let mut sticky = changed.clone();
        sticky.affinity_timeout_seconds = Some(60);
        assert!(!p.sync(&[sticky.clone()]).unwrap().full);
        sticky.affinity_timeout_seconds = Some(120);
        assert!(p.sync(&[sticky]).unwrap().full);
        p.force_full_sync();
        assert!(p.sync(&[changed]).unwrap().full);
    }

    #[test]
    fn the_plan_cache_replans_only_changed_service_ports() {
        use crate::plan::PlanCache;
        use std::sync::Arc;
        let s = settings(&cfg());
        let db = svc("db", "10.43.0.20", vec![ep("10.42.0.9", "node-a")]);
        let mut moved = web();
        moved.endpoints[0] = ep("10.42.2.7", "node-c");
        let other = svc("other", "10.43.0.30", vec![ep("10.42.0.7", "node-a")]);
        // (case, desired after [web, db], services whose plan is reused as is)
        let cases: Vec<(&str, Vec<ServicePort>, Vec<&str>)> = vec![
            ("unchanged", vec![web(), db.clone()], vec!["web", "db"]),
            ("reordered", vec![db.clone(), web()], vec!["web", "db"]),
            ("one changed", vec![moved.clone(), db.clone()], vec!["db"]),
            ("one replaced", vec![other.clone(), db.clone()], vec!["db"]),
            ("one removed", vec![db.clone()], vec!["db"]),
        ];
        for (name, desired, reused) in cases {
            let mut cache = PlanCache::default();
            let first = cache.plan(&s, &[web(), db.clone()]);
            let plan = cache.plan(&s, &desired);
            assert_eq!(plan, plan_services(&s, &desired), "{name}: same as planning afresh");
            for (key, p) in &plan.services {
                let same = first.services.get(key).is_some_and(|f| Arc::ptr_eq(f, p));
                let want = reused.iter().any(|r| key.contains(&format!("/{r}/")));
                assert_eq!(same, want, "{name}: {key}");
            }
        }
    }

    #[test]
    fn drift_is_any_difference_from_the_last_applied_state() {
        let mut p = Proxier::new(cfg(), Fake::default());
        assert!(p.drifted().unwrap(), "nothing applied yet");
        let mut sticky = web();
        sticky.affinity_timeout_seconds = Some(60);
        p.sync(&[sticky]).unwrap();
        let good = p.expected_state().unwrap();
        assert!(good.chains.contains_key("services") && good.sets.iter().any(|s| s.starts_with("affinity-")));
        let (svc_chain, _) = good.chains.iter().find(|(k, _)| k.starts_with("service-")).unwrap();
        let svc_chain = svc_chain.clone();

        let mut flushed = good.clone();
        flushed.chains.get_mut(&svc_chain).unwrap().clear();
        let mut no_elem = good.clone();
        no_elem.elements.get_mut("service-ips").unwrap().clear();
        let mut no_chain = good.clone();
        no_chain.chains.remove("masquerading");
        let mut extra = good.clone();
        extra.sets.insert("stranger".into());
        let cases = [
            (Some(good.clone()), false),
            (Some(flushed), true),
            (Some(no_elem), true),
            (Some(no_chain), true),
            (Some(extra), true),
            (None, true),
        ];
        for (i, (state, want)) in cases.into_iter().enumerate() {
            p.netfilter().state = state;
            assert_eq!(p.drifted().unwrap(), want, "case {i}");
        }
    }
}
