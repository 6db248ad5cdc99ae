//! The plan: the whole ruleset as plain data, computed from the configuration and the
//! service ports without touching the kernel. It is what gets sent (full or as a difference
//! against the last applied plan), printed as nft text, and compared with a dump.
//!
//! The shape is kube-proxy's nftables mode (pkg/proxy/nftables/proxier.go) in one `inet`
//! table: one table for both IP families keeps install, drift checks and uninstall to a
//! single object, and `inet` base chains see IPv4 and IPv6 alike; per-family maps and chains
//! keep keys and DNAT targets of one family apart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use edge_nft::{priority, ChainType, Hook};

use crate::cidr::Cidr;
use crate::endpoints::categorize;
use crate::model::{Endpoint, Protocol, ServicePort};
use crate::names::{endpoint_names, ServiceNames};
use crate::stmt::{Stmt, MARK_MASQ_CHAIN};

pub(crate) const SERVICES_CHAIN: &str = "services";
pub(crate) const ENDPOINTS_CHECK_CHAIN: &str = "endpoints-check";
pub(crate) const MASQUERADING_CHAIN: &str = "masquerading";
pub(crate) const REJECT_CHAIN: &str = "reject-chain";
/// Filter chains run before DNAT so that they see the service address (upstream: dstnat-10).
const FILTER_PRIORITY: i32 = priority::DSTNAT - 10;

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Fam {
    V4,
    V6,
}

impl Fam {
    pub const BOTH: [Fam; 2] = [Fam::V4, Fam::V6];

    pub fn of(ip: &IpAddr) -> Fam {
        if ip.is_ipv4() {
            Fam::V4
        } else {
            Fam::V6
        }
    }

    pub fn is_v6(self) -> bool {
        self == Fam::V6
    }

    /// `ip` or `ip6`, nft's protocol keyword.
    pub fn ip(self) -> &'static str {
        match self {
            Fam::V4 => "ip",
            Fam::V6 => "ip6",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Fam::V4 => "",
            Fam::V6 => "-v6",
        }
    }
}

/// The verdict maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum MapKind {
    /// ClusterIP, LoadBalancer and external IPs → service or external chain.
    ServiceIps,
    /// `proto . port` of NodePorts → external chain.
    ServiceNodePorts,
    /// Service addresses without usable endpoints → reject or drop.
    NoEndpointServices,
    /// NodePorts without usable endpoints → reject or drop.
    NoEndpointNodePorts,
}

/// One verdict map of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct MapId {
    pub kind: MapKind,
    pub fam: Fam,
}

impl MapId {
    pub fn name(self) -> String {
        let base = match self.kind {
            MapKind::ServiceIps => "service-ips",
            MapKind::ServiceNodePorts => "service-nodeports",
            MapKind::NoEndpointServices => "no-endpoint-services",
            MapKind::NoEndpointNodePorts => "no-endpoint-nodeports",
        };
        format!("{base}{}", self.fam.suffix())
    }

    /// Whether the key starts with an address (else `proto . port`).
    pub fn keyed_by_address(self) -> bool {
        matches!(self.kind, MapKind::ServiceIps | MapKind::NoEndpointServices)
    }

    pub fn all() -> Vec<MapId> {
        let kinds =
            [MapKind::ServiceIps, MapKind::ServiceNodePorts, MapKind::NoEndpointServices, MapKind::NoEndpointNodePorts];
        Fam::BOTH.iter().flat_map(|fam| kinds.iter().map(move |kind| MapId { kind: *kind, fam: *fam })).collect()
    }
}

/// The name of the set of addresses NodePorts answer on.
pub(crate) fn nodeport_ips_set(fam: Fam) -> String {
    format!("nodeport-ips{}", fam.suffix())
}

/// A verdict map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ElemKey {
    Addr { ip: IpAddr, proto: Protocol, port: u16 },
    Port { proto: Protocol, port: u16 },
}

/// A verdict map value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    Goto(String),
    Drop,
}

