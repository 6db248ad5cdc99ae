//! The StatefulSet planner (upstream `pkg/controller/statefulset`): stable pods `<set>-<ordinal>`
//! with their claims `<template>-<set>-<ordinal>`, created in order and removed in reverse under
//! `OrderedReady` (all at once under `Parallel`), template history kept as ControllerRevisions,
//! and RollingUpdate replacing pods from the highest ordinal down to the partition.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetSpec, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{json, Value};

use crate::hash::compute_hash;
use crate::ownership::{self, Claim, Owner};
use crate::{pods, Error};

pub const REVISION_LABEL: &str = "controller-revision-hash";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label upstream's controller history puts on every ControllerRevision.
pub const HISTORY_HASH_LABEL: &str = "controller.kubernetes.io/hash";

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateRevision(ControllerRevision),
    /// An older revision becomes current again (its `revision` number raised).
    UpdateRevision(ControllerRevision),
    DeleteRevision(String),
    /// Adoption or release of a pod.
    UpdatePod(Pod),
    CreateClaim(PersistentVolumeClaim),
    CreatePod(Pod),
    DeletePod(String),
    UpdateStatus(StatefulSetStatus),
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub recheck_at: Option<DateTime<Utc>>,
}

fn spec(set: &StatefulSet) -> Result<&StatefulSetSpec, Error> {
    set.spec.as_ref().ok_or(Error::Invalid { field: "spec", message: "a StatefulSet needs a spec".into() })
}

fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or_default()
}

/// The ordinal in a pod name `<set>-<n>`, if the pod belongs to the set by name.
pub fn ordinal(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok().filter(|n: &i32| *n >= 0)
}

pub fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

fn revision_label(pod: &Pod) -> &str {
    pod.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)).map(String::as_str).unwrap_or_default()
}

/// What a ControllerRevision stores: a patch that replaces the template (as upstream's `getPatch`).
fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The template a revision stores.
pub fn revision_template(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

fn is_healthy(pod: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    pods::is_running_and_ready(pod) && pods::is_available(pod, min_ready_seconds, now) && !pods::is_terminating(pod)
}

/// A pod for `ordinal` from `template` at `revision` (upstream's `newStatefulSetPod`):
/// stable hostname and subdomain, identity labels, one volume per claim template.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let name = set_name(set);
    let pod_name = pod_name(name, ordinal);
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), pod_name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let mut pod_spec = template.spec.clone().unwrap_or_default();
    pod_spec.hostname = Some(pod_name.clone());
    if let Some(s) = set.spec.as_ref().map(|s| s.service_name.clone()).filter(|s| !s.is_empty()) {
        pod_spec.subdomain = Some(s);
    }
    let claims = set.spec.as_ref().and_then(|s| s.volume_claim_templates.clone()).unwrap_or_default();
    if !claims.is_empty() {
        let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
        for c in &claims {
            let tpl = c.metadata.name.clone().unwrap_or_default();
            volumes.retain(|v| v.name != tpl);
            volumes.push(Volume {
                name: tpl.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(&tpl, name, ordinal),
                    read_only: None,
                }),
                ..Default::default()
            });
        }
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner(set).controller_ref()]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// The claims an ordinal needs (upstream's `getPersistentVolumeClaims`).
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let Some(spec) = set.spec.as_ref() else { return Vec::new() };
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|tpl| {
            let mut labels = tpl.metadata.labels.clone().unwrap_or_default();
            labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(tpl.metadata.name.as_deref().unwrap_or_default(), set_name(set), ordinal)),
                    namespace: set.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: tpl.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: tpl.spec.clone(),
                status: None,
            }
        })
        .collect()
}

static EMPTY_SELECTOR: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector { match_labels: None, match_expressions: None };

fn owner(set: &StatefulSet) -> Owner<'_> {
    Owner {
        api_version: "apps/v1",
        kind: "StatefulSet",
        meta: &set.metadata,
        selector: set.spec.as_ref().map(|s| &s.selector).unwrap_or(&EMPTY_SELECTOR),
    }
}

/// The current and update revisions, and the write (if any) that makes the update revision exist.
struct Revisions {
    current: ControllerRevision,
    update: ControllerRevision,
    write: Option<Action>,
    /// Owned revisions, by revision number.
    owned: Vec<ControllerRevision>,
}

