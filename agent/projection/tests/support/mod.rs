//! Shared fixtures: a pod built from JSON, an in-memory Lookup and a PodContext around them.

#![allow(dead_code, clippy::unwrap_used)] // shared by several test crates; fails loudly on purpose

use std::collections::HashMap;

use edge_projection::{Lookup, PodContext};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Volume};
use serde_json::{json, Value};

#[derive(Default)]
pub struct Objects {
    pub config_maps: HashMap<(String, String), ConfigMap>,
    pub secrets: HashMap<(String, String), Secret>,
}

impl Objects {
    /// `data` is the JSON of the ConfigMap's `data` / `binaryData` fields.
    pub fn with_config_map(mut self, namespace: &str, name: &str, data: Value) -> Self {
        let mut object = json!({"metadata": {"name": name, "namespace": namespace}});
        if let (Some(obj), Value::Object(fields)) = (object.as_object_mut(), data) {
            obj.extend(fields);
        }
        let cm: ConfigMap = serde_json::from_value(object).unwrap();
        self.config_maps.insert((namespace.into(), name.into()), cm);
        self
    }

    /// `data` values are plain text here; they are base64-encoded for the JSON form.
    pub fn with_secret(mut self, namespace: &str, name: &str, data: &[(&str, &[u8])]) -> Self {
        let encoded: serde_json::Map<String, Value> =
            data.iter().map(|(k, v)| (k.to_string(), Value::String(b64(v)))).collect();
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": namespace}, "data": encoded}))
                .unwrap();
        self.secrets.insert((namespace.into(), name.into()), secret);
        self
    }
}

impl Lookup for Objects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.config_maps.get(&(namespace.to_string(), name.to_string())).cloned()
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.secrets.get(&(namespace.to_string(), name.to_string())).cloned()
    }
}

pub fn b64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A pod in namespace `ns` with labels, annotations, a node, a service account and two containers:
/// `app` (limits cpu 250m / memory 64Mi, requests cpu 100m) and `side` (no resources), plus init `init`.
pub fn pod() -> Pod {
    pod_with(json!({}))
}

/// [`pod`] with `spec` fields merged in (e.g. volumes).
pub fn pod_with(spec_extra: Value) -> Pod {
    let mut pod = json!({
        "metadata": {
            "name": "web-0",
            "namespace": "ns",
            "uid": "0a1b2c3d-1111-2222-3333-444455556666",
            "labels": {"app": "web", "tier": "front\"end"},
            "annotations": {"example.com/Owner": "ops", "note": "line1\nline2"}
        },
        "spec": {
            "nodeName": "pi-1",
            "serviceAccountName": "builder",
            "containers": [
                {"name": "app", "image": "busybox",
                 "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "100m"}}},
                {"name": "side", "image": "busybox"}
            ],
            "initContainers": [
                {"name": "init", "image": "busybox", "resources": {"limits": {"memory": "1.5Gi"}}}
            ]
        }
    });
    if let (Some(spec), Value::Object(extra)) = (pod["spec"].as_object_mut(), spec_extra) {
        spec.extend(extra);
    }
    serde_json::from_value(pod).unwrap()
}

pub fn ctx(pod: &Pod) -> PodContext<'_> {
    PodContext {
        pod,
        host_ip: Some("192.168.1.10".into()),
        pod_ips: vec!["10.42.0.7".into(), "fd00::7".into()],
        node_allocatable_cpu_millis: 4000,
        node_allocatable_memory: 8 * 1024 * 1024 * 1024,
        node_allocatable_ephemeral_storage: 32_000_000_000,
    }
}

pub fn container(value: Value) -> Container {
    let mut c = json!({"name": "app", "image": "busybox"});
    if let (Some(obj), Value::Object(extra)) = (c.as_object_mut(), value) {
        obj.extend(extra);
    }
    serde_json::from_value(c).unwrap()
}

pub fn volume(value: Value) -> Volume {
    serde_json::from_value(value).unwrap()
}