/// One element of one verdict map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MapElem {
    pub map: MapId,
    pub key: ElemKey,
    pub target: Target,
}

/// A per-endpoint affinity set: source addresses seen recently, with a timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AffinitySet {
    pub name: String,
    pub fam: Fam,
    pub timeout_seconds: u32,
}

/// What makes a chain a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BaseHook {
    pub kind: ChainType,
    pub hook: Hook,
    pub priority: i32,
}

/// A chain and its rules, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainPlan {
    pub name: String,
    pub base: Option<BaseHook>,
    pub rules: Vec<Stmt>,
}

impl ChainPlan {
    fn regular(name: impl Into<String>, rules: Vec<Stmt>) -> Self {
        ChainPlan { name: name.into(), base: None, rules }
    }

    /// Whether one of its rules brings an anonymous set (numgen's inline map).
    pub fn binds_anonymous_set(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, Stmt::Numgen(_)))
    }
}

/// Everything one service port owns in one family: removing it removes exactly this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServicePlan {
    pub sets: Vec<AffinitySet>,
    /// Endpoint chains first, then the policy chains, then the external chain.
    pub chains: Vec<ChainPlan>,
    pub elements: Vec<MapElem>,
}

/// The per-service part of the ruleset, keyed by `family ns/name/proto/port`. Service plans
/// are shared with the [`PlanCache`] and the previous plan, so that an unchanged service
/// costs neither planning nor a deep comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub services: BTreeMap<Arc<str>, Arc<ServicePlan>>,
}

/// What was planned for each service port value last time: a sync plans only the service
/// ports that are new or differ in any field. Valid for one [`Settings`].
#[derive(Debug, Default)]
pub(crate) struct PlanCache {
    /// In the order of the last `desired`, which callers usually repeat.
    entries: Vec<(ServicePort, Planned)>,
}

/// One service port's plans, per family, with their keys in [`Plan::services`].
type Planned = Vec<(Arc<str>, Arc<ServicePlan>)>;

fn same_identity(a: &ServicePort, b: &ServicePort) -> bool {
    (&a.namespace, &a.name, &a.port_name, a.protocol) == (&b.namespace, &b.name, &b.port_name, b.protocol)
}

fn hash_of(sp: &ServicePort) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sp.hash(&mut h);
    h.finish()
}

impl PlanCache {
    /// The plan for `desired`, reusing what is cached; afterwards the cache holds exactly
    /// the service ports of `desired`.
    pub fn plan(&mut self, s: &Settings, desired: &[ServicePort]) -> Plan {
        let mut old: Vec<Option<(ServicePort, Planned)>> = self.entries.drain(..).map(Some).collect();
        // Same position, same value: the common case costs one comparison. Anything else
        // (reordered, added, removed) is looked up by hash.
        let mut by_hash: Option<HashMap<u64, Vec<usize>>> = None;
        let mut take = |i: usize, sp: &ServicePort| -> Option<(ServicePort, Planned)> {
            match old.get(i).and_then(Option::as_ref) {
                Some(e) if e.0 == *sp => return old[i].take(),
                // The same service port, changed: it is nowhere else either.
                Some(e) if same_identity(&e.0, sp) => return None,
                _ => {}
            }
            let index = by_hash.get_or_insert_with(|| {
                let mut m: HashMap<u64, Vec<usize>> = HashMap::new();
                for (j, e) in old.iter().enumerate() {
                    if let Some(e) = e {
                        m.entry(hash_of(&e.0)).or_default().push(j);
                    }
                }
                m
            });
            let j = *index.get(&hash_of(sp))?.iter().find(|j| old[**j].as_ref().is_some_and(|e| e.0 == *sp))?;
            old[j].take()
        };
        let mut entries = Vec::with_capacity(desired.len());
        let mut services = BTreeMap::new();
        for (i, sp) in desired.iter().enumerate() {
            let entry = take(i, sp).unwrap_or_else(|| (sp.clone(), plan_service_port(s, sp)));
            for (key, p) in &entry.1 {
                services.insert(Arc::clone(key), Arc::clone(p));
            }
            entries.push(entry);
        }
        self.entries = entries;
        resolve_key_conflicts(&mut services);
        Plan { services }
    }
}

