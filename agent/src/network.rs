//! The node's side of the pod network: brings up cni0/flannel.1 for the node's pod CIDR, publishes
//! the VTEP annotations, and keeps the overlay entries towards every other node in line with the
//! Node objects (a full resync every pass, so drift such as a deleted route is repaired).

use std::time::Duration;

use edge_net::{NodeConfig, NodeNetwork, RemoteNode, RtNetlink};
use futures_util::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;

const RESYNC: Duration = Duration::from_secs(30);

/// Waits until the server has given our Node a pod CIDR.
pub async fn wait_pod_cidr(client: &kube::Client, node: &str, shutdown: &CancellationToken) -> anyhow::Result<Ipv4Net> {
    let api: Api<Node> = Api::all(client.clone());
    loop {
        if let Some(cidr) = api.get(node).await?.spec.and_then(|s| s.pod_cidr) {
            return cidr.parse().map_err(|e| anyhow::anyhow!("node {node} has an invalid podCIDR {cidr:?}: {e}"));
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("shut down while waiting for a pod CIDR"),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

pub async fn setup(cfg: &AgentConfig, pod_cidr: Ipv4Net) -> anyhow::Result<NodeNetwork<RtNetlink>> {
    let nl = RtNetlink::new()?;
    let net = NodeNetwork::setup(
        nl,
        NodeConfig {
            data_dir: cfg.data_dir.clone(),
            pod_cidr,
            node_ip: cfg.node_ip,
            uplink: cfg.flannel_iface.clone(),
        },
    )
    .await?;
    Ok(net)
}

pub async fn publish(client: &kube::Client, node: &str, net: &NodeNetwork<RtNetlink>) -> kube::Result<()> {
    let ann: serde_json::Map<String, serde_json::Value> =
        net.annotations().into_iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v))).collect();
    let api: Api<Node> = Api::all(client.clone());
    api.patch(node, &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"annotations": ann}})))
        .await
        .map(|_| ())
}

/// The other nodes that published what the overlay needs.
pub fn remotes(nodes: &[Node], own: &str) -> Vec<RemoteNode> {
    nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(own) && n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| {
            let cidr: Ipv4Net = n.spec.as_ref()?.pod_cidr.as_ref()?.parse().ok()?;
            let a = n.metadata.annotations.as_ref()?;
            edge_net::overlay::remote_from_annotations(
                cidr,
                a.get(edge_net::overlay::ANNOTATION_PUBLIC_IP)?,
                a.get(edge_net::overlay::ANNOTATION_BACKEND_DATA)?,
            )
        })
        .collect()
}

/// Reconciles the overlay on every Node change and every 30 s until `shutdown`.
pub async fn overlay_loop(
    client: kube::Client,
    own: String,
    net: std::sync::Arc<NodeNetwork<RtNetlink>>,
    shutdown: CancellationToken,
) {
    let api: Api<Node> = Api::all(client);
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut nodes: std::collections::BTreeMap<String, Node> = Default::default();
    let mut buffer: Option<std::collections::BTreeMap<String, Node>> = None;
    let mut tick = tokio::time::interval(RESYNC);
    let mut ready = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            ev = stream.next() => match ev {
                None => return,
                Some(Err(e)) => { tracing::warn!(error = %e, "node watch"); tokio::time::sleep(Duration::from_secs(1)).await; continue }
                Some(Ok(watcher::Event::Init)) => { buffer = Some(Default::default()); continue }
                Some(Ok(watcher::Event::InitApply(n))) => {
                    if let (Some(b), Some(name)) = (buffer.as_mut(), n.metadata.name.clone()) { b.insert(name, n); }
                    continue
                }
                Some(Ok(watcher::Event::InitDone)) => { nodes = buffer.take().unwrap_or_default(); ready = true; }
                Some(Ok(watcher::Event::Apply(n))) => { if let Some(name) = n.metadata.name.clone() { nodes.insert(name, n); } }
                Some(Ok(watcher::Event::Delete(n))) => { if let Some(name) = &n.metadata.name { nodes.remove(name); } }
            },
        }
        if !ready {
            continue;
        }
        let list: Vec<Node> = nodes.values().cloned().collect();
        match net.reconcile(&remotes(&list, &own)).await {
            Ok(changes) if !changes.is_empty() => tracing::info!(changes = changes.len(), "overlay reconciled"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reconciling the overlay"),
        }
    }
}
