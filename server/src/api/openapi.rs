//! A minimal OpenAPI v3 document: enough for kubectl's apply/create/replace/edit to find each kind and
//! its `fieldValidation` parameter. No schemas are published: kubectl would compute patches from a
//! partial schema, so it is better to give none and let it use its built-in types.

use serde_json::{json, Map, Value};

use crate::resources::{self, Shape};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub fn index() -> Value {
    let mut paths = Map::new();
    for (g, versions) in resources::group_versions() {
        for v in versions {
            let p = gv_path(g, v);
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(g, v))}));
        }
    }
    json!({"paths": paths})
}

/// A stable hash of the document so that kubectl's cache notices new builds.
fn hash(group: &str, version: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (group, version, env!("CARGO_PKG_VERSION")).hash(&mut h);
    format!("{:016X}", h.finish())
}

pub fn document(group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let prefix = format!("/{}", gv_path(group, version));
    let mut found = false;
    for r in resources::in_group_version(group, version) {
        found = true;
        let gvk = json!({"group": group, "version": version, "kind": r.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ]);
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", r.kind),
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let base = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        paths.insert(base.clone(), json!({"post": op("post")}));
        if r.shape == Shape::Stored {
            paths.insert(
                format!("{base}/{{name}}"),
                json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
            );
        }
    }
    found.then(|| {
        json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": crate::api::discovery::KUBE_VERSION},
            "paths": paths,
            "components": {"schemas": {}},
        })
    })
}