/// The per-family plans of one service port.
fn plan_service_port(s: &Settings, sp: &ServicePort) -> Planned {
    Fam::BOTH
        .into_iter()
        .filter_map(|fam| {
            let p = plan_service(s, sp, fam)?;
            let key = format!("{fam:?} {}/{}/{}/{}", sp.namespace, sp.name, sp.protocol.as_str(), sp.port_name);
            Some((Arc::from(key), Arc::new(p)))
        })
        .collect()
}

/// Two services claiming one map key (a shared externalIP and port, say) would make the
/// kernel refuse the whole batch: the first in key order keeps it. Only the losers' plans
/// are copied (the cached ones stay whole, to be resolved again next time).
fn resolve_key_conflicts(services: &mut BTreeMap<Arc<str>, Arc<ServicePlan>>) {
    let mut seen = HashSet::with_capacity(services.len() * 2);
    for (key, p) in services.iter_mut() {
        let lost: Vec<usize> =
            p.elements.iter().enumerate().filter(|(_, e)| !seen.insert((e.map, e.key))).map(|(i, _)| i).collect();
        if lost.is_empty() {
            continue;
        }
        let mut index = 0;
        Arc::make_mut(p).elements.retain(|e| {
            let keep = !lost.contains(&index);
            index += 1;
            if !keep {
                tracing::warn!(service = %key, map = %e.map.name(), key = ?e.key, "map key already taken by another service");
            }
            keep
        });
    }
}

/// The fixed part of the ruleset: base chains, dispatch chains, maps, NodePort addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaticPlan {
    pub chains: Vec<ChainPlan>,
    /// `(family, addresses)` for the `nodeport-ips` sets (absent when NodePorts use fib).
    pub nodeport_ips: Vec<(Fam, Vec<IpAddr>)>,
}

/// The configuration, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub node_name: String,
    pub node_ips: Vec<IpAddr>,
    pub cluster_cidrs: Vec<Cidr>,
}

impl Settings {
    fn cluster_cidr(&self, fam: Fam) -> Option<Cidr> {
        self.cluster_cidrs.iter().copied().find(|c| Fam::of(&c.net) == fam)
    }

