//! The merge-relevant slice of the built-in Kubernetes schemas.
//!
//! Upstream derives patch behaviour from Go struct tags (`patchStrategy`, `patchMergeKey`) for
//! strategic merge patch and from OpenAPI extensions (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`) for server-side apply. This module
//! owns a hand-written table of those markers for the types edge serves, addressed by a
//! *field path*: field names from the object root with list levels skipped, e.g.
//! `["spec", "template", "spec", "containers", "env"]`. Anything not in the table is a
//! plain struct/map (merged key by key) and its lists are atomic (replaced whole), which is
//! also what upstream does for custom resources without list markers.

use serde_json::{json, Value};

use crate::TypeRef;

/// How strategic merge patch combines a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpList {
    /// No patch strategy: the patch list replaces the live one.
    Replace,
    /// `patchStrategy=merge` on a list of scalars: union, e.g. `metadata.finalizers`.
    MergeScalars,
    /// `patchStrategy=merge` with `patchMergeKey`: items matched by that field are merged.
    MergeByKey(&'static str),
}

/// One `x-kubernetes-list-map-keys` field; `default` is the schema default used when an item
/// omits the key (e.g. `protocol` defaults to `"TCP"` on container and service ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyField {
    pub name: &'static str,
    pub default: Option<&'static str>,
}

/// How server-side apply tracks and merges a list (`x-kubernetes-list-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsaList {
    /// Owned and replaced as a whole.
    Atomic,
    /// Scalars owned one by one (`v:` path elements).
    Set,
    /// Items owned one by one, identified by these key fields (`k:` path elements).
    Map(&'static [KeyField]),
}

/// Everything the patch engines need to know about one list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListSchema {
    pub smp: SmpList,
    pub ssa: SsaList,
    /// The item type is `+structType=atomic` (e.g. `OwnerReference`, `LocalObjectReference`):
    /// an item is owned whole, without per-field entries.
    pub atomic_items: bool,
}

impl ListSchema {
    const ATOMIC: ListSchema = ListSchema { smp: SmpList::Replace, ssa: SsaList::Atomic, atomic_items: false };

    const fn keyed(smp_key: &'static str, ssa_keys: &'static [KeyField]) -> ListSchema {
        ListSchema { smp: SmpList::MergeByKey(smp_key), ssa: SsaList::Map(ssa_keys), atomic_items: false }
    }

    const fn with_atomic_items(self) -> ListSchema {
        ListSchema { atomic_items: true, ..self }
    }

    /// The strategic-merge merge key, if the list merges by key.
    pub fn merge_key(&self) -> Option<&'static str> {
        match self.smp {
            SmpList::MergeByKey(k) => Some(k),
            _ => None,
        }
    }
}

const fn key(name: &'static str) -> KeyField {
    KeyField { name, default: None }
}

const NAME: &[KeyField] = &[key("name")];
const UID: &[KeyField] = &[key("uid")];
const TYPE: &[KeyField] = &[key("type")];
const IP: &[KeyField] = &[key("ip")];
const MOUNT_PATH: &[KeyField] = &[key("mountPath")];
const DEVICE_PATH: &[KeyField] = &[key("devicePath")];
const CONTAINER_PORT: &[KeyField] = &[key("containerPort"), KeyField { name: "protocol", default: Some("TCP") }];
const SERVICE_PORT: &[KeyField] = &[key("port"), KeyField { name: "protocol", default: Some("TCP") }];
const TOPOLOGY_SPREAD: &[KeyField] = &[key("topologyKey"), key("whenUnsatisfiable")];

const SET: ListSchema = ListSchema { smp: SmpList::MergeScalars, ssa: SsaList::Set, atomic_items: false };

/// The built-in kinds with table entries. Matching on group as well as kind keeps a custom
/// resource that happens to be called `Deployment` from inheriting apps/v1 semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Pod,
    PodTemplate,
    ReplicationController,
    Service,
    Node,
    Namespace,
    PersistentVolume,
    PersistentVolumeClaim,
    ServiceAccount,
    ConfigMap,
    Secret,
    Endpoints,
    Event,
    ResourceQuota,
    LimitRange,
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
    ControllerRevision,
    Job,
    CronJob,
    HorizontalPodAutoscaler,
    PodDisruptionBudget,
    EndpointSlice,
    Ingress,
    NetworkPolicy,
    Rbac,
    Lease,
}

