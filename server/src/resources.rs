//! The table of API resources edge serves: what discovery publishes, how each kind decodes, and which
//! subresources and verbs it has. Everything that differs per kind starts here.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz, autoscaling::v1 as as1,
    autoscaling::v2 as as2, coordination::v1 as coord, core::v1 as core, discovery::v1 as disc, networking::v1 as net,
    rbac::v1 as rbac, storage::v1 as storage,
};

/// Decodes JSON into the upstream type and back: type errors surface with the field path, unknown
/// fields are dropped (and reported by the caller under `fieldValidation`), values are canonicalised.
pub type RoundTrip = fn(Value) -> Result<Value, String>;

fn roundtrip<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, String> {
    let typed: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            e.inner().to_string()
        } else {
            format!("{}: {}", path, e.inner())
        }
    })?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Lives in SQLite.
    Durable,
    /// Lives only in memory (leases, events): heartbeats must not wear the SD card.
    Ephemeral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Normal stored objects with the usual verbs.
    Stored,
    /// Create-only review objects answered on the spot (SelfSubjectAccessReview...).
    Review,
}

pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    /// Plural, lower case: the URL segment.
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [&'static str],
    pub tier: Tier,
    pub shape: Shape,
    /// Where the same objects are stored when several versions serve them (autoscaling v1 and v2).
    pub storage_version: &'static str,
    pub roundtrip: RoundTrip,
    /// Fields usable in fieldSelector besides metadata.name/metadata.namespace.
    pub field_selectors: &'static [&'static str],
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.plural)
    }
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The key under which objects of this resource live in the store, shared by all versions.
    pub fn store_key(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}/{}", self.group, self.plural)
        }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// Whether a write to the main resource ignores status (upstream's status-subresource strategy).
    pub fn status_is_subresource(&self) -> bool {
        self.has_subresource("status")
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        match self.shape {
            Shape::Review => &["create"],
            Shape::Stored => &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }
    }
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
const STATUS: &[&str] = &["status"];
const STATUS_SCALE: &[&str] = &["status", "scale"];

