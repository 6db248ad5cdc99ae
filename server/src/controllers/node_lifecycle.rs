//! Node lifecycle: watches node heartbeats (Leases in kube-node-lease), marks silent nodes
//! Unknown and taints them, evicts pods whose tolerations run out, and removes pods whose node
//! is gone (the plan is `edge_scheduler::lifecycle`); its settings come from the flags through `ApiState::nodes`.
//!
//! Evicted pods get a normal (graceful) delete, as upstream's taint manager does. Upstream then
//! leaves a pod on an unreachable node Terminating until its kubelet returns; here, since no
//! kubelet will confirm, a terminating pod on a node whose Ready is Unknown is force-deleted once
//! its deletionTimestamp (now + grace period) has passed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use edge_scheduler::k8s_openapi::api::core::v1::{Node, Pod};
use edge_scheduler::lifecycle::{self, NodeAction, Observed, PodAction};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::events::{self, EventType};
use crate::api::local::LocalClient;
use crate::api::status::ApiError;
use crate::resources::must;

const LEASE_NAMESPACE: &str = "kube-node-lease";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {0:?}: use Go's form, like 40s, 1m30s or 500ms")]
pub struct DurationError(String);

/// Parses Go's duration syntax ("40s", "1m30s", "500ms", "1h"), as upstream's flags take it.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(s.to_string());
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(err)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

pub async fn run(client: LocalClient) {
    let state = client.state().clone();
    let mut changes = state.store.subscribe();
    let mut missing_since: HashMap<String, Instant> = HashMap::new();
    let resync = Duration::from_secs(10);
    loop {
        let wake = reconcile(&client, &mut missing_since).unwrap_or(resync).min(resync);
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wake) => {}
            ev = changes.recv() => match ev {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = changes.try_recv() {}
                }
                Err(RecvError::Closed) => return,
            },
        }
    }
}

fn decode_all<T: serde::de::DeserializeOwned>(
    client: &LocalClient,
    res: &'static crate::resources::Resource,
    kind: &'static str,
    ns: Option<&str>,
) -> Vec<(Value, T)> {
    client
        .state()
        .store
        .list(&res.store_key(), ns, None)
        .0
        .into_iter()
        .filter_map(|(_, s)| {
            let v = s.value();
            edge_scheduler::decode::<T>(kind, v.clone())
                .map(|t| (v, t))
                .map_err(|e| tracing::debug!(error = %e, "skipping object"))
                .ok()
        })
        .collect()
}

