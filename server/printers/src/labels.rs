//! Label maps and label selectors printed as upstream's `labels.FormatLabels`,
//! `metav1.LabelSelectorAsSelector(..).String()` and `metav1.FormatLabelSelector` print them.

use serde_json::{Map, Value};

/// Why a metav1.LabelSelector cannot be turned into a selector.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SelectorError {
    #[error("{0:?} is not a valid label selector operator")]
    UnknownOperator(String),
    #[error("operator {operator} for key {key:?} needs {expected}")]
    BadValues { key: String, operator: &'static str, expected: &'static str },
    #[error("label selector is not an object")]
    NotAnObject,
}

/// "k1=v1,k2=v2" with keys sorted, or "<none>" for an empty or missing map.
pub(crate) fn format_labels(labels: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<String> =
        labels.into_iter().flatten().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    }
}

enum Operator {
    Equals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

struct Requirement<'a> {
    key: &'a str,
    operator: Operator,
    values: Vec<&'a str>,
}

impl Requirement<'_> {
    fn render(mut self) -> String {
        self.values.sort_unstable();
        let values = self.values.join(",");
        match self.operator {
            Operator::Equals => format!("{}={values}", self.key),
            Operator::In => format!("{} in ({values})", self.key),
            Operator::NotIn => format!("{} notin ({values})", self.key),
            Operator::Exists => self.key.to_string(),
            Operator::DoesNotExist => format!("!{}", self.key),
        }
    }
}

/// The selector's string form; "" for a missing (matches nothing) or empty (matches everything)
/// selector, as upstream's selectors print both.
pub(crate) fn selector_string(selector: Option<&Value>) -> Result<String, SelectorError> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Ok(String::new());
    };
    if !selector.is_object() {
        return Err(SelectorError::NotAnObject);
    }
    let mut requirements = Vec::new();
    for (key, value) in selector.get("matchLabels").and_then(Value::as_object).into_iter().flatten() {
        requirements.push(Requirement { key, operator: Operator::Equals, values: vec![value.as_str().unwrap_or("")] });
    }
    for expr in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> =
            expr.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let op_name = expr.get("operator").and_then(Value::as_str).unwrap_or("");
        let (operator, needs_values) = match op_name {
            "In" => (Operator::In, true),
            "NotIn" => (Operator::NotIn, true),
            "Exists" => (Operator::Exists, false),
            "DoesNotExist" => (Operator::DoesNotExist, false),
            other => return Err(SelectorError::UnknownOperator(other.to_string())),
        };
        if needs_values == values.is_empty() {
            return Err(SelectorError::BadValues {
                key: key.to_string(),
                operator: if needs_values { "In/NotIn" } else { "Exists/DoesNotExist" },
                expected: if needs_values { "at least one value" } else { "no values" },
            });
        }
        requirements.push(Requirement { key, operator, values });
    }
    requirements.sort_by(|a, b| a.key.cmp(b.key));
    Ok(requirements.into_iter().map(Requirement::render).collect::<Vec<_>>().join(","))
}

/// Upstream's metav1.FormatLabelSelector: "<none>" when empty, "<error>" when invalid.
pub(crate) fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Err(_) => "<error>".to_string(),
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_print_like_upstream() {
        let cases = [
            (json!(null), Ok("")),
            (json!({}), Ok("")),
            (json!({"matchLabels": {"b": "2", "a": "1"}}), Ok("a=1,b=2")),
            (
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["b", "a"]},
                    {"key": "env", "operator": "NotIn", "values": ["prod"]},
                    {"key": "x", "operator": "Exists"},
                    {"key": "canary", "operator": "DoesNotExist", "values": []}]}),
                Ok("app=web,!canary,env notin (prod),tier in (a,b),x"),
            ),
            (json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}), Err(())),
            (json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["v"]}]}), Err(())),
            (json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}), Err(())),
            (json!("app=web"), Err(())),
        ];
        for (selector, want) in cases {
            let got = selector_string(Some(&selector)).map_err(|_| ());
            assert_eq!(got, want.map(str::to_string), "{selector}");
        }
    }

    #[test]
    fn format_label_selector_marks_empty_and_invalid() {
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&json!({"matchLabels": {"app": "db"}}))), "app=db");
        assert_eq!(
            format_label_selector(Some(&json!({"matchExpressions": [{"key": "a", "operator": "?"}]}))),
            "<error>"
        );
    }

    #[test]
    fn format_labels_sorts_and_marks_empty() {
        let labels = json!({"zone": "a", "app": "web"});
        assert_eq!(format_labels(labels.as_object()), "app=web,zone=a");
        assert_eq!(format_labels(json!({}).as_object()), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }
}
