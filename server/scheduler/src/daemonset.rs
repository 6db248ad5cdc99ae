//! The DaemonSet controller's plan (upstream's `pkg/controller/daemon`): one pod per eligible node,
//! each pinned to its node by a required node affinity on `metadata.name` and left to the
//! scheduler to bind; RollingUpdate (maxUnavailable, maxSurge) by `controller-revision-hash`,
//! ControllerRevisions for history, and status.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use crate::{affinity, hash, taints};

pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// What the controller sees of one DaemonSet: its pods (controlled by it) and revisions.
pub struct Observed<'a> {
    pub ds: &'a DaemonSet,
    pub nodes: &'a [Node],
    pub pods: &'a [Pod],
    pub revisions: &'a [ControllerRevision],
    pub now: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub create_revision: Option<ControllerRevision>,
    /// Existing revisions to rewrite (a template rolled back to becomes the newest revision).
    pub update_revisions: Vec<ControllerRevision>,
    pub delete_revisions: Vec<String>,
    /// New pods, one per node named in the pod's node affinity.
    pub create_pods: Vec<Pod>,
    pub delete_pods: Vec<String>,
    pub status: DaemonSetStatus,
}

fn template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
}

/// The template's hash, as `controller-revision-hash` carries it.
pub fn current_hash(ds: &DaemonSet) -> String {
    let t = serde_json::to_value(template(ds)).unwrap_or_default();
    hash::template_hash(&t, ds.status.as_ref().and_then(|s| s.collision_count))
}

/// The pod spec a daemon pod for `node` gets: the template's, with daemon tolerations and the
/// node affinity replaced by one term selecting the node by name.
fn daemon_pod_spec(ds: &DaemonSet, node: &str) -> PodSpec {
    let mut spec = template(ds).spec.unwrap_or_default();
    let mut tolerations = spec.tolerations.take().unwrap_or_default();
    taints::add_daemon_tolerations(&mut tolerations, spec.host_network.unwrap_or(false));
    spec.tolerations = Some(tolerations);
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        match_expressions: None,
    };
    let aff = spec.affinity.get_or_insert_with(Default::default);
    let na = aff.node_affinity.get_or_insert_with(Default::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector { node_selector_terms: vec![term] });
    spec
}

/// Upstream's NodeShouldRunDaemonPod: (should run a new pod, may keep an existing one).
pub fn should_run(ds: &DaemonSet, node: &Node) -> (bool, bool) {
    let tmpl = template(ds).spec.unwrap_or_default();
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if tmpl.node_name.as_deref().is_some_and(|n| !n.is_empty() && n != name) || !affinity::required_matches(&tmpl, node)
    {
        return (false, false);
    }
    let spec = daemon_pod_spec(ds, name);
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let node_taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let hard =
        |t: &k8s_openapi::api::core::v1::Taint| t.effect == taints::NO_SCHEDULE || t.effect == taints::NO_EXECUTE;
    if taints::find_untolerated(node_taints, tolerations, hard).is_some() {
        let evicting = taints::find_untolerated(node_taints, tolerations, |t| t.effect == taints::NO_EXECUTE).is_some();
        return (false, !evicting);
    }
    (true, true)
}

/// The node a daemon pod belongs to: where it is bound, or the node its affinity names.
pub fn pod_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

fn labels_hash(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(REVISION_HASH_LABEL).map(String::as_str)
}

fn is_ready_since(pod: &Pod) -> Option<DateTime<Utc>> {
    let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(c.last_transition_time.as_ref().map(|t| t.0).unwrap_or(DateTime::<Utc>::MIN_UTC))
}

/// Ready, and for at least minReadySeconds.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    is_ready_since(pod)
        .is_some_and(|since| min_ready_seconds <= 0 || since + Duration::seconds(i64::from(min_ready_seconds)) <= now)
}

fn created(pod: &Pod) -> Option<DateTime<Utc>> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn name_of(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Upstream's GetScaledValueFromIntOrPercent with rounding up.
fn scaled(v: Option<&IntOrString>, total: i32) -> i32 {
    match v {
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            ((pct * i64::from(total) + 99) / 100) as i32
        }
        None => 0,
    }
}

