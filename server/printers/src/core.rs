//! Printers for the core kinds other than Pod, Event and the volume kinds: Namespace, Node,
//! Service, Endpoints, ConfigMap, Secret and ServiceAccount.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::column::{Column, AGE, NAME};
use crate::fields::{age, bool_at, int_at, list_at, map_at, map_len, name, str_at, string};
use crate::labels::format_labels;
use crate::Printer;

pub(crate) const NAMESPACE: Printer = Printer {
    columns: &[NAME, Column::string("Status", "The status of the namespace"), AGE],
    cells: |ns, now| vec![name(ns), string(str_at(ns, &["status", "phase"])), age(ns, now)],
};

pub(crate) const NODE: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Status", "The status of the node"),
        Column::string("Roles", "The roles of the node"),
        AGE,
        Column::string("Version", "Kubelet Version reported by the node."),
        Column::string("Internal-IP", "List of addresses reachable to the node.").wide(),
        Column::string("External-IP", "List of addresses reachable to the node.").wide(),
        Column::string(
            "OS-Image",
            "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        )
        .wide(),
        Column::string(
            "Kernel-Version",
            "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        )
        .wide(),
        Column::string(
            "Container-Runtime",
            "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
        )
        .wide(),
    ],
    cells: node_cells,
};

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Only the Ready condition counts; the last one wins if it is listed twice, as in Go's map.
    let ready =
        list_at(node, &["status", "conditions"]).iter().rev().find(|c| str_at(c, &["type"]) == "Ready").map(|c| {
            if str_at(c, &["status"]) == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        });
    let mut status = vec![ready.unwrap_or("Unknown")];
    if bool_at(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let roles = node_roles(node);
    let info = |field: &str| {
        let value = str_at(node, &["status", "nodeInfo", field]);
        string(if value.is_empty() { "<unknown>" } else { value })
    };
    vec![
        name(node),
        string(status.join(",")),
        string(if roles.is_empty() { "<none>".to_string() } else { roles.join(",") }),
        age(node, now),
        string(str_at(node, &["status", "nodeInfo", "kubeletVersion"])),
        string(node_address(node, "InternalIP")),
        string(node_address(node, "ExternalIP")),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

/// Roles from `node-role.kubernetes.io/<role>` label keys and the `kubernetes.io/role` value.
fn node_roles(node: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    for (key, value) in map_at(node, &["metadata", "labels"]).into_iter().flatten() {
        if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if key == "kubernetes.io/role" {
            if let Some(role) = value.as_str().filter(|r| !r.is_empty()) {
                roles.insert(role.to_string());
            }
        }
    }
    roles.into_iter().collect()
}

fn node_address<'a>(node: &'a Value, kind: &str) -> &'a str {
    list_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map_or("<none>", |a| str_at(a, &["address"]))
}

pub(crate) const SERVICE: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Type", "type determines how the Service is exposed."),
        Column::string("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
        Column::string("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
        Column::string("Port(s)", "The list of ports that are exposed by this service."),
        AGE,
        Column::string("Selector", "Route service traffic to pods with label keys and values matching this selector.").wide(),
    ],
    cells: service_cells,
};

fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let cluster_ip = list_at(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| Some(str_at(svc, &["spec", "clusterIP"])).filter(|ip| !ip.is_empty()))
        .unwrap_or("<none>");
    let ports: Vec<String> = list_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let (port, node_port, protocol) =
                (int_at(p, &["port"]), int_at(p, &["nodePort"]), str_at(p, &["protocol"]));
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect();
    vec![
        name(svc),
        string(str_at(svc, &["spec", "type"])),
        string(cluster_ip),
        string(service_external_ip(svc)),
        string(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") }),
        age(svc, now),
        string(format_labels(map_at(svc, &["spec", "selector"]))),
    ]
}

fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = list_at(svc, &["spec", "externalIPs"]).iter().filter_map(Value::as_str).collect();
    match str_at(svc, &["spec", "type"]) {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            // Tables are generated wide, so the load-balancer list is never clipped.
            let mut all = load_balancer_ingress(svc);
            all.extend(external.iter().map(|ip| ip.to_string()));
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// status.loadBalancer.ingress IPs (or hostnames), sorted and de-duplicated like Go's sets.String.
pub(crate) fn load_balancer_ingress(obj: &Value) -> Vec<String> {
    let set: BTreeSet<String> = list_at(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, &["ip"]);
            let host = str_at(i, &["hostname"]);
            let chosen = if ip.is_empty() { host } else { ip };
            (!chosen.is_empty()).then(|| chosen.to_string())
        })
        .collect();
    set.into_iter().collect()
}

