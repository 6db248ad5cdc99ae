//! The ReplicaSet controller: keeps each ReplicaSet's pods at `spec.replicas` and its status
//! exact. Planning is `edge_workloads::replicaset`; this module reads the store, applies the plan
//! through the API and records upstream's events. Also home of the loop the workload controllers
//! share, which adds timed rechecks (minReadySeconds, progress deadlines) to `level_loop`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use edge_workloads::k8s_openapi::api::apps::v1::ReplicaSet;
use edge_workloads::k8s_openapi::api::core::v1::Pod;
use edge_workloads::replicaset::{self as planner, ManageError};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::events;
use crate::api::local::LocalClient;
use crate::api::status::ApiError;
use crate::resources::must;

const COMPONENT: &str = "replicaset-controller";

pub async fn run(client: LocalClient) {
    recheck_loop(&client, Duration::from_millis(50), Duration::from_secs(30), reconcile).await;
}

/// `level_loop` plus a wake-up at the earliest time `reconcile` asks to look again, for state
/// that changes with the clock alone (a pod becoming available after minReadySeconds).
pub(crate) async fn recheck_loop<F>(client: &LocalClient, min_gap: Duration, resync: Duration, mut reconcile: F)
where
    F: FnMut(&LocalClient) -> Option<DateTime<Utc>>,
{
    let state = client.state().clone();
    let mut events = state.store.subscribe();
    let mut recheck = reconcile(client);
    loop {
        let wait = recheck
            .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(100))
            .map_or(resync, |d| d.min(resync));
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            ev = events.recv() => match ev {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    tokio::time::sleep(min_gap).await;
                    while let Ok(_) | Err(TryRecvError::Lagged(_)) = events.try_recv() {}
                }
                Err(RecvError::Closed) => return,
            },
        }
        recheck = reconcile(client);
    }
}

/// Stored objects of one resource in one namespace, each as JSON and decoded.
pub(crate) fn list_typed<T: serde::de::DeserializeOwned>(
    client: &LocalClient,
    store_key: &str,
    kind: &'static str,
    ns: Option<&str>,
) -> Vec<(Value, T)> {
    client
        .state()
        .store
        .list(store_key, ns, None)
        .0
        .into_iter()
        .filter_map(|(_, s)| {
            let v = s.value();
            match edge_workloads::decode::<T>(kind, v.clone()) {
                Ok(t) => Some((v, t)),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an object that does not decode");
                    None
                }
            }
        })
        .collect()
}

/// The object as events name it: stored JSON carries no apiVersion/kind for certain.
pub(crate) fn with_kind(mut obj: Value, api_version: &str, kind: &str) -> Value {
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    obj
}

pub(crate) fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// The pods of one namespace, indexed by controller so that each ReplicaSet looks only at its
/// own pods and the orphans it might adopt (the others it would ignore anyway).
struct NamespacePods {
    raw: Vec<Value>,
    typed: Vec<Pod>,
    by_controller: HashMap<String, Vec<usize>>,
    orphans: Vec<usize>,
}

impl NamespacePods {
    fn load(client: &LocalClient, ns: &str) -> NamespacePods {
        let (raw, typed): (Vec<Value>, Vec<Pod>) =
            list_typed::<Pod>(client, "pods", "Pod", Some(ns)).into_iter().unzip();
        let mut by_controller: HashMap<String, Vec<usize>> = HashMap::new();
        let mut orphans = Vec::new();
        for (i, p) in typed.iter().enumerate() {
            match edge_workloads::ownership::controller_of(&p.metadata) {
                Some(r) => by_controller.entry(r.uid.clone()).or_default().push(i),
                None => orphans.push(i),
            }
        }
        NamespacePods { raw, typed, by_controller, orphans }
    }

    fn candidates(&self, uid: &str) -> Vec<usize> {
        let mut idx: Vec<usize> = self.by_controller.get(uid).cloned().unwrap_or_default();
        idx.extend(&self.orphans);
        idx
    }
}