fn revisions(set: &StatefulSet, spec: &StatefulSetSpec, all: &[ControllerRevision]) -> Result<Revisions, Error> {
    let uid = set.metadata.uid.as_deref().unwrap_or_default();
    let mut owned: Vec<ControllerRevision> =
        all.iter().filter(|r| ownership::controller_of(&r.metadata).is_some_and(|o| o.uid == uid)).cloned().collect();
    owned.sort_by_key(|r| r.revision);
    let data = revision_data(&spec.template);
    let next = owned.last().map(|r| r.revision).unwrap_or(0) + 1;
    let collision = set.status.as_ref().and_then(|s| s.collision_count);
    let equal: Vec<&ControllerRevision> =
        owned.iter().filter(|r| r.data.as_ref().map(|d| &d.0) == Some(&data)).collect();
    let (update, write) = match (equal.last(), owned.last()) {
        (Some(e), Some(last)) if e.metadata.name == last.metadata.name => ((*e).clone(), None),
        (Some(e), _) => {
            let mut r = (*e).clone();
            r.revision = next;
            (r.clone(), Some(Action::UpdateRevision(r)))
        }
        (None, _) => {
            let hash = compute_hash(&data, collision);
            let name = format!("{}-{}", set_name(set), hash);
            if all.iter().any(|r| r.metadata.name.as_deref() == Some(name.as_str())) {
                return Err(Error::NameCollision(format!("controllerrevision {name}")));
            }
            let mut labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
            labels.insert(HISTORY_HASH_LABEL.into(), hash);
            let r = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: set.metadata.namespace.clone(),
                    labels: Some(labels),
                    owner_references: Some(vec![owner(set).controller_ref()]),
                    ..Default::default()
                },
                data: Some(RawExtension(data)),
                revision: next,
            };
            (r.clone(), Some(Action::CreateRevision(r)))
        }
    };
    let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
    let current = owned
        .iter()
        .find(|r| r.metadata.name == current_name && current_name.is_some())
        .cloned()
        .unwrap_or_else(|| update.clone());
    Ok(Revisions { current, update, write, owned })
}

/// Plans one pass. `pods`, `revisions` and `claims` are everything in the set's namespace.
pub fn plan(
    set: &StatefulSet,
    all_pods: &[Pod],
    all_revisions: &[ControllerRevision],
    claims: &[PersistentVolumeClaim],
    now: DateTime<Utc>,
) -> Result<Plan, Error> {
    let spec = spec(set)?;
    let name = set_name(set);
    let mut actions = Vec::new();
    let revs = match revisions(set, spec, all_revisions) {
        Ok(r) => r,
        Err(Error::NameCollision(_)) => {
            let mut status = set.status.clone().unwrap_or_default();
            status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
            return Ok(Plan { actions: vec![Action::UpdateStatus(status)], recheck_at: None });
        }
        Err(e) => return Err(e),
    };
    actions.extend(revs.write.clone());

    let owner = owner(set);
    let mut owned: Vec<&Pod> = Vec::new();
    for p in all_pods {
        match ownership::claim(&owner, &p.metadata) {
            Claim::Owned => owned.push(p),
            Claim::Adopt => {
                let mut adopted = p.clone();
                ownership::adopt(&owner, &mut adopted.metadata);
                actions.push(Action::UpdatePod(adopted));
                owned.push(p);
            }
            Claim::Release => {
                let mut released = p.clone();
                ownership::release(owner.uid(), &mut released.metadata);
                actions.push(Action::UpdatePod(released));
            }
            Claim::Ignore => {}
        }
    }

    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let strategy = spec.update_strategy.as_ref();
    let rolling = strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate";
    let partition = strategy.and_then(|s| s.rolling_update.as_ref()).map(|r| r.partition.unwrap_or(0));

    let mut slots: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for p in &owned {
        match ordinal(name, pods::name(p)) {
            Some(o) if o >= start && o < start + replicas => {
                slots.insert(o, p);
            }
            Some(o) => condemned.push((o, p)),
            None => {}
        }
    }
    condemned.sort_by_key(|(o, _)| *o);

    let status = status(set, &owned, &revs, now);
    let recheck_at = owned.iter().filter_map(|p| pods::available_at(p, min_ready)).filter(|t| *t >= now).min();
    let mut plan = Plan { actions, recheck_at };
    let finish = |mut plan: Plan| {
        if set.status.as_ref() != Some(&status) {
            plan.actions.push(Action::UpdateStatus(status.clone()));
        }
        plan
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(finish(plan));
    }

    let current_template = revision_template(&revs.current).unwrap_or_else(|| spec.template.clone());
    let current_name = revs.current.metadata.name.clone().unwrap_or_default();
    let update_name = revs.update.metadata.name.clone().unwrap_or_default();
    let current_count = set.status.as_ref().and_then(|s| s.current_replicas).unwrap_or(0);
    let existing_claims: BTreeSet<&str> = claims.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
    let unhealthy_first = slots
        .values()
        .chain(condemned.iter().map(|(_, p)| p))
        .find(|p| !is_healthy(p, min_ready, now))
        .map(|p| pods::name(p).to_string());

    for o in start..start + replicas {
        let missing_claims = claims_for(set, o)
            .into_iter()
            .filter(|c| !existing_claims.contains(c.metadata.name.as_deref().unwrap_or_default()));
        match slots.get(&o) {
            None => {
                plan.actions.extend(missing_claims.map(Action::CreateClaim));
                // Upstream's newVersionedStatefulSetPod: ordinals below the partition keep the current revision.
                let keep_current = rolling
                    && match partition {
                        Some(p) => o < start + p,
                        None => o < start + current_count,
                    };
                let pod = if keep_current {
                    new_pod(set, &current_template, &current_name, o)
                } else {
                    new_pod(set, &spec.template, &update_name, o)
                };
                plan.actions.push(Action::CreatePod(pod));
                if monotonic {
                    return Ok(finish(plan));
                }
            }
            Some(p) if pods::is_finished(p) && !pods::is_terminating(p) => {
                // A failed or completed pod is replaced under the same name.
                plan.actions.push(Action::DeletePod(pods::name(p).to_string()));
                if monotonic {
                    return Ok(finish(plan));
                }
            }
            Some(p) => {
                plan.actions.extend(missing_claims.map(Action::CreateClaim));
                if monotonic && !is_healthy(p, min_ready, now) {
                    return Ok(finish(plan));
                }
            }
        }
    }
    for (_, p) in condemned.iter().rev() {
        if pods::is_terminating(p) {
            if monotonic {
                return Ok(finish(plan));
            }
            continue;
        }
        if monotonic && unhealthy_first.as_deref().is_some_and(|u| u != pods::name(p)) {
            return Ok(finish(plan));
        }
        plan.actions.push(Action::DeletePod(pods::name(p).to_string()));
        if monotonic {
            return Ok(finish(plan));
        }
    }
    if rolling {
        let floor = start + partition.unwrap_or(0);
        for (o, p) in slots.iter().rev() {
            if *o < floor {
                break;
            }
            if revision_label(p) != update_name && !pods::is_terminating(p) {
                plan.actions.push(Action::DeletePod(pods::name(p).to_string()));
                return Ok(finish(plan));
            }
            if !is_healthy(p, min_ready, now) {
                return Ok(finish(plan));
            }
        }
    }
    plan.actions.extend(truncate_history(spec, &owned, &revs).into_iter().map(Action::DeleteRevision));
    Ok(finish(plan))
}