pub(crate) const ENDPOINTS: Printer = Printer {
    columns: &[NAME, Column::string("Endpoints", "The set of all endpoints is the union of all subsets."), AGE],
    cells: |ep, now| vec![name(ep), string(format_endpoints(ep)), age(ep, now)],
};

/// Upstream's formatEndpoints: the first three "ip:port" pairs, then "+ N more...".
fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = list_at(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for subset in subsets {
        let addresses = list_at(subset, &["addresses"]);
        let ports = list_at(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(address, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(str_at(address, &["ip"]), int_at(port, &["port"])));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

/// Go's net.JoinHostPort: IPv6 hosts get brackets.
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') || host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(crate) const CONFIG_MAP: Printer = Printer {
    columns: &[NAME, Column::string("Data", "Data contains the configuration data."), AGE],
    cells: |cm, now| {
        let count = map_len(cm, &["data"]) + map_len(cm, &["binaryData"]);
        vec![name(cm), Value::from(count), age(cm, now)]
    },
};

pub(crate) const SECRET: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Type", "Used to facilitate programmatic handling of secret data."),
        Column::string("Data", "Data contains the secret data."),
        AGE,
    ],
    cells: |secret, now| {
        // stringData is merged into data when a Secret is decoded upstream; count the union.
        let mut keys: BTreeSet<&String> = map_at(secret, &["data"]).into_iter().flatten().map(|(k, _)| k).collect();
        keys.extend(map_at(secret, &["stringData"]).into_iter().flatten().map(|(k, _)| k));
        vec![name(secret), string(str_at(secret, &["type"])), Value::from(keys.len()), age(secret, now)]
    },
};

