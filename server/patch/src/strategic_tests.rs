#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};

use super::*;

const DEPLOY: TypeRef = TypeRef { group: "apps", version: "v1", kind: "Deployment" };
const POD: TypeRef = TypeRef { group: "", version: "v1", kind: "Pod" };
const SVC: TypeRef = TypeRef { group: "", version: "v1", kind: "Service" };

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "x"},
            "finalizers": ["a.example/one", "b.example/two"]
        },
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.7.9",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "args": ["-a", "-b"]
                        },
                        {"name": "sidecar", "image": "busybox", "command": ["sleep", "1d"]}
                    ],
                    "tolerations": [{"key": "k1", "operator": "Exists"}]
                }
            }
        }
    })
}

fn containers(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]["containers"]
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect()
}

/// Each case: name, patch, and a check on the result.
type Check = fn(&Value);

#[test]
fn deployment_patches() {
    let cases: Vec<(&str, Value, Check)> = vec![
        (
            // `kubectl set image deployment/web nginx=nginx:1.9.1`
            "set image keeps other fields and containers",
            json!({"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.9.1"}]}}}}),
            |got| {
                let c = containers(got);
                assert_eq!(names(c), ["nginx", "sidecar"]);
                assert_eq!(c[0]["image"], "nginx:1.9.1");
                assert_eq!(c[0]["ports"], json!([{"containerPort": 80, "protocol": "TCP"}]));
                assert_eq!(c[0]["args"], json!(["-a", "-b"]));
                assert_eq!(c[1], json!({"name": "sidecar", "image": "busybox", "command": ["sleep", "1d"]}));
            },
        ),
        (
            // `kubectl rollout restart deployment/web`
            "rollout restart adds a template annotation",
            json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2024-05-01T10:00:00Z"}}}}}),
            |got| {
                let meta = &got["spec"]["template"]["metadata"];
                assert_eq!(meta["annotations"], json!({"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"}));
                assert_eq!(meta["labels"], json!({"app": "web"}));
                assert_eq!(names(containers(got)), ["nginx", "sidecar"]);
            },
        ),
        (
            // What client-side `kubectl apply` sends after the manifest changed the image,
            // dropped the sidecar and added a new container before nginx.
            "kubectl apply patch with $setElementOrder and $patch delete",
            json!({
                "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}\n"}},
                "spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "init-log"}, {"name": "nginx"}],
                    "containers": [
                        {"name": "init-log", "image": "busybox"},
                        {"name": "nginx", "image": "nginx:1.16.1"},
                        {"$patch": "delete", "name": "sidecar"}
                    ]
                }}}
            }),
            |got| {
                let c = containers(got);
                assert_eq!(names(c), ["init-log", "nginx"]);
                assert_eq!(c[1]["image"], "nginx:1.16.1");
                assert_eq!(c[1]["env"][1], json!({"name": "B", "value": "2"}));
                assert_eq!(got["metadata"]["annotations"]["note"], "x");
                assert_eq!(
                    got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
                    "{...}\n"
                );
            },
        ),
        (
            "$setElementOrder alone reorders the live list",
            json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"sidecar"},{"name":"nginx"}]}}}}),
            |got| assert_eq!(names(containers(got)), ["sidecar", "nginx"]),
        ),
        (
            "$setElementOrder on a primitive merge list",
            json!({"metadata":{"$setElementOrder/finalizers":["b.example/two","c.example/three","a.example/one"],"finalizers":["c.example/three"]}}),
            |got| {
                assert_eq!(got["metadata"]["finalizers"], json!(["b.example/two", "c.example/three", "a.example/one"]))
            },
        ),
        ("null deletes a key, others stay", json!({"metadata":{"labels":{"tier":null,"new":"yes"}}}), |got| {
            assert_eq!(got["metadata"]["labels"], json!({"app": "web", "new": "yes"}))
        }),
        (
            "null on a list item field deletes it inside the matched item",
            json!({"spec":{"template":{"spec":{"containers":[{"name":"nginx","args":null}]}}}}),
            |got| {
                assert!(containers(got)[0].get("args").is_none());
                assert_eq!(containers(got)[0]["image"], "nginx:1.7.9");
            },
        ),
        (
            "$patch replace on a map replaces it",
            json!({"metadata":{"labels":{"$patch":"replace","only":"this"}}}),
            |got| assert_eq!(got["metadata"]["labels"], json!({"only": "this"})),
        ),
        ("$patch delete on a map empties it", json!({"spec":{"strategy":{"$patch":"delete"}}}), |got| {
            assert_eq!(got["spec"]["strategy"], json!({}))
        }),
        (
            "$patch merge on a map is the default merge",
            json!({"metadata":{"labels":{"$patch":"merge","x":"y"}}}),
            |got| assert_eq!(got["metadata"]["labels"], json!({"app": "web", "tier": "front", "x": "y"})),
        ),
        (
            "$patch delete in a list removes the matching item",
            json!({"spec":{"template":{"spec":{"containers":[{"$patch":"delete","name":"nginx"}]}}}}),
            |got| assert_eq!(names(containers(got)), ["sidecar"]),
        ),
        (
            "$patch replace in a list replaces the whole list",
            json!({"spec":{"template":{"spec":{"containers":[{"$patch":"replace"},{"name":"solo","image":"x"}]}}}}),
            |got| assert_eq!(containers(got), &json!([{"name": "solo", "image": "x"}])),
        ),
        (
            "$retainKeys clears live keys not listed",
            json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}),
            |got| assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"})),
        ),
        (
            "$deleteFromPrimitiveList removes scalars",
            json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["a.example/one"]}}),
            |got| assert_eq!(got["metadata"]["finalizers"], json!(["b.example/two"])),
        ),
        (
            "primitive merge list (finalizers) unions",
            json!({"metadata":{"finalizers":["b.example/two","c.example/three"]}}),
            |got| {
                assert_eq!(got["metadata"]["finalizers"], json!(["a.example/one", "b.example/two", "c.example/three"]))
            },
        ),
        (
            "nested merge list (env by name) merges and keeps unmentioned items",
            json!({"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"B","value":"20"},{"name":"C","value":"3"}]}]}}}}),
            |got| {
                assert_eq!(
                    containers(got)[0]["env"],
                    json!([{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}])
                );
            },
        ),
        (
            "atomic list (args) is replaced",
            json!({"spec":{"template":{"spec":{"containers":[{"name":"nginx","args":["-z"]}]}}}}),
            |got| assert_eq!(containers(got)[0]["args"], json!(["-z"])),
        ),
        (
            "atomic list of maps (tolerations) is replaced",
            json!({"spec":{"template":{"spec":{"tolerations":[{"key":"k2","operator":"Exists"}]}}}}),
            |got| {
                assert_eq!(got["spec"]["template"]["spec"]["tolerations"], json!([{"key": "k2", "operator": "Exists"}]))
            },
        ),
        (
            "new values drop nulls and directive maps",
            json!({"spec":{"paused":true,"minReadySeconds":null,"template":{"spec":{"volumes":[{"name":"v","emptyDir":{"medium":null}},{"$patch":"delete","name":"w"}]}}}}),
            |got| {
                assert_eq!(got["spec"]["paused"], true);
                assert!(got["spec"].get("minReadySeconds").is_none());
                assert_eq!(got["spec"]["template"]["spec"]["volumes"], json!([{"name": "v", "emptyDir": {}}]));
            },
        ),
        ("scale through SMP changes only replicas and keeps key order", json!({"spec":{"replicas":5}}), |got| {
            assert_eq!(got["spec"]["replicas"], 5);
            let keys: Vec<_> = got["spec"].as_object().unwrap().keys().collect();
            assert_eq!(keys, ["replicas", "strategy", "template"]);
        }),
    ];
    for (name, patch, check) in cases {
        let got = strategic_merge(&deployment(), &patch, &DEPLOY).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&got);
        // Directives never reach the stored object.
        assert!(!got.to_string().contains("\"$"), "{name}: directive leaked: {got}");
    }
}

