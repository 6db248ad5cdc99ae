//! Endpoints and EndpointSlices for Services with a selector, as upstream's endpoints and
//! endpointslice controllers write them: ready pod addresses apart from not-ready ones (unless
//! `publishNotReadyAddresses`), named and numeric target ports resolved per pod, pods grouped by the
//! ports they resolve to, terminating pods kept in slices (ready false, serving as the pod is) so
//! proxies can drain them. Services without a selector keep the Endpoints their users write, and
//! those are mirrored into EndpointSlices (upstream's endpointslicemirroring controller), which is
//! what the agents' proxies and DNS read.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::api::local::LocalClient;
use crate::resources::must;

pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
const MIRRORED_BY: &str = "endpointslicemirroring-controller.k8s.io";
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// On Endpoints that must not be mirrored (their writer also writes the slices).
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Marks the Endpoints this controller wrote (upstream sets it on every write).
const TRIGGER_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

fn selector_matches(selector: &Map<String, Value>, labels: &Value) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The port a service port reaches on `pod`: numeric targetPort as is, a named one through the
/// pod's container ports; None when the pod has no such named port.
fn resolve_port(service_port: &Value, pod: &Value) -> Option<i64> {
    match &service_port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .find(|p| p["name"].as_str() == Some(name.as_str()))
            .and_then(|p| p["containerPort"].as_i64()),
        _ => service_port["port"].as_i64(),
    }
}

struct Member<'a> {
    pod: &'a Value,
    ip: String,
    /// What Endpoints and a slice's `ready` say: false while terminating unless publishNotReadyAddresses.
    ready: bool,
    /// The pod's own readiness (a slice's `serving`).
    serving: bool,
    terminating: bool,
    /// `spec.hostname` when the pod's `spec.subdomain` names this service (headless DNS records).
    hostname: Option<String>,
}

/// Groups the service's pods by the ports they resolve to: (ports, members) in a stable order.
fn groups<'a>(service: &Value, pods: &'a [Value]) -> Vec<(Vec<Value>, Vec<Member<'a>>)> {
    let Some(selector) = service["spec"]["selector"].as_object().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let publish_all = service["spec"]["publishNotReadyAddresses"] == json!(true);
    let mut by_ports: BTreeMap<String, (Vec<Value>, Vec<Member<'a>>)> = BTreeMap::new();
    for pod in pods {
        let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
        if ip.is_empty() || !selector_matches(selector, &pod["metadata"]["labels"]) {
            continue;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let ports: Vec<Value> = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|sp| {
                let port = resolve_port(sp, pod)?;
                let mut p = json!({"port": port, "protocol": sp["protocol"].as_str().unwrap_or("TCP")});
                if let Some(name) = sp["name"].as_str().filter(|n| !n.is_empty()) {
                    p["name"] = json!(name);
                }
                Some(p)
            })
            .collect();
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let entry = by_ports.entry(key).or_insert_with(|| (ports, Vec::new()));
        let serving = is_ready(pod);
        let terminating = pod["metadata"]["deletionTimestamp"].is_string();
        let hostname = pod["spec"]["hostname"]
            .as_str()
            .filter(|h| !h.is_empty() && pod["spec"]["subdomain"] == service["metadata"]["name"])
            .map(str::to_string);
        entry.1.push(Member {
            pod,
            ip: ip.to_string(),
            ready: publish_all || (serving && !terminating),
            serving,
            terminating,
            hostname,
        });
    }
    let mut out: Vec<_> = by_ports.into_values().collect();
    for (_, members) in &mut out {
        members.sort_by(|a, b| a.ip.cmp(&b.ip));
    }
    out
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]})
}

fn address(m: &Member) -> Value {
    let mut a = json!({"ip": m.ip, "targetRef": target_ref(m.pod)});
    if let Some(h) = &m.hostname {
        a["hostname"] = json!(h);
    }
    if let Some(node) = m.pod["spec"]["nodeName"].as_str() {
        a["nodeName"] = json!(node);
    }
    a
}

/// The Endpoints' subsets for a service with a selector.
pub fn plan_subsets(service: &Value, pods: &[Value]) -> Vec<Value> {
    groups(service, pods)
        .into_iter()
        .filter(|(ports, members)| !ports.is_empty() && members.iter().any(|m| m.ready || !m.terminating))
        .map(|(ports, members)| {
            // Upstream's Endpoints leave terminating pods out unless publishNotReadyAddresses.
            let members: Vec<&Member> = members.iter().filter(|m| m.ready || !m.terminating).collect();
            let ready: Vec<Value> = members.iter().filter(|m| m.ready).map(|m| address(m)).collect();
            let not_ready: Vec<Value> = members.iter().filter(|m| !m.ready).map(|m| address(m)).collect();
            let mut subset = json!({"ports": ports});
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(not_ready);
            }
            subset
        })
        .collect()
}

