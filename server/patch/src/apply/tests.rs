#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};

use super::*;

const DEPLOY: TypeRef = TypeRef { group: "apps", version: "v1", kind: "Deployment" };
const CM: TypeRef = TypeRef { group: "", version: "v1", kind: "ConfigMap" };
const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-01-02T00:00:00Z";
const T3: &str = "2024-01-03T00:00:00Z";

fn config(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

fn managed(obj: &Value) -> &Vec<Value> {
    obj["metadata"]["managedFields"].as_array().expect("managedFields")
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"].as_array()?.iter().find(|e| e["manager"] == manager)
}

fn owns(obj: &Value, manager: &str, path: &[&str]) -> bool {
    let Some(e) = entry(obj, manager) else {
        return false;
    };
    let mut node = &e["fieldsV1"];
    for key in path {
        match node.get(*key) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

fn apply(live: Option<&Value>, cfg: &Value, manager: &str, force: bool, now: &str) -> Result<Value, ApplyError> {
    server_side_apply(live, cfg, manager, force, &DEPLOY, now)
}

const IMAGE: [&str; 6] = ["f:spec", "f:template", "f:spec", "f:containers", r#"k:{"name":"nginx"}"#, "f:image"];

#[test]
fn create_records_upstream_fields_v1() {
    let got = apply(None, &config(2, "nginx:1.7.9"), "kubectl", false, T1).unwrap();
    let want = json!([{
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {r#"k:{"name":"nginx"}"#: {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {r#"k:{"containerPort":80,"protocol":"TCP"}"#: {".": {}, "f:containerPort": {}}}
                    }}}
                }
            }
        }
    }]);
    assert_eq!(got["metadata"]["managedFields"], want);
    // Key order inside fieldsV1 is upstream's too.
    assert_eq!(
        serde_json::to_string(&got["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]).unwrap(),
        serde_json::to_string(&want[0]["fieldsV1"]["f:spec"]).unwrap()
    );
    assert_eq!(got["spec"]["replicas"], 2);
    assert_eq!(got["metadata"]["name"], "web");
    assert!(got.get("status").is_none(), "create must not invent fields: {got}");
}

#[test]
fn reapply_unchanged_is_a_no_op() {
    let first = apply(None, &config(2, "nginx:1.7.9"), "kubectl", false, T1).unwrap();
    let again = apply(Some(&first), &config(2, "nginx:1.7.9"), "kubectl", false, T2).unwrap();
    assert_eq!(again, first);
    assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&first).unwrap());
    // A real change bumps the time.
    let changed = apply(Some(&first), &config(3, "nginx:1.7.9"), "kubectl", false, T2).unwrap();
    assert_eq!(changed["spec"]["replicas"], 3);
    assert_eq!(managed(&changed)[0]["time"], T2);
}

/// Live object applied by kubectl, then replicas and image edited by `kubectl-edit`.
fn edited() -> Value {
    let applied = apply(None, &config(2, "nginx:1.7.9"), "kubectl", false, T1).unwrap();
    let mut new = applied.clone();
    new["spec"]["replicas"] = json!(5);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.9.1");
    track_update(Some(&applied), &new, "kubectl-edit", None, &DEPLOY, T2)
}

