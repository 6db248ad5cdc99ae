//! The zone snapshot: every name of the cluster domain built once from Services and EndpointSlices, so that a
//! query is a hash lookup. Pod names (`a-b-c-d.ns.pod.D`) are not stored; they are derived from the query itself.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::addr_names::{dashed, parse_dashed};

/// TTL of cluster records and of negative answers inside the cluster domain (CoreDNS's kubernetes plugin default).
pub const CLUSTER_TTL: u32 = 5;
/// The version of the Kubernetes DNS schema served under `dns-version.<domain>`.
pub const SCHEMA_VERSION: &str = "1.0.1";

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const FALLBACK_DOMAIN: &str = "cluster.local";

/// An immutable snapshot of the cluster's records, rebuilt by the agent when Services/EndpointSlices change.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    origin_labels: Vec<String>,
    /// Keyed by the lowercased name relative to the origin ("" is the apex, "web.default.svc" a Service).
    nodes: HashMap<String, Node>,
    ptr: HashMap<IpAddr, Name>,
    serial: u32,
}

/// The records of one name. A node with no records is an empty non-terminal (answered NODATA, not NXDOMAIN).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Node {
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    pub cname: Option<Name>,
    pub srv: Vec<SrvTarget>,
    pub txt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SrvTarget {
    pub port: u16,
    pub weight: u16,
    pub target: Name,
}

impl Node {
    fn push_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) if !self.a.contains(&v4) => self.a.push(v4),
            IpAddr::V6(v6) if !self.aaaa.contains(&v6) => self.aaaa.push(v6),
            _ => {}
        }
    }

    fn push_srv(&mut self, port: u16, target: Name) {
        if !self.srv.iter().any(|s| s.port == port && s.target == target) {
            self.srv.push(SrvTarget { port, weight: 0, target });
        }
    }
}

impl Zone {
    /// domain = "cluster.local"; services: all namespaces; slices: discovery/v1, all namespaces.
    pub fn build(domain: &str, services: &[Service], slices: &[EndpointSlice]) -> Zone {
        let origin = match Name::from_ascii(format!("{}.", domain.trim_end_matches('.').to_ascii_lowercase())) {
            Ok(name) if !name.is_root() => name,
            _ => {
                tracing::warn!(domain, "invalid cluster domain, serving {FALLBACK_DOMAIN}");
                Name::from_ascii(format!("{FALLBACK_DOMAIN}.")).unwrap_or_else(|_| Name::root())
            }
        };
        let mut builder = Builder { origin: origin.clone(), nodes: HashMap::new(), ptr: HashMap::new() };
        for fixed in ["", "svc", "pod"] {
            builder.node(fixed);
        }
        builder.node("dns-version").txt = Some(SCHEMA_VERSION.to_owned());

        let mut sorted: Vec<&Service> = services.iter().collect();
        sorted.sort_by_key(|s| (namespace_of(s), s.metadata.name.as_deref().unwrap_or_default()));
        let mut slices_by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in slices {
            if let Some(service) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) {
                let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
                slices_by_service.entry((ns, service.as_str())).or_default().push(slice);
            }
        }
        // ClusterIPs first: a PTR for an address that is both a ClusterIP and an endpoint names the Service.
        for service in &sorted {
            builder.add_service_ips(service);
        }
        for service in &sorted {
            let key = (namespace_of(service), service.metadata.name.as_deref().unwrap_or_default());
            let service_slices = slices_by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
            builder.add_endpoints(service, service_slices);
        }
        builder.finish()
    }

    /// The lowercased origin (`cluster.local.`).
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    pub(crate) fn serial(&self) -> u32 {
        self.serial
    }

    /// The labels of `labels` below the origin, or `None` when the name is outside the cluster domain.
    pub(crate) fn relative<'l>(&self, labels: &'l [String]) -> Option<&'l [String]> {
        let n = self.origin_labels.len();
        if labels.len() < n || labels[labels.len() - n..] != self.origin_labels[..] {
            return None;
        }
        Some(&labels[..labels.len() - n])
    }

    /// The records of a name given relative to the origin; `None` means the name does not exist (NXDOMAIN).
    pub(crate) fn lookup(&self, relative: &[String]) -> Option<Cow<'_, Node>> {
        if let Some(node) = self.nodes.get(&relative.join(".")) {
            return Some(Cow::Borrowed(node));
        }
        match relative {
            // Any namespace exists under pod.D: pod names are not checked against the API ("pods insecure").
            [_ns, pod] if pod == "pod" => Some(Cow::Owned(Node::default())),
            [ip, _ns, pod] if pod == "pod" => {
                let mut node = Node::default();
                node.push_ip(parse_dashed(ip)?);
                Some(Cow::Owned(node))
            }
            _ => None,
        }
    }

    pub(crate) fn ptr(&self, ip: &IpAddr) -> Option<&Name> {
        self.ptr.get(ip)
    }

    /// An absolute name for a name relative to the origin.
    pub(crate) fn absolute(&self, relative: &str) -> Option<Name> {
        absolute(&self.origin, relative)
    }
}

fn namespace_of(service: &Service) -> &str {
    service.metadata.namespace.as_deref().unwrap_or("default")
}

fn absolute(origin: &Name, relative: &str) -> Option<Name> {
    if relative.is_empty() {
        return Some(origin.clone());
    }
    Name::from_ascii(relative).ok()?.append_domain(origin).ok()
}

