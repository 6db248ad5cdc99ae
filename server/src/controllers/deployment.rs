//! The Deployment controller: rolls ReplicaSets forward as `edge_workloads::deployment` plans
//! and applies each step through the API, recording upstream's ScalingReplicaSet events.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use edge_workloads::deployment::{self as planner, Action};
use edge_workloads::k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use edge_workloads::k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::events::{self, EventType};
use super::replicaset::{earliest, list_typed, log_failure, recheck_loop, with_kind};
use crate::api::local::LocalClient;
use crate::resources::must;

const COMPONENT: &str = "deployment-controller";

pub async fn run(client: LocalClient) {
    recheck_loop(&client, Duration::from_millis(50), Duration::from_secs(30), reconcile).await;
}

struct Namespace {
    replica_sets: Vec<ReplicaSet>,
    pods: Vec<Pod>,
}

fn reconcile(client: &LocalClient) -> Option<DateTime<Utc>> {
    let deployments: Vec<(Value, Deployment)> = list_typed(client, "apps/deployments", "Deployment", None);
    let mut namespaces: HashMap<String, Namespace> = HashMap::new();
    let mut recheck = None;
    for (raw, d) in deployments {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let world = namespaces.entry(ns.clone()).or_insert_with(|| Namespace {
            replica_sets: list_typed::<ReplicaSet>(client, "apps/replicasets", "ReplicaSet", Some(&ns))
                .into_iter()
                .map(|(_, r)| r)
                .collect(),
            pods: list_typed::<Pod>(client, "pods", "Pod", Some(&ns)).into_iter().map(|(_, p)| p).collect(),
        });
        match planner::plan(&d, &world.replica_sets, &world.pods, Utc::now()) {
            Ok(plan) => {
                apply(client, &ns, raw, plan.actions);
                recheck = earliest(recheck, plan.recheck_at);
            }
            Err(e) => {
                tracing::warn!(deployment = d.metadata.name.as_deref().unwrap_or_default(), error = %e, "cannot plan")
            }
        }
    }
    recheck
}

fn apply(client: &LocalClient, ns: &str, raw: Value, actions: Vec<Action>) {
    let rs_res = must("apps", "v1", "replicasets");
    let d_res = must("apps", "v1", "deployments");
    let name = raw["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let mut current = raw;
    let mut failed = false;
    for action in actions {
        match action {
            Action::CreateReplicaSet(rs) => {
                let rs_name = rs.metadata.name.clone().unwrap_or_default();
                if let Err(e) = client.create(rs_res, Some(ns), to_value(&rs)) {
                    log_failure("creating replica set", &rs_name, &e);
                    failed = true;
                }
            }
            Action::UpdateReplicaSet(rs) => {
                let rs_name = rs.metadata.name.clone().unwrap_or_default();
                if let Err(e) = client.update(rs_res, Some(ns), to_value(&rs)) {
                    log_failure("updating replica set", &rs_name, &e);
                    failed = true;
                }
            }
            Action::DeleteReplicaSet(rs_name) => {
                if let Err(e) = client.delete(rs_res, Some(ns), &rs_name, &json!({"propagationPolicy": "Background"})) {
                    log_failure("deleting old replica set", &rs_name, &e);
                }
            }
            // A step that did not land must not be reported as done: the next pass redoes it.
            Action::UpdateAnnotations(_) | Action::UpdateStatus(_) if failed => {}
            Action::UpdateAnnotations(annotations) => {
                let mut obj = current.clone();
                obj["metadata"]["annotations"] = json!(annotations);
                match client.update(d_res, Some(ns), obj) {
                    Ok(updated) => current = updated,
                    Err(e) => {
                        log_failure("updating deployment", &name, &e);
                        failed = true;
                    }
                }
            }
            Action::UpdateStatus(status) => {
                let mut obj = current.clone();
                obj["status"] = to_value(&status);
                if let Err(e) = client.update_status(d_res, Some(ns), obj) {
                    log_failure("updating status of deployment", &name, &e);
                }
            }
            Action::Event(ev) => {
                let kind = if ev.type_ == "Warning" { EventType::Warning } else { EventType::Normal };
                events::record(
                    client,
                    &with_kind(current.clone(), "apps/v1", "Deployment"),
                    kind,
                    ev.reason,
                    &ev.message,
                    COMPONENT,
                );
            }
        }
    }
}

fn to_value<T: serde::Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}
