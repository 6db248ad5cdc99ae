//! Node lifecycle (upstream's `pkg/controller/nodelifecycle` and its NoExecute taint manager):
//! nodes whose heartbeat (Lease renewal or status post) is older than the grace period get their
//! conditions set to Unknown; taints follow the conditions; pods on NoExecute-tainted nodes are
//! evicted once their tolerations run out; pods whose node is gone or unreachable are removed.

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::taints::{self, NO_EXECUTE, NO_SCHEDULE};

/// The conditions upstream turns Unknown when the kubelet goes silent.
const WATCHED_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

pub const UNKNOWN_REASON: &str = "NodeStatusUnknown";
pub const UNKNOWN_MESSAGE: &str = "Kubelet stopped posting node status.";
pub const NEVER_REASON: &str = "NodeStatusNeverUpdated";
pub const NEVER_MESSAGE: &str = "Kubelet never posted node status.";

/// A node and the renewTime of its Lease in kube-node-lease.
#[derive(Debug, Clone)]
pub struct Observed {
    pub node: Node,
    pub lease_renewed: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeAction {
    /// Write these conditions through the status subresource (the kubelet went silent).
    MarkUnknown { node: String, conditions: Vec<NodeCondition> },
    /// Replace spec.taints.
    SetTaints { node: String, taints: Vec<Taint> },
}

fn conditions(node: &Node) -> &[NodeCondition] {
    node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default()
}

fn condition<'a>(node: &'a Node, kind: &str) -> Option<&'a NodeCondition> {
    conditions(node).iter().find(|c| c.type_ == kind)
}

/// The newest sign of life: lease renewal, the Ready condition's heartbeat, or the node's creation.
pub fn last_heartbeat(o: &Observed) -> Option<DateTime<Utc>> {
    let ready = condition(&o.node, "Ready").and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0);
    let created = o.node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    [o.lease_renewed, ready, created].into_iter().flatten().max()
}

