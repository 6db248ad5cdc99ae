//! Node selection by a pod: `spec.nodeSelector` and node affinity (upstream's
//! `component-helpers/scheduling/corev1/nodeaffinity`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

fn labels(node: &Node) -> Option<&BTreeMap<String, String>> {
    node.metadata.labels.as_ref()
}

/// One requirement against a set of key/values (labels, or the node's selectable fields).
fn requirement_matches(r: &NodeSelectorRequirement, get: impl Fn(&str) -> Option<String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let current = get(&r.key);
    match r.operator.as_str() {
        "In" => current.is_some_and(|v| values.contains(&v)),
        "NotIn" => current.is_none_or(|v| !values.contains(&v)),
        "Exists" => current.is_some(),
        "DoesNotExist" => current.is_none(),
        "Gt" | "Lt" => {
            // Exactly one integer value is valid; anything else selects nothing.
            let [bound] = values else { return false };
            let (Some(cur), Ok(bound)) = (current.and_then(|v| v.parse::<i64>().ok()), bound.parse::<i64>()) else {
                return false;
            };
            if r.operator == "Gt" {
                cur > bound
            } else {
                cur < bound
            }
        }
        _ => false,
    }
}

/// A term matches when all its requirements do; a term with none matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let label = |k: &str| labels(node).and_then(|l| l.get(k)).cloned();
    // metadata.name is the only field node affinity can select on.
    let field = |k: &str| (k == "metadata.name").then(|| node.metadata.name.clone().unwrap_or_default());
    exprs.iter().all(|r| requirement_matches(r, label)) && fields.iter().all(|r| requirement_matches(r, field))
}

/// `spec.nodeSelector` and the required node affinity (terms ORed) both admit the node.
pub fn required_matches(spec: &PodSpec, node: &Node) -> bool {
    if let Some(sel) = &spec.node_selector {
        let l = labels(node);
        if !sel.iter().all(|(k, v)| l.and_then(|l| l.get(k)) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref());
    match required {
        None => true,
        Some(sel) => sel.node_selector_terms.iter().any(|t| term_matches(t, node)),
    }
}

/// Sum of the weights of the preferred node affinity terms the node matches.
pub fn preferred_weight(spec: &PodSpec, node: &Node) -> i64 {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.preferred_during_scheduling_ignored_during_execution.as_ref())
        .into_iter()
        .flatten()
        .filter(|p| term_matches(&p.preference, node))
        .map(|p| i64::from(p.weight))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    fn spec_with_terms(terms: serde_json::Value) -> PodSpec {
        serde_json::from_value(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
        .unwrap()
    }

    #[test]
    fn required_affinity_operators() {
        let n = node("n1", json!({"zone": "a", "cores": "4"}));
        let expr = |key: &str, op: &str, values: serde_json::Value| json!([{"matchExpressions": [{"key": key, "operator": op, "values": values}]}]);
        let cases = [
            (expr("zone", "In", json!(["a", "b"])), true),
            (expr("zone", "In", json!(["b"])), false),
            (expr("zone", "NotIn", json!(["b"])), true),
            (expr("missing", "NotIn", json!(["b"])), true),
            (expr("zone", "NotIn", json!(["a"])), false),
            (expr("zone", "Exists", json!(null)), true),
            (expr("missing", "Exists", json!(null)), false),
            (expr("missing", "DoesNotExist", json!(null)), true),
            (expr("zone", "DoesNotExist", json!(null)), false),
            (expr("cores", "Gt", json!(["3"])), true),
            (expr("cores", "Gt", json!(["4"])), false),
            (expr("cores", "Lt", json!(["5"])), true),
            (expr("zone", "Lt", json!(["5"])), false),
            (expr("cores", "Gt", json!(["1", "2"])), false),
            (json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]), true),
            (json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]), false),
            // Terms are ORed; an empty term matches nothing; no terms match nothing.
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}, {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                true,
            ),
            (json!([{}]), false),
            (json!([]), false),
        ];
        for (terms, want) in cases {
            assert_eq!(required_matches(&spec_with_terms(terms.clone()), &n), want, "{terms}");
        }
    }

    #[test]
    fn node_selector_needs_every_label() {
        let n = node("n1", json!({"disk": "ssd", "zone": "a"}));
        let spec = |sel: serde_json::Value| {
            serde_json::from_value::<PodSpec>(json!({"containers": [], "nodeSelector": sel})).unwrap()
        };
        assert!(required_matches(&spec(json!({"disk": "ssd"})), &n));
        assert!(required_matches(&spec(json!({"disk": "ssd", "zone": "a"})), &n));
        assert!(!required_matches(&spec(json!({"disk": "hdd"})), &n));
        assert!(!required_matches(&spec(json!({"gpu": "yes"})), &n));
    }

    #[test]
    fn preferred_weights_add_up() {
        let n = node("n1", json!({"zone": "a", "disk": "ssd"}));
        let spec: PodSpec = serde_json::from_value(json!({"containers": [], "affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                {"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}},
                {"weight": 1, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]}}})).unwrap();
        assert_eq!(preferred_weight(&spec, &n), 11);
    }
}
