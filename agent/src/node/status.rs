//! The Node's labels and status as the kubelet writes them, computed from [`NodeFacts`] (pure, so
//! tested with tables).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
use serde_json::{json, Value};

use super::facts::{NodeFacts, KUBELET_VERSION, RUNTIME_VERSION};

/// Below these the node reports pressure (the kubelet's default hard eviction thresholds).
const MEMORY_PRESSURE_BYTES: u64 = 100 * 1024 * 1024;

pub fn labels(f: &NodeFacts) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), f.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), f.architecture.clone()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), f.architecture.clone()),
    ]);
    l.extend(f.extra_labels.iter().cloned());
    l
}

fn condition(
    typ: &str,
    ok: bool,
    ok_reason: (&str, &str),
    bad_reason: (&str, &str),
    bad_is_true: bool,
    old: Option<&NodeStatus>,
    now: DateTime<Utc>,
) -> Value {
    let (reason, message) = if ok { ok_reason } else { bad_reason };
    let status = if ok != bad_is_true { "True" } else { "False" };
    // lastTransitionTime only moves when the status does.
    let transition = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == typ))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(now);
    json!({
        "type": typ, "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "lastTransitionTime": transition.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// The status to write, keeping transition times from `old`.
pub fn desired(f: &NodeFacts, old: Option<&NodeStatus>, now: DateTime<Utc>) -> Value {
    let mem_ok = f.memory_available_bytes == 0 || f.memory_available_bytes >= MEMORY_PRESSURE_BYTES;
    let disk_ok = f.disk_available_ratio >= f.disk_pressure_ratio;
    let quantities = json!({
        "cpu": f.cpus.to_string(),
        "memory": format!("{}Ki", f.memory_bytes / 1024),
        "ephemeral-storage": format!("{}Ki", f.ephemeral_storage_bytes / 1024),
        "pods": f.max_pods.to_string(),
    });
    json!({
        "capacity": quantities,
        "allocatable": quantities,
        "conditions": [
            condition("MemoryPressure", mem_ok, ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"), true, old, now),
            condition("DiskPressure", disk_ok, ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("KubeletHasDiskPressure", "kubelet has disk pressure"), true, old, now),
            condition("PIDPressure", true, ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"), true, old, now),
            condition("Ready", true, ("KubeletReady", "kubelet is posting ready status"),
                ("KubeletNotReady", "kubelet is not ready"), false, old, now),
        ],
        "addresses": [
            {"type": "InternalIP", "address": f.internal_ip.to_string()},
            {"type": "Hostname", "address": f.hostname},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": f.kubelet_port}},
        "nodeInfo": {
            "machineID": f.machine_id, "systemUUID": f.machine_id, "bootID": f.boot_id,
            "kernelVersion": f.kernel_version, "osImage": f.os_image,
            "containerRuntimeVersion": RUNTIME_VERSION, "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION, "operatingSystem": "linux", "architecture": f.architecture,
        },
    })
}

/// Whether `old` already says what `desired` says, ignoring heartbeat times (a report that changes
/// nothing but times is left to the periodic one).
pub fn same(old: Option<&NodeStatus>, desired: &Value) -> bool {
    let Some(old) = old else { return false };
    let Ok(old) = serde_json::to_value(old) else { return false };
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(cs) = v["conditions"].as_array_mut() {
            for c in cs {
                if let Some(m) = c.as_object_mut() {
                    m.remove("lastHeartbeatTime");
                    m.remove("lastTransitionTime");
                }
            }
        }
        if let Some(m) = v.as_object_mut() {
            // Fields the server or others own (images, volumes…) are not ours to compare.
            m.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "capacity" | "allocatable" | "conditions" | "addresses" | "daemonEndpoints" | "nodeInfo"
                )
            });
        }
        v
    };
    let cond_key = |v: &Value| -> Vec<Value> {
        let mut cs = v["conditions"].as_array().cloned().unwrap_or_default();
        cs.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
        cs
    };
    let (a, b) = (strip(&old), strip(desired));
    let mut a2 = a.clone();
    let mut b2 = b.clone();
    a2["conditions"] = Value::Array(cond_key(&a));
    b2["conditions"] = Value::Array(cond_key(&b));
    a2 == b2
}

#[allow(dead_code)]
fn conditions(s: &NodeStatus) -> &[NodeCondition] {
    s.conditions.as_deref().unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "pi1".into(),
            hostname: "pi1".into(),
            internal_ip: Ipv4Addr::new(10, 0, 0, 5),
            kubelet_port: 10250,
            cpus: 4,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 32 << 30,
            disk_available_ratio: 0.5,
            memory_available_bytes: 2 << 30,
            max_pods: 110,
            disk_pressure_ratio: 0.10,
            architecture: "arm64".into(),
            kernel_version: "6.6.0".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            extra_labels: vec![("node-role.kubernetes.io/control-plane".into(), "true".into())],
            data_dir: "/tmp".into(),
        }
    }

    fn cond<'a>(v: &'a Value, t: &str) -> &'a Value {
        v["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).unwrap()
    }

    #[test]
    fn status_of_a_healthy_node() {
        let now = Utc::now();
        let s = desired(&facts(), None, now);
        assert_eq!(s["capacity"]["cpu"], "4");
        assert_eq!(s["capacity"]["memory"], "4194304Ki");
        assert_eq!(s["allocatable"]["pods"], "110");
        assert_eq!(cond(&s, "Ready")["status"], "True");
        assert_eq!(cond(&s, "Ready")["reason"], "KubeletReady");
        assert_eq!(cond(&s, "MemoryPressure")["status"], "False");
        assert_eq!(cond(&s, "DiskPressure")["status"], "False");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["nodeInfo"]["architecture"], "arm64");
        assert_eq!(labels(&facts())["node-role.kubernetes.io/control-plane"], "true");
    }

    #[test]
    fn pressure_and_transitions() {
        let mut f = facts();
        f.disk_available_ratio = 0.05;
        f.memory_available_bytes = 10 << 20;
        let t0 = Utc::now() - chrono::Duration::hours(1);
        let first: NodeStatus = serde_json::from_value(desired(&facts(), None, t0)).unwrap();
        let now = Utc::now();
        let s = desired(&f, Some(&first), now);
        assert_eq!(cond(&s, "DiskPressure")["status"], "True");
        assert_eq!(cond(&s, "DiskPressure")["reason"], "KubeletHasDiskPressure");
        assert_eq!(cond(&s, "MemoryPressure")["status"], "True");
        // Ready did not change: its transition time stays; DiskPressure's moves.
        let secs = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert_eq!(cond(&s, "Ready")["lastTransitionTime"], secs(t0));
        assert_eq!(cond(&s, "DiskPressure")["lastTransitionTime"], secs(now));
    }

    #[test]
    fn sameness_ignores_heartbeats_only() {
        let t0 = Utc::now() - chrono::Duration::minutes(3);
        let old: NodeStatus = serde_json::from_value(desired(&facts(), None, t0)).unwrap();
        assert!(same(Some(&old), &desired(&facts(), Some(&old), Utc::now())));
        let mut f = facts();
        f.cpus = 2;
        assert!(!same(Some(&old), &desired(&f, Some(&old), Utc::now())));
        // The server marking us Unknown must be corrected.
        let mut unknown = old.clone();
        for c in unknown.conditions.as_mut().unwrap() {
            if c.type_ == "Ready" {
                c.status = "Unknown".into();
            }
        }
        assert!(!same(Some(&unknown), &desired(&facts(), Some(&unknown), Utc::now())));
        assert!(!same(None, &desired(&facts(), None, Utc::now())));
    }
}
