//! Label selectors (`metav1.LabelSelector`) evaluated against an object's labels.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` satisfy `selector`. A selector with no terms matches everything, as
/// `LabelSelectorAsSelector` does; an unknown operator matches nothing.
pub fn matches(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let by_labels = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && selector.match_expressions.iter().flatten().all(|req| {
            let values = req.values.as_deref().unwrap_or_default();
            let value = labels.get(&req.key);
            match req.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selector_table() {
        let req = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        };
        let app = LabelSelector { match_labels: Some(labels(&[("app", "web")])), match_expressions: None };
        let cases: Vec<(LabelSelector, Vec<(&str, &str)>, bool)> = vec![
            (app.clone(), vec![("app", "web"), ("x", "y")], true),
            (app.clone(), vec![("app", "db")], false),
            (app.clone(), vec![], false),
            (LabelSelector::default(), vec![], true),
            (
                LabelSelector { match_expressions: Some(vec![req("tier", "In", &["a", "b"])]), ..Default::default() },
                vec![("tier", "b")],
                true,
            ),
            (
                LabelSelector { match_expressions: Some(vec![req("tier", "In", &["a"])]), ..Default::default() },
                vec![],
                false,
            ),
            (
                LabelSelector { match_expressions: Some(vec![req("tier", "NotIn", &["a"])]), ..Default::default() },
                vec![],
                true,
            ),
            (
                LabelSelector { match_expressions: Some(vec![req("tier", "NotIn", &["a"])]), ..Default::default() },
                vec![("tier", "a")],
                false,
            ),
            (
                LabelSelector { match_expressions: Some(vec![req("tier", "Exists", &[])]), ..Default::default() },
                vec![("tier", "")],
                true,
            ),
            (
                LabelSelector { match_expressions: Some(vec![req("tier", "DoesNotExist", &[])]), ..Default::default() },
                vec![("tier", "")],
                false,
            ),
            (
                LabelSelector { match_expressions: Some(vec![req("tier", "Bogus", &[])]), ..Default::default() },
                vec![("tier", "")],
                false,
            ),
        ];
        for (i, (sel, l, want)) in cases.into_iter().enumerate() {
            assert_eq!(matches(&sel, Some(&labels(&l))), want, "case {i}");
        }
    }
}