fn known(ty: &TypeRef) -> Option<Known> {
    use Known::*;
    Some(match (ty.group, ty.kind) {
        ("", "Pod") => Pod,
        ("", "PodTemplate") => PodTemplate,
        ("", "ReplicationController") => ReplicationController,
        ("", "Service") => Service,
        ("", "Node") => Node,
        ("", "Namespace") => Namespace,
        ("", "PersistentVolume") => PersistentVolume,
        ("", "PersistentVolumeClaim") => PersistentVolumeClaim,
        ("", "ServiceAccount") => ServiceAccount,
        ("", "ConfigMap") => ConfigMap,
        ("", "Secret") => Secret,
        ("", "Endpoints") => Endpoints,
        ("", "Event") | ("events.k8s.io", "Event") => Event,
        ("", "ResourceQuota") => ResourceQuota,
        ("", "LimitRange") => LimitRange,
        ("apps", "Deployment") => Deployment,
        ("apps", "ReplicaSet") => ReplicaSet,
        ("apps", "DaemonSet") => DaemonSet,
        ("apps", "StatefulSet") => StatefulSet,
        ("apps", "ControllerRevision") => ControllerRevision,
        ("batch", "Job") => Job,
        ("batch", "CronJob") => CronJob,
        ("autoscaling", "HorizontalPodAutoscaler") => HorizontalPodAutoscaler,
        ("policy", "PodDisruptionBudget") => PodDisruptionBudget,
        ("discovery.k8s.io", "EndpointSlice") => EndpointSlice,
        ("networking.k8s.io", "Ingress") => Ingress,
        ("networking.k8s.io", "NetworkPolicy") => NetworkPolicy,
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding") => Rbac,
        ("coordination.k8s.io", "Lease") => Lease,
        _ => return None,
    })
}

/// Whether upstream serves strategic merge patch for this type (it refuses it for custom
/// resources, which have no Go struct tags).
pub fn supports_strategic_merge(ty: &TypeRef) -> bool {
    known(ty).is_some()
}

/// Whether a write to the main resource leaves `status` alone (upstream's reset fields): such
/// writes neither change status nor take ownership of it, and apply ignores a `status` stanza.
pub fn resets_status(ty: &TypeRef) -> bool {
    use Known::*;
    matches!(
        known(ty),
        Some(
            Pod | ReplicationController
                | Service
                | Node
                | Namespace
                | PersistentVolume
                | PersistentVolumeClaim
                | ResourceQuota
                | Deployment
                | ReplicaSet
                | DaemonSet
                | StatefulSet
                | Job
                | CronJob
                | HorizontalPodAutoscaler
                | PodDisruptionBudget
                | Ingress
        )
    )
}

/// Where a PodSpec sits inside objects of this kind.
fn pod_spec_root(kind: Known) -> Option<&'static [&'static str]> {
    use Known::*;
    match kind {
        Pod => Some(&["spec"]),
        PodTemplate => Some(&["template", "spec"]),
        ReplicationController | Deployment | ReplicaSet | DaemonSet | StatefulSet | Job => {
            Some(&["spec", "template", "spec"])
        }
        CronJob => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// Where ObjectMeta sits: the root, and the metadata of every embedded template.
fn object_meta_roots(kind: Option<Known>) -> &'static [&'static [&'static str]] {
    use Known::*;
    match kind {
        Some(PodTemplate) => &[&["metadata"], &["template", "metadata"]],
        Some(ReplicationController | Deployment | ReplicaSet | DaemonSet | StatefulSet | Job) => {
            &[&["metadata"], &["spec", "template", "metadata"]]
        }
        Some(CronJob) => &[
            &["metadata"],
            &["spec", "jobTemplate", "metadata"],
            &["spec", "jobTemplate", "spec", "template", "metadata"],
        ],
        _ => &[&["metadata"]],
    }
}

fn strip<'p, 'q>(path: &'p [&'q str], prefix: &[&str]) -> Option<&'p [&'q str]> {
    if path.len() >= prefix.len() && path[..prefix.len()] == *prefix {
        Some(&path[prefix.len()..])
    } else {
        None
    }
}

fn is_container_list(name: &str) -> bool {
    matches!(name, "containers" | "initContainers" | "ephemeralContainers")
}

fn object_meta_list(rel: &[&str]) -> Option<ListSchema> {
    match rel {
        ["ownerReferences"] => Some(ListSchema::keyed("uid", UID).with_atomic_items()),
        ["finalizers"] => Some(SET),
        _ => None,
    }
}

fn pod_spec_list(rel: &[&str]) -> ListSchema {
    match rel {
        [c] if is_container_list(c) => ListSchema::keyed("name", NAME),
        [c, "ports"] if is_container_list(c) => ListSchema::keyed("containerPort", CONTAINER_PORT),
        [c, "env"] if is_container_list(c) => ListSchema::keyed("name", NAME),
        [c, "volumeMounts"] if is_container_list(c) => ListSchema::keyed("mountPath", MOUNT_PATH),
        [c, "volumeDevices"] if is_container_list(c) => ListSchema::keyed("devicePath", DEVICE_PATH),
        [c, "resources", "claims"] if is_container_list(c) => {
            ListSchema { smp: SmpList::Replace, ssa: SsaList::Map(NAME), atomic_items: false }
        }
        ["volumes"] | ["schedulingGates"] | ["resourceClaims"] => ListSchema::keyed("name", NAME),
        ["imagePullSecrets"] => ListSchema::keyed("name", NAME).with_atomic_items(),
        ["hostAliases"] => ListSchema::keyed("ip", IP),
        ["topologySpreadConstraints"] => ListSchema::keyed("topologyKey", TOPOLOGY_SPREAD),
        _ => ListSchema::ATOMIC,
    }
}