#[test]
fn conflicts_with_other_managers() {
    let live = edited();
    let cases: Vec<(Value, Result<(), &str>)> = vec![
        (
            config(2, "nginx:1.9.1"),
            Err(r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas"#),
        ),
        (
            config(3, "nginx:1.7.9"),
            Err("Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"),
        ),
        // Same values as the other manager: shared ownership, no conflict.
        (config(5, "nginx:1.9.1"), Ok(())),
    ];
    for (cfg, want) in cases {
        let got = apply(Some(&live), &cfg, "kubectl", false, T3);
        match (got, want) {
            (Err(e), Err(msg)) => assert_eq!(e.message(), msg),
            (Ok(obj), Ok(())) => {
                assert!(owns(&obj, "kubectl", &["f:spec", "f:replicas"]));
                assert!(owns(&obj, "kubectl-edit", &["f:spec", "f:replicas"]));
                assert!(owns(&obj, "kubectl", &IMAGE));
                assert!(owns(&obj, "kubectl-edit", &IMAGE));
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }
    let Err(ApplyError::Conflicts(conflicts)) = apply(Some(&live), &config(2, "nginx:1.9.1"), "kubectl", false, T3)
    else {
        panic!("expected conflicts")
    };
    assert_eq!(
        conflicts,
        vec![Conflict {
            manager: "kubectl-edit".into(),
            api_version: "apps/v1".into(),
            field: ".spec.replicas".into(),
            operation: "Update".into(),
            subresource: String::new(),
        }]
    );
    assert_eq!(conflicts[0].cause_message(), r#"conflict with "kubectl-edit" using apps/v1"#);
}

#[test]
fn conflicts_with_another_applier_name_no_version() {
    let live = apply(None, &config(2, "nginx:1.7.9"), "ci", false, T1).unwrap();
    let err = apply(Some(&live), &config(4, "nginx:1.7.9"), "kubectl", false, T2).unwrap_err();
    assert_eq!(err.message(), r#"Apply failed with 1 conflict: conflict with "ci": .spec.replicas"#);
}

#[test]
fn force_moves_ownership() {
    let live = edited();
    let got = apply(Some(&live), &config(2, "nginx:1.9.1"), "kubectl", true, T3).unwrap();
    assert_eq!(got["spec"]["replicas"], 2);
    assert!(owns(&got, "kubectl", &["f:spec", "f:replicas"]));
    assert!(!owns(&got, "kubectl-edit", &["f:spec", "f:replicas"]));
    // Same image value: the edit manager keeps sharing it.
    assert!(owns(&got, "kubectl-edit", &IMAGE));

    let got = apply(Some(&live), &config(2, "nginx:1.7.9"), "kubectl", true, T3).unwrap();
    assert!(entry(&got, "kubectl-edit").is_none(), "an emptied entry is dropped: {got}");
    assert_eq!(managed(&got).len(), 1);
}

#[test]
fn omitted_fields_are_removed_unless_owned_elsewhere() {
    let mut cfg = config(2, "nginx:1.7.9");
    cfg["metadata"]["labels"]["tier"] = json!("front");
    cfg["metadata"]["labels"]["team"] = json!("a");
    cfg["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox"}));
    let first = apply(None, &cfg, "kubectl", false, T1).unwrap();

    // Another manager also sets team=a: it now co-owns that label.
    let mut shared = first.clone();
    shared["metadata"]["labels"]["team"] = json!("a");
    shared["metadata"]["annotations"] = json!({"x": "y"});
    let shared = track_update(Some(&first), &shared, "labeller", None, &DEPLOY, T2);
    // The second write changed only the annotation, so labeller owns just that.
    assert!(!owns(&shared, "labeller", &["f:metadata", "f:labels", "f:team"]));
    let mut relabel = shared.clone();
    relabel["metadata"]["labels"]["team"] = json!("b");
    let relabelled = track_update(Some(&shared), &relabel, "labeller", None, &DEPLOY, T2);
    assert!(owns(&relabelled, "labeller", &["f:metadata", "f:labels", "f:team"]));
    assert!(!owns(&relabelled, "kubectl", &["f:metadata", "f:labels", "f:team"]));

    let got = apply(Some(&relabelled), &config(2, "nginx:1.7.9"), "kubectl", false, T3).unwrap();
    assert_eq!(got["metadata"]["labels"], json!({"app": "web", "team": "b"}));
    let names: Vec<&Value> =
        got["spec"]["template"]["spec"]["containers"].as_array().unwrap().iter().map(|c| &c["name"]).collect();
    assert_eq!(names, [&json!("nginx")]);
    assert_eq!(got["metadata"]["annotations"], json!({"x": "y"}));

    // Dropping replicas removes it (nobody else owns it); the server defaults it again.
    let mut no_replicas = config(2, "nginx:1.7.9");
    no_replicas["spec"].as_object_mut().unwrap().shift_remove("replicas");
    let got = apply(Some(&got), &no_replicas, "kubectl", false, T3).unwrap();
    assert!(got["spec"].get("replicas").is_none());
    assert_eq!(got["metadata"]["name"], "web");
    assert!(got["spec"].get("selector").is_some());
}

#[test]
fn apply_ignores_status_on_the_main_resource() {
    let first = apply(None, &config(2, "nginx:1.7.9"), "kubectl", false, T1).unwrap();
    let mut live = first.clone();
    live["status"] = json!({"replicas": 2});
    let mut cfg = config(2, "nginx:1.7.9");
    cfg["status"] = json!({"replicas": 7});
    let got = apply(Some(&live), &cfg, "kubectl", false, T2).unwrap();
    assert_eq!(got["status"], json!({"replicas": 2}));
    assert!(!owns(&got, "kubectl", &["f:status"]));
}

#[test]
fn managed_fields_in_config_rejected() {
    let mut cfg = config(2, "x");
    cfg["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    assert_eq!(
        apply(None, &cfg, "kubectl", false, T1),
        Err(ApplyError::Invalid("metadata.managedFields must be nil".into()))
    );
    let mut dup = config(2, "x");
    dup["spec"]["template"]["spec"]["containers"] = json!([{"name": "a"}, {"name": "a"}]);
    assert!(matches!(apply(None, &dup, "kubectl", false, T1), Err(ApplyError::Invalid(_))));
}

#[test]
fn first_apply_to_untracked_object_conflicts_with_before_first_apply() {
    let mut live = config(2, "nginx:1.7.9");
    live["metadata"]["uid"] = json!("u1");
    let err = apply(Some(&live), &config(3, "nginx:1.7.9"), "kubectl", false, T1).unwrap_err();
    assert_eq!(
        err.message(),
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#
    );
    let got = apply(Some(&live), &config(2, "nginx:1.7.9"), "kubectl", false, T1).unwrap();
    assert_eq!(managed(&got).len(), 2);
    assert_eq!(managed(&got)[0]["manager"], "kubectl");
    assert_eq!(managed(&got)[1]["manager"], "before-first-apply");
}

#[test]
fn track_update_create_matches_upstream_shape() {
    let new = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "1",
                     "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 1, "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
        },
        "status": {"replicas": 0}
    });
    let got = track_update(None, &new, "kubectl-create", None, &DEPLOY, T1);
    let want = json!([{
        "manager": "kubectl-create",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {r#"k:{"name":"nginx"}"#: {".": {}, "f:image": {}, "f:name": {}}}}
                }
            }
        }
    }]);
    assert_eq!(got["metadata"]["managedFields"], want);
}