#[test]
fn new_item_order() {
    // Upstream places patch items not in the live list before the live-only ones when no
    // $setElementOrder is given, and merged items keep their live relative order.
    let pod = json!({"spec":{"containers":[{"name":"a"},{"name":"b"}]}});
    let cases = [
        (json!([{"name":"c"}]), vec!["c", "a", "b"]),
        (json!([{"name":"b","image":"x"}]), vec!["a", "b"]),
        (json!([{"name":"b"},{"name":"a"}]), vec!["b", "a"]),
    ];
    for (list, want) in cases {
        let got = strategic_merge(&pod, &json!({"spec":{"containers":list}}), &POD).unwrap();
        assert_eq!(names(&got["spec"]["containers"]), want, "patch {list}");
    }
}

#[test]
fn service_ports_merge_by_port() {
    let svc =
        json!({"spec":{"ports":[{"port":80,"targetPort":8080},{"port":443,"targetPort":8443}],"selector":{"app":"a"}}});
    let got = strategic_merge(&svc, &json!({"spec":{"ports":[{"port":443,"targetPort":9443}]}}), &SVC).unwrap();
    assert_eq!(got["spec"]["ports"], json!([{"port":80,"targetPort":8080},{"port":443,"targetPort":9443}]));
}

#[test]
fn unknown_lists_are_replaced() {
    let cr = TypeRef { group: "example.com", version: "v1", kind: "Widget" };
    let got =
        strategic_merge(&json!({"spec":{"items":[{"name":"a"}]}}), &json!({"spec":{"items":[{"name":"b"}]}}), &cr)
            .unwrap();
    assert_eq!(got["spec"]["items"], json!([{"name":"b"}]));
}

