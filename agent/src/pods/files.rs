//! The per-pod files the kubelet manages and bind-mounts into every container: /etc/hosts,
//! /etc/resolv.conf and /etc/hostname.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

/// Cluster DNS settings for resolv.conf.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    pub cluster_dns: Option<IpAddr>,
    pub cluster_domain: String,
    /// The node's own resolv.conf (for dnsPolicy Default and hostNetwork pods).
    pub host_resolv_conf: String,
}

/// The pod's hostname: spec.hostname or the pod name, cut to 63 characters as the kubelet does.
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec.and_then(|s| s.hostname.clone()).unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    name.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
}

/// The kubelet's managed hosts file.
pub fn hosts_file(pod: &Pod, pod_ip: Option<&str>, domain: &str) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let host = hostname(pod);
    let spec = pod.spec.as_ref();
    if let Some(ip) = pod_ip {
        match spec.and_then(|s| s.subdomain.as_deref()) {
            Some(sub) if !sub.is_empty() => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                out.push_str(&format!("{ip}\t{host}.{sub}.{ns}.svc.{domain}\t{host}\n"));
            }
            _ => out.push_str(&format!("{ip}\t{host}\n")),
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref()).map(Vec::as_slice).unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.clone().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    out
}

/// resolv.conf by dnsPolicy (ClusterFirst, ClusterFirstWithHostNet, Default, None) and dnsConfig.
pub fn resolv_conf(pod: &Pod, dns: &DnsSettings) -> String {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let d = &dns.cluster_domain;
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) =
        match (policy, host_network, dns.cluster_dns) {
            ("ClusterFirst", false, Some(ip)) | ("ClusterFirstWithHostNet", _, Some(ip)) => (
                vec![ip.to_string()],
                vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()],
                vec!["ndots:5".into()],
            ),
            ("None", _, _) => (vec![], vec![], vec![]),
            _ => parse_host(&dns.host_resolv_conf),
        };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        servers.extend(cfg.nameservers.clone().unwrap_or_default());
        searches.extend(cfg.searches.clone().unwrap_or_default());
        for o in cfg.options.clone().unwrap_or_default() {
            let name = o.name.unwrap_or_default();
            options.retain(|x| x.split(':').next() != Some(name.as_str()));
            options.push(match o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    servers.dedup();
    servers.truncate(3);
    searches.dedup();
    searches.truncate(32);
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

fn parse_host(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut servers, mut searches, mut options) = (vec![], vec![], vec![]);
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => searches.extend(words.map(str::to_string)),
            Some("options") => options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    (servers, searches, options)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web-1", "namespace": "shop"}, "spec": spec})).unwrap()
    }

    fn dns() -> DnsSettings {
        DnsSettings {
            cluster_dns: Some("10.43.0.10".parse().unwrap()),
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: "nameserver 192.168.1.1\nsearch lan\n".into(),
        }
    }

    #[test]
    fn resolv_confs() {
        let cases = [
            (json!({"containers": []}), "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"),
            (json!({"containers": [], "dnsPolicy": "Default"}), "search lan\nnameserver 192.168.1.1\n"),
            (json!({"containers": [], "hostNetwork": true}), "search lan\nnameserver 192.168.1.1\n"),
            (json!({"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
             "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"),
            (json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
             "search a.b\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"),
            (json!({"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}),
             "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.43.0.10\noptions ndots:1\n"),
        ];
        for (spec, want) in cases {
            assert_eq!(resolv_conf(&pod(spec.clone()), &dns()), want, "{spec}");
        }
    }

    #[test]
    fn hosts() {
        let p = pod(json!({"containers": [], "hostAliases": [{"ip": "10.1.1.1", "hostnames": ["a", "b"]}]}));
        let h = hosts_file(&p, Some("10.42.0.7"), "cluster.local");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.42.0.7\tweb-1\n"), "{h}");
        assert!(h.ends_with("# Entries added by HostAliases.\n10.1.1.1\ta\tb\n"), "{h}");
        let p = pod(json!({"containers": [], "hostname": "db", "subdomain": "dbs"}));
        assert!(hosts_file(&p, Some("10.42.0.8"), "cluster.local")
            .contains("10.42.0.8\tdb.dbs.shop.svc.cluster.local\tdb\n"));
        assert_eq!(hostname(&p), "db");
    }
}