    fn node_ips(&self, fam: Fam) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.node_ips.iter().copied().filter(|ip| Fam::of(ip) == fam).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The static part: upstream's base chains, jump chains and dispatch rules.
pub(crate) fn static_plan(s: &Settings) -> StaticPlan {
    let base = |name: &str, kind, hook, priority, rules| ChainPlan {
        name: name.into(),
        base: Some(BaseHook { kind, hook, priority }),
        rules,
    };
    let check = || vec![Stmt::JumpIfNew(ENDPOINTS_CHECK_CHAIN.into())];
    // Without node addresses NodePorts answer on every local address, as upstream's default.
    let use_set = !s.node_ips.is_empty();
    let mut services = Vec::new();
    let mut endpoints_check = Vec::new();
    let mut nodeport_ips = Vec::new();
    for fam in Fam::BOTH {
        let set = use_set.then(|| nodeport_ips_set(fam));
        let map = |kind| MapId { kind, fam }.name();
        services.push(Stmt::DispatchIps { fam, map: map(MapKind::ServiceIps) });
        services.push(Stmt::DispatchNodePorts { fam, map: map(MapKind::ServiceNodePorts), node_ips: set.clone() });
        endpoints_check.push(Stmt::DispatchIps { fam, map: map(MapKind::NoEndpointServices) });
        endpoints_check.push(Stmt::DispatchNodePorts { fam, map: map(MapKind::NoEndpointNodePorts), node_ips: set });
        if use_set {
            nodeport_ips.push((fam, s.node_ips(fam)));
        }
    }
    let chains = vec![
        // REJECT is only valid in input, forward and output (before kernel 5.9 anywhere else).
        base("filter-input", ChainType::Filter, Hook::Input, FILTER_PRIORITY, check()),
        base("filter-forward", ChainType::Filter, Hook::Forward, FILTER_PRIORITY, check()),
        base("filter-output", ChainType::Filter, Hook::Output, FILTER_PRIORITY, check()),
        base(
            "nat-prerouting",
            ChainType::Nat,
            Hook::Prerouting,
            priority::DSTNAT,
            vec![Stmt::Jump(SERVICES_CHAIN.into())],
        ),
        base("nat-output", ChainType::Nat, Hook::Output, priority::DSTNAT, vec![Stmt::Jump(SERVICES_CHAIN.into())]),
        base(
            "nat-postrouting",
            ChainType::Nat,
            Hook::Postrouting,
            priority::SRCNAT,
            vec![Stmt::Jump(MASQUERADING_CHAIN.into())],
        ),
        ChainPlan::regular(MARK_MASQ_CHAIN, vec![Stmt::SetMasqMark]),
        ChainPlan::regular(MASQUERADING_CHAIN, vec![Stmt::ReturnIfUnmarked, Stmt::ClearMasqMark, Stmt::Masquerade]),
        ChainPlan::regular(REJECT_CHAIN, vec![Stmt::Reject]),
        ChainPlan::regular(ENDPOINTS_CHECK_CHAIN, endpoints_check),
        ChainPlan::regular(SERVICES_CHAIN, services),
    ];
    StaticPlan { chains, nodeport_ips }
}

/// The per-service part for all `desired` service ports, planned afresh.
pub(crate) fn plan_services(s: &Settings, desired: &[ServicePort]) -> Plan {
    PlanCache::default().plan(s, desired)
}

/// kube-proxy's per-service-port rules for one family, or `None` when the service port has
/// no ClusterIP of that family (headless, ExternalName, or single-stack of the other family).
fn plan_service(s: &Settings, sp: &ServicePort, fam: Fam) -> Option<ServicePlan> {
    let cluster_ip = sp.cluster_ips.iter().copied().find(|ip| Fam::of(ip) == fam)?;
    let of_fam = |v: &[IpAddr]| -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = v.iter().copied().filter(|ip| Fam::of(ip) == fam).collect();
        out.dedup();
        out
    };
    let lb_ips = of_fam(&sp.load_balancer_ips);
    let external_ips = of_fam(&sp.external_ips);
    // Sorted so that slice order never reshuffles numgen arms (no spurious deltas).
    let mut endpoints: Vec<&Endpoint> = sp.endpoints.iter().filter(|e| Fam::of(&e.ip) == fam).collect();
    endpoints.sort_by_key(|e| (e.ip, e.port));
    endpoints.dedup_by_key(|e| (e.ip, e.port));

    let externally_accessible = sp.node_port.is_some() || !lb_ips.is_empty() || !external_ips.is_empty();
    let external_local = sp.external_policy_local && externally_accessible;
    let internal_local = sp.internal_policy_local;
    let uses_cluster = !internal_local || externally_accessible;
    let uses_local = internal_local || external_local;
    let eps = categorize(&endpoints, uses_cluster, uses_local, &s.node_name);

    let names = ServiceNames::new(sp, fam);
    let uses_cluster_chain = uses_cluster && !eps.cluster.is_empty();
    let uses_local_chain = uses_local && !eps.local.is_empty();
    let (internal_chain, has_internal) = if internal_local {
        (&names.local, eps.has_any && !eps.local.is_empty())
    } else {
        (&names.cluster, eps.has_any)
    };
    let (external_policy_chain, has_external) = if external_local {
        (&names.local, eps.has_any && !eps.local.is_empty())
    } else {
        (&names.cluster, eps.has_any)
    };
    let uses_external_chain = eps.has_any && externally_accessible;
    // No endpoints at all: reject at once. Endpoints elsewhere but none for a Local policy: drop.
    let filter_target = if eps.has_any { Target::Drop } else { Target::Goto(REJECT_CHAIN.into()) };