macro_rules! res {
    ($g:expr, $v:expr, $plural:expr, $singular:expr, $kind:expr, $ty:ty, ns=$ns:expr, short=$short:expr,
     cat=$cat:expr, sub=$sub:expr $(, tier=$tier:expr)? $(, shape=$shape:expr)? $(, storage=$sv:expr)?
     $(, fields=$fields:expr)?) => {
        Resource {
            group: $g,
            version: $v,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            tier: { #[allow(unused_mut, unused_assignments)] let mut t = Tier::Durable; $(t = $tier;)? t },
            shape: { #[allow(unused_mut, unused_assignments)] let mut s = Shape::Stored; $(s = $shape;)? s },
            storage_version: { #[allow(unused_mut, unused_assignments)] let mut s = $v; $(s = $sv;)? s },
            roundtrip: roundtrip::<$ty>,
            field_selectors: { #[allow(unused_mut, unused_assignments)] let mut f: &'static [&'static str] = NONE; $(f = $fields;)? f },
        }
    };
}

pub static RESOURCES: &[Resource] = &[
    res!(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        core::Namespace,
        ns = false,
        short = &["ns"],
        cat = NONE,
        sub = &["status", "finalize"],
        fields = &["status.phase"]
    ),
    res!(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        core::Pod,
        ns = true,
        short = &["po"],
        cat = ALL,
        sub = &["status", "log", "exec", "attach", "portforward", "binding", "eviction", "ephemeralcontainers"],
        fields = &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName"
        ]
    ),
    res!(
        "",
        "v1",
        "services",
        "service",
        "Service",
        core::Service,
        ns = true,
        short = &["svc"],
        cat = ALL,
        sub = STATUS,
        fields = &["spec.clusterIP", "spec.type"]
    ),
    res!(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        core::Endpoints,
        ns = true,
        short = &["ep"],
        cat = NONE,
        sub = NONE
    ),
    res!(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        core::ConfigMap,
        ns = true,
        short = &["cm"],
        cat = NONE,
        sub = NONE
    ),
    res!(
        "",
        "v1",
        "secrets",
        "secret",
        "Secret",
        core::Secret,
        ns = true,
        short = NONE,
        cat = NONE,
        sub = NONE,
        fields = &["type"]
    ),
    res!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        core::ServiceAccount,
        ns = true,
        short = &["sa"],
        cat = NONE,
        sub = NONE
    ),
    res!(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        core::Node,
        ns = false,
        short = &["no"],
        cat = NONE,
        sub = STATUS,
        fields = &["spec.unschedulable"]
    ),
    res!(
        "",
        "v1",
        "events",
        "event",
        "Event",
        core::Event,
        ns = true,
        short = &["ev"],
        cat = NONE,
        sub = NONE,
        tier = Tier::Ephemeral,
        fields = &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type"
        ]
    ),
    res!(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        core::PersistentVolume,
        ns = false,
        short = &["pv"],
        cat = NONE,
        sub = STATUS
    ),
    res!(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        core::PersistentVolumeClaim,
        ns = true,
        short = &["pvc"],
        cat = NONE,
        sub = STATUS
    ),
    res!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        apps::Deployment,
        ns = true,
        short = &["deploy"],
        cat = ALL,
        sub = STATUS_SCALE
    ),
    res!(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        apps::ReplicaSet,
        ns = true,
        short = &["rs"],
        cat = ALL,
        sub = STATUS_SCALE
    ),
    res!(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        apps::DaemonSet,
        ns = true,
        short = &["ds"],
        cat = ALL,
        sub = STATUS
    ),
    res!(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        apps::StatefulSet,
        ns = true,
        short = &["sts"],
        cat = ALL,
        sub = STATUS_SCALE
    ),
    res!(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        apps::ControllerRevision,
        ns = true,
        short = NONE,
        cat = NONE,
        sub = NONE
    ),
    res!(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        as2::HorizontalPodAutoscaler,
        ns = true,
        short = &["hpa"],
        cat = ALL,
        sub = STATUS
    ),
    res!(
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        as1::HorizontalPodAutoscaler,
        ns = true,
        short = &["hpa"],
        cat = ALL,
        sub = STATUS,
        storage = "v2"
    ),
    res!(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        storage::StorageClass,
        ns = false,
        short = &["sc"],
        cat = NONE,
        sub = NONE
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        net::Ingress,
        ns = true,
        short = &["ing"],
        cat = NONE,
        sub = STATUS
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "ingressclass",
        "IngressClass",
        net::IngressClass,
        ns = false,
        short = NONE,
        cat = NONE,
        sub = NONE
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        rbac::Role,
        ns = true,
        short = NONE,
        cat = NONE,
        sub = NONE
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        rbac::RoleBinding,
        ns = true,
        short = NONE,
        cat = NONE,
        sub = NONE
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        rbac::ClusterRole,
        ns = false,
        short = NONE,
        cat = NONE,
        sub = NONE
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        rbac::ClusterRoleBinding,
        ns = false,
        short = NONE,
        cat = NONE,
        sub = NONE
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        coord::Lease,
        ns = true,
        short = NONE,
        cat = NONE,
        sub = NONE,
        tier = Tier::Ephemeral
    ),
    res!(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        disc::EndpointSlice,
        ns = true,
        short = NONE,
        cat = NONE,
        sub = NONE
    ),
    res!(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        authz::SelfSubjectAccessReview,
        ns = false,
        short = NONE,
        cat = NONE,
        sub = NONE,
        shape = Shape::Review
    ),
    res!(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        authn::SelfSubjectReview,
        ns = false,
        short = NONE,
        cat = NONE,
        sub = NONE,
        shape = Shape::Review
    ),
];

/// Group versions in the order discovery lists them; the first version of a group is preferred.
pub fn group_versions() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// A resource the server's own code names; the table is static, so absence is a programming error
/// that the test `every_resource_used_by_name_exists` catches.
pub fn must(group: &str, version: &str, plural: &str) -> &'static Resource {
    lookup(group, version, plural).unwrap_or_else(|| panic!("resource {group}/{version}/{plural} is not in the table"))
}

/// The storage-version resource for a store key ("apps/deployments").
pub fn by_store_key(key: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.version == r.storage_version && r.shape == Shape::Stored && r.store_key() == key)
}

pub fn by_kind(group: &str, version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

pub fn in_group_version<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES.iter().filter(move |r| r.group == group && r.version == version)
}

/// Splits "apps/v1" or "v1" into (group, version).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_is_unique_and_has_a_kind_that_roundtrips() {
        for (i, r) in RESOURCES.iter().enumerate() {
            for other in &RESOURCES[i + 1..] {
                assert!(
                    !(r.group == other.group && r.version == other.version && r.plural == other.plural),
                    "duplicate {}",
                    r.plural
                );
            }
            let obj = serde_json::json!({"apiVersion": r.api_version(), "kind": r.kind, "metadata": {"name": "x"}});
            let back = (r.roundtrip)(obj).unwrap_or_else(|e| panic!("{}: {e}", r.kind));
            assert_eq!(back["kind"], r.kind);
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let r = lookup("apps", "v1", "deployments").unwrap();
        let err = (r.roundtrip)(serde_json::json!({"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"x"},"spec":{"replicas":"three","selector":{},"template":{}}}))
        .unwrap_err();
        assert!(err.starts_with("spec.replicas"), "{err}");
    }
}
