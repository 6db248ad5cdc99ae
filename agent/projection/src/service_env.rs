//! The Service environment variables the kubelet gives every container: `FOO_SERVICE_HOST`,
//! `FOO_SERVICE_PORT[_NAME]` and Docker-link style `FOO_PORT…` for each Service with a cluster IP
//! in the pod's namespace (unless `enableServiceLinks: false`), and always for the `kubernetes`
//! Service in `default` — in-cluster clients (client-go's in-cluster config) find the API server
//! through `KUBERNETES_SERVICE_HOST`/`_PORT`. The result is what [`crate::env::resolve`] merges
//! under the container's own variables.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

/// Services the API server itself provides, exported to every pod whatever its namespace.
const MASTER_SERVICES: &[&str] = &["kubernetes"];

fn var_name(service: &str) -> String {
    service.replace('-', "_").to_uppercase()
}

/// The variables for `namespace`'s pods, sorted by name. A Service in the pod's own namespace wins
/// over a master Service of the same name.
pub fn service_env<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    namespace: &str,
    enable_service_links: bool,
) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services {
        let (Some(name), Some(ns)) = (svc.metadata.name.as_deref(), svc.metadata.namespace.as_deref()) else {
            continue;
        };
        if ns == "default" && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(svc);
        } else if ns == namespace && enable_service_links {
            chosen.insert(name, svc);
        }
    }
    let mut out = BTreeMap::new();
    for (name, svc) in chosen {
        let Some(spec) = svc.spec.as_ref() else { continue };
        let ip = spec.cluster_ip.as_deref().unwrap_or_default();
        let ports = spec.ports.as_deref().unwrap_or_default();
        if ip.is_empty() || ip == "None" || ports.is_empty() {
            continue;
        }
        let prefix = var_name(name);
        out.insert(format!("{prefix}_SERVICE_HOST"), ip.to_string());
        out.insert(format!("{prefix}_SERVICE_PORT"), ports[0].port.to_string());
        let host_port = |port: i32| if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
        for (i, p) in ports.iter().enumerate() {
            if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.insert(format!("{prefix}_SERVICE_PORT_{}", var_name(port_name)), p.port.to_string());
            }
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let url = format!("{}://{}", proto.to_lowercase(), host_port(p.port));
            if i == 0 {
                out.insert(format!("{prefix}_PORT"), url.clone());
            }
            let link = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.insert(format!("{link}_PROTO"), proto.to_lowercase());
            out.insert(format!("{link}_PORT"), p.port.to_string());
            out.insert(format!("{link}_ADDR"), ip.to_string());
            out.insert(link, url);
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn variables_for_a_service_with_named_and_unnamed_ports() {
        let services = [svc(
            "app",
            "redis-primary",
            "10.43.0.11",
            serde_json::json!([{"port": 6379}, {"name": "metrics", "port": 9121, "protocol": "UDP"}]),
        )];
        let env = service_env(&services, "app", true);
        let want = [
            ("REDIS_PRIMARY_PORT", "tcp://10.43.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.43.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.43.0.11"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_9121_UDP", "udp://10.43.0.11:9121"),
            ("REDIS_PRIMARY_PORT_9121_UDP_ADDR", "10.43.0.11"),
            ("REDIS_PRIMARY_PORT_9121_UDP_PORT", "9121"),
            ("REDIS_PRIMARY_PORT_9121_UDP_PROTO", "udp"),
            ("REDIS_PRIMARY_SERVICE_HOST", "10.43.0.11"),
            ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_METRICS", "9121"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(env, want);
    }

    #[test]
    fn namespace_links_and_the_kubernetes_service() {
        let services = [
            svc("default", "kubernetes", "10.43.0.1", serde_json::json!([{"name": "https", "port": 443}])),
            svc("default", "web", "10.43.0.20", serde_json::json!([{"port": 80}])),
            svc("app", "db", "10.43.0.30", serde_json::json!([{"port": 5432}])),
            svc("app", "headless", "None", serde_json::json!([{"port": 80}])),
        ];
        let env = service_env(&services, "app", true);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get(&env, "DB_SERVICE_HOST"), Some("10.43.0.30"));
        assert_eq!(get(&env, "WEB_SERVICE_HOST"), None, "other namespaces' services are not linked");
        assert_eq!(get(&env, "HEADLESS_SERVICE_HOST"), None);
        // enableServiceLinks: false keeps only the master services.
        let env = service_env(&services, "app", false);
        assert_eq!(get(&env, "DB_SERVICE_HOST"), None);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));
        // A kubernetes Service in the pod's own namespace wins.
        let mut own = services.to_vec();
        own.push(svc("app", "kubernetes", "10.43.0.99", serde_json::json!([{"port": 8443}])));
        assert_eq!(get(&service_env(&own, "app", true), "KUBERNETES_SERVICE_HOST"), Some("10.43.0.99"));
    }
}
