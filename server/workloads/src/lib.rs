//! Pure planning for the workload controllers of edge-server: given a workload object and the
//! objects observed in its namespace, decide what to write (DESIGN.md §5). Nothing here touches
//! the API; `server/src/controllers/{replicaset,deployment,statefulset}.rs` read the store, call
//! these planners and apply their actions. Behaviour follows upstream's
//! `pkg/controller/{replicaset,deployment,statefulset}`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::type_complexity))]

pub mod deployment;
pub mod hash;
pub mod ownership;
pub mod pods;
pub mod replicaset;
pub mod selector;
pub mod statefulset;

pub use k8s_openapi;

/// An Event a planner asks to record against the object it plans for.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// "Normal" or "Warning".
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// Errors of converting or planning.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} {name}: {source}")]
    Decode { kind: &'static str, name: String, source: serde_json::Error },
    #[error("invalid {field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// A generated name is taken by an object with other content: hash again with a higher
    /// collision count.
    #[error("{0} exists with other content")]
    NameCollision(String),
}

/// Decodes a stored object into its typed form, naming it in the error.
pub fn decode<T: serde::de::DeserializeOwned>(kind: &'static str, value: serde_json::Value) -> Result<T, Error> {
    let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
    serde_json::from_value(value).map_err(|source| Error::Decode { kind, name, source })
}
