//! The StatefulSet controller: ordered, stable pods and their claims as
//! `edge_workloads::statefulset` plans, applied through the API with upstream's events.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use edge_workloads::k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use edge_workloads::k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use edge_workloads::statefulset::{self as planner, Action};
use serde_json::Value;

use super::events::{self, EventType};
use super::replicaset::{earliest, list_typed, log_failure, recheck_loop, with_kind};
use crate::api::local::LocalClient;
use crate::resources::must;

const COMPONENT: &str = "statefulset-controller";

pub async fn run(client: LocalClient) {
    recheck_loop(&client, Duration::from_millis(50), Duration::from_secs(30), reconcile).await;
}

struct Namespace {
    pods: Vec<Pod>,
    revisions: Vec<ControllerRevision>,
    claims: Vec<PersistentVolumeClaim>,
}

fn values<T>(list: Vec<(Value, T)>) -> Vec<T> {
    list.into_iter().map(|(_, t)| t).collect()
}

fn reconcile(client: &LocalClient) -> Option<DateTime<Utc>> {
    let sets: Vec<(Value, StatefulSet)> = list_typed(client, "apps/statefulsets", "StatefulSet", None);
    let mut namespaces: HashMap<String, Namespace> = HashMap::new();
    let mut recheck = None;
    for (raw, set) in sets {
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let world = namespaces.entry(ns.clone()).or_insert_with(|| Namespace {
            pods: values(list_typed(client, "pods", "Pod", Some(&ns))),
            revisions: values(list_typed(client, "apps/controllerrevisions", "ControllerRevision", Some(&ns))),
            claims: values(list_typed(client, "persistentvolumeclaims", "PersistentVolumeClaim", Some(&ns))),
        });
        match planner::plan(&set, &world.pods, &world.revisions, &world.claims, Utc::now()) {
            Ok(plan) => {
                apply(client, &ns, raw, plan.actions);
                recheck = earliest(recheck, plan.recheck_at);
            }
            Err(e) => {
                tracing::warn!(statefulset = set.metadata.name.as_deref().unwrap_or_default(), error = %e, "cannot plan")
            }
        }
    }
    recheck
}

fn apply(client: &LocalClient, ns: &str, raw: Value, actions: Vec<Action>) {
    let set_name = raw["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let owner = with_kind(raw.clone(), "apps/v1", "StatefulSet");
    let record = |kind: EventType, reason: &str, message: String| {
        events::record(client, &owner, kind, reason, &message, COMPONENT)
    };
    let pods = must("", "v1", "pods");
    let revisions = must("apps", "v1", "controllerrevisions");
    // After a failed write the rest of the plan assumed it: only the status still goes out.
    let mut stopped = false;
    for action in actions {
        match action {
            Action::UpdateStatus(status) => {
                let mut obj = raw.clone();
                obj["status"] = serde_json::to_value(&status).unwrap_or(Value::Null);
                if let Err(e) = client.update_status(must("apps", "v1", "statefulsets"), Some(ns), obj) {
                    log_failure("updating status of statefulset", &set_name, &e);
                }
            }
            _ if stopped => {}
            Action::CreateRevision(r) | Action::UpdateRevision(r) => {
                let name = r.metadata.name.clone().unwrap_or_default();
                let value = serde_json::to_value(&r).unwrap_or(Value::Null);
                let result = if r.metadata.resource_version.is_some() {
                    client.update(revisions, Some(ns), value)
                } else {
                    client.create(revisions, Some(ns), value)
                };
                if let Err(e) = result {
                    log_failure("writing controller revision", &name, &e);
                    stopped = true;
                }
            }
            Action::DeleteRevision(name) => {
                if let Err(e) = client.delete(revisions, Some(ns), &name, &Value::Null) {
                    log_failure("deleting controller revision", &name, &e);
                }
            }
            Action::UpdatePod(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                if let Err(e) = client.update(pods, Some(ns), serde_json::to_value(&p).unwrap_or(Value::Null)) {
                    log_failure("claiming pod", &name, &e);
                }
            }
            Action::CreateClaim(c) => {
                let claim = c.metadata.name.clone().unwrap_or_default();
                let pod = claim_pod(&claim, &set_name);
                match client.create(
                    must("", "v1", "persistentvolumeclaims"),
                    Some(ns),
                    serde_json::to_value(&c).unwrap_or(Value::Null),
                ) {
                    Ok(_) => record(
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("create Claim {claim} Pod {pod} in StatefulSet {set_name} success"),
                    ),
                    Err(e) if e.code == 409 => {}
                    Err(e) => {
                        record(
                            EventType::Warning,
                            "FailedCreate",
                            format!(
                                "create Claim {claim} for Pod {pod} in StatefulSet {set_name} failed error: {}",
                                e.message
                            ),
                        );
                        stopped = true;
                    }
                }
            }
            Action::CreatePod(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                match client.create(pods, Some(ns), serde_json::to_value(&p).unwrap_or(Value::Null)) {
                    Ok(_) => record(
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("create Pod {name} in StatefulSet {set_name} successful"),
                    ),
                    Err(e) => {
                        if e.code != 409 {
                            record(
                                EventType::Warning,
                                "FailedCreate",
                                format!("create Pod {name} in StatefulSet {set_name} failed error: {}", e.message),
                            );
                        }
                        stopped = true;
                    }
                }
            }
            Action::DeletePod(name) => match client.delete(pods, Some(ns), &name, &Value::Null) {
                Ok(_) => record(
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("delete Pod {name} in StatefulSet {set_name} successful"),
                ),
                Err(e) if e.code == 404 => {}
                Err(e) => {
                    record(
                        EventType::Warning,
                        "FailedDelete",
                        format!("delete Pod {name} in StatefulSet {set_name} failed error: {}", e.message),
                    );
                    stopped = true;
                }
            },
        }
    }
}

/// The pod a claim `<template>-<set>-<ordinal>` serves: `<set>-<ordinal>`.
fn claim_pod(claim: &str, set: &str) -> String {
    match claim.rfind(&format!("-{set}-")) {
        Some(i) => claim[i + 1..].to_string(),
        None => claim.to_string(),
    }
}
