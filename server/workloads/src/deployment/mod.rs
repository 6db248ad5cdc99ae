//! The Deployment planner (upstream `pkg/controller/deployment`): one ReplicaSet per pod
//! template (told apart by the `pod-template-hash` label), rolled forward by the RollingUpdate or
//! Recreate strategy, scaled proportionally while paused or mid-rollout, old ReplicaSets pruned
//! beyond `revisionHistoryLimit`, and the status and conditions `kubectl rollout` reads.
//!
//! Like upstream, one pass takes one step (scale up, or scale down, or clean up) and the next
//! pass, triggered by the writes it made, takes the next.

pub mod conditions;
pub mod revision;
pub mod rollout;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Timelike, Utc};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::hash::compute_hash;
use crate::ownership::{self, Claim, Owner};
use crate::{pods, Error, Event};
use conditions as cond;
use rollout::Counts;

pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateReplicaSet(ReplicaSet),
    /// Replace a ReplicaSet (scale, annotations, adoption or release); carries its resourceVersion.
    UpdateReplicaSet(ReplicaSet),
    DeleteReplicaSet(String),
    /// The Deployment's own annotations (its revision) changed.
    UpdateAnnotations(BTreeMap<String, String>),
    UpdateStatus(DeploymentStatus),
    Event(Event),
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When to look again although nothing changes (the progress deadline).
    pub recheck_at: Option<DateTime<Utc>>,
}

/// Plans one pass for `d`. `replica_sets` and `pods` are everything in its namespace.
pub fn plan(d: &Deployment, replica_sets: &[ReplicaSet], pods: &[Pod], now: DateTime<Utc>) -> Result<Plan, Error> {
    let spec = d.spec.as_ref().ok_or(Error::Invalid { field: "spec", message: "a Deployment needs a spec".into() })?;
    // Stored times have whole seconds: conditions written with a finer `now` would never compare equal.
    let now = now.with_nanosecond(0).unwrap_or(now);
    let mut sync = Sync::new(d, spec, now)?;
    if spec.selector.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && spec.selector.match_expressions.as_ref().is_none_or(Vec::is_empty)
    {
        sync.event(
            "Warning",
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        sync.status.observed_generation = d.metadata.generation;
        return Ok(sync.finish());
    }
    sync.claim(replica_sets);
    if d.metadata.deletion_timestamp.is_some() {
        sync.get_new(false, replica_sets);
        sync.sync_deployment_status();
        return Ok(sync.finish());
    }
    sync.check_paused_conditions();
    if spec.paused == Some(true) || sync.is_scaling_event() {
        sync.scale_only(replica_sets);
    } else if sync.recreate {
        sync.recreate(replica_sets, pods);
    } else {
        sync.rolling(replica_sets);
    }
    Ok(sync.finish())
}

/// True when both templates are the same but for the pod-template-hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn strip(t: &PodTemplateSpec) -> PodTemplateSpec {
        let mut t = t.clone();
        let meta = t.metadata.get_or_insert_with(ObjectMeta::default);
        if let Some(l) = meta.labels.as_mut() {
            l.remove(POD_TEMPLATE_HASH);
            if l.is_empty() {
                meta.labels = None;
            }
        }
        t
    }
    strip(a) == strip(b)
}

fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

fn name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or_default()
}

/// One pass's working state: the owned ReplicaSets as they will be after this pass's writes.
struct Sync<'a> {
    d: &'a Deployment,
    spec: &'a DeploymentSpec,
    desired: i32,
    max_surge: i32,
    max_unavailable: i32,
    recreate: bool,
    now: DateTime<Utc>,
    /// Owned ReplicaSets, oldest first (upstream's `ReplicaSetsByCreationTimestamp`).
    rss: Vec<ReplicaSet>,
    new: Option<usize>,
    created: Option<usize>,
    dirty: BTreeSet<String>,
    released: Vec<ReplicaSet>,
    deleted: Vec<String>,
    annotations: BTreeMap<String, String>,
    status: DeploymentStatus,
    events: Vec<Event>,
    /// A name collision stopped this pass.
    stopped: bool,
}

