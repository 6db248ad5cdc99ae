//! Validation on create and update, reported as upstream's field errors (422 Invalid naming the field).
//! Structural type errors are caught earlier, when the object is decoded into its upstream type.

use serde_json::{Map, Value};

use crate::api::status::{FieldError, FieldErrorKind};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| !l.is_empty() && l.len() <= 63 && is_dns1123_label(l))
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
}

/// A qualified name's name part (label keys, annotation keys): `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, ≤ 63.
fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(s),
    }
}

pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

fn is_config_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s != "."
        && s != ".."
}

/// Which rule a kind's names follow (upstream's per-kind NameIsDNS* choices).
fn name_errors(kind: &str, name: &str) -> Option<&'static str> {
    match kind {
        "Namespace" => (!is_dns1123_label(name)).then_some(DNS1123_LABEL_MSG),
        "Service" => (!is_dns1035_label(name)).then_some(DNS1035_LABEL_MSG),
        // RBAC objects accept any path segment name.
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => {
            (name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('%'))
                .then_some("may not contain '/' or '%' and may not be '.' or '..'")
        }
        _ => (!is_dns1123_subdomain(name)).then_some(DNS1123_SUBDOMAIN_MSG),
    }
}

fn meta_errors(kind: &str, obj: &Value, errs: &mut Vec<FieldError>) {
    let meta = &obj["metadata"];
    match meta.get("name").and_then(Value::as_str) {
        None | Some("") => errs.push(FieldError::required("metadata.name", "name or generateName is required")),
        Some(name) => {
            if let Some(msg) = name_errors(kind, name) {
                errs.push(FieldError::invalid("metadata.name", &Value::String(name.into()), msg));
            }
        }
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                errs.push(FieldError::invalid("metadata.labels", &Value::String(k.clone()), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
            }
            let value = v.as_str().unwrap_or_default();
            if !is_label_value(value) {
                errs.push(FieldError::invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
            }
        }
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0usize;
        for (k, v) in ann {
            total += k.len() + v.as_str().map_or(0, str::len);
            if !is_qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
        }
        if total > 256 * 1024 {
            errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                "metadata.annotations",
                "Too long: must have at most 262144 bytes",
            ));
        }
    }
}

fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let labels = labels.as_object();
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let ml_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|ml| ml.iter().all(|(k, v)| get(k) == v.as_str()));
    let expr_ok = selector.get("matchExpressions").and_then(Value::as_array).is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            match e["operator"].as_str().unwrap_or_default() {
                "In" => get(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => get(key).is_some(),
                "DoesNotExist" => get(key).is_none(),
                _ => false,
            }
        })
    });
    ml_ok && expr_ok
}

fn selector_is_empty(selector: &Value) -> bool {
    selector.get("matchLabels").and_then(Value::as_object).is_none_or(Map::is_empty)
        && selector.get("matchExpressions").and_then(Value::as_array).is_none_or(Vec::is_empty)
}