fn reconcile(client: &LocalClient) -> Option<DateTime<Utc>> {
    let sets: Vec<(Value, ReplicaSet)> = list_typed(client, "apps/replicasets", "ReplicaSet", None);
    let mut pods_by_ns: HashMap<String, NamespacePods> = HashMap::new();
    let mut recheck = None;
    for (raw, rs) in sets {
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let pods = pods_by_ns.entry(ns.clone()).or_insert_with(|| NamespacePods::load(client, &ns));
        let idx = pods.candidates(rs.metadata.uid.as_deref().unwrap_or_default());
        let raw_pods: Vec<&Value> = idx.iter().map(|i| &pods.raw[*i]).collect();
        let typed: Vec<Pod> = idx.iter().map(|i| pods.typed[*i].clone()).collect();
        recheck = earliest(recheck, sync_one(client, &ns, raw, &rs, &raw_pods, &typed));
    }
    recheck
}

fn sync_one(
    client: &LocalClient,
    ns: &str,
    raw: Value,
    rs: &ReplicaSet,
    raw_pods: &[&Value],
    typed: &[Pod],
) -> Option<DateTime<Utc>> {
    let now = Utc::now();
    let plan = planner::plan(rs, typed, now);
    let res = must("", "v1", "pods");
    let owner_obj = with_kind(raw.clone(), "apps/v1", "ReplicaSet");
    let rs_uid = rs.metadata.uid.clone().unwrap_or_default();
    for (name, adopt) in plan.adopt.iter().map(|n| (n, true)).chain(plan.release.iter().map(|n| (n, false))) {
        let Some(pod_raw) = raw_pods.iter().find(|p| p["metadata"]["name"].as_str() == Some(name.as_str())) else {
            continue;
        };
        let mut pod = (*pod_raw).clone();
        let refs = pod["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
        let mut refs: Vec<Value> = refs.into_iter().filter(|r| r["uid"].as_str() != Some(rs_uid.as_str())).collect();
        if adopt {
            refs.push(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs.metadata.name, "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}));
        }
        match pod["metadata"].as_object_mut() {
            Some(m) if refs.is_empty() => {
                m.remove("ownerReferences");
            }
            Some(m) => {
                m.insert("ownerReferences".into(), Value::Array(refs));
            }
            None => continue,
        }
        if let Err(e) = client.update(res, Some(ns), pod) {
            log_failure("claiming pod", name, &e);
        }
    }
    let mut failure: Option<ManageError> = None;
    if plan.create > 0 {
        let pod = serde_json::to_value(planner::pod_from_template(rs)).unwrap_or(Value::Null);
        for _ in 0..plan.create {
            if let Err(e) = events::create_pod(client, &owner_obj, Some(ns), pod.clone(), COMPONENT) {
                failure = Some(ManageError { reason: "FailedCreate", message: e.message });
                // Like upstream's slow start: after a failure, the rest would fail alike.
                break;
            }
        }
    }
    for name in &plan.delete {
        if let Err(e) = events::delete_pod(client, &owner_obj, Some(ns), name, COMPONENT) {
            failure = Some(ManageError { reason: "FailedDelete", message: e.message });
        }
    }
    let claimed = planner::claimed(rs, typed);
    let status = planner::status(rs, &claimed, now, failure.as_ref());
    if rs.status.as_ref() != Some(&status) {
        let mut obj = raw;
        obj["status"] = serde_json::to_value(&status).unwrap_or(Value::Null);
        if let Err(e) = client.update_status(must("apps", "v1", "replicasets"), Some(ns), obj) {
            log_failure("updating status of", rs.metadata.name.as_deref().unwrap_or_default(), &e);
        }
    }
    plan.recheck_at
}

pub(crate) fn log_failure(what: &str, name: &str, e: &ApiError) {
    // A conflict or a vanished object only means the next pass sees newer state.
    if e.code != 409 && e.code != 404 {
        tracing::warn!(name, error = %e.message, "{what} failed; will retry");
    }
}
