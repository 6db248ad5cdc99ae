//! This board as a Node: registration, status (capacity, conditions, nodeInfo) and the Lease
//! heartbeat. Status is reported when it changes or every five minutes, like the kubelet with
//! leases enabled; the Lease is renewed every ten seconds and lives in the server's memory tier,
//! so an idle node costs the SD card nothing.

pub mod facts;
pub mod status;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use facts::NodeFacts;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i32 = 40;
const RENEW_INTERVAL: Duration = Duration::from_secs(10);
const REPORT_INTERVAL: Duration = Duration::from_secs(300);

/// Creates the Node or brings its labels and annotations up to date; returns the stored object.
pub async fn register(
    client: &kube::Client,
    facts: &NodeFacts,
    annotations: &[(String, String)],
) -> kube::Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let labels = status::labels(facts);
    let mut meta = json!({"name": facts.name, "labels": labels});
    if !annotations.is_empty() {
        meta["annotations"] = annotations.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    }
    let node = match api.get_opt(&facts.name).await? {
        None => {
            let node: Node = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node", "metadata": meta}))
                .map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &node).await {
                Ok(n) => n,
                // Another start of this agent won the race: update it instead.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    api.patch(&facts.name, &PatchParams::default(), &Patch::Merge(json!({"metadata": meta}))).await?
                }
                Err(e) => return Err(e),
            }
        }
        Some(_) => api.patch(&facts.name, &PatchParams::default(), &Patch::Merge(json!({"metadata": meta}))).await?,
    };
    report_status(&api, facts, &node).await
}

/// Writes the status if it differs from what the Node says (conditions compared without their
/// heartbeat times) or `force`; returns the Node as stored.
async fn report(api: &Api<Node>, facts: &NodeFacts, node: &Node, force: bool) -> kube::Result<Option<Node>> {
    let now = chrono::Utc::now();
    let desired = status::desired(facts, node.status.as_ref(), now);
    if !force && status::same(node.status.as_ref(), &desired) {
        return Ok(None);
    }
    let patch = json!({"status": desired});
    Ok(Some(api.patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(patch)).await?))
}

async fn report_status(api: &Api<Node>, facts: &NodeFacts, node: &Node) -> kube::Result<Node> {
    Ok(report(api, facts, node, true).await?.unwrap_or_else(|| node.clone()))
}

/// Renews the Lease every 10 s and reports status on change (every 10 s checked) or every 5 minutes,
/// until `shutdown`. Errors are logged and retried at the next tick.
pub async fn heartbeat(client: kube::Client, facts: NodeFacts, shutdown: CancellationToken) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let mut last_report = Instant::now();
    loop {
        if let Err(e) = renew_lease(&leases, &nodes, &facts.name).await {
            tracing::warn!(error = %e, "renewing the node lease");
        }
        let facts_now = facts.refreshed();
        match nodes.get(&facts.name).await {
            Ok(node) => {
                let force = last_report.elapsed() >= REPORT_INTERVAL;
                match report(&nodes, &facts_now, &node, force).await {
                    Ok(Some(_)) => last_report = Instant::now(),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "reporting node status"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading our Node"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RENEW_INTERVAL) => {}
        }
    }
}

pub async fn renew_lease(leases: &Api<Lease>, nodes: &Api<Node>, name: &str) -> kube::Result<()> {
    let now = MicroTime(chrono::Utc::now());
    let spec = json!({"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now});
    match leases.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec}))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            // Owned by the Node, as the kubelet does, so deleting the Node removes its Lease.
            let node = nodes.get(name).await?;
            let owner = OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: name.into(),
                uid: node.metadata.uid.unwrap_or_default(),
                ..Default::default()
            };
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [owner]},
                "spec": spec,
            }))
            .map_err(kube::Error::SerdeError)?;
            leases.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}
