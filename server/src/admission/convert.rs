//! Conversion between versions that serve the same stored objects. Only autoscaling has two served
//! versions here: objects are stored as autoscaling/v2 and shown as v1 on request.

use serde_json::{json, Map, Value};

/// Converts an object read from storage (in `storage_version`) to the requested version.
pub fn from_storage(group: &str, kind: &str, obj: Value, to_version: &str) -> Value {
    match (group, kind, to_version) {
        ("autoscaling", "HorizontalPodAutoscaler", "v1") => hpa_v2_to_v1(obj),
        _ => obj,
    }
}

/// Converts an object in the requested version to its storage version.
pub fn to_storage(group: &str, kind: &str, obj: Value, from_version: &str) -> Value {
    match (group, kind, from_version) {
        ("autoscaling", "HorizontalPodAutoscaler", "v1") => hpa_v1_to_v2(obj),
        _ => obj,
    }
}

fn cpu_utilization(metrics: Option<&Value>) -> Option<Value> {
    metrics?.as_array()?.iter().find_map(|m| {
        let r = m.get("resource")?;
        (m["type"] == "Resource" && r["name"] == "cpu").then(|| {
            r.get("target")
                .and_then(|t| t.get("averageUtilization"))
                .or_else(|| r.get("current").and_then(|c| c.get("averageUtilization")))
                .cloned()
        })?
    })
}

fn hpa_v2_to_v1(mut obj: Value) -> Value {
    obj["apiVersion"] = json!("autoscaling/v1");
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        let cpu = cpu_utilization(spec.get("metrics"));
        spec.remove("metrics");
        spec.remove("behavior");
        if let Some(cpu) = cpu {
            spec.insert("targetCPUUtilizationPercentage".into(), cpu);
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        let cpu = cpu_utilization(status.get("currentMetrics"));
        let mut v1 = Map::new();
        for key in ["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"] {
            if let Some(v) = status.get(key) {
                v1.insert(key.into(), v.clone());
            }
        }
        if let Some(cpu) = cpu {
            v1.insert("currentCPUUtilizationPercentage".into(), cpu);
        }
        *status = v1;
    }
    obj
}

fn hpa_v1_to_v2(mut obj: Value) -> Value {
    obj["apiVersion"] = json!("autoscaling/v2");
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(cpu) = spec.remove("targetCPUUtilizationPercentage") {
            spec.insert(
                "metrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}]),
            );
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        if let Some(cpu) = status.remove("currentCPUUtilizationPercentage") {
            status.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}]),
            );
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_round_trips_between_v1_and_v2() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 70}});
        let v2 = to_storage("autoscaling", "HorizontalPodAutoscaler", v1.clone(), "v1");
        assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50);
        assert_eq!(from_storage("autoscaling", "HorizontalPodAutoscaler", v2, "v1"), v1);
    }
}
