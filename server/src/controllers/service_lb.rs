//! LoadBalancer Services served by the nodes themselves, as k3s's ServiceLB does: the addresses of
//! the Ready nodes go into `status.loadBalancer.ingress`, and every agent's proxy answers on its own
//! address for the Service's ports. Services with a `loadBalancerClass` belong to another
//! implementation and are left alone; a Service that stops being a LoadBalancer loses its ingress.

use std::time::Duration;

use serde_json::{json, Value};

use crate::api::local::LocalClient;
use crate::resources::must;

pub async fn run(client: LocalClient) {
    super::level_loop(&client, Duration::from_millis(100), Duration::from_secs(30), reconcile).await;
}

/// Whether the node's Ready condition is True.
pub fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The ingress every node-served LoadBalancer gets: each Ready node's ExternalIP, else its
/// InternalIP, sorted and without repeats.
pub fn plan_ingress(nodes: &[Value]) -> Vec<Value> {
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| node_ready(n))
        .filter_map(|n| {
            let addrs = n["status"]["addresses"].as_array()?;
            let of = |ty: &str| addrs.iter().find(|a| a["type"] == ty).and_then(|a| a["address"].as_str());
            of("ExternalIP").or_else(|| of("InternalIP")).map(str::to_string)
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips.into_iter().map(|ip| json!({"ip": ip, "ipMode": "VIP"})).collect()
}

/// The ingress `svc` should show, or None when this controller has no say over it.
pub fn wanted_ingress(svc: &Value, ingress: &[Value]) -> Option<Vec<Value>> {
    let current = svc["status"]["loadBalancer"]["ingress"].as_array().cloned().unwrap_or_default();
    if svc["spec"]["type"] == "LoadBalancer" {
        svc["spec"]["loadBalancerClass"].is_null().then(|| ingress.to_vec())
    } else if !current.is_empty() {
        Some(Vec::new())
    } else {
        None
    }
}

fn reconcile(client: &LocalClient) {
    let store = &client.state().store;
    let nodes: Vec<Value> = store.list("nodes", None, None).0.into_iter().map(|(_, s)| s.value()).collect();
    let ingress = plan_ingress(&nodes);
    let services = must("", "v1", "services");
    for (key, stored) in store.list("services", None, None).0 {
        let mut svc = stored.value();
        let Some(want) = wanted_ingress(&svc, &ingress) else { continue };
        let current = svc["status"]["loadBalancer"]["ingress"].as_array().cloned().unwrap_or_default();
        if current == want {
            continue;
        }
        svc["status"]["loadBalancer"] = if want.is_empty() { json!({}) } else { json!({"ingress": want}) };
        if let Err(e) = client.update_status(services, Some(&key.namespace), svc) {
            tracing::debug!(service = key.name, error = e.message, "load balancer status update failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, addrs: Value) -> Value {
        json!({"metadata": {"name": name}, "status": {"addresses": addrs,
               "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn ready_nodes_addresses_become_the_ingress() {
        let nodes = [
            node("b", true, json!([{"type": "InternalIP", "address": "10.0.0.2"}])),
            node(
                "a",
                true,
                json!([{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "ExternalIP", "address": "203.0.113.1"}]),
            ),
            node("c", false, json!([{"type": "InternalIP", "address": "10.0.0.3"}])),
        ];
        assert_eq!(
            plan_ingress(&nodes),
            vec![json!({"ip": "10.0.0.2", "ipMode": "VIP"}), json!({"ip": "203.0.113.1", "ipMode": "VIP"})]
        );
    }

    #[test]
    fn only_class_less_load_balancers_are_served_and_a_type_change_clears_the_ingress() {
        let ingress = vec![json!({"ip": "10.0.0.1", "ipMode": "VIP"})];
        let lb = json!({"spec": {"type": "LoadBalancer"}});
        assert_eq!(wanted_ingress(&lb, &ingress), Some(ingress.clone()));
        let classed = json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "metallb"}});
        assert_eq!(wanted_ingress(&classed, &ingress), None);
        let was_lb = json!({"spec": {"type": "ClusterIP"}, "status": {"loadBalancer": {"ingress": ingress}}});
        assert_eq!(wanted_ingress(&was_lb, &ingress), Some(vec![]));
        assert_eq!(wanted_ingress(&json!({"spec": {"type": "NodePort"}}), &ingress), None);
    }
}
