//! The DaemonSet controller: for each DaemonSet, reads its nodes, pods and ControllerRevisions,
//! plans with `edge_scheduler::daemonset` and writes revisions, pods (bound later by the
//! scheduler through their node affinity) and status.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use edge_scheduler::daemonset::{self, Observed};
use edge_scheduler::k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use edge_scheduler::k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::Value;

use super::events;
use crate::api::local::LocalClient;
use crate::api::status::ApiError;
use crate::resources::must;

const COMPONENT: &str = "daemonset-controller";

pub async fn run(client: LocalClient) {
    super::level_loop(&client, Duration::from_millis(100), Duration::from_secs(10), reconcile).await;
}

fn owner_uid(v: &Value) -> Option<&str> {
    v["metadata"]["ownerReferences"].as_array()?.iter().find(|r| r["controller"] == true)?["uid"].as_str()
}

fn reconcile(client: &LocalClient) {
    let store = &client.state().store;
    let ds_res = must("apps", "v1", "daemonsets");
    let sets: Vec<(Value, DaemonSet)> = store
        .list(&ds_res.store_key(), None, None)
        .0
        .into_iter()
        .filter_map(|(_, s)| {
            let v = s.value();
            edge_scheduler::decode::<DaemonSet>("DaemonSet", v.clone())
                .map(|d| (v, d))
                .map_err(|e| tracing::debug!(error = %e, "skipping"))
                .ok()
        })
        .collect();
    if sets.is_empty() {
        return;
    }
    let nodes: Vec<Node> = store
        .list(&must("", "v1", "nodes").store_key(), None, None)
        .0
        .into_iter()
        .filter_map(|(_, s)| edge_scheduler::decode::<Node>("Node", s.value()).ok())
        .collect();
    let uids: Vec<&str> = sets.iter().filter_map(|(_, d)| d.metadata.uid.as_deref()).collect();
    let mut pods: HashMap<String, Vec<Pod>> = HashMap::new();
    for (_, s) in store.list(&must("", "v1", "pods").store_key(), None, None).0 {
        let v = s.value();
        let Some(uid) = owner_uid(&v).filter(|u| uids.contains(u)).map(str::to_string) else { continue };
        if let Ok(p) = edge_scheduler::decode::<Pod>("Pod", v) {
            pods.entry(uid).or_default().push(p);
        }
    }
    let mut revisions: HashMap<String, Vec<ControllerRevision>> = HashMap::new();
    for (_, s) in store.list(&must("apps", "v1", "controllerrevisions").store_key(), None, None).0 {
        let v = s.value();
        let Some(uid) = owner_uid(&v).filter(|u| uids.contains(u)).map(str::to_string) else { continue };
        if let Ok(r) = edge_scheduler::decode::<ControllerRevision>("ControllerRevision", v) {
            revisions.entry(uid).or_default().push(r);
        }
    }
    for (raw, ds) in &sets {
        if ds.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let observed = Observed {
            ds,
            nodes: &nodes,
            pods: pods.get(&uid).map(Vec::as_slice).unwrap_or_default(),
            revisions: revisions.get(&uid).map(Vec::as_slice).unwrap_or_default(),
            now: Utc::now(),
        };
        if let Err(e) = apply(client, raw, ds, daemonset::plan(&observed)) {
            if e.code != 404 && e.code != 409 {
                tracing::warn!(daemonset = ?ds.metadata.name, error = %e.message, "daemonset sync failed; will retry");
            }
        }
    }
}

fn apply(client: &LocalClient, raw: &Value, ds: &DaemonSet, plan: daemonset::Plan) -> Result<(), ApiError> {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let ns = Some(ns.as_str());
    let rev_res = must("apps", "v1", "controllerrevisions");
    if let Some(r) = plan.create_revision {
        match client.create(rev_res, ns, typed_json(&r, "apps/v1", "ControllerRevision")) {
            Err(e) if e.code == 409 => {}
            other => {
                other?;
            }
        }
    }
    for r in plan.update_revisions {
        client.update(rev_res, ns, typed_json(&r, "apps/v1", "ControllerRevision"))?;
    }
    for name in plan.delete_revisions {
        client.delete(rev_res, ns, &name, &Value::Null)?;
    }
    for pod in plan.create_pods {
        events::create_pod(client, raw, ns, typed_json(&pod, "v1", "Pod"), COMPONENT)?;
    }
    for name in plan.delete_pods {
        events::delete_pod(client, raw, ns, &name, COMPONENT)?;
    }
    let status = to_json(&plan.status);
    if raw.get("status") != Some(&status) {
        let mut v = raw.clone();
        v["status"] = status;
        client.update_status(must("apps", "v1", "daemonsets"), ns, v)?;
    }
    Ok(())
}

fn typed_json<T: serde::Serialize>(v: &T, api_version: &str, kind: &str) -> Value {
    let mut v = to_json(v);
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), api_version.into());
        m.insert("kind".into(), kind.into());
    }
    v
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
