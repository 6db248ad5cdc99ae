//! What a pod sees of the API, computed the way upstream's kubelet computes it: the environment of a
//! container (`env`, `envFrom`, `$(VAR)` expansion, downward API fields and resources), the files of
//! configMap / secret / downwardAPI / projected volumes, and the atomic `..data` layout those files are
//! written in. Pure functions over objects the caller has fetched; nothing here talks to the API.

pub mod atomic_writer;
pub mod env;
pub mod expansion;
pub mod fieldpath;
pub mod paths;
pub mod quantity;
pub mod service_env;
mod validation;
pub mod volumes;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};

pub use quantity::QuantityError;

/// Where ConfigMaps and Secrets come from (the agent's watch cache). `None` means "not found".
pub trait Lookup {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
}

/// The pod plus what the node knows about it that the pod object may not carry yet.
#[derive(Debug, Clone)]
pub struct PodContext<'a> {
    pub pod: &'a Pod,
    /// The node's primary IP (`status.hostIP`, and the single entry of `status.hostIPs`).
    pub host_ip: Option<String>,
    /// The pod's IPs, preferred family first (`status.podIP` is the first).
    pub pod_ips: Vec<String>,
    /// Node allocatable, used as the limit of a container that sets none (resourceFieldRef).
    pub node_allocatable_cpu_millis: i64,
    pub node_allocatable_memory: i64,
    pub node_allocatable_ephemeral_storage: i64,
}

impl PodContext<'_> {
    fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or_default()
    }
}