/// Revisions no pod uses, oldest first, beyond `revisionHistoryLimit`.
fn truncate_history(spec: &StatefulSetSpec, pods: &[&Pod], revs: &Revisions) -> Vec<String> {
    let mut live: BTreeSet<&str> = pods.iter().map(|p| revision_label(p)).collect();
    live.insert(revs.current.metadata.name.as_deref().unwrap_or_default());
    live.insert(revs.update.metadata.name.as_deref().unwrap_or_default());
    let history: Vec<&ControllerRevision> =
        revs.owned.iter().filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default())).collect();
    let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    history.iter().take(history.len().saturating_sub(limit)).filter_map(|r| r.metadata.name.clone()).collect()
}

fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// Upstream's `computeReplicaStatus` and `completeRollingUpdate`.
fn status(set: &StatefulSet, owned: &[&Pod], revs: &Revisions, now: DateTime<Utc>) -> StatefulSetStatus {
    let min_ready = set.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let current_name = revs.current.metadata.name.clone().unwrap_or_default();
    let update_name = revs.update.metadata.name.clone().unwrap_or_default();
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for p in owned {
        replicas += 1;
        if pods::is_running_and_ready(p) {
            ready += 1;
            if pods::is_available(p, min_ready, now) {
                available += 1;
            }
        }
        if !pods::is_terminating(p) {
            if revision_label(p) == current_name {
                current += 1;
            }
            if revision_label(p) == update_name {
                updated += 1;
            }
        }
    }
    let mut current_revision = current_name;
    let rolling = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    if rolling && updated == replicas && ready == replicas {
        current = updated;
        current_revision = update_name.clone();
    }
    let old = set.status.clone().unwrap_or_default();
    StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas,
        ready_replicas: nonzero(ready),
        available_replicas: Some(available),
        current_replicas: nonzero(current),
        updated_replicas: nonzero(updated),
        current_revision: Some(current_revision),
        update_revision: Some(update_name),
        collision_count: old.collision_count,
        conditions: old.conditions,
    }
}

#[cfg(test)]
mod tests;
