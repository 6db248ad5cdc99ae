//! Pure planning for edge-server's scheduler, DaemonSet controller and node lifecycle controller
//! (DESIGN.md §5): each planner takes the observed objects (k8s-openapi types) and returns what to
//! write; nothing here touches the API. The glue lives in
//! `server/src/controllers/{scheduler,daemonset,node_lifecycle}.rs`. Behaviour follows upstream's
//! `pkg/scheduler` (default plugins), `pkg/controller/daemon` and `pkg/controller/nodelifecycle`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod affinity;
pub mod daemonset;
pub mod hash;
pub mod lifecycle;
pub mod quantity;
pub mod resources;
pub mod schedule;
pub mod selector;
pub mod taints;

pub use k8s_openapi;

/// Errors of decoding stored objects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} {name}: {source}")]
    Decode { kind: &'static str, name: String, source: serde_json::Error },
}

/// Decodes a stored object into its typed form, naming it in the error.
pub fn decode<T: serde::de::DeserializeOwned>(kind: &'static str, value: serde_json::Value) -> Result<T, Error> {
    let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
    serde_json::from_value(value).map_err(|source| Error::Decode { kind, name, source })
}

/// The uid of the controller ownerReference of an object, if any.
pub fn controller_uid(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<&str> {
    meta.owner_references.as_deref()?.iter().find(|r| r.controller == Some(true)).map(|r| r.uid.as_str())
}