/// A new pod for `node` at the current template.
fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let t = template(ds);
    let name = ds.metadata.name.clone().unwrap_or_default();
    let mut labels = t.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    labels.insert(TEMPLATE_GENERATION_LABEL.into(), ds.metadata.generation.unwrap_or(1).to_string());
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: t.metadata.as_ref().and_then(|m| m.annotations.clone()),
            owner_references: Some(vec![owner_ref(ds)]),
            ..Default::default()
        },
        spec: Some(daemon_pod_spec(ds, node)),
        status: None,
    }
}

pub fn owner_ref(ds: &DaemonSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub fn plan(o: &Observed) -> Plan {
    let ds = o.ds;
    let spec = ds.spec.clone().unwrap_or_default();
    let hash = current_hash(ds);
    let mut plan = Plan::default();
    plan_revisions(o, &hash, &mut plan);

    // Live daemon pods per node (terminating ones are on their way out and do not count).
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    let mut all_by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for p in o.pods {
        let Some(n) = pod_node(p) else { continue };
        all_by_node.entry(n.clone()).or_default().push(p);
        if p.metadata.deletion_timestamp.is_none() {
            by_node.entry(n).or_default().push(p);
        }
    }
    for pods in by_node.values_mut().chain(all_by_node.values_mut()) {
        pods.sort_by(|a, b| created(a).cmp(&created(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name)));
    }
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
    let ru = strategy.rolling_update.unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let surge_allowed = rolling && scaled(ru.max_surge.as_ref(), 100) > 0;

    let mut node_names: Vec<&Node> = o.nodes.iter().collect();
    node_names.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut deletes: BTreeSet<String> = BTreeSet::new();
    let mut eligible: Vec<String> = Vec::new();
    let mut known_nodes: BTreeSet<String> = BTreeSet::new();
    for node in &node_names {
        let name = node.metadata.name.clone().unwrap_or_default();
        known_nodes.insert(name.clone());
        let (run, keep) = should_run(ds, node);
        let pods = by_node.get(&name).cloned().unwrap_or_default();
        if run {
            eligible.push(name.clone());
        }
        if !keep {
            deletes.extend(pods.iter().map(|p| name_of(p)));
            continue;
        }
        let (failed, running): (Vec<&Pod>, Vec<&Pod>) =
            pods.iter().partition(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));
        deletes.extend(failed.iter().map(|p| name_of(p)));
        if running.is_empty() {
            if run {
                plan.create_pods.push(new_pod(ds, &name, &hash));
            }
        } else if running.len() > 1 {
            let surging = surge_allowed
                && running.len() == 2
                && running.iter().filter(|p| labels_hash(p) == Some(hash.as_str())).count() == 1;
            if !surging {
                deletes.extend(running[1..].iter().map(|p| name_of(p)));
            }
        }
    }
    // Pods on nodes that no longer exist go too.
    for (node, pods) in &by_node {
        if !known_nodes.contains(node) {
            deletes.extend(pods.iter().map(|p| name_of(p)));
        }
    }

    if rolling {
        let desired = eligible.len() as i32;
        let mut max_surge = scaled(ru.max_surge.as_ref(), desired);
        let mut max_unavailable = scaled(ru.max_unavailable.as_ref(), desired);
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        if !surge_allowed {
            max_surge = 0;
        }
        let on_node = |n: &str| -> (Vec<&Pod>, Vec<&Pod>) {
            let pods = by_node.get(n).cloned().unwrap_or_default();
            pods.into_iter()
                .filter(|p| !deletes.contains(&name_of(p)))
                .partition(|p| labels_hash(p) == Some(hash.as_str()))
        };
        let nodes_with_pods: Vec<&String> = eligible.iter().filter(|n| all_by_node.contains_key(*n)).collect();
        if max_surge == 0 {
            let mut unavailable = 0;
            let (mut allowed, mut candidates) = (Vec::new(), Vec::new());
            for n in &nodes_with_pods {
                let (new, old) = on_node(n);
                match (new.first(), old.first()) {
                    (None, None) | (Some(_), Some(_)) => unavailable += 1,
                    (Some(p), None) => {
                        if !is_available(p, min_ready, o.now) {
                            unavailable += 1;
                        }
                    }
                    (None, Some(p)) => {
                        if !is_available(p, min_ready, o.now) {
                            allowed.push(name_of(p));
                        } else if unavailable < max_unavailable {
                            candidates.push(name_of(p));
                        }
                    }
                }
            }
            let remaining = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
            deletes.extend(allowed);
            deletes.extend(candidates.into_iter().take(remaining));
        } else {
            let mut surging = 0;
            let (mut allowed, mut candidates, mut replaced) = (Vec::new(), Vec::new(), Vec::new());
            for n in &nodes_with_pods {
                let (new, old) = on_node(n);
                match (new.first(), old.first()) {
                    (_, None) => {}
                    (None, Some(p)) => {
                        if !is_available(p, min_ready, o.now) {
                            allowed.push((*n).clone());
                        } else if surging < max_surge {
                            candidates.push((*n).clone());
                        }
                    }
                    (Some(p), Some(old)) => {
                        if is_available(p, min_ready, o.now) {
                            replaced.push(name_of(old));
                        } else {
                            surging += 1;
                        }
                    }
                }
            }
            deletes.extend(replaced);
            let remaining = (max_surge - surging).clamp(0, candidates.len() as i32) as usize;
            for n in allowed.into_iter().chain(candidates.into_iter().take(remaining)) {
                plan.create_pods.push(new_pod(ds, &n, &hash));
            }
        }
    }
    plan.delete_pods = deletes.into_iter().collect();
    plan.status = status(o, &eligible, &all_by_node, &hash, min_ready);
    plan
}