struct Builder {
    origin: Name,
    nodes: HashMap<String, Node>,
    ptr: HashMap<IpAddr, Name>,
}

impl Builder {
    fn node(&mut self, relative: &str) -> &mut Node {
        self.nodes.entry(relative.to_owned()).or_default()
    }

    fn add_service_ips(&mut self, service: &Service) {
        let (Some(name), Some(spec)) = (service.metadata.name.as_deref(), service.spec.as_ref()) else {
            return;
        };
        let base = format!("{}.{}.svc", name, namespace_of(service)).to_ascii_lowercase();
        let Some(base_name) = absolute(&self.origin, &base) else {
            tracing::warn!(service = base, "service name is not a DNS name, skipped");
            return;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            let target = spec.external_name.as_deref().unwrap_or_default().trim_end_matches('.');
            match Name::from_ascii(format!("{target}.")) {
                Ok(target) if !target.is_root() => {
                    self.node(&base).cname = Some(target.clone());
                    self.add_service_srv(&base, service, &target);
                }
                _ => tracing::warn!(service = base, target, "invalid externalName, skipped"),
            }
            return;
        }
        if is_headless(service) {
            return;
        }
        let ips: Vec<IpAddr> = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
            _ => spec.cluster_ip.iter().filter_map(|ip| ip.parse().ok()).collect(),
        };
        let node = self.node(&base);
        for ip in &ips {
            node.push_ip(*ip);
        }
        for ip in ips {
            self.ptr.entry(ip).or_insert_with(|| base_name.clone());
        }
        self.add_service_srv(&base, service, &base_name);
    }

    fn add_service_srv(&mut self, base: &str, service: &Service, target: &Name) {
        let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
        for port in ports.into_iter().flatten() {
            let (Some(port_name), Ok(number)) = (port.name.as_deref(), u16::try_from(port.port)) else {
                continue;
            };
            if let Some(key) = srv_key(port_name, port.protocol.as_deref(), base) {
                self.node(&key).push_srv(number, target.clone());
            }
        }
    }

    /// Endpoint names (`hostname-or-dashed-ip.svc.ns.svc.D`) for every Service, so that every PTR target resolves;
    /// the Service name itself and per-endpoint SRV records only for headless Services.
    fn add_endpoints(&mut self, service: &Service, slices: &[&EndpointSlice]) {
        let (Some(name), Some(spec)) = (service.metadata.name.as_deref(), service.spec.as_ref()) else {
            return;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            return;
        }
        let headless = is_headless(service);
        let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
        let base = format!("{}.{}.svc", name, namespace_of(service)).to_ascii_lowercase();
        for slice in slices {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            for endpoint in &slice.endpoints {
                // A nil ready condition means ready (discovery/v1 API docs).
                let ready = endpoint.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready && !publish_not_ready {
                    continue;
                }
                for ip in endpoint.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                    let label = match endpoint.hostname.as_deref() {
                        Some(hostname) if !hostname.is_empty() => hostname.to_ascii_lowercase(),
                        _ => dashed(ip),
                    };
                    let key = format!("{label}.{base}");
                    let Some(endpoint_name) = absolute(&self.origin, &key) else {
                        tracing::warn!(endpoint = key, "endpoint name is not a DNS name, skipped");
                        continue;
                    };
                    self.node(&key).push_ip(ip);
                    self.ptr.entry(ip).or_insert_with(|| endpoint_name.clone());
                    if !headless {
                        continue;
                    }
                    self.node(&base).push_ip(ip);
                    for port in slice.ports.iter().flatten() {
                        let (Some(port_name), Some(number)) =
                            (port.name.as_deref(), port.port.and_then(|p| u16::try_from(p).ok()))
                        else {
                            continue;
                        };
                        if let Some(srv) = srv_key(port_name, port.protocol.as_deref(), &base) {
                            self.node(&srv).push_srv(number, endpoint_name.clone());
                        }
                    }
                }
            }
        }
    }

    fn finish(mut self) -> Zone {
        // Every ancestor of a name exists (empty non-terminals: `_tcp.web.default.svc`, `default.svc`).
        let keys: Vec<String> = self.nodes.keys().cloned().collect();
        for key in keys {
            let mut rest = key.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                self.nodes.entry(parent.to_owned()).or_default();
                rest = parent;
            }
        }
        for node in self.nodes.values_mut() {
            // Equal weights summing to about 100, like CoreDNS's split of one priority.
            let weight = u16::try_from(100 / node.srv.len().max(1)).unwrap_or(1).max(1);
            for srv in &mut node.srv {
                srv.weight = weight;
            }
        }
        let origin_labels = self.origin.iter().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect();
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u32::try_from(d.as_secs() % u64::from(u32::MAX)).unwrap_or(1))
            .unwrap_or(1);
        Zone { origin: self.origin, origin_labels, nodes: self.nodes, ptr: self.ptr, serial }
    }
}

fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

fn srv_key(port_name: &str, protocol: Option<&str>, base: &str) -> Option<String> {
    if port_name.is_empty() {
        return None;
    }
    let proto = protocol.unwrap_or("TCP").to_ascii_lowercase();
    Some(format!("_{}._{proto}.{base}", port_name.to_ascii_lowercase()))
}
