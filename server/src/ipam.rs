//! Address allocation: Service cluster IPs from `--service-cidr`, NodePorts from 30000–32767 and
//! node pod CIDRs from `--cluster-cidr`.
//!
//! The stored objects are the record of what is allocated: at start the pools are rebuilt from the
//! Services and Nodes in the store, so nothing is written twice and a crash between allocating and
//! storing leaks nothing. Allocation and the object's write happen while the caller holds the
//! reservation, so two creates never get the same address.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::api::status::FieldError;
use crate::store::Store;

pub const NODE_PORT_RANGE: (u16, u16) = (30000, 32767);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = s.split_once('/').ok_or_else(|| format!("{s:?} is not a CIDR"))?;
        let base: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address (IPv6 ranges are not supported yet)"))?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| format!("{s:?}: bad prefix length"))?;
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Ok(Cidr { base: Ipv4Addr::from(u32::from(base) & mask), prefix })
    }

    fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
        u32::from(ip) & mask == u32::from(self.base)
    }

    /// The n-th address of the range.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(u32::from(self.base).wrapping_add(n as u32)))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// A set of integers [lo, hi] with the taken ones; hands out the lowest free one after a moving
/// cursor so that a just-released address is not reused at once.
#[derive(Debug)]
struct Pool {
    lo: u64,
    hi: u64,
    taken: BTreeSet<u64>,
    /// Given out only when asked for by value (the cluster DNS address).
    reserved: BTreeSet<u64>,
    next: u64,
}

impl Pool {
    fn new(lo: u64, hi: u64) -> Pool {
        Pool { lo, hi, taken: BTreeSet::new(), reserved: BTreeSet::new(), next: lo }
    }

    fn take(&mut self, n: u64) -> bool {
        (self.lo..=self.hi).contains(&n) && self.taken.insert(n)
    }

    fn release(&mut self, n: u64) {
        self.taken.remove(&n);
    }

    fn take_next(&mut self) -> Option<u64> {
        let span = self.hi - self.lo + 1;
        for i in 0..span {
            let n = self.lo + (self.next - self.lo + i) % span;
            if !self.reserved.contains(&n) && self.taken.insert(n) {
                self.next = if n == self.hi { self.lo } else { n + 1 };
                return Some(n);
            }
        }
        None
    }
}

pub struct Ipam {
    pub service_cidr: Cidr,
    pub cluster_cidr: Cidr,
    pub node_cidr_prefix: u8,
    service_ips: Mutex<Pool>,
    node_ports: Mutex<Pool>,
    pod_cidrs: Mutex<Pool>,
}

