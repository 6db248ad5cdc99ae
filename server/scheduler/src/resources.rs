//! What a pod asks for and what a node offers, in the units the scheduler compares (upstream's
//! `framework.Resource` and `resource.PodRequests`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity;

/// Upstream's scoring defaults for containers that request nothing (`schedutil.DefaultMilliCPURequest`
/// and `DefaultMemoryRequest`), so that best-effort pods still spread by count.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Number of pods (only meaningful for allocatable).
    pub pods: i64,
}

impl Resources {
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
    }

    fn max(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
    }

    /// Reads cpu, memory, ephemeral-storage and pods from a resource list; unparsable values count
    /// as zero (validation rejects them before they are stored).
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let get = |name: &str, milli: bool| -> i64 {
            list.and_then(|l| l.get(name))
                .and_then(|q| if milli { quantity::milli(&q.0).ok() } else { quantity::units(&q.0).ok() })
                .unwrap_or(0)
        };
        Resources {
            milli_cpu: get("cpu", true),
            memory: get("memory", false),
            ephemeral_storage: get("ephemeral-storage", false),
            pods: get("pods", false),
        }
    }
}

fn container_requests(c: &Container) -> Resources {
    let res = c.resources.as_ref();
    let requests = Resources::from_list(res.and_then(|r| r.requests.as_ref()));
    // A limit without a request defaults the request to the limit (upstream's defaulting).
    let limits = Resources::from_list(res.and_then(|r| r.limits.as_ref()));
    Resources {
        milli_cpu: if requests.milli_cpu == 0 { limits.milli_cpu } else { requests.milli_cpu },
        memory: if requests.memory == 0 { limits.memory } else { requests.memory },
        ephemeral_storage: if requests.ephemeral_storage == 0 {
            limits.ephemeral_storage
        } else {
            requests.ephemeral_storage
        },
        pods: 0,
    }
}

/// The pod's effective request: the sum over app containers and restartable (sidecar) init
/// containers, at least the largest regular init container plus the sidecars started before it,
/// plus the pod overhead. `non_zero` substitutes upstream's scoring defaults for containers that
/// request no cpu or memory.
pub fn pod_requests(spec: &PodSpec, non_zero: bool) -> Resources {
    let adjust = |mut r: Resources| {
        if non_zero {
            if r.milli_cpu == 0 {
                r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
            }
            if r.memory == 0 {
                r.memory = DEFAULT_MEMORY_REQUEST;
            }
        }
        r
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&adjust(container_requests(c)));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = adjust(container_requests(c));
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            init_peak.max(&sidecars);
        } else {
            let mut at_start = sidecars;
            at_start.add(&r);
            init_peak.max(&at_start);
        }
    }
    total.add(&sidecars);
    total.max(&init_peak);
    if let Some(overhead) = &spec.overhead {
        total.add(&Resources::from_list(Some(overhead)));
    }
    total.pods = 1;
    total
}

/// What the node offers to pods: status.allocatable, or capacity when allocatable is absent.
pub fn node_allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    let list = status.and_then(|s| s.allocatable.as_ref()).or_else(|| status.and_then(|s| s.capacity.as_ref()));
    Resources::from_list(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn requests_sum_containers_and_respect_init_peaks() {
        let cases = [
            (
                json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                                   {"name": "b", "resources": {"requests": {"cpu": "200m"}}}]}),
                Resources { milli_cpu: 300, memory: 1 << 30, ephemeral_storage: 0, pods: 1 },
            ),
            // A big init container raises the effective request.
            (
                json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
                    "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]}),
                Resources { milli_cpu: 2000, memory: 0, ephemeral_storage: 0, pods: 1 },
            ),
            // A sidecar adds to the app containers.
            (
                json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
                    "initContainers": [{"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}]}),
                Resources { milli_cpu: 150, memory: 0, ephemeral_storage: 0, pods: 1 },
            ),
            // Limits stand in for missing requests; overhead adds.
            (
                json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}],
                    "overhead": {"cpu": "10m"}}),
                Resources { milli_cpu: 1010, memory: 64 << 20, ephemeral_storage: 0, pods: 1 },
            ),
        ];
        for (s, want) in cases {
            assert_eq!(pod_requests(&spec(s.clone()), false), want, "{s}");
        }
    }

    #[test]
    fn non_zero_requests_use_scoring_defaults() {
        let r = pod_requests(
            &spec(json!({"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "1"}}}]})),
            true,
        );
        assert_eq!(r.milli_cpu, 1100);
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert_eq!(pod_requests(&spec(json!({"containers": [{"name": "a"}]})), false).milli_cpu, 0);
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
        )
        .unwrap();
        assert_eq!(
            node_allocatable(&n),
            Resources { milli_cpu: 4000, memory: 8 << 30, ephemeral_storage: 0, pods: 110 }
        );
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "3500m"}}}),
        )
        .unwrap();
        assert_eq!(node_allocatable(&n).milli_cpu, 3500);
    }
}