pub(crate) const SERVICE_ACCOUNT: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
        AGE,
    ],
    cells: |sa, now| {
        vec![name(sa), Value::from(list_at(sa, &["secrets"]).len()), age(sa, now)]
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::test_support::{ago, now};
    use serde_json::json;

    fn check(printer: Printer, cases: Vec<(Value, Vec<Value>)>) {
        for (obj, want) in cases {
            assert_eq!((printer.cells)(&obj, now()), want, "{obj}");
        }
    }

    #[test]
    fn namespace() {
        check(
            NAMESPACE,
            vec![
                (
                    json!({"metadata": {"name": "default", "creationTimestamp": ago(3 * 86400)}, "status": {"phase": "Active"}}),
                    row!["default", "Active", "3d"],
                ),
                (
                    json!({"metadata": {"name": "old", "creationTimestamp": ago(65), "deletionTimestamp": ago(1)}, "status": {"phase": "Terminating"}}),
                    row!["old", "Terminating", "65s"],
                ),
                (json!({"metadata": {"name": "bare"}}), row!["bare", "", "<unknown>"]),
            ],
        );
    }

    #[test]
    fn node() {
        let ready_node = json!({
            "metadata": {"name": "edge-1", "creationTimestamp": ago(49 * 3600),
                         "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "",
                                    "kubernetes.io/role": "edge", "kubernetes.io/hostname": "edge-1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "edge-1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-arm64", "containerRuntimeVersion": "edge://0.1.0"}
            }
        });
        check(
            NODE,
            vec![
                (
                    ready_node,
                    row![
                        "edge-1",
                        "Ready,SchedulingDisabled",
                        "control-plane,edge,master",
                        "2d1h",
                        "v1.32.0",
                        "10.0.0.5",
                        "<none>",
                        "Debian GNU/Linux 12 (bookworm)",
                        "6.1.0-18-arm64",
                        "edge://0.1.0"
                    ],
                ),
                (
                    json!({"metadata": {"name": "n2", "creationTimestamp": ago(30)},
                    "status": {"conditions": [{"type": "Ready", "status": "Unknown"}],
                               "addresses": [{"type": "ExternalIP", "address": "203.0.113.9"}]}}),
                    row![
                        "n2",
                        "NotReady",
                        "<none>",
                        "30s",
                        "",
                        "<none>",
                        "203.0.113.9",
                        "<unknown>",
                        "<unknown>",
                        "<unknown>"
                    ],
                ),
                (
                    json!({"metadata": {"name": "n3"}}),
                    row![
                        "n3",
                        "Unknown",
                        "<none>",
                        "<unknown>",
                        "",
                        "<none>",
                        "<none>",
                        "<unknown>",
                        "<unknown>",
                        "<unknown>"
                    ],
                ),
            ],
        );
    }

    #[test]
    fn service() {
        let meta = |n: &str| json!({"name": n, "creationTimestamp": ago(200)});
        check(
            SERVICE,
            vec![
                (
                    json!({"metadata": meta("web"), "spec": {"type": "NodePort", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                    "selector": {"app": "web", "tier": "fe"}}}),
                    row!["web", "NodePort", "10.43.0.10", "<none>", "80:30080/TCP,53/UDP", "3m20s", "app=web,tier=fe"],
                ),
                (
                    json!({"metadata": meta("kubernetes"), "spec": {"type": "ClusterIP", "clusterIP": "10.43.0.1",
                    "externalIPs": ["192.0.2.1", "192.0.2.2"], "ports": [{"port": 443, "protocol": "TCP"}]}}),
                    row!["kubernetes", "ClusterIP", "10.43.0.1", "192.0.2.1,192.0.2.2", "443/TCP", "3m20s", "<none>"],
                ),
                (
                    json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.43.0.7"],
                    "ports": [{"port": 8080, "nodePort": 31000, "protocol": "TCP"}]},
                    "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}, {"ip": "198.51.100.20"}, {"ip": "198.51.100.3"}]}}}),
                    row![
                        "lb",
                        "LoadBalancer",
                        "10.43.0.7",
                        "198.51.100.20,198.51.100.3,lb.example.com",
                        "8080:31000/TCP",
                        "3m20s",
                        "<none>"
                    ],
                ),
                (
                    json!({"metadata": meta("pending"), "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.8"}}),
                    row!["pending", "LoadBalancer", "10.43.0.8", "<pending>", "<none>", "3m20s", "<none>"],
                ),
                (
                    json!({"metadata": meta("db"), "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
                    row!["db", "ExternalName", "<none>", "db.example.com", "<none>", "3m20s", "<none>"],
                ),
                (
                    json!({"metadata": meta("headless"), "spec": {"clusterIP": "None", "clusterIPs": ["None"]}}),
                    row!["headless", "", "None", "<unknown>", "<none>", "3m20s", "<none>"],
                ),
            ],
        );
    }

    #[test]
    fn endpoints() {
        let meta = json!({"name": "web", "creationTimestamp": ago(10)});
        check(
            ENDPOINTS,
            vec![
                (
                    json!({"metadata": meta, "subsets": [{"addresses": [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}],
                    "ports": [{"port": 80}]}]}),
                    row!["web", "10.42.0.5:80,[fd00::5]:80", "10s"],
                ),
                (
                    json!({"metadata": meta, "subsets": [
                    {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
                    {"addresses": [{"ip": "10.0.0.3"}], "ports": [{"port": 8080}]}]}),
                    row!["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...", "10s"],
                ),
                (
                    json!({"metadata": meta, "subsets": [{"addresses": [{"ip": "10.0.0.9"}]}]}),
                    row!["web", "10.0.0.9", "10s"],
                ),
                (json!({"metadata": meta, "subsets": []}), row!["web", "<none>", "10s"]),
                (
                    json!({"metadata": meta, "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 1}]}]}),
                    row!["web", "", "10s"],
                ),
            ],
        );
    }

    #[test]
    fn config_map_secret_service_account() {
        let meta = json!({"name": "x", "creationTimestamp": ago(90 * 60)});
        check(
            CONFIG_MAP,
            vec![
                (
                    json!({"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
                    row!["x", 3, "90m"],
                ),
                (json!({"metadata": meta}), row!["x", 0, "90m"]),
            ],
        );
        check(
            SECRET,
            vec![
                (
                    json!({"metadata": meta, "type": "Opaque", "data": {"u": "YQ==", "p": "Yg=="}, "stringData": {"p": "b", "q": "c"}}),
                    row!["x", "Opaque", 3, "90m"],
                ),
                (
                    json!({"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
                    row!["x", "kubernetes.io/tls", 2, "90m"],
                ),
            ],
        );
        check(
            SERVICE_ACCOUNT,
            vec![
                (json!({"metadata": meta, "secrets": [{"name": "tok"}]}), row!["x", 1, "90m"]),
                (json!({"metadata": meta}), row!["x", 0, "90m"]),
            ],
        );
    }
}
