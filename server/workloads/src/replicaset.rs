//! The ReplicaSet planner (upstream `pkg/controller/replicaset`): claim pods, create or delete
//! to reach `spec.replicas`, and compute the status from the pods it owns.

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::ownership::{self, Claim, Owner};
use crate::pods;

/// Upstream's `BurstReplicas`: at most this many creations or deletions per pass.
pub const BURST_REPLICAS: usize = 500;

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Orphans to take (by name).
    pub adopt: Vec<String>,
    /// Owned pods whose labels no longer match (by name).
    pub release: Vec<String>,
    /// How many pods to create from the template.
    pub create: usize,
    /// Pods to delete, most expendable first.
    pub delete: Vec<String>,
    /// When to look again although nothing changes (a pod turning available).
    pub recheck_at: Option<DateTime<Utc>>,
}

fn owner(rs: &ReplicaSet) -> Owner<'_> {
    Owner {
        api_version: "apps/v1",
        kind: "ReplicaSet",
        meta: &rs.metadata,
        selector: rs.spec.as_ref().map(|s| &s.selector).unwrap_or(&EMPTY),
    }
}

static EMPTY: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector { match_labels: None, match_expressions: None };

pub fn desired(rs: &ReplicaSet) -> usize {
    usize::try_from(rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)).unwrap_or(0)
}

fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

/// The pods `rs` controls after this pass's adoptions and releases, active or not.
pub fn claimed<'a>(rs: &ReplicaSet, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let owner = owner(rs);
    pods.iter().filter(|p| matches!(ownership::claim(&owner, &p.metadata), Claim::Owned | Claim::Adopt)).collect()
}

pub fn plan(rs: &ReplicaSet, pods: &[Pod], now: DateTime<Utc>) -> Plan {
    let owner = owner(rs);
    let mut plan = Plan::default();
    let mut active: Vec<&Pod> = Vec::new();
    for p in pods {
        match ownership::claim(&owner, &p.metadata) {
            Claim::Owned => {}
            Claim::Adopt => plan.adopt.push(pods::name(p).to_string()),
            Claim::Release => {
                plan.release.push(pods::name(p).to_string());
                continue;
            }
            Claim::Ignore => continue,
        }
        if pods::is_active(p) {
            active.push(p);
        }
    }
    plan.recheck_at =
        active.iter().filter_map(|p| pods::available_at(p, min_ready_seconds(rs))).filter(|t| *t >= now).min();
    if rs.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let want = desired(rs);
    if active.len() < want {
        plan.create = (want - active.len()).min(BURST_REPLICAS);
    } else if active.len() > want {
        pods::deletion_order(&mut active);
        plan.delete =
            active.iter().take((active.len() - want).min(BURST_REPLICAS)).map(|p| pods::name(p).to_string()).collect();
    }
    plan
}

/// A new pod for `rs` (upstream's `GetPodFromTemplate`): template labels, annotations and
/// finalizers, `generateName` of the set's name, and the controller reference.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let owner = owner(rs);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name.as_deref().unwrap_or_default())),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner.controller_ref()]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Why the last pass could not reach the desired count (the ReplicaFailure condition).
#[derive(Debug, Clone, PartialEq)]
pub struct ManageError {
    /// "FailedCreate" or "FailedDelete".
    pub reason: &'static str,
    pub message: String,
}