/// The conditions of a node whose kubelet went silent, or None when they already say Unknown.
fn unknown_conditions(node: &Node, now: DateTime<Utc>) -> Option<Vec<NodeCondition>> {
    let mut out: Vec<NodeCondition> = conditions(node).to_vec();
    let mut changed = false;
    for kind in WATCHED_CONDITIONS {
        match out.iter_mut().find(|c| c.type_ == *kind) {
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some(UNKNOWN_REASON.into());
                c.message = Some(UNKNOWN_MESSAGE.into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            Some(_) => {}
            None => {
                out.push(NodeCondition {
                    type_: (*kind).into(),
                    status: "Unknown".into(),
                    reason: Some(NEVER_REASON.into()),
                    message: Some(NEVER_MESSAGE.into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// The taints the lifecycle controller owns on a node, as (key, effect).
fn managed(key: &str, effect: &str) -> bool {
    match effect {
        NO_EXECUTE => key == taints::NOT_READY || key == taints::UNREACHABLE,
        NO_SCHEDULE => [
            taints::NOT_READY,
            taints::UNREACHABLE,
            taints::MEMORY_PRESSURE,
            taints::DISK_PRESSURE,
            taints::PID_PRESSURE,
            taints::NETWORK_UNAVAILABLE,
            taints::UNSCHEDULABLE,
        ]
        .contains(&key),
        _ => false,
    }
}

/// The managed taints the node's conditions and cordon call for (upstream's taint-based
/// evictions and TaintNodesByCondition).
fn wanted_taints(node: &Node, conds: &[NodeCondition]) -> Vec<(&'static str, &'static str)> {
    let status = |kind: &str| conds.iter().find(|c| c.type_ == kind).map(|c| c.status.as_str());
    let mut want = Vec::new();
    match status("Ready") {
        Some("False") => want.extend([(taints::NOT_READY, NO_EXECUTE), (taints::NOT_READY, NO_SCHEDULE)]),
        Some("Unknown") => want.extend([(taints::UNREACHABLE, NO_EXECUTE), (taints::UNREACHABLE, NO_SCHEDULE)]),
        _ => {}
    }
    for (kind, key) in [
        ("MemoryPressure", taints::MEMORY_PRESSURE),
        ("DiskPressure", taints::DISK_PRESSURE),
        ("PIDPressure", taints::PID_PRESSURE),
        ("NetworkUnavailable", taints::NETWORK_UNAVAILABLE),
    ] {
        if status(kind) == Some("True") {
            want.push((key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        want.push((taints::UNSCHEDULABLE, NO_SCHEDULE));
    }
    want
}

/// Plans node condition and taint updates; also returns when the next node goes stale.
pub fn plan_nodes(
    observed: &[Observed],
    now: DateTime<Utc>,
    grace: Duration,
) -> (Vec<NodeAction>, Option<DateTime<Utc>>) {
    let mut actions = Vec::new();
    let mut next: Option<DateTime<Utc>> = None;
    for o in observed {
        let name = o.node.metadata.name.clone().unwrap_or_default();
        let mut conds = conditions(&o.node).to_vec();
        match last_heartbeat(o) {
            Some(last) if now - last <= grace => {
                let due = last + grace;
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            _ => {
                if let Some(c) = unknown_conditions(&o.node, now) {
                    conds = c.clone();
                    actions.push(NodeAction::MarkUnknown { node: name.clone(), conditions: c });
                }
            }
        }
        let current = o.node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        let want = wanted_taints(&o.node, &conds);
        let mut new: Vec<Taint> = current
            .iter()
            .filter(|t| !managed(&t.key, &t.effect) || want.iter().any(|(k, e)| t.key == *k && t.effect == *e))
            .cloned()
            .collect();
        for (key, effect) in &want {
            if !new.iter().any(|t| t.key == *key && t.effect == *effect) {
                let mut t = taints::taint(key, effect);
                if *effect == NO_EXECUTE {
                    t.time_added = Some(Time(now));
                }
                new.push(t);
            }
        }
        if new != current {
            actions.push(NodeAction::SetTaints { node: name, taints: new });
        }
    }
    (actions, next)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodAction {
    /// The taint manager's eviction: a normal (graceful) delete.
    Evict { namespace: String, name: String },
    /// Removal without waiting for a kubelet: the pod's node is gone, or it is unreachable and
    /// the pod's grace period is over.
    ForceDelete { namespace: String, name: String },
    /// Set the pod's Ready condition to False: its node is not ready.
    MarkNotReady { namespace: String, name: String },
}

/// When the pod must leave a node with these NoExecute taints: now (an untolerated one), at the
/// earliest taint's timeAdded plus the shortest tolerationSeconds among the tolerations used, or
/// never (None).
pub fn eviction_time(pod: &Pod, no_execute: &[&Taint], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if no_execute.is_empty() {
        return None;
    }
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    let mut min_seconds: Option<i64> = None;
    for taint in no_execute {
        let used: Vec<_> = tolerations.iter().filter(|t| taints::tolerates(t, taint)).collect();
        if used.is_empty() {
            return Some(now);
        }
        for t in used {
            if let Some(s) = t.toleration_seconds {
                min_seconds = Some(min_seconds.map_or(s.max(0), |m| m.min(s.max(0))));
            }
        }
    }
    let seconds = min_seconds?;
    let since = no_execute.iter().filter_map(|t| t.time_added.as_ref().map(|t| t.0)).min().unwrap_or(now);
    Some(since + Duration::seconds(seconds))
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Plans pod evictions and removals against the nodes as they will be after `plan_nodes`;
/// also returns when the next eviction falls due.
pub fn plan_pods(nodes: &[Node], pods: &[Pod], now: DateTime<Utc>) -> (Vec<PodAction>, Option<DateTime<Utc>>) {
    let mut actions = Vec::new();
    let mut next: Option<DateTime<Utc>> = None;
    for pod in pods {
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()) else {
            continue;
        };
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(node) = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(node_name)) else {
            actions.push(PodAction::ForceDelete { namespace, name });
            continue;
        };
        let ready = condition(node, "Ready").map(|c| c.status.as_str());
        if let Some(deleting) = &pod.metadata.deletion_timestamp {
            if ready == Some("Unknown") {
                if deleting.0 <= now {
                    actions.push(PodAction::ForceDelete { namespace, name });
                } else {
                    next = Some(next.map_or(deleting.0, |n| n.min(deleting.0)));
                }
            }
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        if ready != Some("True") && pod_ready(pod) {
            actions.push(PodAction::MarkNotReady { namespace: namespace.clone(), name: name.clone() });
        }
        let no_execute: Vec<&Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
            .iter()
            .filter(|t| t.effect == NO_EXECUTE)
            .collect();
        match eviction_time(pod, &no_execute, now) {
            Some(at) if at <= now => actions.push(PodAction::Evict { namespace, name }),
            Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
            None => {}
        }
    }
    (actions, next)
}

/// Applies `MarkUnknown` and `SetTaints` to the observed nodes, so that pods are planned
/// against the state about to be written.
pub fn nodes_after(observed: &[Observed], actions: &[NodeAction]) -> Vec<Node> {
    observed
        .iter()
        .map(|o| {
            let mut n = o.node.clone();
            let name = n.metadata.name.clone().unwrap_or_default();
            for a in actions {
                match a {
                    NodeAction::MarkUnknown { node, conditions } if *node == name => {
                        n.status.get_or_insert_with(Default::default).conditions = Some(conditions.clone());
                    }
                    NodeAction::SetTaints { node, taints } if *node == name => {
                        n.spec.get_or_insert_with(Default::default).taints = Some(taints.clone());
                    }
                    _ => {}
                }
            }
            n
        })
        .collect()
}

#[cfg(test)]
mod tests;