fn has_conditions_by_type(kind: Known) -> bool {
    use Known::*;
    matches!(
        kind,
        Pod | ReplicationController
            | Service
            | Node
            | Namespace
            | PersistentVolumeClaim
            | Deployment
            | ReplicaSet
            | DaemonSet
            | StatefulSet
            | HorizontalPodAutoscaler
            | PodDisruptionBudget
    )
}

fn kind_list(kind: Known, path: &[&str]) -> ListSchema {
    use Known::*;
    match (kind, path) {
        (k, ["status", "conditions"]) if has_conditions_by_type(k) => ListSchema::keyed("type", TYPE),
        // JobStatus.conditions: merge by type for SMP, but `listType=atomic` for apply.
        (Job, ["status", "conditions"]) => {
            ListSchema { smp: SmpList::MergeByKey("type"), ssa: SsaList::Atomic, atomic_items: false }
        }
        (Pod, ["status", "podIPs"]) => ListSchema::keyed("ip", IP),
        (Service, ["spec", "ports"]) => ListSchema::keyed("port", SERVICE_PORT),
        (Node, ["status", "addresses"]) => ListSchema::keyed("type", TYPE),
        (Node, ["spec", "podCIDRs"]) => SET,
        (ServiceAccount, ["secrets"]) => ListSchema::keyed("name", NAME).with_atomic_items(),
        _ => ListSchema::ATOMIC,
    }
}

/// The list semantics at `path` (field names from the root, list levels skipped).
pub fn list_schema<S: AsRef<str>>(ty: &TypeRef, path: &[S]) -> ListSchema {
    let path: Vec<&str> = path.iter().map(AsRef::as_ref).collect();
    let kind = known(ty);
    for root in object_meta_roots(kind) {
        if let Some(found) = strip(&path, root).and_then(object_meta_list) {
            return found;
        }
    }
    let Some(kind) = kind else {
        return ListSchema::ATOMIC;
    };
    if let Some(rel) = pod_spec_root(kind).and_then(|root| strip(&path, root)) {
        return pod_spec_list(rel);
    }
    kind_list(kind, &path)
}

/// Whether the map at `path` is `+structType=atomic` / `+mapType=atomic` for apply: owned and
/// replaced whole.
pub fn is_atomic_map<S: AsRef<str>>(ty: &TypeRef, path: &[S]) -> bool {
    let path: Vec<&str> = path.iter().map(AsRef::as_ref).collect();
    let Some(kind) = known(ty) else {
        return false;
    };
    let Some(last) = path.last() else {
        return false;
    };
    // LabelSelector is atomic everywhere, and the plain map selectors of Service and
    // ReplicationController are `mapType=atomic`; PodSpec.nodeSelector likewise.
    if matches!(*last, "selector" | "labelSelector" | "namespaceSelector" | "podSelector" | "nodeSelector") {
        return true;
    }
    if kind == Known::Rbac && path == ["roleRef"] {
        return true;
    }
    if let Some(rel) = pod_spec_root(kind).and_then(|root| strip(&path, root)) {
        return match rel {
            [c, "env", "valueFrom", sel] if is_container_list(c) => {
                matches!(*sel, "fieldRef" | "resourceFieldRef" | "configMapKeyRef" | "secretKeyRef" | "fileKeyRef")
            }
            ["affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"] => true,
            _ => false,
        };
    }
    false
}

