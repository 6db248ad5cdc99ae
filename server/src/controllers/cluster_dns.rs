//! The `kube-dns` Service in kube-system on the cluster DNS address, and its endpoints.
//!
//! DNS is not a Deployment here: every agent answers cluster DNS itself, on its node's pod gateway
//! (the first address of the node's podCIDR, where its pods already route). The Service is
//! selector-less; this controller lists those gateways as its endpoints, one per node with a pod
//! CIDR, ready while the node is Ready. `internalTrafficPolicy: Local` keeps every pod's queries on
//! its own node — what k3s users add NodeLocal DNSCache for, without a second hop or a pod.
//! Deleting the Service brings it back, as k3s's addon manager does.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};

use super::endpoints::{sync_slices, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, SKIP_MIRROR_LABEL};
use super::service_lb::node_ready;
use crate::api::local::LocalClient;
use crate::ipam::Cidr;
use crate::resources::must;

const NAMESPACE: &str = "kube-system";
const NAME: &str = "kube-dns";
const MANAGED_BY: &str = "edge-server";

pub async fn run(client: LocalClient, dns_ip: IpAddr) {
    super::level_loop(&client, Duration::from_millis(100), Duration::from_secs(30), |c| {
        if let Err(e) = reconcile(c, dns_ip) {
            tracing::debug!(error = e, "cluster DNS service sync failed; will retry");
        }
    })
    .await;
}

fn service(dns_ip: IpAddr) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                "kubernetes.io/name": "edge-dns"}},
        "spec": {"type": "ClusterIP", "clusterIP": dns_ip.to_string(), "internalTrafficPolicy": "Local",
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]},
    })
}

fn ports() -> Value {
    json!([{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
}

/// (gateway, node name, ready) for every node with a pod CIDR, in name order.
pub fn plan(nodes: &[Value]) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = nodes
        .iter()
        .filter_map(|n| {
            let cidr = Cidr::parse(n["spec"]["podCIDR"].as_str()?).ok()?;
            let name = n["metadata"]["name"].as_str()?;
            Some((cidr.nth(1)?.to_string(), name.to_string(), node_ready(n)))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn reconcile(client: &LocalClient, dns_ip: IpAddr) -> Result<(), String> {
    let services = must("", "v1", "services");
    match client.get(services, Some(NAMESPACE), NAME) {
        Ok(_) => {}
        Err(e) if e.code == 404 => {
            client.create(services, Some(NAMESPACE), service(dns_ip)).map_err(|e| e.message)?;
        }
        Err(e) => return Err(e.message),
    }
    let nodes: Vec<Value> =
        client.state().store.list("nodes", None, None).0.into_iter().map(|(_, s)| s.value()).collect();
    let planned = plan(&nodes);

    // Endpoints for older clients; marked skip-mirror because the slice below is written here.
    let address = |(ip, node, _): &(String, String, bool)| json!({"ip": ip, "nodeName": node});
    let ready: Vec<Value> = planned.iter().filter(|p| p.2).map(address).collect();
    let not_ready: Vec<Value> = planned.iter().filter(|p| !p.2).map(address).collect();
    let mut subset = json!({"ports": ports()});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    let subsets = if planned.is_empty() { json!([]) } else { json!([subset]) };
    let endpoints = must("", "v1", "endpoints");
    match client.get(endpoints, Some(NAMESPACE), NAME) {
        Ok(cur) if cur["subsets"] == subsets => {}
        Ok(mut cur) => {
            cur["subsets"] = subsets;
            cur["metadata"]["labels"][SKIP_MIRROR_LABEL] = json!("true");
            client.update(endpoints, Some(NAMESPACE), cur).map_err(|e| e.message)?;
        }
        Err(e) if e.code == 404 => {
            let ep = json!({"apiVersion": "v1", "kind": "Endpoints",
                            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SKIP_MIRROR_LABEL: "true"}},
                            "subsets": subsets});
            client.create(endpoints, Some(NAMESPACE), ep).map_err(|e| e.message)?;
        }
        Err(e) => return Err(e.message),
    }

    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{NAME}-nodes"), "namespace": NAMESPACE,
                     "labels": {SERVICE_NAME_LABEL: NAME, MANAGED_BY_LABEL: MANAGED_BY}},
        "addressType": "IPv4",
        "endpoints": planned.iter().map(|(ip, node, ready)| json!({
            "addresses": [ip], "nodeName": node,
            "conditions": {"ready": ready, "serving": ready, "terminating": false},
        })).collect::<Vec<_>>(),
        "ports": ports(),
    });
    sync_slices(client, NAMESPACE, NAME, &[slice], MANAGED_BY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_with_a_pod_cidr_serves_dns_on_its_gateway() {
        let nodes = [
            json!({"metadata": {"name": "n2"}, "spec": {"podCIDR": "10.42.1.0/24"},
                   "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.42.0.0/24"},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            json!({"metadata": {"name": "new"}, "spec": {}}),
        ];
        assert_eq!(
            plan(&nodes),
            vec![("10.42.0.1".to_string(), "n1".to_string(), true), ("10.42.1.1".to_string(), "n2".to_string(), false)]
        );
    }
}