/// The EndpointSlices for a service with a selector, named `<service>-<hash of the ports>`; one
/// empty slice when nothing matches, as upstream keeps.
pub fn plan_slices(service: &Value, pods: &[Value]) -> Vec<Value> {
    let mut groups = groups(service, pods);
    if groups.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    groups
        .into_iter()
        .map(|(ports, members)| {
            let endpoints: Vec<Value> = members
                .iter()
                .map(|m| {
                    let mut e = json!({
                        "addresses": [m.ip],
                        "conditions": {"ready": m.ready, "serving": m.serving, "terminating": m.terminating},
                        "targetRef": target_ref(m.pod),
                    });
                    if let Some(node) = m.pod["spec"]["nodeName"].as_str() {
                        e["nodeName"] = json!(node);
                    }
                    if let Some(h) = &m.hostname {
                        e["hostname"] = json!(h);
                    }
                    e
                })
                .collect();
            slice_object(service, MANAGED_BY, ports, endpoints)
        })
        .collect()
}

/// The EndpointSlices mirroring a selector-less service's own Endpoints: one per subset, ready
/// addresses ready, notReadyAddresses not. Endpoints labelled skip-mirror are left alone.
pub fn plan_mirrored_slices(service: &Value, endpoints: &Value) -> Vec<Value> {
    if endpoints["metadata"]["labels"][SKIP_MIRROR_LABEL] == "true" {
        return Vec::new();
    }
    let mirrored = |a: &Value, ready: bool| {
        let mut e = json!({"addresses": [a["ip"]], "conditions": {"ready": ready}});
        for field in ["nodeName", "hostname", "targetRef"] {
            if !a[field].is_null() {
                e[field] = a[field].clone();
            }
        }
        e
    };
    endpoints["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|subset| {
            let ports: Vec<Value> = subset["ports"].as_array().cloned().unwrap_or_default();
            let mut eps: Vec<Value> =
                subset["addresses"].as_array().into_iter().flatten().map(|a| mirrored(a, true)).collect();
            eps.extend(subset["notReadyAddresses"].as_array().into_iter().flatten().map(|a| mirrored(a, false)));
            slice_object(service, MIRRORED_BY, ports, eps)
        })
        .collect()
}

fn slice_object(service: &Value, managed_by: &str, ports: Vec<Value>, endpoints: Vec<Value>) -> Value {
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    let ns = service["metadata"]["namespace"].as_str().unwrap_or_default();
    let v6 = endpoints.iter().any(|e| e["addresses"][0].as_str().is_some_and(|a| a.contains(':')));
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{name}-{}", short_hash(&serde_json::to_string(&ports).unwrap_or_default())),
            "namespace": ns,
            "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: managed_by},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                 "uid": service["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}],
        },
        "addressType": if v6 { "IPv6" } else { "IPv4" },
        "endpoints": endpoints,
        "ports": ports,
    })
}

/// FNV-1a, five DNS-safe characters: stable names for the same port set.
fn short_hash(s: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    (0..5)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u32) as usize] as char;
            h /= ALPHABET.len() as u32;
            c
        })
        .collect()
}

pub async fn run(client: LocalClient) {
    super::level_loop(&client, Duration::from_millis(50), Duration::from_secs(30), reconcile).await;
}

fn reconcile(client: &LocalClient) {
    let store = &client.state().store;
    let services: Vec<Value> = store.list("services", None, None).0.into_iter().map(|(_, s)| s.value()).collect();
    let mut pods_by_ns: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (key, s) in store.list("pods", None, None).0 {
        pods_by_ns.entry(key.namespace).or_default().push(s.value());
    }
    let mut live: HashSet<(String, String)> = HashSet::new();
    for svc in &services {
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let name = svc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        live.insert((ns.clone(), name.clone()));
        if svc["spec"]["type"] == "ExternalName" {
            continue;
        }
        if svc["spec"]["selector"].as_object().is_none_or(|s| s.is_empty()) {
            let key = crate::store::Key::new("endpoints", &ns, &name);
            let wanted = store.get(&key).map(|e| plan_mirrored_slices(svc, &e.value())).unwrap_or_default();
            if let Err(e) = sync_slices(client, &ns, &name, &wanted, MIRRORED_BY) {
                tracing::debug!(service = name, error = e, "endpointslice mirroring failed; will retry");
            }
            continue;
        }
        let pods = pods_by_ns.get(&ns).map(Vec::as_slice).unwrap_or(&[]);
        if let Err(e) = sync_endpoints(client, svc, &ns, &name, pods) {
            tracing::debug!(service = name, error = e, "endpoints sync failed; will retry");
        }
        if let Err(e) = sync_slices(client, &ns, &name, &plan_slices(svc, pods), MANAGED_BY) {
            tracing::debug!(service = name, error = e, "endpointslice sync failed; will retry");
        }
    }
    // Endpoints this controller wrote for services that are gone (slices go with their owner).
    let endpoints = must("", "v1", "endpoints");
    for (key, s) in store.list("endpoints", None, None).0 {
        let managed = s.value()["metadata"]["annotations"][TRIGGER_ANNOTATION].is_string();
        if managed && !live.contains(&(key.namespace.clone(), key.name.clone())) {
            let _ = client.delete(endpoints, Some(&key.namespace), &key.name, &Value::Null);
        }
    }
}