/// The object as Go's zero value serializes it: the non-pointer structs (`metadata`, `spec`,
/// pod templates, ...) are present and empty. Upstream compares a create against this, which
/// is why managedFields never mark those structs as owned themselves (no `.` entry).
pub(crate) fn zero_object(ty: &TypeRef) -> Value {
    use Known::*;
    let template = || json!({"metadata": {}, "spec": {"containers": []}});
    match known(ty) {
        Some(Pod) => json!({"metadata": {}, "spec": {"containers": []}, "status": {}}),
        Some(PodTemplate) => json!({"metadata": {}, "template": template()}),
        Some(Deployment) => {
            json!({"metadata": {}, "spec": {"template": template(), "strategy": {}}, "status": {}})
        }
        Some(DaemonSet | StatefulSet) => {
            json!({"metadata": {}, "spec": {"template": template(), "updateStrategy": {}}, "status": {}})
        }
        Some(ReplicaSet | Job) => {
            json!({"metadata": {}, "spec": {"template": template()}, "status": {}})
        }
        Some(CronJob) => json!({
            "metadata": {},
            "spec": {"jobTemplate": {"metadata": {}, "spec": {"template": template()}}},
            "status": {}
        }),
        Some(Service) => json!({"metadata": {}, "spec": {}, "status": {"loadBalancer": {}}}),
        Some(Node) => json!({
            "metadata": {},
            "spec": {},
            "status": {"daemonEndpoints": {"kubeletEndpoint": {}}, "nodeInfo": {}}
        }),
        Some(PersistentVolumeClaim) => {
            json!({"metadata": {}, "spec": {"resources": {}}, "status": {}})
        }
        Some(HorizontalPodAutoscaler) => {
            json!({"metadata": {}, "spec": {"scaleTargetRef": {}}, "status": {}})
        }
        Some(ReplicationController | Namespace | PersistentVolume | ResourceQuota | PodDisruptionBudget | Ingress) => {
            json!({"metadata": {}, "spec": {}, "status": {}})
        }
        Some(NetworkPolicy | LimitRange | Lease) => json!({"metadata": {}, "spec": {}}),
        _ => json!({"metadata": {}}),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DEPLOY: TypeRef = TypeRef { group: "apps", version: "v1", kind: "Deployment" };
    const CRONJOB: TypeRef = TypeRef { group: "batch", version: "v1", kind: "CronJob" };
    const POD: TypeRef = TypeRef { group: "", version: "v1", kind: "Pod" };
    const SVC: TypeRef = TypeRef { group: "", version: "v1", kind: "Service" };
    const CR: TypeRef = TypeRef { group: "example.com", version: "v1", kind: "Deployment" };

    #[test]
    fn list_table() {
        let cases: &[(&TypeRef, &[&str], Option<&str>, SsaList)] = &[
            (&POD, &["spec", "containers"], Some("name"), SsaList::Map(NAME)),
            (&DEPLOY, &["spec", "template", "spec", "containers"], Some("name"), SsaList::Map(NAME)),
            (&DEPLOY, &["spec", "template", "spec", "initContainers", "env"], Some("name"), SsaList::Map(NAME)),
            (
                &DEPLOY,
                &["spec", "template", "spec", "containers", "ports"],
                Some("containerPort"),
                SsaList::Map(CONTAINER_PORT),
            ),
            (
                &CRONJOB,
                &["spec", "jobTemplate", "spec", "template", "spec", "volumes"],
                Some("name"),
                SsaList::Map(NAME),
            ),
            (&CRONJOB, &["spec", "template", "spec", "volumes"], None, SsaList::Atomic),
            (&POD, &["spec", "containers", "volumeMounts"], Some("mountPath"), SsaList::Map(MOUNT_PATH)),
            (&POD, &["spec", "containers", "envFrom"], None, SsaList::Atomic),
            (&POD, &["spec", "tolerations"], None, SsaList::Atomic),
            (&POD, &["spec", "hostAliases"], Some("ip"), SsaList::Map(IP)),
            (&POD, &["status", "conditions"], Some("type"), SsaList::Map(TYPE)),
            (&POD, &["metadata", "ownerReferences"], Some("uid"), SsaList::Map(UID)),
            (&DEPLOY, &["spec", "template", "metadata", "ownerReferences"], Some("uid"), SsaList::Map(UID)),
            (&SVC, &["spec", "ports"], Some("port"), SsaList::Map(SERVICE_PORT)),
            (&CR, &["spec", "template", "spec", "containers"], None, SsaList::Atomic),
            (&CR, &["metadata", "finalizers"], None, SsaList::Set),
        ];
        for (ty, path, smp_key, ssa) in cases {
            let got = list_schema(ty, path);
            assert_eq!(got.merge_key(), *smp_key, "{path:?}");
            assert_eq!(got.ssa, *ssa, "{path:?}");
        }
        assert_eq!(list_schema(&POD, &["metadata", "finalizers"]).smp, SmpList::MergeScalars);
    }

    #[test]
    fn atomic_maps() {
        assert!(is_atomic_map(&DEPLOY, &["spec", "selector"]));
        assert!(is_atomic_map(&SVC, &["spec", "selector"]));
        assert!(is_atomic_map(&POD, &["spec", "containers", "env", "valueFrom", "fieldRef"]));
        assert!(!is_atomic_map(&POD, &["spec", "containers", "env", "valueFrom"]));
        assert!(!is_atomic_map(&DEPLOY, &["spec", "template"]));
        assert!(!is_atomic_map(&CR, &["spec", "selector"]));
    }
}
