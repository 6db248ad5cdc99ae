//! The default scheduler: binds pending pods to nodes through the pods/binding subresource
//! (the plan is `edge_scheduler::schedule`), records Scheduled / FailedScheduling events and
//! the PodScheduled=False condition, and retries on every change of pods or nodes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use edge_scheduler::k8s_openapi::api::core::v1::{Node, Pod};
use edge_scheduler::schedule::{self, Decision};
use serde_json::{json, Value};

use super::events::{self, EventType};
use crate::api::local::LocalClient;
use crate::api::status::ApiError;
use crate::resources::must;

const COMPONENT: &str = "default-scheduler";
/// How often an unchanged FailedScheduling is repeated (upstream retries unschedulable pods
/// at least every few minutes, each attempt counting on the event).
const REPEAT_FAILURE: Duration = Duration::from_secs(60);

pub async fn run(client: LocalClient) {
    let mut reported: HashMap<String, (String, Instant)> = HashMap::new();
    super::level_loop(&client, Duration::from_millis(50), Duration::from_secs(10), |c| reconcile(c, &mut reported))
        .await;
}

fn pending_json(v: &Value) -> bool {
    v["spec"]["nodeName"].as_str().unwrap_or_default().is_empty() && !v["metadata"]["deletionTimestamp"].is_string()
}

fn reconcile(client: &LocalClient, reported: &mut HashMap<String, (String, Instant)>) {
    let store = &client.state().store;
    let pods_res = must("", "v1", "pods");
    let raw: Vec<Value> = store.list(&pods_res.store_key(), None, None).0.into_iter().map(|(_, s)| s.value()).collect();
    // Most passes are caused by changes unrelated to scheduling: decode nothing then.
    if !raw.iter().any(pending_json) {
        reported.clear();
        return;
    }
    let nodes: Vec<Node> = store
        .list(&must("", "v1", "nodes").store_key(), None, None)
        .0
        .into_iter()
        .filter_map(|(_, s)| {
            edge_scheduler::decode::<Node>("Node", s.value())
                .map_err(|e| tracing::debug!(error = %e, "skipping node"))
                .ok()
        })
        .collect();
    let mut by_name: HashMap<(String, String), Value> = HashMap::new();
    let mut pods: Vec<Pod> = Vec::with_capacity(raw.len());
    for v in raw {
        let key = (
            v["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
            v["metadata"]["name"].as_str().unwrap_or_default().to_string(),
        );
        match edge_scheduler::decode::<Pod>("Pod", v.clone()) {
            Ok(p) => {
                if schedule::is_pending(&p) {
                    by_name.insert(key, v);
                }
                pods.push(p);
            }
            Err(e) => tracing::debug!(error = %e, "skipping pod"),
        }
    }
    let mut still_failing = HashMap::new();
    for decision in schedule::plan(&pods, nodes) {
        match decision {
            Decision::Bind { namespace, name, node } => {
                let binding = json!({
                    "apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name, "namespace": namespace},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                });
                match client.bind(pods_res, Some(&namespace), &name, binding) {
                    Ok(_) => {
                        if let Some(pod) = by_name.get(&(namespace.clone(), name.clone())) {
                            let msg = format!("Successfully assigned {namespace}/{name} to {node}");
                            events::record(client, pod, EventType::Normal, "Scheduled", &msg, COMPONENT);
                        }
                    }
                    Err(e) => log_write_error("binding", &name, &e),
                }
            }
            Decision::Unschedulable { namespace, name, message } => {
                let Some(pod) = by_name.get(&(namespace.clone(), name.clone())) else { continue };
                let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
                let changed = set_unschedulable(client, pod, &message);
                let due = match reported.get(&uid) {
                    Some((m, at)) => *m != message || at.elapsed() >= REPEAT_FAILURE,
                    None => true,
                };
                if changed || due {
                    events::record(client, pod, EventType::Warning, "FailedScheduling", &message, COMPONENT);
                    still_failing.insert(uid, (message, Instant::now()));
                } else if let Some(prev) = reported.remove(&uid) {
                    still_failing.insert(uid, prev);
                }
            }
        }
    }
    *reported = still_failing;
}

/// Writes PodScheduled=False/Unschedulable with the message, unless the pod says so already.
fn set_unschedulable(client: &LocalClient, pod: &Value, message: &str) -> bool {
    let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let current = conditions.iter().find(|c| c["type"] == "PodScheduled");
    if current.is_some_and(|c| c["status"] == "False" && c["reason"] == "Unschedulable" && c["message"] == message) {
        return false;
    }
    let mut pod = pod.clone();
    let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
    conditions.push(json!({
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
        "lastProbeTime": null, "lastTransitionTime": crate::api::handlers::now_rfc3339(),
    }));
    pod["status"]["conditions"] = json!(conditions);
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    match client.update_status(must("", "v1", "pods"), Some(&ns), pod) {
        Ok(_) => true,
        Err(e) => {
            log_write_error("pod status", &ns, &e);
            false
        }
    }
}

fn log_write_error(what: &str, name: &str, e: &ApiError) {
    // Conflicts and vanished objects are normal races: the next pass sees the new state.
    if e.code != 404 && e.code != 409 {
        tracing::warn!(what, name, error = %e.message, "scheduler write failed; will retry");
    }
}
