//! Pod predicates shared by the workload controllers (upstream's `podutil`) and the order in
//! which a ReplicaSet gives up pods when it has too many (`controller.ActivePodsWithRanks`).

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::Pod;

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

/// Counts toward a controller's replicas: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// The time the pod became Ready, if it is Ready now.
pub fn ready_since(pod: &Pod) -> Option<Option<DateTime<Utc>>> {
    let cond = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

/// Ready for at least `min_ready_seconds` (upstream's `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => t + Duration::seconds(i64::from(min_ready_seconds)) < now,
    }
}

/// When a Ready but not yet available pod becomes available: the controller checks again then.
pub fn available_at(pod: &Pod, min_ready_seconds: i32) -> Option<DateTime<Utc>> {
    match ready_since(pod) {
        Some(Some(t)) if min_ready_seconds > 0 => Some(t + Duration::seconds(i64::from(min_ready_seconds))),
        _ => None,
    }
}

fn node(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default()
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// Orders pods so the first are the ones to delete: unscheduled before scheduled; Pending, then
/// Unknown, then Running; not ready before ready; more pods on the same node first (spreads what
/// stays); ready for less time first; more restarts first; newer first.
pub fn deletion_order(pods: &mut [&Pod]) {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in pods.iter() {
        if !node(p).is_empty() {
            *on_node.entry(node(p)).or_default() += 1;
        }
    }
    let rank = |p: &Pod| if node(p).is_empty() { 0 } else { on_node.get(node(p)).copied().unwrap_or(0) };
    pods.sort_by(|a, b| {
        (!node(a).is_empty())
            .cmp(&!node(b).is_empty())
            .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
            .then_with(|| is_ready(a).cmp(&is_ready(b)))
            .then_with(|| rank(b).cmp(&rank(a)))
            .then_with(|| match (ready_since(a).flatten(), ready_since(b).flatten()) {
                // Later ready time = ready for less time = deleted first.
                (Some(x), Some(y)) => y.cmp(&x),
                _ => Ordering::Equal,
            })
            .then_with(|| restarts(b).cmp(&restarts(a)))
            .then_with(|| {
                let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                created(b).cmp(&created(a))
            })
            .then_with(|| name(b).cmp(name(a)))
    });
}

#[cfg(test)]
pub(crate) mod test_pods {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    pub fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    /// A pod: `ready_at` seconds after t0 it became Ready (None: not ready).
    pub fn pod(name: &str, node: &str, phase: &str, ready_at: Option<i64>, created: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(t0() + Duration::seconds(created))),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: (!node.is_empty()).then(|| node.to_string()), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready_at.map(|s| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(t0() + Duration::seconds(s))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_pods::*;
    use super::*;

    #[test]
    fn deletion_order_follows_upstream_preferences() {
        let pods = [
            pod("ready-old", "n1", "Running", Some(10), 0),
            pod("ready-new", "n2", "Running", Some(50), 1),
            pod("unscheduled", "", "Pending", None, 0),
            pod("pending", "n1", "Pending", None, 0),
            pod("unknown", "n1", "Unknown", None, 0),
            pod("running-not-ready", "n1", "Running", None, 0),
        ];
        let mut refs: Vec<&Pod> = pods.iter().collect();
        deletion_order(&mut refs);
        let names: Vec<&str> = refs.iter().map(|p| name(p)).collect();
        assert_eq!(names, ["unscheduled", "pending", "unknown", "running-not-ready", "ready-old", "ready-new"]);
    }

    #[test]
    fn deletion_order_ties() {
        // Same node load: ready for less time first, then newer first.
        let pods = [
            pod("a", "n1", "Running", Some(10), 0),
            pod("b", "n2", "Running", Some(20), 0),
            pod("c", "n3", "Running", Some(20), 5),
        ];
        let mut refs: Vec<&Pod> = pods.iter().collect();
        deletion_order(&mut refs);
        assert_eq!(refs.iter().map(|p| name(p)).collect::<Vec<_>>(), ["c", "b", "a"]);
        // A crowded node gives up its pods first.
        let pods = [
            pod("alone", "n1", "Running", Some(10), 9),
            pod("x", "n2", "Running", Some(10), 0),
            pod("y", "n2", "Running", Some(10), 0),
        ];
        let mut refs: Vec<&Pod> = pods.iter().collect();
        deletion_order(&mut refs);
        assert_eq!(name(refs[2]), "alone");
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let p = pod("p", "n", "Running", Some(0), 0);
        let cases = [(0, 0, true), (5, 3, false), (5, 5, false), (5, 6, true)];
        for (min_ready, after, want) in cases {
            assert_eq!(is_available(&p, min_ready, t0() + Duration::seconds(after)), want, "{min_ready} {after}");
        }
        assert!(!is_available(&pod("q", "n", "Running", None, 0), 0, t0()));
        let mut gone = pod("g", "n", "Running", Some(0), 0);
        assert!(is_active(&gone));
        gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()));
        assert!(!is_active(&gone));
        assert!(!is_active(&pod("done", "n", "Succeeded", None, 0)));
    }
}