fn status(
    o: &Observed,
    eligible: &[String],
    by_node: &BTreeMap<String, Vec<&Pod>>,
    hash: &str,
    min_ready: i32,
) -> DaemonSetStatus {
    let eligible: BTreeSet<&String> = eligible.iter().collect();
    let mut s = DaemonSetStatus {
        desired_number_scheduled: eligible.len() as i32,
        observed_generation: o.ds.metadata.generation,
        collision_count: o.ds.status.as_ref().and_then(|s| s.collision_count),
        ..Default::default()
    };
    for (node, pods) in by_node {
        let Some(oldest) = pods.first() else { continue };
        if !eligible.contains(node) {
            s.number_misscheduled += 1;
            continue;
        }
        s.current_number_scheduled += 1;
        if is_ready_since(oldest).is_some() {
            s.number_ready += 1;
            if is_available(oldest, min_ready, o.now) {
                s.number_available = Some(s.number_available.unwrap_or(0) + 1);
            }
        }
        if labels_hash(oldest) == Some(hash) {
            s.updated_number_scheduled = Some(s.updated_number_scheduled.unwrap_or(0) + 1);
        }
    }
    let unavailable = s.desired_number_scheduled - s.number_available.unwrap_or(0);
    if unavailable > 0 {
        s.number_unavailable = Some(unavailable);
    }
    s
}

/// The revision for the current template (created, or an old one brought forward), and the
/// cleanup of history beyond revisionHistoryLimit that no live pod uses.
fn plan_revisions(o: &Observed, hash: &str, plan: &mut Plan) {
    let ds = o.ds;
    let name = format!("{}-{hash}", ds.metadata.name.as_deref().unwrap_or_default());
    let max = o.revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let current = o.revisions.iter().find(|r| r.metadata.name.as_deref() == Some(name.as_str()));
    match current {
        Some(r) if r.revision < max => {
            let mut r = r.clone();
            r.revision = max + 1;
            plan.update_revisions.push(r);
        }
        Some(_) => {}
        None => {
            let mut labels = ds.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
            labels.insert(REVISION_HASH_LABEL.into(), hash.into());
            let mut tmpl = serde_json::to_value(template(ds)).unwrap_or_default();
            tmpl["$patch"] = json!("replace");
            plan.create_revision = Some(ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: ds.metadata.namespace.clone(),
                    labels: Some(labels),
                    owner_references: Some(vec![owner_ref(ds)]),
                    ..Default::default()
                },
                data: Some(RawExtension(json!({"spec": {"template": tmpl}}))),
                revision: max + 1,
            });
        }
    }
    let limit = ds.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10).max(0) as usize;
    let in_use: BTreeSet<&str> = o.pods.iter().filter_map(labels_hash).collect();
    let mut old: Vec<&ControllerRevision> = o
        .revisions
        .iter()
        .filter(|r| r.metadata.name.as_deref() != Some(name.as_str()))
        .filter(|r| {
            !r.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH_LABEL))
                .is_some_and(|h| in_use.contains(h.as_str()))
        })
        .collect();
    if old.len() > limit {
        old.sort_by_key(|r| r.revision);
        let excess = old.len() - limit;
        plan.delete_revisions = old.into_iter().take(excess).filter_map(|r| r.metadata.name.clone()).collect();
    }
}

#[cfg(test)]
mod tests;