fn pod_spec_errors(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names = Vec::new();
    for key in ["initContainers", "containers"] {
        for (i, c) in spec.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
            let cpath = format!("{path}.{key}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => errs.push(FieldError::required(format!("{cpath}.name"), "")),
                Some(n) if !is_dns1123_label(n) => {
                    errs.push(FieldError::invalid(format!("{cpath}.name"), &Value::String(n.into()), DNS1123_LABEL_MSG))
                }
                Some(n) if names.contains(&n) => {
                    errs.push(FieldError::new(FieldErrorKind::Duplicate, format!("{cpath}.name"), format!("{n:?}")))
                }
                Some(n) => names.push(n),
            }
            if c.get("image").and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
                errs.push(FieldError::required(format!("{cpath}.image"), ""));
            }
            for (j, p) in c.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    errs.push(FieldError::invalid(
                        format!("{cpath}.ports[{j}].containerPort"),
                        &p["containerPort"],
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !["Always", "OnFailure", "Never"].contains(&rp) {
            errs.push(FieldError::new(
                FieldErrorKind::NotSupported,
                format!("{path}.restartPolicy"),
                format!("{rp:?}: supported values: \"Always\", \"OnFailure\", \"Never\""),
            ));
        }
    }
}

fn workload_errors(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let selector = &spec["selector"];
    if selector.is_null() || selector_is_empty(selector) {
        errs.push(FieldError::required("spec.selector", ""));
        if selector.is_object() {
            errs.push(FieldError::invalid("spec.selector", selector, "empty selector is invalid for deployment"));
        }
    } else if !selector_matches(selector, &spec["template"]["metadata"]["labels"]) {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            &spec["template"]["metadata"]["labels"],
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(r) = spec.get("replicas").and_then(Value::as_i64) {
        if r < 0 {
            errs.push(FieldError::invalid("spec.replicas", &spec["replicas"], "must be greater than or equal to 0"));
        }
    }
    pod_spec_errors(&spec["template"]["spec"], "spec.template.spec", errs);
    if let Some(rp) = spec["template"]["spec"].get("restartPolicy").and_then(Value::as_str) {
        if rp != "Always" {
            errs.push(FieldError::new(
                FieldErrorKind::NotSupported,
                "spec.template.spec.restartPolicy",
                format!("{rp:?}: supported values: \"Always\""),
            ));
        }
    }
}

fn config_keys(obj: &Value, fields: &[&str], errs: &mut Vec<FieldError>) {
    let mut seen: Vec<&str> = Vec::new();
    for field in fields {
        for k in obj.get(*field).and_then(Value::as_object).into_iter().flat_map(Map::keys) {
            if !is_config_key(k) {
                errs.push(FieldError::invalid(
                    field.to_string(),
                    &Value::String(k.clone()),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
            if seen.contains(&k.as_str()) {
                errs.push(FieldError::invalid(
                    field.to_string(),
                    &Value::String(k.clone()),
                    "duplicate of key present in another data field",
                ));
            }
            seen.push(k);
        }
    }
}

/// Validation of a new object (create) or of the new state of an object (update).
pub fn validate(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    meta_errors(kind, obj, &mut errs);
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") => workload_errors(obj, &mut errs),
        ("", "Pod") => pod_spec_errors(&obj["spec"], "spec", &mut errs),
        ("", "ConfigMap") => config_keys(obj, &["data", "binaryData"], &mut errs),
        ("", "Secret") => config_keys(obj, &["data", "stringData"], &mut errs),
        ("", "Service") => service_errors(obj, &mut errs),
        _ => {}
    }
    errs
}

fn service_errors(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
        errs.push(FieldError::new(
            FieldErrorKind::NotSupported,
            "spec.type",
            format!("{ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ));
    }
    let ports = spec["ports"].as_array();
    let headless = spec["clusterIP"].as_str() == Some("None");
    if ty != "ExternalName" && !headless && ports.is_none_or(|p| p.is_empty()) {
        errs.push(FieldError::required("spec.ports", ""));
    }
    if ty == "ExternalName" && spec["externalName"].as_str().is_none_or(str::is_empty) {
        errs.push(FieldError::required("spec.externalName", ""));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errs.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            ));
        }
        if ports.is_some_and(|all| all.len() > 1) && p["name"].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
        }
    }
}

/// Rules about what an update may change (immutable fields).
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let immutable = |path: &str, a: &Value, b: &Value, errs: &mut Vec<FieldError>| {
        if a != b {
            errs.push(FieldError::invalid(path, b, "field is immutable"));
        }
    };
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") => {
            immutable("spec.selector", &old["spec"]["selector"], &new["spec"]["selector"], &mut errs);
        }
        ("", "ConfigMap" | "Secret") => {
            if old["immutable"] == Value::Bool(true) {
                for field in ["data", "binaryData", "stringData"] {
                    if old[field] != new[field] {
                        errs.push(FieldError::forbidden(field, "field is immutable when `immutable` is set"));
                    }
                }
                if new["immutable"] != Value::Bool(true) {
                    errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
                }
            }
            if kind == "Secret" {
                immutable("type", &old["type"], &new["type"], &mut errs);
            }
        }
        ("", "Service") => {
            let (a, b) = (&old["spec"]["clusterIP"], &new["spec"]["clusterIP"]);
            if a.as_str().is_some_and(|s| !s.is_empty()) && !b.is_null() {
                immutable("spec.clusterIP", a, b, &mut errs);
            }
        }
        ("", "Node") => {
            let (a, b) = (&old["spec"]["podCIDR"], &new["spec"]["podCIDR"]);
            if a.as_str().is_some_and(|s| !s.is_empty()) && a != b {
                errs.push(FieldError::forbidden(
                    "spec.podCIDR",
                    "node updates may not change podCIDR except from \"\" to valid",
                ));
            }
        }
        ("", "Pod") => {
            // Upstream allows only images, activeDeadlineSeconds, tolerations (additions) and a few more to change.
            let strip = |v: &Value| {
                let mut s = v["spec"].clone();
                for key in ["containers", "initContainers"] {
                    if let Some(cs) = s.get_mut(key).and_then(Value::as_array_mut) {
                        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                            c.remove("image");
                        }
                    }
                }
                if let Some(m) = s.as_object_mut() {
                    m.remove("activeDeadlineSeconds");
                    m.remove("tolerations");
                    m.remove("terminationGracePeriodSeconds");
                }
                s
            };
            if strip(old) != strip(new) {
                errs.push(FieldError::forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
            }
        }
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(labels: Value, selector: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": {"restartPolicy": "Always", "containers": [{"name": "web", "image": "nginx"}]}}}})
    }

    #[test]
    fn names_follow_each_kinds_rule() {
        assert!(validate("", "ConfigMap", &json!({"metadata": {"name": "a.b-c"}})).is_empty());
        let e = validate("", "ConfigMap", &json!({"metadata": {"name": "Bad_Name"}}));
        assert_eq!(e[0].field, "metadata.name");
        assert!(!validate("", "Namespace", &json!({"metadata": {"name": "a.b"}})).is_empty());
        assert!(!validate("", "Service", &json!({"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 80}]}}))
            .is_empty());
        assert!(validate("rbac.authorization.k8s.io", "ClusterRole", &json!({"metadata": {"name": "system:admin"}}))
            .is_empty());
        assert_eq!(
            validate("", "ConfigMap", &json!({"metadata": {}}))[0].message(),
            "metadata.name: Required value: name or generateName is required"
        );
    }

    #[test]
    fn labels_are_checked() {
        let e = validate(
            "",
            "ConfigMap",
            &json!({"metadata": {"name": "a", "labels": {"ok/key": "v", "bad key": "v", "k": "-bad"}}}),
        );
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|e| e.field == "metadata.labels"));
    }

    #[test]
    fn deployments_need_a_matching_selector_and_keep_it() {
        assert!(validate("apps", "Deployment", &deploy(json!({"app": "w"}), json!({"app": "w"}))).is_empty());
        let e = validate("apps", "Deployment", &deploy(json!({"app": "x"}), json!({"app": "w"})));
        assert_eq!(e[0].field, "spec.template.metadata.labels");
        let e = validate_update(
            "apps",
            "Deployment",
            &deploy(json!({"app": "w"}), json!({"app": "w"})),
            &deploy(json!({"app": "v"}), json!({"app": "v"})),
        );
        assert_eq!(
            e[0].message(),
            "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"v\"}}: field is immutable"
        );
    }

    #[test]
    fn configmap_keys_and_immutability() {
        assert_eq!(
            validate("", "ConfigMap", &json!({"metadata": {"name": "a"}, "data": {"db.host": "x", "bad/key": "y"}}))
                .len(),
            1
        );
        let old = json!({"metadata": {"name": "a"}, "immutable": true, "data": {"k": "1"}});
        let new = json!({"metadata": {"name": "a"}, "immutable": true, "data": {"k": "2"}});
        assert_eq!(validate_update("", "ConfigMap", &old, &new)[0].field, "data");
    }
}