impl<'a> Sync<'a> {
    fn new(d: &'a Deployment, spec: &'a DeploymentSpec, now: DateTime<Utc>) -> Result<Sync<'a>, Error> {
        let desired = spec.replicas.unwrap_or(1);
        let strategy = spec.strategy.as_ref();
        let recreate = strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate");
        let (max_surge, max_unavailable) = if recreate {
            (0, 0)
        } else {
            let ru = strategy.and_then(|s| s.rolling_update.as_ref());
            let (s, u) = rollout::resolve_fenceposts(
                ru.and_then(|r| r.max_surge.as_ref()),
                ru.and_then(|r| r.max_unavailable.as_ref()),
                desired,
            )?;
            (s, u.min(desired))
        };
        Ok(Sync {
            d,
            spec,
            desired,
            max_surge,
            max_unavailable: if desired == 0 { 0 } else { max_unavailable },
            recreate,
            now,
            rss: Vec::new(),
            new: None,
            created: None,
            dirty: BTreeSet::new(),
            released: Vec::new(),
            deleted: Vec::new(),
            annotations: d.metadata.annotations.clone().unwrap_or_default(),
            status: d.status.clone().unwrap_or_default(),
            events: Vec::new(),
            stopped: false,
        })
    }

    fn owner(&self) -> Owner<'a> {
        Owner { api_version: "apps/v1", kind: "Deployment", meta: &self.d.metadata, selector: &self.spec.selector }
    }

    fn d_name(&self) -> &str {
        self.d.metadata.name.as_deref().unwrap_or_default()
    }

    fn event(&mut self, type_: &'static str, reason: &'static str, message: String) {
        self.events.push(Event { type_, reason, message });
    }

    fn has_progress_deadline(&self) -> bool {
        self.spec.progress_deadline_seconds.is_some_and(|s| s != i32::MAX)
    }

    fn claim(&mut self, all: &[ReplicaSet]) {
        let owner = self.owner();
        for rs in all {
            match ownership::claim(&owner, &rs.metadata) {
                Claim::Owned => self.rss.push(rs.clone()),
                Claim::Adopt => {
                    let mut rs = rs.clone();
                    ownership::adopt(&owner, &mut rs.metadata);
                    self.dirty.insert(name(&rs).to_string());
                    self.rss.push(rs);
                }
                Claim::Release => {
                    let mut rs = rs.clone();
                    ownership::release(owner.uid(), &mut rs.metadata);
                    self.released.push(rs);
                }
                Claim::Ignore => {}
            }
        }
        let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
        self.rss.sort_by(|a, b| created(a).cmp(&created(b)).then_with(|| name(a).cmp(name(b))));
        self.new = self.rss.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &self.spec.template))
        });
    }

    fn old_indices(&self) -> Vec<usize> {
        (0..self.rss.len()).filter(|i| Some(*i) != self.new).collect()
    }

    fn set_deployment_revision(&mut self, revision: String) {
        self.annotations.insert(revision::REVISION.into(), revision);
    }

    /// Upstream's `getNewReplicaSet`: bring the new ReplicaSet's revision and annotations up to
    /// date, or create it when `create` and it does not exist.
    fn get_new(&mut self, create: bool, all: &[ReplicaSet]) {
        let max_old = self.old_indices().iter().map(|i| revision::revision(&self.rss[*i])).max().unwrap_or(0);
        let new_revision = max_old + 1;
        let deadline = self.has_progress_deadline();
        if let Some(i) = self.new {
            let min_ready = self.spec.min_ready_seconds;
            let d_annotations = self.d.metadata.annotations.as_ref();
            let rs = &mut self.rss[i];
            let mut changed = revision::copy_deployment_annotations(d_annotations, rs);
            changed |= revision::bump_revision(rs, new_revision);
            let spec = rs.spec.get_or_insert_with(ReplicaSetSpec::default);
            if spec.min_ready_seconds != min_ready {
                spec.min_ready_seconds = min_ready;
                changed = true;
            }
            let rs_name = name(rs).to_string();
            let rs_revision = revision::annotation(rs, revision::REVISION).unwrap_or_default().to_string();
            if changed {
                self.dirty.insert(rs_name.clone());
            }
            self.set_deployment_revision(rs_revision);
            if deadline && cond::get(&self.status, cond::PROGRESSING).is_none() {
                cond::set(
                    &mut self.status,
                    cond::new(
                        cond::PROGRESSING,
                        "True",
                        cond::FOUND_NEW_RS,
                        format!("Found new replica set {rs_name:?}"),
                        self.now,
                    ),
                );
            }
            return;
        }
        if !create {
            return;
        }
        let hash = compute_hash(&self.spec.template, self.status.collision_count);
        let rs_name = format!("{}-{}", self.d_name(), hash);
        if all.iter().any(|rs| name(rs) == rs_name) {
            // Another ReplicaSet has the name: hash again with a higher collision count.
            self.status.collision_count = Some(self.status.collision_count.unwrap_or(0) + 1);
            self.stopped = true;
            return;
        }
        let mut template = self.spec.template.clone();
        template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = self.spec.selector.clone();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: Some(vec![self.owner().controller_ref()]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        revision::copy_deployment_annotations(self.d.metadata.annotations.as_ref(), &mut rs);
        revision::bump_revision(&mut rs, new_revision);
        revision::set_replicas_annotations(&mut rs, self.desired, self.desired + self.max_surge);
        let size = if self.recreate {
            self.desired
        } else {
            let total = self.pods_counted_for_surge();
            rollout::new_rs_replicas(self.desired, self.max_surge, total, 0)
        };
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(size);
        }
        if size > 0 {
            self.event("Normal", "ScalingReplicaSet", format!("Scaled up replica set {rs_name} from 0 to {size}"));
        }
        self.rss.push(rs);
        self.new = Some(self.rss.len() - 1);
        self.created = self.new;
        self.set_deployment_revision(new_revision.to_string());
        if deadline {
            cond::set(
                &mut self.status,
                cond::new(
                    cond::PROGRESSING,
                    "True",
                    cond::NEW_RS_CREATED,
                    format!("Created new replica set {rs_name:?}"),
                    self.now,
                ),
            );
        }
    }

    /// Sets one ReplicaSet's size and replica annotations; true when the size changed.
    fn scale(&mut self, i: usize, size: i32) -> bool {
        let (desired, max) = (self.desired, self.desired + self.max_surge);
        let rs = &mut self.rss[i];
        let old = replicas(rs);
        let mut annotated = rs.clone();
        let annotations_changed = revision::set_replicas_annotations(&mut annotated, desired, max);
        if old == size && !annotations_changed {
            return false;
        }
        *rs = annotated;
        rs.spec.get_or_insert_with(ReplicaSetSpec::default).replicas = Some(size);
        let rs_name = name(rs).to_string();
        if Some(i) != self.created {
            self.dirty.insert(rs_name.clone());
        }
        if old != size {
            let op = if old < size { "up" } else { "down" };
            self.event(
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled {op} replica set {rs_name} from {old} to {size}"),
            );
        }
        old != size
    }

    /// Upstream's `scaleReplicaSetAndRecordEvent`: nothing unless the size differs.
    fn scale_if_needed(&mut self, i: usize, size: i32) -> bool {
        replicas(&self.rss[i]) != size && self.scale(i, size)
    }

    /// Pods that count against maxSurge. Upstream sums spec replicas only; its deleted pods
    /// linger as terminating (and uncounted) while edge deletes unscheduled pods at once, so a
    /// set's reported pods also count until its controller has caught up with a scale-down.
    /// That keeps "at most replicas + maxSurge pods" true at every instant.
    fn pods_counted_for_surge(&self) -> i32 {
        self.rss.iter().map(|rs| replicas(rs).max(status_replicas(rs))).sum()
    }

    fn is_scaling_event(&self) -> bool {
        self.rss
            .iter()
            .filter(|rs| replicas(rs) > 0)
            .any(|rs| revision::int_annotation(rs, revision::DESIRED_REPLICAS).is_some_and(|d| d != self.desired))
    }

    fn check_paused_conditions(&mut self) {
        if !self.has_progress_deadline() {
            return;
        }
        let reason = cond::get(&self.status, cond::PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(cond::TIMED_OUT) {
            return;
        }
        let paused_recorded = reason.as_deref() == Some(cond::PAUSED);
        if self.spec.paused == Some(true) && !paused_recorded {
            cond::set(
                &mut self.status,
                cond::new(cond::PROGRESSING, "Unknown", cond::PAUSED, "Deployment is paused".into(), self.now),
            );
        } else if self.spec.paused != Some(true) && paused_recorded {
            cond::set(
                &mut self.status,
                cond::new(cond::PROGRESSING, "Unknown", cond::RESUMED, "Deployment is resumed".into(), self.now),
            );
        }
    }

    /// Paused or resized: scale without rolling (upstream's `sync` and `scale`).
    fn scale_only(&mut self, all: &[ReplicaSet]) {
        self.get_new(false, all);
        self.proportional_scale();
        if self.spec.paused == Some(true) {
            self.cleanup();
        }
        self.sync_deployment_status();
    }

    fn proportional_scale(&mut self) {
        let active: Vec<usize> = (0..self.rss.len()).filter(|i| replicas(&self.rss[*i]) > 0).collect();
        let target = match active.as_slice() {
            [] => self.new.or_else(|| self.rss.len().checked_sub(1)),
            [only] => Some(*only),
            _ => None,
        };
        if let Some(i) = target {
            self.scale_if_needed(i, self.desired);
            return;
        }
        let saturated = self.new.is_some_and(|n| {
            let rs = &self.rss[n];
            revision::int_annotation(rs, revision::DESIRED_REPLICAS) == Some(self.desired)
                && available(rs) == self.desired
        });
        if saturated {
            for i in self.old_indices() {
                if replicas(&self.rss[i]) > 0 {
                    self.scale_if_needed(i, 0);
                }
            }
            return;
        }
        if self.recreate {
            return;
        }
        let total: i32 = active.iter().map(|i| replicas(&self.rss[*i])).sum();
        let allowed = if self.desired > 0 { self.desired + self.max_surge } else { 0 };
        let to_add = allowed - total;
        let mut order = active.clone();
        // Largest first; among equals the newer when growing, the older when shrinking.
        order.sort_by(|a, b| {
            let (ra, rb) = (replicas(&self.rss[*a]), replicas(&self.rss[*b]));
            let newer_first = if to_add > 0 { b.cmp(a) } else { a.cmp(b) };
            rb.cmp(&ra).then(newer_first)
        });
        let status_replicas = self.status.replicas.unwrap_or(0);
        let mut added = 0;
        let mut sizes: Vec<(usize, i32)> = Vec::new();
        for i in &order {
            let rs = &self.rss[*i];
            let mut size = replicas(rs);
            if to_add != 0 && added != to_add {
                let fraction = if self.desired == 0 {
                    -size
                } else {
                    let annotated = revision::int_annotation(rs, revision::MAX_REPLICAS).unwrap_or(status_replicas);
                    if annotated == 0 {
                        0
                    } else {
                        let exact = f64::from(size) * f64::from(self.desired + self.max_surge) / f64::from(annotated);
                        exact.round() as i32 - size
                    }
                };
                let allowed_now = to_add - added;
                let proportion = if to_add > 0 { fraction.min(allowed_now) } else { fraction.max(allowed_now) };
                size += proportion;
                added += proportion;
            }
            sizes.push((*i, size));
        }
        if let Some(first) = sizes.first_mut() {
            if to_add != 0 {
                first.1 = (first.1 + to_add - added).max(0);
            }
        }
        for (i, size) in sizes {
            self.scale(i, size);
        }
    }

    fn rolling(&mut self, all: &[ReplicaSet]) {
        self.get_new(true, all);
        if self.stopped {
            return;
        }
        if self.reconcile_new() || self.reconcile_old() {
            self.sync_rollout_status();
            return;
        }
        if self.complete(&self.d.status.clone().unwrap_or_default()) {
            self.cleanup();
        }
        self.sync_rollout_status();
    }

    fn reconcile_new(&mut self) -> bool {
        let Some(n) = self.new else { return false };
        let current = replicas(&self.rss[n]);
        if current == self.desired {
            return false;
        }
        if current > self.desired {
            return self.scale_if_needed(n, self.desired);
        }
        let total = self.pods_counted_for_surge();
        let size = rollout::new_rs_replicas(self.desired, self.max_surge, total, current);
        self.scale_if_needed(n, size)
    }

    fn reconcile_old(&mut self) -> bool {
        let old: Vec<usize> = self.old_indices().into_iter().filter(|i| replicas(&self.rss[*i]) > 0).collect();
        if old.is_empty() {
            return false;
        }
        // A set that still reports more pods than it wants has not caught up with its last
        // scale-down: its available count is stale, so wait rather than overshoot.
        if self.rss.iter().any(|rs| status_replicas(rs) > replicas(rs)) {
            return false;
        }
        let new = self
            .new
            .map(|n| Counts { replicas: replicas(&self.rss[n]), available: available(&self.rss[n]) })
            .unwrap_or(Counts { replicas: 0, available: 0 });
        let counts: Vec<Counts> = old
            .iter()
            .map(|i| Counts { replicas: replicas(&self.rss[*i]), available: available(&self.rss[*i]) })
            .collect();
        let sizes = rollout::scale_down_old(self.desired, self.max_unavailable, new, &counts);
        let mut scaled = false;
        for (i, size) in old.into_iter().zip(sizes) {
            scaled |= self.scale_if_needed(i, size);
        }
        scaled
    }

    fn recreate(&mut self, all: &[ReplicaSet], pods: &[Pod]) {
        self.get_new(false, all);
        let mut scaled = false;
        for i in self.old_indices() {
            if replicas(&self.rss[i]) > 0 {
                scaled |= self.scale_if_needed(i, 0);
            }
        }
        if scaled || self.old_pods_running(pods) {
            self.sync_rollout_status();
            return;
        }
        if self.new.is_none() {
            self.get_new(true, all);
            if self.stopped {
                return;
            }
        }
        if let Some(n) = self.new {
            self.scale_if_needed(n, self.desired);
        }
        if self.complete(&self.d.status.clone().unwrap_or_default()) {
            self.cleanup();
        }
        self.sync_rollout_status();
    }

    /// Recreate waits until no pod of an old ReplicaSet is left, terminating ones included.
    fn old_pods_running(&self, pods: &[Pod]) -> bool {
        let old = self.old_indices();
        if old.iter().map(|i| status_replicas(&self.rss[*i])).sum::<i32>() > 0 {
            return true;
        }
        let old_uids: BTreeSet<&str> = old.iter().filter_map(|i| self.rss[*i].metadata.uid.as_deref()).collect();
        pods.iter()
            .filter(|p| ownership::controller_of(&p.metadata).is_some_and(|r| old_uids.contains(r.uid.as_str())))
            .any(|p| !pods::is_finished(p))
    }

    fn cleanup(&mut self) {
        let Some(limit) = self.spec.revision_history_limit else { return };
        let mut cleanable: Vec<usize> =
            self.old_indices().into_iter().filter(|i| self.rss[*i].metadata.deletion_timestamp.is_none()).collect();
        let excess = cleanable.len().saturating_sub(usize::try_from(limit).unwrap_or(0));
        cleanable.sort_by_key(|i| (revision::revision(&self.rss[*i]), *i));
        for i in cleanable.into_iter().take(excess) {
            let rs = &self.rss[i];
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
            if status_replicas(rs) != 0 || replicas(rs) != 0 || rs.metadata.generation.unwrap_or(0) > observed {
                continue;
            }
            self.deleted.push(name(rs).to_string());
        }
    }

    fn calculate_status(&self) -> DeploymentStatus {
        let sum = |f: fn(&ReplicaSet) -> i32| self.rss.iter().map(f).sum::<i32>();
        let available_total = sum(available);
        let spec_total = sum(replicas);
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: nonzero(sum(status_replicas)),
            updated_replicas: nonzero(self.new.map(|n| status_replicas(&self.rss[n])).unwrap_or(0)),
            ready_replicas: nonzero(sum(|rs| rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0))),
            available_replicas: nonzero(available_total),
            unavailable_replicas: nonzero((spec_total - available_total).max(0)),
            collision_count: self.status.collision_count,
            conditions: self.status.conditions.clone(),
        };
        let c = if available_total >= self.desired - self.max_unavailable {
            cond::new(
                cond::AVAILABLE,
                "True",
                cond::MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            cond::new(
                cond::AVAILABLE,
                "False",
                cond::MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        cond::set(&mut status, c);
        status
    }

    fn sync_deployment_status(&mut self) {
        self.status = self.calculate_status();
    }

    /// Upstream's `DeploymentComplete`.
    fn complete(&self, s: &DeploymentStatus) -> bool {
        let want = Some(self.desired).filter(|d| *d != 0);
        s.updated_replicas == want
            && s.replicas == want
            && s.available_replicas == want
            && s.observed_generation >= self.d.metadata.generation
    }

    fn rs_message(&self, what: &str) -> String {
        match self.new {
            Some(n) => format!("ReplicaSet {:?} {what}", name(&self.rss[n])),
            None => format!("Deployment {:?} {what}", self.d_name()),
        }
    }

    fn sync_rollout_status(&mut self) {
        let mut ns = self.calculate_status();
        let deadline = self.has_progress_deadline();
        if !deadline {
            cond::remove(&mut ns, cond::PROGRESSING);
        }
        let current = cond::get(&ns, cond::PROGRESSING).cloned();
        let already_complete = ns.replicas == ns.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(cond::NEW_RS_AVAILABLE);
        if deadline && !already_complete {
            let old = &self.status;
            let gained = |new: Option<i32>, old: Option<i32>| new.unwrap_or(0) > old.unwrap_or(0);
            let old_left = |s: &DeploymentStatus| s.replicas.unwrap_or(0) - s.updated_replicas.unwrap_or(0);
            let progressing = gained(ns.updated_replicas, old.updated_replicas)
                || old_left(&ns) < old_left(old)
                || gained(ns.ready_replicas, old.ready_replicas)
                || gained(ns.available_replicas, old.available_replicas);
            if self.complete(&ns) {
                cond::set(
                    &mut ns,
                    cond::new(
                        cond::PROGRESSING,
                        "True",
                        cond::NEW_RS_AVAILABLE,
                        self.rs_message("has successfully progressed."),
                        self.now,
                    ),
                );
            } else if progressing {
                // Progress refreshes lastUpdateTime even with an unchanged reason.
                let mut c = cond::new(
                    cond::PROGRESSING,
                    "True",
                    cond::RS_UPDATED,
                    self.rs_message("is progressing."),
                    self.now,
                );
                if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                cond::remove(&mut ns, cond::PROGRESSING);
                cond::set(&mut ns, c);
            } else if self.timed_out(&ns) {
                cond::set(
                    &mut ns,
                    cond::new(
                        cond::PROGRESSING,
                        "False",
                        cond::TIMED_OUT,
                        self.rs_message("has timed out progressing."),
                        self.now,
                    ),
                );
            }
        }
        let failure = self
            .new
            .into_iter()
            .chain(0..self.rss.len())
            .filter_map(|i| self.rss.get(i))
            .filter_map(|rs| {
                rs.status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .find(|c| c.type_ == cond::REPLICA_FAILURE && c.status == "True")
                    .cloned()
            })
            .next();
        match failure {
            Some(f) => cond::set(
                &mut ns,
                cond::new(
                    cond::REPLICA_FAILURE,
                    &f.status,
                    f.reason.as_deref().unwrap_or_default(),
                    f.message.unwrap_or_default(),
                    self.now,
                ),
            ),
            None => cond::remove(&mut ns, cond::REPLICA_FAILURE),
        }
        self.status = ns;
    }

    fn progress_deadline(&self, s: &DeploymentStatus) -> Option<DateTime<Utc>> {
        let secs = self.spec.progress_deadline_seconds.filter(|s| *s != i32::MAX)?;
        let c = cond::get(s, cond::PROGRESSING)?;
        match c.reason.as_deref() {
            Some(cond::NEW_RS_AVAILABLE) | Some(cond::TIMED_OUT) => None,
            _ => Some(c.last_update_time.as_ref()?.0 + Duration::seconds(i64::from(secs))),
        }
    }

    fn timed_out(&self, s: &DeploymentStatus) -> bool {
        let Some(c) = cond::get(s, cond::PROGRESSING) else { return false };
        match c.reason.as_deref() {
            Some(cond::NEW_RS_AVAILABLE) => false,
            Some(cond::TIMED_OUT) => true,
            _ => self.progress_deadline(s).is_some_and(|at| at < self.now),
        }
    }

    fn finish(mut self) -> Plan {
        let mut actions = Vec::new();
        if let Some(i) = self.created {
            actions.push(Action::CreateReplicaSet(self.rss[i].clone()));
        }
        for rs in &self.rss {
            if self.dirty.contains(name(rs)) {
                actions.push(Action::UpdateReplicaSet(rs.clone()));
            }
        }
        actions.extend(self.released.drain(..).map(Action::UpdateReplicaSet));
        actions.extend(self.deleted.drain(..).map(Action::DeleteReplicaSet));
        if Some(&self.annotations) != self.d.metadata.annotations.as_ref()
            && !(self.annotations.is_empty() && self.d.metadata.annotations.is_none())
        {
            actions.push(Action::UpdateAnnotations(self.annotations.clone()));
        }
        if self.d.status.as_ref() != Some(&self.status) {
            actions.push(Action::UpdateStatus(self.status.clone()));
        }
        actions.extend(self.events.drain(..).map(Action::Event));
        let complete = self.complete(&self.status);
        let recheck_at =
            if complete { None } else { self.progress_deadline(&self.status).map(|t| t + Duration::seconds(1)) };
        Plan { actions, recheck_at }
    }
}

#[cfg(test)]
mod tests;