#[test]
fn errors() {
    let cases: Vec<(Value, PatchError)> = vec![
        (json!(["not", "an", "object"]), PatchError::NotAnObject),
        (
            json!({"metadata":{"labels":{"$patch":"bogus"}}}),
            PatchError::BadPatchType { directive: "bogus".into(), context: r#"{"$patch":"bogus"}"#.into() },
        ),
        (
            json!({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}),
            PatchError::NoMergeKey { item: r#"{"image":"x"}"#.into(), key: "name".into() },
        ),
        (
            json!({"spec":{"template":{"spec":{"containers":[{"$patch":"merge","name":"x"}]}}}}),
            PatchError::MergeDirectiveInList,
        ),
        (json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{}}}}), PatchError::BadRetainKeys),
        (json!({"spec":{"strategy":{"$retainKeys":"type"}}}), PatchError::BadRetainKeys),
        (json!({"metadata":{"$deleteFromPrimitiveList/finalizers":"x"}}), PatchError::BadPrimitiveList),
        (json!({"spec":{"template":{"spec":{"$setElementOrder/containers":{}}}}}), PatchError::BadSetElementOrder),
    ];
    for (patch, want) in cases {
        assert_eq!(strategic_merge(&deployment(), &patch, &DEPLOY), Err(want), "patch {patch}");
    }
    let mismatch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"nginx"}],
        "containers":[{"name":"other","image":"x"}]
    }}}});
    assert!(matches!(
        strategic_merge(&deployment(), &mismatch, &DEPLOY),
        Err(PatchError::SetElementOrderMismatch { .. })
    ));
}

#[test]
fn merge_keys_across_kinds() {
    let cronjob = TypeRef { group: "batch", version: "v1", kind: "CronJob" };
    let node = TypeRef { group: "", version: "v1", kind: "Node" };
    let cases: Vec<(TypeRef, Value, Value, Value)> = vec![
        (
            cronjob,
            json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"1"},{"name":"b","image":"1"}]}}}}}}),
            json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"2"}]}}}}}}),
            json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"1"},{"name":"b","image":"2"}]}}}}}}),
        ),
        (
            POD,
            json!({"metadata":{"ownerReferences":[{"uid":"1","name":"rs-a"},{"uid":"2","name":"rs-b"}]}}),
            json!({"metadata":{"ownerReferences":[{"uid":"2","controller":true}]}}),
            json!({"metadata":{"ownerReferences":[{"uid":"1","name":"rs-a"},{"uid":"2","name":"rs-b","controller":true}]}}),
        ),
        (
            POD,
            json!({"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"Initialized","status":"True"}]}}),
            json!({"status":{"conditions":[{"type":"Ready","status":"True"}]}}),
            json!({"status":{"conditions":[{"type":"Ready","status":"True"},{"type":"Initialized","status":"True"}]}}),
        ),
        (
            node,
            json!({"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"},{"type":"Hostname","address":"n1"}]}}),
            json!({"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.2"}]}}),
            json!({"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.2"},{"type":"Hostname","address":"n1"}]}}),
        ),
        (
            POD,
            json!({"spec":{"containers":[{"name":"c","volumeMounts":[{"mountPath":"/a","name":"x"},{"mountPath":"/b","name":"y"}]}]}}),
            json!({"spec":{"containers":[{"name":"c","volumeMounts":[{"mountPath":"/b","readOnly":true}]}]}}),
            json!({"spec":{"containers":[{"name":"c","volumeMounts":[{"mountPath":"/a","name":"x"},{"mountPath":"/b","name":"y","readOnly":true}]}]}}),
        ),
    ];
    for (ty, original, patch, want) in cases {
        assert_eq!(strategic_merge(&original, &patch, &ty).unwrap(), want, "{} patch {patch}", ty.kind);
    }
}
