//! Container environments: ordering and overriding, expansion, optional and missing references,
//! fieldRef and resourceFieldRef.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use edge_projection::env::{resolve, EnvError};
use edge_projection::fieldpath::FieldPathError;
use serde_json::json;
use support::{container, ctx, pod, Objects};

/// name, env JSON, the environment or the error message.
type KeyRefCase = (&'static str, serde_json::Value, Result<Vec<(String, String)>, String>);
/// resource, divisor, containerName, the value or the error message.
type ResourceCase = (&'static str, Option<&'static str>, Option<&'static str>, Result<&'static str, &'static str>);

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn objects() -> Objects {
    Objects::default()
        .with_config_map("ns", "cfg", json!({"data": {"MODE": "prod", "LEVEL": "3", "dotted.key": "d"}}))
        .with_config_map("ns", "more", json!({"data": {"LEVEL": "9"}}))
        .with_config_map("other", "cfg", json!({"data": {"MODE": "wrong-namespace"}}))
        .with_secret("ns", "creds", &[("PASSWORD", b"s3cret"), ("1TOKEN", b"t")])
}

#[test]
fn ordering_and_overriding() {
    let pod = pod();
    let c = container(json!({
        "envFrom": [
            {"configMapRef": {"name": "cfg"}},
            {"prefix": "DB_", "secretRef": {"name": "creds"}},
            {"configMapRef": {"name": "more"}}
        ],
        "env": [
            {"name": "MODE", "value": "dev"},
            {"name": "EXTRA", "value": "x"},
            {"name": "EXTRA", "value": "y"}
        ]
    }));
    let got = resolve(&ctx(&pod), &c, &objects(), &[]).unwrap();
    assert_eq!(
        got,
        pairs(&[
            // One source's keys in key order; a later source and env replace values in place.
            ("LEVEL", "9"),
            ("MODE", "dev"),
            ("dotted.key", "d"),
            ("DB_1TOKEN", "t"),
            ("DB_PASSWORD", "s3cret"),
            ("EXTRA", "y"),
        ])
    );
}

#[test]
fn expansion_against_defined_vars_and_service_env() {
    let pod = pod();
    let service_env = pairs(&[
        ("KUBERNETES_SERVICE_HOST", "10.43.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
        ("WEB_SERVICE_HOST", "10.43.0.9"),
    ]);
    let c = container(json!({
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [
            {"name": "URL", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)/$(MODE)"},
            {"name": "EARLY", "value": "$(LATE)-$(NOPE)"},
            {"name": "LATE", "value": "late"},
            {"name": "AFTER", "value": "$(LATE)$$(LATE)$"},
            {"name": "CHAIN", "value": "$(AFTER)"},
            {"name": "WEB_SERVICE_HOST", "value": "overridden"},
            {"name": "FROM_SVC", "value": "$(WEB_SERVICE_HOST)"},
            {"name": "EMPTY"}
        ]
    }));
    let got = resolve(&ctx(&pod), &c, &objects(), &service_env).unwrap();
    assert_eq!(
        got,
        pairs(&[
            ("LEVEL", "3"),
            ("MODE", "prod"),
            ("dotted.key", "d"),
            ("URL", "https://10.43.0.1:443/prod"),
            ("EARLY", "$(LATE)-$(NOPE)"),
            ("LATE", "late"),
            ("AFTER", "late$(LATE)$"),
            ("CHAIN", "late$(LATE)$"),
            ("WEB_SERVICE_HOST", "overridden"),
            ("FROM_SVC", "overridden"),
            ("EMPTY", ""),
            // Service vars the container did not define come last, in the caller's order.
            ("KUBERNETES_SERVICE_HOST", "10.43.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
        ])
    );
}

#[test]
fn key_references_and_missing_objects() {
    let pod = pod();
    let cases: Vec<KeyRefCase> = vec![
        (
            "configMapKeyRef",
            json!([{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}}]),
            Ok(pairs(&[("V", "prod")])),
        ),
        (
            "secretKeyRef",
            json!([{"name": "V", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}}]),
            Ok(pairs(&[("V", "s3cret")])),
        ),
        (
            "missing configmap",
            json!([{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]),
            Err("configmap \"gone\" not found".into()),
        ),
        (
            "missing configmap key",
            json!([{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]),
            Err("couldn't find key k in ConfigMap ns/cfg".into()),
        ),
        (
            "missing secret",
            json!([{"name": "V", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]),
            Err("secret \"gone\" not found".into()),
        ),
        (
            "missing secret key",
            json!([{"name": "V", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]),
            Err("couldn't find key k in Secret ns/creds".into()),
        ),
        (
            "optional missing objects and keys are skipped",
            json!([
                {"name": "A", "value": "a"},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
                {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}},
                {"name": "D", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}},
                {"name": "E", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k", "optional": true}}},
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}}
            ]),
            Ok(pairs(&[("A", "a")])),
        ),
    ];
    for (name, env, expected) in cases {
        let c = container(json!({ "env": env }));
        let got = resolve(&ctx(&pod), &c, &objects(), &[]).map_err(|e| e.to_string());
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn env_from_optional_and_missing() {
    let pod = pod();
    let optional = container(json!({"envFrom": [
        {"configMapRef": {"name": "gone", "optional": true}},
        {"secretRef": {"name": "gone", "optional": true}},
        {"configMapRef": {"name": "more"}}
    ]}));
    assert_eq!(resolve(&ctx(&pod), &optional, &objects(), &[]).unwrap(), pairs(&[("LEVEL", "9")]));

    let required = container(json!({"envFrom": [{"secretRef": {"name": "gone"}}]}));
    assert_eq!(resolve(&ctx(&pod), &required, &objects(), &[]), Err(EnvError::SecretNotFound { name: "gone".into() }));
    let required = container(json!({"envFrom": [{"configMapRef": {"name": "gone"}}]}));
    assert_eq!(
        resolve(&ctx(&pod), &required, &objects(), &[]).unwrap_err().to_string(),
        "configmap \"gone\" not found"
    );
}

#[test]
fn env_from_skips_names_that_are_not_env_var_names() {
    let pod = pod();
    let objects = Objects::default().with_config_map(
        "ns",
        "odd",
        json!({"data": {"ok": "1", "with space": "2", "x=y": "3", "é": "4"}}),
    );
    let c = container(json!({"envFrom": [{"configMapRef": {"name": "odd"}}]}));
    assert_eq!(resolve(&ctx(&pod), &c, &objects, &[]).unwrap(), pairs(&[("ok", "1"), ("with space", "2")]));
}

#[test]
fn field_refs() {
    let pod = pod();
    let cases: &[(&str, Option<&str>, Result<&str, &str>)] = &[
        ("metadata.name", None, Ok("web-0")),
        ("metadata.namespace", Some("v1"), Ok("ns")),
        ("metadata.uid", None, Ok("0a1b2c3d-1111-2222-3333-444455556666")),
        ("metadata.labels['app']", None, Ok("web")),
        ("metadata.labels['missing']", None, Ok("")),
        ("metadata.annotations['example.com/Owner']", None, Ok("ops")),
        ("metadata.labels", None, Ok("app=\"web\"\ntier=\"front\\\"end\"")),
        ("metadata.annotations", None, Ok("example.com/Owner=\"ops\"\nnote=\"line1\\nline2\"")),
        ("spec.nodeName", None, Ok("pi-1")),
        ("spec.host", None, Ok("pi-1")),
        ("spec.serviceAccountName", None, Ok("builder")),
        ("status.hostIP", None, Ok("192.168.1.10")),
        ("status.hostIPs", None, Ok("192.168.1.10")),
        ("status.podIP", None, Ok("10.42.0.7")),
        ("status.podIPs", None, Ok("10.42.0.7,fd00::7")),
        ("metadata.name", Some("v2"), Err("unsupported pod version: v2")),
        ("spec.containers", None, Err("field label not supported: spec.containers")),
        ("status.phase", None, Err("unsupported fieldPath: status.phase")),
        ("metadata.name['x']", None, Err("field label does not support subscript: metadata.name['x']")),
    ];
    for (path, version, expected) in cases {
        let mut field_ref = json!({"fieldPath": path});
        if let Some(v) = version {
            field_ref["apiVersion"] = json!(v);
        }
        let c = container(json!({"env": [{"name": "V", "valueFrom": {"fieldRef": field_ref}}]}));
        let got = resolve(&ctx(&pod), &c, &Objects::default(), &[]);
        match expected {
            Ok(value) => assert_eq!(got, Ok(pairs(&[("V", value)])), "{path}"),
            Err(message) => assert_eq!(got.unwrap_err().to_string(), *message, "{path}"),
        }
    }
}

#[test]
fn field_ref_errors_that_need_context() {
    let pod = pod();
    let c = container(json!({"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}]}));
    let mut no_host = ctx(&pod);
    no_host.host_ip = None;
    assert_eq!(resolve(&no_host, &c, &Objects::default(), &[]), Err(EnvError::Field(FieldPathError::HostIpUnknown)));

    let c =
        container(json!({"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a b']"}}}]}));
    let message = resolve(&ctx(&pod), &c, &Objects::default(), &[]).unwrap_err().to_string();
    assert!(
        message.starts_with("invalid key subscript in metadata.labels['a b']: name part must consist of"),
        "{message}"
    );
}

#[test]
fn resource_field_refs() {
    let pod = pod();
    // The container under test is `app` of the pod: limits cpu 250m / memory 64Mi, requests cpu 100m.
    let app = pod.spec.as_ref().unwrap().containers[0].clone();
    let cases: &[ResourceCase] = &[
        ("limits.cpu", None, None, Ok("1")),
        ("limits.cpu", Some("1m"), None, Ok("250")),
        ("limits.cpu", Some("100m"), None, Ok("3")),
        ("requests.cpu", Some("1m"), None, Ok("100")),
        ("limits.memory", None, None, Ok("67108864")),
        ("limits.memory", Some("1Mi"), None, Ok("64")),
        ("limits.memory", Some("1M"), None, Ok("68")),
        ("requests.memory", None, None, Ok("0")),
        ("requests.ephemeral-storage", None, None, Ok("0")),
        // No limit set: the node's allocatable stands in.
        ("limits.ephemeral-storage", Some("1G"), None, Ok("32")),
        ("limits.cpu", None, Some("side"), Ok("4")),
        ("limits.cpu", Some("1m"), Some("side"), Ok("4000")),
        ("limits.memory", Some("1Gi"), Some("side"), Ok("8")),
        ("limits.memory", Some("1Gi"), Some("init"), Ok("2")),
        ("limits.hugepages-2Mi", None, None, Ok("0")),
        ("limits.gpu", None, None, Err("unsupported container resource : limits.gpu")),
        ("limits.cpu", None, Some("nope"), Err("container nope not found")),
    ];
    for (resource, divisor, container_name, expected) in cases {
        let mut field = json!({"resource": resource});
        if let Some(d) = divisor {
            field["divisor"] = json!(d);
        }
        if let Some(name) = container_name {
            field["containerName"] = json!(name);
        }
        let mut c = app.clone();
        c.env =
            Some(vec![serde_json::from_value(json!({"name": "V", "valueFrom": {"resourceFieldRef": field}})).unwrap()]);
        let got = resolve(&ctx(&pod), &c, &Objects::default(), &[]);
        let label = format!("{resource} / {divisor:?} / {container_name:?}");
        match expected {
            Ok(value) => assert_eq!(got, Ok(pairs(&[("V", value)])), "{label}"),
            Err(message) => assert_eq!(got.unwrap_err().to_string(), *message, "{label}"),
        }
    }
}

#[test]
fn zero_limit_counts_as_unset() {
    let pod = pod();
    let c = container(json!({
        "resources": {"limits": {"memory": "0"}},
        "env": [{"name": "V", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Gi"}}}]
    }));
    assert_eq!(resolve(&ctx(&pod), &c, &Objects::default(), &[]).unwrap(), pairs(&[("V", "8")]));
}
