//! From API objects to [`ServicePort`]s, as upstream's service and EndpointSlice change
//! trackers do (pkg/proxy/service.go, endpointslicecache.go): slices join their Service by
//! the `kubernetes.io/service-name` label, ports match by name and protocol, an endpoint
//! listed by several slices counts once (the first slice by name wins), and only an endpoint's first
//! address is used.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{Endpoint, Protocol, ServicePort};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds`.
const DEFAULT_AFFINITY_SECONDS: u32 = 10800;

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

fn port_u16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

/// The service ports of all `services`, each with its endpoints from `slices`. Services
/// without a ClusterIP (headless, ExternalName) are listed with no `cluster_ips`.
pub fn service_ports(services: &[Service], slices: &[EndpointSlice]) -> Vec<ServicePort> {
    // (namespace, service) -> slices, in name order so that deduplication is stable.
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let labels = slice.metadata.labels.as_ref();
        let (Some(ns), Some(svc)) =
            (slice.metadata.namespace.as_deref(), labels.and_then(|l| l.get(SERVICE_NAME_LABEL)))
        else {
            continue;
        };
        by_service.entry((ns, svc.as_str())).or_default().push(slice);
    }
    for list in by_service.values_mut() {
        list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }
    let mut out = Vec::new();
    for svc in services {
        let (Some(ns), Some(name), Some(spec)) =
            (svc.metadata.namespace.as_deref(), svc.metadata.name.as_deref(), svc.spec.as_ref())
        else {
            continue;
        };
        let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
        let cluster_ips: Vec<IpAddr> = if kind == "ExternalName" {
            Vec::new()
        } else {
            let listed = spec.cluster_ips.clone().unwrap_or_else(|| spec.cluster_ip.iter().cloned().collect());
            listed.iter().filter_map(|s| parse_ip(s)).collect()
        };
        // Proxy-mode ingress points at a load balancer that forwards itself; no VIP here.
        let load_balancer_ips: Vec<IpAddr> = if kind == "LoadBalancer" {
            svc.status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .map(|ing| {
                    ing.iter()
                        .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                        .filter_map(|i| i.ip.as_deref().and_then(parse_ip))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let external_ips: Vec<IpAddr> = spec.external_ips.iter().flatten().filter_map(|s| parse_ip(s)).collect();
        let affinity_timeout_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        // Upstream: only NodePort and LoadBalancer services have an external policy.
        let external_policy_local =
            matches!(kind, "NodePort" | "LoadBalancer") && spec.external_traffic_policy.as_deref() == Some("Local");
        let internal_policy_local = spec.internal_traffic_policy.as_deref() == Some("Local");
        let svc_slices = by_service.get(&(ns, name)).map(Vec::as_slice).unwrap_or(&[]);
        for port in spec.ports.iter().flatten() {
            let (Some(protocol), Some(port_number)) =
                (Protocol::from_api(port.protocol.as_deref()), port_u16(port.port))
            else {
                continue;
            };
            let port_name = port.name.clone().unwrap_or_default();
            out.push(ServicePort {
                namespace: ns.to_owned(),
                name: name.to_owned(),
                port_name: port_name.clone(),
                protocol,
                cluster_ips: cluster_ips.clone(),
                port: port_number,
                node_port: port.node_port.and_then(port_u16),
                load_balancer_ips: load_balancer_ips.clone(),
                external_ips: external_ips.clone(),
                affinity_timeout_seconds,
                external_policy_local,
                internal_policy_local,
                endpoints: endpoints_for(svc_slices, &port_name, protocol),
            });
        }
    }
    out
}

/// The endpoints of one named port across a service's slices, deduplicated by address and port.
fn endpoints_for(slices: &[&EndpointSlice], port_name: &str, protocol: Protocol) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let matching = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name && Protocol::from_api(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(port) = matching.and_then(|p| p.port).and_then(port_u16) else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(ip) = ep.addresses.first().and_then(|a| parse_ip(a)) else {
                continue;
            };
            let cond = ep.conditions.as_ref();
            // Unknown readiness counts as ready; unknown serving defers to ready (API docs).
            let ready = cond.and_then(|c| c.ready).unwrap_or(true);
            let e = Endpoint {
                ip,
                port,
                ready,
                serving: cond.and_then(|c| c.serving).unwrap_or(ready),
                terminating: cond.and_then(|c| c.terminating).unwrap_or(false),
                node_name: ep.node_name.clone(),
            };
            if !out.iter().any(|x| x.ip == ip && x.port == port) {
                out.push(e);
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn slice(name: &str, svc: &str, family: &str, ports: serde_json::Value, eps: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
            "addressType": family, "ports": ports, "endpoints": eps,
        }))
        .unwrap()
    }

    fn web() -> Service {
        service(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "LoadBalancer", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10", "fd00:43::a"],
                "externalIPs": ["192.168.1.201"], "externalTrafficPolicy": "Local",
                "sessionAffinity": "ClientIP",
                "ports": [
                    {"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"}
                ]
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.200"}, {"ip": "192.168.1.202", "ipMode": "Proxy"}, {"hostname": "lb"}]}}
        }))
    }

    #[test]
    fn services_and_slices_become_service_ports() {
        let slices = vec![
            slice(
                "web-b",
                "web",
                "IPv4",
                json!([{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"}]),
                json!([
                    {"addresses": ["10.42.0.5"], "nodeName": "node-a", "conditions": {"ready": true}},
                    {"addresses": ["10.42.1.5"], "conditions": {"ready": false, "serving": true, "terminating": true}}
                ]),
            ),
            // Listed again by another slice: counted once.
            slice(
                "web-a",
                "web",
                "IPv4",
                json!([{"name": "http", "port": 8080}]),
                json!([{"addresses": ["10.42.0.5"]}]),
            ),
            slice(
                "web-6",
                "web",
                "IPv6",
                json!([{"name": "http", "port": 8080}]),
                json!([{"addresses": ["fd00:42::5"]}]),
            ),
            slice(
                "web-f",
                "web",
                "FQDN",
                json!([{"name": "http", "port": 8080}]),
                json!([{"addresses": ["x.example"]}]),
            ),
            slice(
                "other",
                "other",
                "IPv4",
                json!([{"name": "http", "port": 9}]),
                json!([{"addresses": ["10.42.9.9"]}]),
            ),
        ];
        let ports = service_ports(&[web()], &slices);
        assert_eq!(ports.len(), 2);
        let http = &ports[0];
        assert_eq!(
            (http.port_name.as_str(), http.protocol, http.port, http.node_port),
            ("http", Protocol::Tcp, 80, Some(30080))
        );
        assert_eq!(http.cluster_ips, vec!["10.43.0.10".parse::<IpAddr>().unwrap(), "fd00:43::a".parse().unwrap()]);
        assert_eq!(http.load_balancer_ips, vec!["192.168.1.200".parse::<IpAddr>().unwrap()]);
        assert_eq!(http.external_ips, vec!["192.168.1.201".parse::<IpAddr>().unwrap()]);
        assert_eq!(http.affinity_timeout_seconds, Some(10800));
        assert!(http.external_policy_local && !http.internal_policy_local);
        let eps: Vec<(String, u16, bool, bool, bool)> =
            http.endpoints.iter().map(|e| (e.ip.to_string(), e.port, e.ready, e.serving, e.terminating)).collect();
        assert_eq!(
            eps,
            vec![
                ("fd00:42::5".into(), 8080, true, true, false),
                ("10.42.0.5".into(), 8080, true, true, false),
                ("10.42.1.5".into(), 8080, false, true, true),
            ]
        );
        // Slices are read in name order: web-a's copy of 10.42.0.5 (no node name) wins over web-b's.
        assert_eq!(http.endpoints[1].node_name, None);
        let dns = &ports[1];
        assert_eq!((dns.protocol, dns.port, dns.node_port), (Protocol::Udp, 53, None));
        assert_eq!(dns.endpoints.iter().map(|e| e.port).collect::<Vec<_>>(), vec![5353, 5353]);
    }

    #[test]
    fn special_services() {
        let cases = vec![
            // (service, expected cluster IPs, endpoints expected, affinity)
            (
                json!({"metadata": {"name": "h", "namespace": "default"},
                       "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
                0,
                None,
            ),
            (
                json!({"metadata": {"name": "x", "namespace": "default"},
                       "spec": {"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80}]}}),
                0,
                None,
            ),
            (
                json!({"metadata": {"name": "s", "namespace": "default"},
                       "spec": {"clusterIP": "10.43.0.9", "sessionAffinity": "ClientIP",
                                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                                "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
                                "ports": [{"port": 80}]}}),
                1,
                Some(60),
            ),
        ];
        for (v, ips, affinity) in cases {
            let ports = service_ports(&[service(v.clone())], &[]);
            assert_eq!(ports.len(), 1, "{v}");
            assert_eq!(ports[0].cluster_ips.len(), ips, "{v}");
            assert_eq!(ports[0].affinity_timeout_seconds, affinity, "{v}");
            // A ClusterIP service has no external policy even if the field says Local.
            assert!(!ports[0].external_policy_local, "{v}");
            assert!(ports[0].endpoints.is_empty(), "missing slices mean no endpoints: {v}");
        }
        let ports = service_ports(&[service(cases_internal_local())], &[]);
        assert!(ports[0].internal_policy_local);
    }

    fn cases_internal_local() -> serde_json::Value {
        json!({"metadata": {"name": "l", "namespace": "default"},
               "spec": {"clusterIP": "10.43.0.8", "internalTrafficPolicy": "Local", "ports": [{"port": 80, "name": ""}]}})
    }

    #[test]
    fn unnamed_ports_match_unnamed_slice_ports_only() {
        let svc = service(json!({"metadata": {"name": "u", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.7", "ports": [{"port": 80, "targetPort": 8080}]}}));
        let slices = vec![
            slice("u-1", "u", "IPv4", json!([{"port": 8080}]), json!([{"addresses": ["10.42.0.1"]}])),
            slice(
                "u-2",
                "u",
                "IPv4",
                json!([{"name": "metrics", "port": 9090}]),
                json!([{"addresses": ["10.42.0.2"]}]),
            ),
        ];
        let ports = service_ports(&[svc], &slices);
        assert_eq!(ports[0].endpoints.len(), 1);
        assert_eq!(ports[0].endpoints[0].port, 8080);
    }
}