/// One pass; returns how long until something falls due (a node goes stale, a toleration ends).
fn reconcile(client: &LocalClient, missing_since: &mut HashMap<String, Instant>) -> Option<Duration> {
    let s = client.state().nodes;
    let now = Utc::now();
    let grace = chrono::Duration::from_std(s.grace).unwrap_or(chrono::Duration::seconds(40));
    let nodes_res = must("", "v1", "nodes");
    let pods_res = must("", "v1", "pods");
    let nodes: Vec<(Value, Node)> = decode_all(client, nodes_res, "Node", None);
    let leases: HashMap<String, DateTime<Utc>> = client
        .state()
        .store
        .list(&must("coordination.k8s.io", "v1", "leases").store_key(), Some(LEASE_NAMESPACE), None)
        .0
        .into_iter()
        .filter_map(|(k, st)| {
            let v = st.value();
            let t = DateTime::parse_from_rfc3339(v["spec"]["renewTime"].as_str()?).ok()?;
            Some((k.name, t.with_timezone(&Utc)))
        })
        .collect();
    let observed: Vec<Observed> = nodes
        .iter()
        .map(|(_, n)| Observed {
            node: n.clone(),
            lease_renewed: n.metadata.name.as_ref().and_then(|name| leases.get(name)).copied(),
        })
        .collect();
    let (node_actions, next_node) = lifecycle::plan_nodes(&observed, now, grace);
    let raw_nodes: HashMap<String, &Value> =
        nodes.iter().map(|(v, n)| (n.metadata.name.clone().unwrap_or_default(), v)).collect();
    for action in &node_actions {
        if let Err(e) = apply_node(client, &raw_nodes, action) {
            log_write_error("node", &e);
        }
    }
    let after = lifecycle::nodes_after(&observed, &node_actions);
    let pods: Vec<(Value, Pod)> = decode_all(client, pods_res, "Pod", None);
    let typed: Vec<Pod> = pods.iter().map(|(_, p)| p.clone()).collect();
    let (pod_actions, next_pod) = lifecycle::plan_pods(&after, &typed, now);
    let raw_pods: HashMap<(String, String), &Value> = pods
        .iter()
        .map(|(v, p)| {
            ((p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default()), v)
        })
        .collect();
    let node_names: Vec<String> = raw_nodes.keys().cloned().collect();
    missing_since.retain(|n, _| !node_names.contains(n));
    let mut quarantine_due: Option<Duration> = None;
    for action in pod_actions {
        let (ns, name) = match &action {
            PodAction::Evict { namespace, name }
            | PodAction::ForceDelete { namespace, name }
            | PodAction::MarkNotReady { namespace, name } => (namespace.clone(), name.clone()),
        };
        let Some(pod) = raw_pods.get(&(ns.clone(), name.clone())) else { continue };
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
        let result = match action {
            PodAction::Evict { .. } => {
                let msg = format!("Marking for deletion Pod {ns}/{name}");
                events::record(
                    client,
                    pod,
                    EventType::Normal,
                    "TaintManagerEviction",
                    &msg,
                    "taint-eviction-controller",
                );
                client.delete(pods_res, Some(&ns), &name, &Value::Null).map(|_| ())
            }
            PodAction::ForceDelete { .. } if !raw_nodes.contains_key(&node) => {
                // A node missing from one read may be on its way in: wait out a quarantine first.
                let since = *missing_since.entry(node.clone()).or_insert_with(Instant::now);
                if since.elapsed() < s.grace {
                    let left = s.grace - since.elapsed();
                    quarantine_due = Some(quarantine_due.map_or(left, |q| q.min(left)));
                    continue;
                }
                tracing::info!(pod = %name, node = %node, "removing pod bound to a node that no longer exists");
                client.delete(pods_res, Some(&ns), &name, &json!({"gracePeriodSeconds": 0})).map(|_| ())
            }
            PodAction::ForceDelete { .. } => {
                tracing::info!(pod = %name, node = %node, "force-deleting terminating pod on an unreachable node");
                client.delete(pods_res, Some(&ns), &name, &json!({"gracePeriodSeconds": 0})).map(|_| ())
            }
            PodAction::MarkNotReady { .. } => mark_not_ready(client, pod),
        };
        if let Err(e) = result {
            log_write_error("pod", &e);
        }
    }
    let until = |t: DateTime<Utc>| (t - now).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(50);
    [next_node.map(until), next_pod.map(until), quarantine_due].into_iter().flatten().min()
}

fn apply_node(client: &LocalClient, raw: &HashMap<String, &Value>, action: &NodeAction) -> Result<(), ApiError> {
    let res = must("", "v1", "nodes");
    match action {
        NodeAction::MarkUnknown { node, conditions } => {
            let Some(v) = raw.get(node) else { return Ok(()) };
            let mut v = (*v).clone();
            v["status"]["conditions"] = serde_json::to_value(conditions).unwrap_or_default();
            client.update_status(res, None, v.clone())?;
            events::record(
                client,
                &v,
                EventType::Normal,
                "NodeNotReady",
                &format!("Node {node} status is now: NodeNotReady"),
                "node-controller",
            );
            tracing::info!(node, "node stopped posting status: marked Unknown");
        }
        NodeAction::SetTaints { node, taints } => {
            // Read again: a status write just above moved the resourceVersion.
            let mut v = client.get(res, None, node)?;
            if taints.is_empty() {
                if let Some(spec) = v["spec"].as_object_mut() {
                    spec.remove("taints");
                }
            } else {
                v["spec"]["taints"] = serde_json::to_value(taints).unwrap_or_default();
            }
            client.update(res, None, v)?;
        }
    }
    Ok(())
}

/// Upstream's MarkPodsNotReady: the pod's Ready condition turns False with its node.
fn mark_not_ready(client: &LocalClient, pod: &Value) -> Result<(), ApiError> {
    let mut pod = pod.clone();
    let now = crate::api::handlers::now_rfc3339();
    if let Some(conds) = pod["status"]["conditions"].as_array_mut() {
        for c in conds.iter_mut().filter(|c| c["type"] == "Ready") {
            c["status"] = json!("False");
            c["lastTransitionTime"] = json!(now);
        }
    }
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    client.update_status(must("", "v1", "pods"), Some(&ns), pod).map(|_| ())
}

fn log_write_error(what: &str, e: &ApiError) {
    if e.code != 404 && e.code != 409 {
        tracing::warn!(what, error = %e.message, "node lifecycle write failed; will retry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases = [
            ("40s", 40_000),
            ("4s", 4000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1h", 3_600_000),
            ("1.5s", 1500),
            ("0", 0),
        ];
        for (s, ms) in cases {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in ["", "40", "s", "4x", "1m30"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