#[test]
fn track_update_transfers_ownership() {
    let created = track_update(None, &config(1, "nginx:1.7.9"), "kubectl-create", None, &DEPLOY, T1);
    let mut new = created.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.9.1");
    let got = track_update(Some(&created), &new, "kubectl-set", None, &DEPLOY, T2);
    assert!(owns(&got, "kubectl-set", &IMAGE));
    assert!(!owns(&got, "kubectl-create", &IMAGE));
    assert!(owns(&got, "kubectl-create", &["f:spec", "f:replicas"]));
    let order: Vec<&Value> = managed(&got).iter().map(|e| &e["manager"]).collect();
    assert_eq!(order, [&json!("kubectl-create"), &json!("kubectl-set")]);

    // No change: nothing recorded, object untouched.
    assert_eq!(track_update(Some(&got), &got, "noop", None, &DEPLOY, T3), got);

    // Removing a field takes it out of every set.
    let mut trimmed = got.clone();
    trimmed["metadata"].as_object_mut().unwrap().shift_remove("labels");
    let trimmed = track_update(Some(&got), &trimmed, "kubectl-edit", None, &DEPLOY, T3);
    assert!(!owns(&trimmed, "kubectl-create", &["f:metadata", "f:labels"]));
    assert!(entry(&trimmed, "kubectl-edit").is_none(), "a pure removal owns nothing");
}