/// The status upstream's `calculateStatus` reports for the pods `rs` controls.
pub fn status(
    rs: &ReplicaSet,
    controlled: &[&Pod],
    now: DateTime<Utc>,
    error: Option<&ManageError>,
) -> ReplicaSetStatus {
    let active: Vec<&&Pod> = controlled.iter().filter(|p| pods::is_active(p)).collect();
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| template_labels.iter().all(|(k, v)| p.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v)))
        .count();
    let ready = active.iter().filter(|p| pods::is_ready(p)).count();
    let available = active.iter().filter(|p| pods::is_available(p, min_ready_seconds(rs), now)).count();
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = old.conditions.unwrap_or_default();
    match error {
        Some(e) => {
            if !conditions.iter().any(|c| c.type_ == "ReplicaFailure") {
                conditions.push(ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some(e.reason.into()),
                    message: Some(e.message.clone()),
                    last_transition_time: Some(Time(now)),
                });
            }
        }
        None => conditions.retain(|c| c.type_ != "ReplicaFailure"),
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    // Upstream omits zero counts (`omitempty`) except `replicas`.
    let nonzero = |n: usize| (n != 0).then(|| count(n));
    ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: nonzero(fully_labeled),
        ready_replicas: nonzero(ready),
        available_replicas: nonzero(available),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::test_pods::{pod, t0};
    use chrono::Duration;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};

    fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web-abc".into()),
                namespace: Some("ns".into()),
                uid: Some("rs-uid".into()),
                generation: Some(4),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready),
                selector: LabelSelector { match_labels: Some(labels(&[("app", "web")])), match_expressions: None },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&[("app", "web"), ("tier", "fe")])),
                        ..Default::default()
                    }),
                    spec: None,
                }),
            }),
            status: None,
        }
    }

    /// A pod with app=web owned by the set (`owned`), by another controller, or orphaned.
    fn member(name: &str, owner: Option<&str>, extra: &[(&str, &str)], ready: bool, created: i64) -> Pod {
        let mut p = pod(name, "", "Running", ready.then_some(0), created);
        let mut l = labels(&[("app", "web")]);
        l.extend(labels(extra));
        p.metadata.labels = Some(l);
        p.metadata.owner_references =
            owner.map(|u| vec![OwnerReference { uid: u.into(), controller: Some(true), ..Default::default() }]);
        p
    }

    #[test]
    fn plan_table() {
        let owned = |n: &str, created: i64| member(n, Some("rs-uid"), &[], true, created);
        struct Case {
            name: &'static str,
            replicas: i32,
            pods: Vec<Pod>,
            want: Plan,
        }
        let cases = vec![
            Case { name: "empty scales up", replicas: 3, pods: vec![], want: Plan { create: 3, ..Default::default() } },
            Case { name: "steady", replicas: 2, pods: vec![owned("a", 0), owned("b", 1)], want: Plan::default() },
            Case {
                name: "scale down deletes newest ready",
                replicas: 1,
                pods: vec![owned("a", 0), owned("b", 2), owned("c", 1)],
                want: Plan { delete: vec!["b".into(), "c".into()], ..Default::default() },
            },
            Case {
                name: "adopts a matching orphan and counts it",
                replicas: 2,
                pods: vec![owned("a", 0), member("orphan", None, &[], true, 0)],
                want: Plan { adopt: vec!["orphan".into()], ..Default::default() },
            },
            Case {
                name: "other controllers' pods are not counted",
                replicas: 1,
                pods: vec![member("theirs", Some("other"), &[], true, 0)],
                want: Plan { create: 1, ..Default::default() },
            },
            Case {
                name: "released pod no longer counts",
                replicas: 1,
                pods: vec![{
                    let mut p = owned("moved", 0);
                    p.metadata.labels = Some(labels(&[("app", "db")]));
                    p
                }],
                want: Plan { release: vec!["moved".into()], create: 1, ..Default::default() },
            },
            Case {
                name: "terminating and finished pods are replaced",
                replicas: 2,
                pods: vec![
                    {
                        let mut p = owned("dying", 0);
                        p.metadata.deletion_timestamp = Some(Time(t0()));
                        p
                    },
                    {
                        let mut p = owned("done", 0);
                        p.status.as_mut().unwrap().phase = Some("Failed".into());
                        p
                    },
                ],
                want: Plan { create: 2, ..Default::default() },
            },
            Case {
                name: "not ready goes before ready",
                replicas: 1,
                pods: vec![owned("old-ready", 0), member("young-unready", Some("rs-uid"), &[], false, -5)],
                want: Plan { delete: vec!["young-unready".into()], ..Default::default() },
            },
        ];
        for c in cases {
            assert_eq!(plan(&rs(c.replicas, 0), &c.pods, t0()), c.want, "{}", c.name);
        }
    }

    #[test]
    fn burst_limits_one_pass() {
        assert_eq!(plan(&rs(2000, 0), &[], t0()).create, BURST_REPLICAS);
    }

    #[test]
    fn deleting_set_only_claims() {
        let mut set = rs(3, 0);
        set.metadata.deletion_timestamp = Some(Time(t0()));
        assert_eq!(plan(&set, &[], t0()), Plan::default());
    }

    #[test]
    fn status_counts() {
        let set = rs(3, 10);
        let fully = member("fully", Some("rs-uid"), &[("tier", "fe")], true, 0);
        let partly = member("partly", Some("rs-uid"), &[], true, 0);
        let unready = member("unready", Some("rs-uid"), &[("tier", "fe")], false, 0);
        let mut gone = member("gone", Some("rs-uid"), &[("tier", "fe")], true, 0);
        gone.metadata.deletion_timestamp = Some(Time(t0()));
        let pods = [&fully, &partly, &unready, &gone];
        let early = status(&set, &pods, t0() + Duration::seconds(5), None);
        assert_eq!(
            (early.replicas, early.fully_labeled_replicas, early.ready_replicas, early.available_replicas),
            (3, Some(2), Some(2), None)
        );
        assert_eq!(early.observed_generation, Some(4));
        let later = status(&set, &pods, t0() + Duration::seconds(11), None);
        assert_eq!(later.available_replicas, Some(2));
        let p = plan(&set, std::slice::from_ref(&fully), t0() + Duration::seconds(5));
        assert_eq!(p.recheck_at, Some(t0() + Duration::seconds(10)));
    }

    #[test]
    fn replica_failure_condition_comes_and_goes() {
        let mut set = rs(1, 0);
        let err = ManageError { reason: "FailedCreate", message: "pods \"web-abc-\" is forbidden: quota".into() };
        let s = status(&set, &[], t0(), Some(&err));
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()),
            ("ReplicaFailure", "True", Some("FailedCreate"))
        );
        set.status = Some(s);
        assert!(status(&set, &[], t0(), None).conditions.is_none());
    }

    #[test]
    fn pod_from_template_carries_template_and_owner() {
        let p = pod_from_template(&rs(1, 0));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(p.metadata.labels, Some(labels(&[("app", "web"), ("tier", "fe")])));
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.controller, r.block_owner_deletion),
            ("ReplicaSet", "web-abc", Some(true), Some(true))
        );
    }
}