fn sync_endpoints(client: &LocalClient, svc: &Value, ns: &str, name: &str, pods: &[Value]) -> Result<(), String> {
    let res = must("", "v1", "endpoints");
    let subsets = plan_subsets(svc, pods);
    let labels = svc["metadata"]["labels"].clone();
    match client.get(res, Some(ns), name) {
        Ok(mut current) => {
            let same_subsets = current["subsets"].as_array().cloned().unwrap_or_default() == subsets;
            if same_subsets && current["metadata"]["labels"] == labels {
                return Ok(());
            }
            current["subsets"] = json!(subsets);
            current["metadata"]["labels"] = labels;
            current["metadata"]["annotations"][TRIGGER_ANNOTATION] = json!(crate::api::handlers::now_rfc3339());
            client.update(res, Some(ns), current).map(|_| ()).map_err(|e| e.message)
        }
        Err(e) if e.code == 404 => {
            let mut ep = json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns,
                             "annotations": {TRIGGER_ANNOTATION: crate::api::handlers::now_rfc3339()}},
                "subsets": subsets,
            });
            if !labels.is_null() {
                ep["metadata"]["labels"] = labels;
            }
            client.create(res, Some(ns), ep).map(|_| ()).map_err(|e| e.message)
        }
        Err(e) => Err(e.message),
    }
}