#[test]
fn track_update_status_subresource() {
    let created = track_update(None, &config(1, "nginx"), "kubectl", None, &DEPLOY, T1);
    let mut new = created.clone();
    new["status"] = json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
    new["spec"]["replicas"] = json!(9);
    let got = track_update(Some(&created), &new, "deployment-controller", Some("status"), &DEPLOY, T2);
    let e = entry(&got, "deployment-controller").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {".": {}, "f:conditions": {".": {}, r#"k:{"type":"Available"}"#: {".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}})
    );
    // Status written to the main resource is not tracked.
    let got = track_update(Some(&created), &new, "someone", None, &DEPLOY, T2);
    assert!(!owns(&got, "someone", &["f:status"]));
    assert!(owns(&got, "someone", &["f:spec", "f:replicas"]));
}

#[test]
fn sets_and_atomic_items() {
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "c",
            "finalizers": ["example.com/a"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "123"}]
        },
        "data": {"k": "v"}
    });
    let got = server_side_apply(None, &cm, "m", false, &CM, T1).unwrap();
    assert_eq!(
        got["metadata"]["managedFields"][0]["fieldsV1"],
        json!({
            "f:data": {"f:k": {}},
            "f:metadata": {"f:finalizers": {r#"v:"example.com/a""#: {}}, "f:ownerReferences": {r#"k:{"uid":"123"}"#: {}}}
        })
    );
    // Dropping a finalizer from the config removes just that one.
    let mut two = cm.clone();
    two["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
    let two = server_side_apply(Some(&got), &two, "m", false, &CM, T2).unwrap();
    assert_eq!(two["metadata"]["finalizers"], json!(["example.com/a", "example.com/b"]));
    let mut only_b = cm.clone();
    only_b["metadata"]["finalizers"] = json!(["example.com/b"]);
    let only_b = server_side_apply(Some(&two), &only_b, "m", false, &CM, T3).unwrap();
    assert_eq!(only_b["metadata"]["finalizers"], json!(["example.com/b"]));
}

#[test]
fn apply_merges_lists_by_key_and_keeps_others_items() {
    let live = apply(None, &config(1, "nginx"), "kubectl", false, T1).unwrap();
    // A second applier adds its own sidecar container: the first one's container stays.
    let sidecar = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}
    });
    let got = apply(Some(&live), &sidecar, "injector", false, T2).unwrap();
    let names: Vec<&Value> =
        got["spec"]["template"]["spec"]["containers"].as_array().unwrap().iter().map(|c| &c["name"]).collect();
    assert_eq!(names, [&json!("nginx"), &json!("sidecar")]);
    assert_eq!(got["spec"]["template"]["spec"]["containers"][0]["ports"], json!([{"containerPort": 80}]));
    assert!(owns(&got, "injector", &["f:spec", "f:template", "f:spec", "f:containers", r#"k:{"name":"sidecar"}"#]));
}

#[test]
fn track_update_accepts_client_sent_managed_fields_on_main_resource_only() {
    let created = track_update(None, &config(1, "nginx"), "kubectl", None, &DEPLOY, T1);
    // A client clearing ownership by sending its own list (here: one manager owning replicas).
    let mut sent = created.clone();
    sent["metadata"]["managedFields"] = json!([{
        "manager": "gitops", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}
    }]);
    let got = track_update(Some(&created), &sent, "kubectl-edit", None, &DEPLOY, T2);
    assert_eq!(managed(&got).len(), 1);
    assert!(owns(&got, "gitops", &["f:spec", "f:replicas"]));
    // On a subresource the stored list wins.
    let got = track_update(Some(&created), &sent, "kubectl-edit", Some("scale"), &DEPLOY, T2);
    assert!(entry(&got, "gitops").is_none());
    assert!(entry(&got, "kubectl").is_some());
}