    let mut p = ServicePlan::default();
    let mut elem = |kind, key, target| p.elements.push(MapElem { map: MapId { kind, fam }, key, target });
    let addr_key = |ip| ElemKey::Addr { ip, proto: sp.protocol, port: sp.port };
    if has_internal {
        elem(MapKind::ServiceIps, addr_key(cluster_ip), Target::Goto(internal_chain.clone()));
    } else {
        elem(MapKind::NoEndpointServices, addr_key(cluster_ip), filter_target.clone());
    }
    for ip in external_ips.iter().chain(&lb_ips) {
        if eps.has_any {
            elem(MapKind::ServiceIps, addr_key(*ip), Target::Goto(names.external.clone()));
        }
        if !has_external {
            elem(MapKind::NoEndpointServices, addr_key(*ip), filter_target.clone());
        }
    }
    if let Some(node_port) = sp.node_port {
        let key = ElemKey::Port { proto: sp.protocol, port: node_port };
        if eps.has_any {
            elem(MapKind::ServiceNodePorts, key, Target::Goto(names.external.clone()));
        }
        if !has_external {
            elem(MapKind::NoEndpointNodePorts, key, filter_target.clone());
        }
    }

    let endpoint_names_of = |e: &Endpoint| endpoint_names(sp, fam, e.ip, e.port);
    for e in &eps.all {
        let (chain, set) = endpoint_names_of(e);
        let mut rules = vec![Stmt::MasqIfSource(e.ip)];
        if let Some(timeout_seconds) = sp.affinity_timeout_seconds {
            p.sets.push(AffinitySet { name: set.clone(), fam, timeout_seconds });
            rules.push(Stmt::AffinityUpdate { fam, set });
        }
        rules.push(Stmt::Dnat { proto: sp.protocol, to: std::net::SocketAddr::new(e.ip, e.port) });
        p.chains.push(ChainPlan::regular(chain, rules));
    }

    let cluster_cidr = s.cluster_cidr(fam);
    let policy_chain = |name: &String, members: &[&Endpoint]| {
        let mut rules = Vec::new();
        // Off-cluster clients of the ClusterIP are masqueraded: the reply may leave by another node.
        if has_internal && name == internal_chain {
            if let Some(cluster) = cluster_cidr {
                rules.push(Stmt::MasqOffCluster { daddr: cluster_ip, proto: sp.protocol, port: sp.port, cluster });
            }
        }
        if sp.affinity_timeout_seconds.is_some() {
            for e in members {
                let (chain, set) = endpoint_names_of(e);
                rules.push(Stmt::AffinityGoto { fam, set, chain });
            }
        }
        rules.push(Stmt::Numgen(members.iter().map(|e| endpoint_names_of(e).0).collect()));
        ChainPlan::regular(name.clone(), rules)
    };
    if uses_cluster_chain {
        p.chains.push(policy_chain(&names.cluster, &eps.cluster));
    }
    if uses_local_chain {
        p.chains.push(policy_chain(&names.local, &eps.local));
    }
    if uses_external_chain {
        let mut rules = Vec::new();
        if !external_local {
            // Cluster policy may cross nodes, so the reply must come back through this one.
            rules.push(Stmt::Jump(MARK_MASQ_CHAIN.into()));
        } else {
            // Pods reaching an external address get every endpoint, as if they had gone out
            // to the load balancer and back; the node itself too, masqueraded.
            if let Some(cluster) = cluster_cidr {
                rules.push(Stmt::GotoIfFromCluster { cluster, chain: names.cluster.clone() });
            }
            rules.push(Stmt::MasqIfLocalSource);
            rules.push(Stmt::GotoIfLocalSource(names.cluster.clone()));
        }
        if has_external {
            rules.push(Stmt::Goto(external_policy_chain.clone()));
        }
        p.chains.push(ChainPlan::regular(names.external.clone(), rules));
    }
    Some(p)
}