/// Makes the slices of service `name` written by `managed_by` exactly `wanted`.
pub fn sync_slices(
    client: &LocalClient,
    ns: &str,
    name: &str,
    wanted: &[Value],
    managed_by: &str,
) -> Result<(), String> {
    let res = must("discovery.k8s.io", "v1", "endpointslices");
    let existing: Vec<Value> = client
        .state()
        .store
        .list(&res.store_key(), Some(ns), None)
        .0
        .into_iter()
        .map(|(_, s)| s.value())
        .filter(|s| {
            s["metadata"]["labels"][SERVICE_NAME_LABEL] == name
                && s["metadata"]["labels"][MANAGED_BY_LABEL] == managed_by
        })
        .collect();
    for want in wanted {
        let slice_name = want["metadata"]["name"].as_str().unwrap_or_default();
        match existing.iter().find(|s| s["metadata"]["name"] == slice_name) {
            Some(cur)
                if cur["endpoints"] == want["endpoints"]
                    && cur["ports"] == want["ports"]
                    && cur["addressType"] == want["addressType"] => {}
            Some(cur) => {
                let mut next = cur.clone();
                next["endpoints"] = want["endpoints"].clone();
                next["ports"] = want["ports"].clone();
                next["addressType"] = want["addressType"].clone();
                client.update(res, Some(ns), next).map_err(|e| e.message)?;
            }
            None => {
                client.create(res, Some(ns), want.clone()).map_err(|e| e.message)?;
            }
        }
    }
    for cur in &existing {
        if !wanted.iter().any(|w| w["metadata"]["name"] == cur["metadata"]["name"]) {
            let n = cur["metadata"]["name"].as_str().unwrap_or_default();
            let _ = client.delete(res, Some(ns), n, &Value::Null);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, labels: Value, ports: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "uid": format!("u-{name}"), "labels": labels},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
               "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    fn service(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "d", "uid": "svc"}, "spec": spec})
    }

    #[test]
    fn ready_and_not_ready_addresses_with_named_ports() {
        let svc = service(
            json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}),
        );
        let pods = [
            pod("b", "10.42.0.6", false, json!({"app": "web"}), json!([{"name": "http", "containerPort": 8080}])),
            pod("a", "10.42.0.5", true, json!({"app": "web"}), json!([{"name": "http", "containerPort": 8080}])),
            pod("other", "10.42.0.7", true, json!({"app": "db"}), json!([])),
        ];
        let subsets = plan_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0]["ports"], json!([{"port": 8080, "protocol": "TCP", "name": "http"}]));
        assert_eq!(subsets[0]["addresses"][0]["ip"], "10.42.0.5");
        assert_eq!(subsets[0]["addresses"][0]["targetRef"]["name"], "a");
        assert_eq!(subsets[0]["notReadyAddresses"][0]["ip"], "10.42.0.6");
        let slices = plan_slices(&svc, &pods);
        assert_eq!(slices.len(), 1);
        assert_eq!(slices[0]["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(slices[0]["endpoints"][1]["conditions"]["ready"], false);
    }

    #[test]
    fn pods_resolving_different_ports_form_separate_subsets_and_publish_not_ready_counts_all() {
        let svc = service(json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "metrics", "port": 9090, "targetPort": 9090}]}));
        let pods = [
            pod("a", "10.42.0.5", false, json!({"app": "web"}), json!([{"name": "http", "containerPort": 8080}])),
            pod("b", "10.42.0.6", true, json!({"app": "web"}), json!([{"name": "http", "containerPort": 8081}])),
        ];
        let subsets = plan_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 2);
        assert!(subsets.iter().all(|s| s["notReadyAddresses"].is_null()));
        assert_eq!(plan_slices(&svc, &pods).len(), 2);
    }

    #[test]
    fn no_selector_means_no_managed_endpoints_and_no_pods_means_one_empty_slice() {
        let selectorless = service(json!({"ports": [{"port": 80}]}));
        assert!(plan_subsets(&selectorless, &[]).is_empty());
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}));
        let slices = plan_slices(&svc, &[]);
        assert_eq!(slices.len(), 1);
        assert_eq!(slices[0]["endpoints"], json!([]));
        assert_eq!(slices[0]["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
    }

    #[test]
    fn terminating_pods_stay_in_slices_as_not_ready_serving_and_leave_endpoints() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}));
        let mut going = pod("a", "10.42.0.5", true, json!({"app": "web"}), json!([]));
        going["metadata"]["deletionTimestamp"] = json!("2026-11-27T10:00:00Z");
        let staying = pod("b", "10.42.0.6", true, json!({"app": "web"}), json!([]));
        let subsets = plan_subsets(&svc, &[going.clone(), staying]);
        assert_eq!(subsets[0]["addresses"].as_array().unwrap().len(), 1);
        assert_eq!(subsets[0]["addresses"][0]["ip"], "10.42.0.6");
        assert!(subsets[0]["notReadyAddresses"].is_null());
        let slices = plan_slices(&svc, &[going.clone()]);
        assert_eq!(
            slices[0]["endpoints"][0]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        assert!(plan_subsets(&svc, &[going]).is_empty(), "only a terminating pod: no subset");
    }

    #[test]
    fn hostname_is_published_when_the_subdomain_names_the_service() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None", "ports": [{"port": 80}]}));
        let mut named = pod("a", "10.42.0.5", true, json!({"app": "web"}), json!([]));
        named["spec"]["hostname"] = json!("web-0");
        named["spec"]["subdomain"] = json!("web");
        let mut elsewhere = pod("b", "10.42.0.6", true, json!({"app": "web"}), json!([]));
        elsewhere["spec"]["hostname"] = json!("b");
        elsewhere["spec"]["subdomain"] = json!("other");
        let slices = plan_slices(&svc, &[named.clone(), elsewhere.clone()]);
        assert_eq!(slices[0]["endpoints"][0]["hostname"], "web-0");
        assert!(slices[0]["endpoints"][1]["hostname"].is_null());
        assert_eq!(plan_subsets(&svc, &[named, elsewhere])[0]["addresses"][0]["hostname"], "web-0");
    }

    #[test]
    fn selectorless_endpoints_are_mirrored_unless_skip_mirror() {
        let svc = service(json!({"ports": [{"name": "db", "port": 5432}]}));
        let ep = json!({"metadata": {"name": "web", "namespace": "d"}, "subsets": [
            {"addresses": [{"ip": "192.168.1.10", "nodeName": "n1"}], "notReadyAddresses": [{"ip": "192.168.1.11"}],
             "ports": [{"name": "db", "port": 5432, "protocol": "TCP"}]}]});
        let slices = plan_mirrored_slices(&svc, &ep);
        assert_eq!(slices.len(), 1);
        assert_eq!(slices[0]["metadata"]["labels"][MANAGED_BY_LABEL], MIRRORED_BY);
        assert_eq!(slices[0]["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        assert_eq!(
            slices[0]["endpoints"],
            json!([{"addresses": ["192.168.1.10"], "conditions": {"ready": true}, "nodeName": "n1"},
                   {"addresses": ["192.168.1.11"], "conditions": {"ready": false}}])
        );
        assert_eq!(slices[0]["ports"][0]["port"], 5432);
        let mut skipped = ep.clone();
        skipped["metadata"]["labels"] = json!({SKIP_MIRROR_LABEL: "true"});
        assert!(plan_mirrored_slices(&svc, &skipped).is_empty());
    }
}