/// Addresses taken by one object, to give back if its write fails or when it is deleted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Taken {
    pub service_ips: Vec<u64>,
    pub node_ports: Vec<u64>,
    pub pod_cidrs: Vec<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ipam {
    /// `reserved` addresses of the service range (the cluster DNS IP) are only given when requested.
    pub fn new(
        service_cidr: &str,
        cluster_cidr: &str,
        node_cidr_prefix: u8,
        reserved: &[IpAddr],
    ) -> Result<Ipam, String> {
        let service_cidr = Cidr::parse(service_cidr)?;
        let cluster_cidr = Cidr::parse(cluster_cidr)?;
        if node_cidr_prefix < cluster_cidr.prefix || node_cidr_prefix > 30 {
            return Err(format!("node CIDR size /{node_cidr_prefix} does not fit in the cluster CIDR {cluster_cidr}"));
        }
        if service_cidr.size() < 4 {
            return Err(format!("service CIDR {service_cidr} is too small"));
        }
        let nodes = 1u64 << (node_cidr_prefix - cluster_cidr.prefix);
        let mut service_ips = Pool::new(1, service_cidr.size() - 2);
        for ip in reserved {
            if let IpAddr::V4(v4) = ip {
                if service_cidr.contains(*v4) {
                    service_ips.reserved.insert((u32::from(*v4) - u32::from(service_cidr.base)) as u64);
                }
            }
        }
        Ok(Ipam {
            // The network address and the broadcast address are never handed out.
            service_ips: Mutex::new(service_ips),
            node_ports: Mutex::new(Pool::new(NODE_PORT_RANGE.0 as u64, NODE_PORT_RANGE.1 as u64)),
            pod_cidrs: Mutex::new(Pool::new(0, nodes - 1)),
            service_cidr,
            cluster_cidr,
            node_cidr_prefix,
        })
    }

    /// Marks what the stored Services and Nodes already hold.
    pub fn load(&self, store: &Store) {
        for (_, s) in store.list("services", None, None).0 {
            let t = self.taken_by_service(&s.value());
            let mut ips = lock(&self.service_ips);
            t.service_ips.iter().for_each(|n| {
                ips.take(*n);
            });
            drop(ips);
            let mut ports = lock(&self.node_ports);
            t.node_ports.iter().for_each(|n| {
                ports.take(*n);
            });
        }
        for (_, s) in store.list("nodes", None, None).0 {
            for n in self.taken_by_node(&s.value()).pod_cidrs {
                lock(&self.pod_cidrs).take(n);
            }
        }
    }

    pub fn release(&self, t: &Taken) {
        let mut ips = lock(&self.service_ips);
        t.service_ips.iter().for_each(|n| ips.release(*n));
        drop(ips);
        let mut ports = lock(&self.node_ports);
        t.node_ports.iter().for_each(|n| ports.release(*n));
        drop(ports);
        let mut cidrs = lock(&self.pod_cidrs);
        t.pod_cidrs.iter().for_each(|n| cidrs.release(*n));
    }

    fn ip_index(&self, ip: &str) -> Option<u64> {
        let ip: Ipv4Addr = ip.parse().ok()?;
        self.service_cidr.contains(ip).then(|| (u32::from(ip) - u32::from(self.service_cidr.base)) as u64)
    }

    pub fn first_service_ip(&self) -> Ipv4Addr {
        self.service_cidr.nth(1).unwrap_or(self.service_cidr.base)
    }

    /// What a stored Service holds.
    pub fn taken_by_service(&self, svc: &Value) -> Taken {
        let mut t = Taken::default();
        if let Some(i) = svc["spec"]["clusterIP"].as_str().and_then(|ip| self.ip_index(ip)) {
            t.service_ips.push(i);
        }
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(np) = p["nodePort"].as_u64() {
                t.node_ports.push(np);
            }
        }
        t
    }

    pub fn taken_by_node(&self, node: &Value) -> Taken {
        let mut t = Taken::default();
        if let Some(i) = node["spec"]["podCIDR"].as_str().and_then(|c| self.cidr_index(c)) {
            t.pod_cidrs.push(i);
        }
        t
    }

    fn cidr_index(&self, cidr: &str) -> Option<u64> {
        let c = Cidr::parse(cidr).ok()?;
        (c.prefix == self.node_cidr_prefix && self.cluster_cidr.contains(c.base))
            .then(|| ((u32::from(c.base) - u32::from(self.cluster_cidr.base)) >> (32 - self.node_cidr_prefix)) as u64)
    }

    /// Allocates what a Service needs, honouring requested values: a cluster IP unless headless or
    /// ExternalName, node ports for NodePort and LoadBalancer. `old` is the stored Service on update:
    /// what it holds stays its own. Returns what was newly taken, or the field errors of a refused request.
    pub fn allocate_service(&self, svc: &mut Value, old: Option<&Value>) -> Result<Taken, Vec<FieldError>> {
        let mut taken = Taken::default();
        let mut errors = Vec::new();
        let ty = svc["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string();
        let old_taken = old.map(|o| self.taken_by_service(o)).unwrap_or_default();
        // Cluster IP.
        if ty != "ExternalName" {
            let requested = svc["spec"]["clusterIP"].as_str().unwrap_or_default().to_string();
            let old_ip =
                old.and_then(|o| o["spec"]["clusterIP"].as_str()).filter(|s| !s.is_empty()).map(str::to_string);
            if requested.is_empty() && old_ip.is_some() {
                // Updates that leave clusterIP out keep it (upstream does the same).
                let ip = old_ip.unwrap_or_default();
                svc["spec"]["clusterIP"] = json!(ip);
            } else if requested == "None" || (old_ip.is_some() && old_ip.as_deref() == Some(requested.as_str())) {
            } else if requested.is_empty() {
                match lock(&self.service_ips).take_next() {
                    Some(n) => {
                        taken.service_ips.push(n);
                        svc["spec"]["clusterIP"] =
                            json!(self.service_cidr.nth(n).map(|i| i.to_string()).unwrap_or_default());
                    }
                    None => errors.push(FieldError::invalid(
                        "spec.clusterIP",
                        &json!(""),
                        format!("range is full: no free IP in {}", self.service_cidr),
                    )),
                }
            } else {
                match self.ip_index(&requested) {
                    None if requested.parse::<IpAddr>().is_err() => errors.push(FieldError::invalid("spec.clusterIP", &json!(requested), "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")),
                    None => errors.push(FieldError::invalid("spec.clusterIP", &json!(requested), format!("failed to allocate IP {requested}: provided IP is not in the valid range. The range of valid IPs is {}", self.service_cidr))),
                    Some(n) if n == 0 || n == self.service_cidr.size() - 1 => errors.push(FieldError::invalid("spec.clusterIP", &json!(requested), format!("failed to allocate IP {requested}: provided IP is not in the valid range. The range of valid IPs is {}", self.service_cidr))),
                    Some(n) => {
                        if lock(&self.service_ips).take(n) {
                            taken.service_ips.push(n);
                        } else {
                            errors.push(FieldError::invalid("spec.clusterIP", &json!(requested), format!("failed to allocate IP {requested}: provided IP is already allocated")));
                        }
                    }
                }
            }
            if let Some(ip) = svc["spec"]["clusterIP"].as_str().map(str::to_string) {
                svc["spec"]["clusterIPs"] = json!([ip]);
                if ip != "None" {
                    svc["spec"]["ipFamilies"] = json!(["IPv4"]);
                    svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
                }
            }
        }
        // Node ports.
        let wants_ports = ty == "NodePort" || ty == "LoadBalancer";
        let old_ports: Vec<(i64, String, u64)> = old
            .into_iter()
            .flat_map(|o| o["spec"]["ports"].as_array().into_iter().flatten())
            .filter_map(|p| {
                Some((
                    p["port"].as_i64()?,
                    p["protocol"].as_str().unwrap_or("TCP").to_string(),
                    p["nodePort"].as_u64()?,
                ))
            })
            .collect();
        if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
            for (i, p) in ports.iter_mut().enumerate() {
                if !wants_ports {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                    continue;
                }
                let key = (p["port"].as_i64().unwrap_or(0), p["protocol"].as_str().unwrap_or("TCP").to_string());
                let previous =
                    old_ports.iter().find(|(port, proto, _)| (*port, proto.clone()) == key).map(|(_, _, np)| *np);
                match p["nodePort"].as_u64() {
                    None | Some(0) => match previous {
                        Some(np) => p["nodePort"] = json!(np),
                        None => match lock(&self.node_ports).take_next() {
                            Some(np) => {
                                taken.node_ports.push(np);
                                p["nodePort"] = json!(np);
                            }
                            None => errors.push(FieldError::invalid(
                                format!("spec.ports[{i}].nodePort"),
                                &json!(0),
                                "range is full: no free node port",
                            )),
                        },
                    },
                    Some(np) if old_taken.node_ports.contains(&np) => {}
                    Some(np) if !(NODE_PORT_RANGE.0 as u64..=NODE_PORT_RANGE.1 as u64).contains(&np) => {
                        errors.push(FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            &json!(np),
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                NODE_PORT_RANGE.0, NODE_PORT_RANGE.1
                            ),
                        ))
                    }
                    Some(np) => {
                        if lock(&self.node_ports).take(np) {
                            taken.node_ports.push(np);
                        } else {
                            errors.push(FieldError::invalid(
                                format!("spec.ports[{i}].nodePort"),
                                &json!(np),
                                "provided port is already allocated",
                            ));
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(taken)
        } else {
            self.release(&taken);
            Err(errors)
        }
    }

    /// What `old` held that `new` no longer holds: to give back after an update is stored.
    pub fn released_by_update(&self, old: &Value, new: &Value) -> Taken {
        let (a, b) = (self.taken_by_service(old), self.taken_by_service(new));
        Taken {
            service_ips: a.service_ips.into_iter().filter(|n| !b.service_ips.contains(n)).collect(),
            node_ports: a.node_ports.into_iter().filter(|n| !b.node_ports.contains(n)).collect(),
            pod_cidrs: Vec::new(),
        }
    }

    /// A pod CIDR for a node that has none.
    pub fn allocate_pod_cidr(&self) -> Option<(u64, String)> {
        let n = lock(&self.pod_cidrs).take_next()?;
        let base = u32::from(self.cluster_cidr.base) + ((n as u32) << (32 - self.node_cidr_prefix));
        Some((n, format!("{}/{}", Ipv4Addr::from(base), self.node_cidr_prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam() -> Ipam {
        Ipam::new("10.43.0.0/16", "10.42.0.0/16", 24, &["10.43.0.3".parse().unwrap()]).unwrap()
    }

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "s"}, "spec": spec})
    }

    #[test]
    fn cluster_ips_start_after_the_network_address_and_are_never_shared() {
        let ipam = ipam();
        let mut a = svc(json!({"type": "ClusterIP", "ports": [{"port": 80}]}));
        ipam.allocate_service(&mut a, None).unwrap();
        assert_eq!(a["spec"]["clusterIP"], "10.43.0.1");
        assert_eq!(a["spec"]["clusterIPs"], json!(["10.43.0.1"]));
        let mut taken = svc(json!({"clusterIP": "10.43.0.1"}));
        let errs = ipam.allocate_service(&mut taken, None).unwrap_err();
        assert_eq!(errs[0].message(), "spec.clusterIP: Invalid value: \"10.43.0.1\": failed to allocate IP 10.43.0.1: provided IP is already allocated");
        let mut outside = svc(json!({"clusterIP": "10.99.0.1"}));
        assert!(ipam.allocate_service(&mut outside, None).unwrap_err()[0]
            .message()
            .contains("not in the valid range. The range of valid IPs is 10.43.0.0/16"));
        let mut next = svc(json!({"ports": [{"port": 80}]}));
        ipam.allocate_service(&mut next, None).unwrap();
        let mut next2 = svc(json!({"ports": [{"port": 80}]}));
        ipam.allocate_service(&mut next2, None).unwrap();
        assert_eq!(
            (next["spec"]["clusterIP"].as_str(), next2["spec"]["clusterIP"].as_str()),
            (Some("10.43.0.2"), Some("10.43.0.4")),
            "the reserved DNS address is skipped"
        );
        let mut dns = svc(json!({"clusterIP": "10.43.0.3"}));
        assert_eq!(ipam.allocate_service(&mut dns, None).unwrap().service_ips, vec![3]);
        let mut headless = svc(json!({"clusterIP": "None"}));
        assert_eq!(ipam.allocate_service(&mut headless, None).unwrap(), Taken::default());
    }

    #[test]
    fn node_ports_follow_type_and_requests() {
        let ipam = ipam();
        let mut np = svc(
            json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}),
        );
        let t = ipam.allocate_service(&mut np, None).unwrap();
        assert_eq!(np["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(t.node_ports, vec![30000, 30053]);
        let mut clash = svc(json!({"type": "NodePort", "ports": [{"port": 1, "nodePort": 30053}]}));
        assert!(ipam.allocate_service(&mut clash, None).unwrap_err()[0]
            .message()
            .contains("provided port is already allocated"));
        let mut bad = svc(json!({"type": "NodePort", "ports": [{"port": 1, "nodePort": 80}]}));
        assert!(ipam.allocate_service(&mut bad, None).unwrap_err()[0].message().contains("30000-32767"));
        // Back to ClusterIP: ports dropped and released after the update is stored.
        let mut back = np.clone();
        back["spec"]["type"] = json!("ClusterIP");
        ipam.allocate_service(&mut back, Some(&np)).unwrap();
        assert!(back["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(ipam.released_by_update(&np, &back).node_ports, vec![30000, 30053]);
        // An update that says nothing about node ports keeps them.
        let mut same = np.clone();
        same["spec"]["ports"][0].as_object_mut().unwrap().remove("nodePort");
        let t = ipam.allocate_service(&mut same, Some(&np)).unwrap();
        assert_eq!(same["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(t, Taken::default());
    }

    #[test]
    fn pod_cidrs_are_distinct_and_reloaded() {
        let ipam = ipam();
        let (_, a) = ipam.allocate_pod_cidr().unwrap();
        let (_, b) = ipam.allocate_pod_cidr().unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("10.42.0.0/24", "10.42.1.0/24"));
        let fresh = self::ipam();
        let t = fresh.taken_by_node(&json!({"spec": {"podCIDR": "10.42.0.0/24"}}));
        assert_eq!(t.pod_cidrs, vec![0]);
        lock(&fresh.pod_cidrs).take(0);
        assert_eq!(fresh.allocate_pod_cidr().unwrap().1, "10.42.1.0/24");
    }
}
