//! What happens to an object between decoding and storage, per kind: defaulting, validation, the
//! fields the server owns (status on create, generation), and conversion between served versions.

pub mod convert;
pub mod defaults;
pub mod validation;

use serde_json::{json, Value};

/// Kinds whose metadata.generation counts spec changes (upstream strategies that set Generation).
pub fn tracks_generation(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet")
            | ("autoscaling", "HorizontalPodAutoscaler")
            | ("networking.k8s.io", "Ingress")
            | ("", "PersistentVolumeClaim")
            | ("batch", _)
    )
}

/// The status a newly created object starts with: clients do not get to set it (upstream's
/// PrepareForCreate), except for Nodes, whose kubelet registers them with their status.
pub fn status_on_create(group: &str, kind: &str, obj: &mut Value, has_status_subresource: bool) {
    let Some(map) = obj.as_object_mut() else { return };
    match (group, kind) {
        ("", "Node") => {}
        ("", "Namespace") => {
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        ("", "Pod") => {
            let qos = qos_class(map.get("spec"));
            map.insert("status".into(), json!({"phase": "Pending", "qosClass": qos}));
        }
        ("", "PersistentVolume" | "PersistentVolumeClaim") => {
            map.insert("status".into(), json!({"phase": "Pending"}));
        }
        _ if has_status_subresource => {
            map.insert("status".into(), json!({}));
        }
        _ => {}
    }
}

/// Upstream's QoS class: Guaranteed when every container has equal cpu and memory requests and
/// limits, BestEffort when none has any, Burstable otherwise.
pub fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec.and_then(|s| s.get(*k)).and_then(Value::as_array).into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = &c["resources"]["requests"];
        let lim = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            let (q, l) = (req.get(r).or_else(|| lim.get(r)), lim.get(r));
            if q.is_some() || l.is_some() {
                any = true;
            }
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A random suffix for generateName, from upstream's alphabet (no vowels, no look-alikes).
pub fn generate_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        let spec = |res: Value| json!({"containers": [{"name": "a", "resources": res}]});
        assert_eq!(qos_class(Some(&spec(json!({})))), "BestEffort");
        assert_eq!(qos_class(Some(&spec(json!({"limits": {"cpu": "1", "memory": "1Gi"}})))), "Guaranteed");
        assert_eq!(qos_class(Some(&spec(json!({"requests": {"cpu": "1"}})))), "Burstable");
    }
}
