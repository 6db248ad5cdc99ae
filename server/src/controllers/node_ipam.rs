//! Node IPAM: every Node gets a pod CIDR of its own (`spec.podCIDR`, a /24 of `--cluster-cidr` by
//! default), as upstream's node-ipam controller does. Released when the node is deleted (in the
//! API's delete path, so that every way of deleting a node frees it).

use std::time::Duration;

use serde_json::json;

use crate::api::local::LocalClient;
use crate::resources::must;

pub async fn run(client: LocalClient) {
    super::level_loop(&client, Duration::from_millis(50), Duration::from_secs(30), reconcile).await;
}

fn reconcile(client: &LocalClient) {
    let state = client.state();
    let nodes = must("", "v1", "nodes");
    for (key, stored) in state.store.list("nodes", None, None).0 {
        let mut node = stored.value();
        if node["spec"]["podCIDR"].as_str().is_some_and(|c| !c.is_empty())
            || node["metadata"]["deletionTimestamp"].is_string()
        {
            continue;
        }
        let Some((index, cidr)) = state.ipam.allocate_pod_cidr() else {
            tracing::warn!(node = key.name, "no pod CIDR left in the cluster CIDR");
            continue;
        };
        node["spec"]["podCIDR"] = json!(cidr);
        node["spec"]["podCIDRs"] = json!([cidr]);
        match client.update(nodes, None, node) {
            Ok(_) => tracing::info!(node = key.name, cidr, "assigned pod CIDR"),
            Err(e) => {
                state.ipam.release(&crate::ipam::Taken { pod_cidrs: vec![index], ..Default::default() });
                if e.code != 409 && e.code != 404 {
                    tracing::warn!(node = key.name, error = %e.message, "assigning pod CIDR failed; will retry");
                }
            }
        }
    }
}
