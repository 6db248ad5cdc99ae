//! The HorizontalPodAutoscaler printer, including upstream's TARGETS rendering of v2 metrics
//! ("cpu: 12%/50%", "<unknown>/100 (avg)", "... + 1 more..."). autoscaling/v1 objects are read
//! through the same metric model, as upstream converts them before printing.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::column::{Column, AGE, NAME};
use crate::fields::{age, int_at, list_at, name, object, opt_int, quantity, str_at, string};
use crate::Printer;

pub(crate) const HORIZONTAL_POD_AUTOSCALER: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Reference", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
        Column::string("Targets", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used)."),
        Column::string("MinPods", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
        Column::string("MaxPods", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
        Column::string("Replicas", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
        AGE,
    ],
    cells,
};

fn cells(hpa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        str_at(hpa, &["spec", "scaleTargetRef", "kind"]),
        str_at(hpa, &["spec", "scaleTargetRef", "name"])
    );
    let (specs, statuses) = metrics(hpa);
    vec![
        name(hpa),
        string(reference),
        string(format_metrics(&specs, &statuses)),
        string(opt_int(hpa, &["spec", "minReplicas"]).map_or_else(|| "<unset>".to_string(), |n| n.to_string())),
        Value::from(int_at(hpa, &["spec", "maxReplicas"])),
        Value::from(int_at(hpa, &["status", "currentReplicas"])),
        age(hpa, now),
    ]
}

/// spec.metrics and status.currentMetrics; an autoscaling/v1 CPU target becomes the equivalent
/// v2 Resource metric, as upstream's v1 conversion does.
fn metrics(hpa: &Value) -> (Vec<Value>, Vec<Value>) {
    let specs = list_at(hpa, &["spec", "metrics"]);
    match opt_int(hpa, &["spec", "targetCPUUtilizationPercentage"]) {
        Some(target) if specs.is_empty() => {
            let spec = json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": target}}});
            let status = opt_int(hpa, &["status", "currentCPUUtilizationPercentage"]).map(|current| {
                json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}})
            });
            (vec![spec], status.into_iter().collect())
        }
        _ => (specs.to_vec(), list_at(hpa, &["status", "currentMetrics"]).to_vec()),
    }
}

/// A quantity as Go prints a *Quantity: "<nil>" when unset.
fn qty(v: &Value, path: &[&str]) -> String {
    quantity(v, path).unwrap_or_else(|| "<nil>".to_string())
}

/// The status block of the same index and source, when the autoscaler has reported it.
fn status_of<'a>(statuses: &'a [Value], i: usize, source: &str) -> Option<&'a Value> {
    statuses.get(i).and_then(|s| object(s, &[source]))
}

fn percent(n: i64) -> String {
    format!("{n}%")
}

fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    const MAX: usize = 2;
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let unknown = || "<unknown>".to_string();
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| match str_at(spec, &["type"]) {
            "External" | "Object" => {
                let source = if str_at(spec, &["type"]) == "External" { "external" } else { "object" };
                let status = status_of(statuses, i, source);
                if quantity(spec, &[source, "target", "averageValue"]).is_some() {
                    let current =
                        status.and_then(|s| quantity(s, &["current", "averageValue"])).unwrap_or_else(unknown);
                    format!("{current}/{} (avg)", qty(spec, &[source, "target", "averageValue"]))
                } else {
                    let current = status.map_or_else(unknown, |s| qty(s, &["current", "value"]));
                    format!("{current}/{}", qty(spec, &[source, "target", "value"]))
                }
            }
            "Pods" => {
                let current =
                    status_of(statuses, i, "pods").map_or_else(unknown, |s| qty(s, &["current", "averageValue"]));
                format!("{current}/{}", qty(spec, &["pods", "target", "averageValue"]))
            }
            "Resource" | "ContainerResource" => {
                let source = if str_at(spec, &["type"]) == "Resource" { "resource" } else { "containerResource" };
                let resource = str_at(spec, &[source, "name"]);
                let status = status_of(statuses, i, source);
                if quantity(spec, &[source, "target", "averageValue"]).is_some() {
                    let current = status.map_or_else(unknown, |s| qty(s, &["current", "averageValue"]));
                    format!("{resource}: {current}/{}", qty(spec, &[source, "target", "averageValue"]))
                } else {
                    let current = status
                        .and_then(|s| opt_int(s, &["current", "averageUtilization"]))
                        .map_or_else(unknown, percent);
                    let target = opt_int(spec, &[source, "target", "averageUtilization"])
                        .map_or_else(|| "<auto>".to_string(), percent);
                    format!("{resource}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_string(),
        })
        .collect();
    if list.len() > MAX {
        format!("{} + {} more...", list[..MAX].join(", "), list.len() - MAX)
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::test_support::{ago, now};

    fn hpa(spec_metrics: Value, current: Value) -> Value {
        json!({"metadata": {"name": "web", "creationTimestamp": ago(120)},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                        "minReplicas": 1, "maxReplicas": 10, "metrics": spec_metrics},
               "status": {"currentReplicas": 2, "currentMetrics": current}})
    }

    fn cpu(target: Value) -> Value {
        json!({"type": "Resource", "resource": {"name": "cpu", "target": target}})
    }

    #[test]
    fn targets_column() {
        let cases = vec![
            (
                hpa(json!([cpu(json!({"type": "Utilization", "averageUtilization": 50}))]), json!(null)),
                "cpu: <unknown>/50%",
            ),
            (
                hpa(
                    json!([cpu(json!({"type": "Utilization", "averageUtilization": 50}))]),
                    json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12, "averageValue": "6m"}}}]),
                ),
                "cpu: 12%/50%",
            ),
            (hpa(json!([cpu(json!({"type": "Utilization"}))]), json!([])), "cpu: <unknown>/<auto>"),
            (
                hpa(
                    json!([{"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}]),
                    json!([{"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "52Mi"}}}]),
                ),
                "memory: 52Mi/100Mi",
            ),
            (
                hpa(
                    json!([{"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}]),
                    json!([{"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "250"}}}]),
                ),
                "250/1k",
            ),
            (
                hpa(json!([{"type": "Object", "object": {"target": {"type": "Value", "value": "10"}}}]), json!([])),
                "<unknown>/10",
            ),
            (
                hpa(
                    json!([{"type": "External", "external": {"target": {"type": "AverageValue", "averageValue": "30"}}}]),
                    json!([{"type": "External", "external": {"current": {"averageValue": "7"}}}]),
                ),
                "7/30 (avg)",
            ),
            (
                hpa(
                    json!([{"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                         "target": {"type": "Utilization", "averageUtilization": 60}}}]),
                    json!([]),
                ),
                "cpu: <unknown>/60%",
            ),
            (
                hpa(
                    json!([cpu(json!({"averageUtilization": 50})), {"type": "Pods", "pods": {"target": {"averageValue": "1"}}},
                        {"type": "Weird"}]),
                    json!([]),
                ),
                "cpu: <unknown>/50%, <unknown>/1 + 1 more...",
            ),
            (hpa(json!([]), json!([])), "<none>"),
        ];
        for (obj, want) in cases {
            let row = cells(&obj, now());
            assert_eq!(row, row!["web", "Deployment/web", want, "1", 10, 2, "2m"], "{obj}");
        }
    }

    #[test]
    fn autoscaling_v1_and_missing_fields() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "php"},
                        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "php-apache"}, "maxReplicas": 5,
                                 "targetCPUUtilizationPercentage": 80},
                        "status": {"currentReplicas": 1, "currentCPUUtilizationPercentage": 35}});
        assert_eq!(
            cells(&v1, now()),
            row!["php", "Deployment/php-apache", "cpu: 35%/80%", "<unset>", 5, 1, "<unknown>"]
        );
        assert_eq!(cells(&json!({}), now()), row!["", "/", "<none>", "<unset>", 0, 0, "<unknown>"]);
    }
}
