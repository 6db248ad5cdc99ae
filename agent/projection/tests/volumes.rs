//! Volume payloads: items, modes, optional objects and keys, downward API, projected sources, errors.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use std::collections::BTreeMap;

use edge_projection::volumes::{project, File, VolumeError};
use serde_json::json;
use support::{ctx, pod, volume, Objects};

fn objects() -> Objects {
    Objects::default()
        .with_config_map(
            "ns",
            "cfg",
            // binaryData "AAEC" is the bytes 0, 1, 2.
            json!({"data": {"app.conf": "port=80\n", "level": "3"}, "binaryData": {"blob": "AAEC"}}),
        )
        .with_secret("ns", "creds", &[("password", b"s3cret"), ("key", b"\xff\x00binary")])
}

/// A case: name, volume JSON, the files or the error message.
type Case = (&'static str, serde_json::Value, Result<BTreeMap<String, File>, String>);

fn files(list: &[(&str, &[u8], u32)]) -> BTreeMap<String, File> {
    list.iter().map(|(p, d, m)| (p.to_string(), File { data: d.to_vec(), mode: *m })).collect()
}

#[test]
fn payloads() {
    let pod = pod();
    let cases: Vec<Case> = vec![
        (
            "configMap, every key with the default mode",
            json!({"name": "v", "configMap": {"name": "cfg"}}),
            Ok(files(&[("app.conf", b"port=80\n", 0o644), ("blob", &[0, 1, 2], 0o644), ("level", b"3", 0o644)])),
        ),
        (
            "configMap items with paths, per-item mode and defaultMode",
            json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o600, "items": [
                {"key": "app.conf", "path": "etc/app/app.conf"},
                {"key": "blob", "path": "bin/blob", "mode": 0o755}
            ]}}),
            Ok(files(&[("etc/app/app.conf", b"port=80\n", 0o600), ("bin/blob", &[0, 1, 2], 0o755)])),
        ),
        (
            "configMap missing",
            json!({"name": "v", "configMap": {"name": "gone"}}),
            Err("configmap \"gone\" not found".into()),
        ),
        (
            "configMap missing but optional",
            json!({"name": "v", "configMap": {"name": "gone", "optional": true}}),
            Ok(files(&[])),
        ),
        (
            "configMap missing but optional, with items",
            json!({"name": "v", "configMap": {"name": "gone", "optional": true, "items": [{"key": "k", "path": "k"}]}}),
            Ok(files(&[])),
        ),
        (
            "configMap item key missing",
            json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "x"}]}}),
            Err("configmap references non-existent config key: nope".into()),
        ),
        (
            "configMap item key missing but optional",
            json!({"name": "v", "configMap": {"name": "cfg", "optional": true, "items": [
                {"key": "nope", "path": "x"}, {"key": "level", "path": "l"}
            ]}}),
            Ok(files(&[("l", b"3", 0o644)])),
        ),
        (
            "secret, decoded data",
            json!({"name": "v", "secret": {"secretName": "creds", "defaultMode": 0o400}}),
            Ok(files(&[("key", b"\xff\x00binary", 0o400), ("password", b"s3cret", 0o400)])),
        ),
        (
            "secret items",
            json!({"name": "v", "secret": {"secretName": "creds", "items": [{"key": "password", "path": "db/pw", "mode": 0o440}]}}),
            Ok(files(&[("db/pw", b"s3cret", 0o440)])),
        ),
        (
            "secret missing",
            json!({"name": "v", "secret": {"secretName": "gone"}}),
            Err("secret \"gone\" not found".into()),
        ),
        (
            "secret item key missing",
            json!({"name": "v", "secret": {"secretName": "creds", "items": [{"key": "user", "path": "u"}]}}),
            Err("references non-existent secret key: user".into()),
        ),
        (
            "item path escaping the volume",
            json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "level", "path": "../../etc/passwd"}]}}),
            Err("invalid path: must not contain '..': ../../etc/passwd".into()),
        ),
        (
            "item path over the writer's own names",
            json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "level", "path": "..data"}]}}),
            Err("invalid path: must not start with '..': ..data".into()),
        ),
        (
            "absolute item path",
            json!({"name": "v", "secret": {"secretName": "creds", "items": [{"key": "password", "path": "/pw"}]}}),
            Err("invalid path: must be relative path: /pw".into()),
        ),
        (
            "not a projected volume",
            json!({"name": "scratch", "emptyDir": {}}),
            Err("volume \"scratch\" is not a configMap, secret, downwardAPI or projected volume".into()),
        ),
    ];
    for (name, vol, expected) in cases {
        let got = project(&ctx(&pod), &volume(vol), &objects()).map_err(|e| e.to_string());
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn downward_api() {
    let pod = pod();
    let vol = volume(json!({"name": "podinfo", "downwardAPI": {"defaultMode": 0o444, "items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "meta/name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o400},
        {"path": "meta/uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
        {"path": "mem_mi", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "side_cpu", "resourceFieldRef": {"containerName": "side", "resource": "limits.cpu", "divisor": "1m"}}
    ]}}));
    let got = project(&ctx(&pod), &vol, &Objects::default()).unwrap();
    assert_eq!(
        got,
        files(&[
            ("labels", b"app=\"web\"\ntier=\"front\\\"end\"", 0o444),
            ("annotations", b"example.com/Owner=\"ops\"\nnote=\"line1\\nline2\"", 0o444),
            ("meta/name", b"web-0", 0o400),
            ("meta/uid", b"0a1b2c3d-1111-2222-3333-444455556666", 0o444),
            ("app", b"web", 0o444),
            ("mem_mi", b"64", 0o444),
            ("side_cpu", b"4000", 0o444),
        ])
    );
}

#[test]
fn downward_api_errors_are_reported_together() {
    let pod = pod();
    let vol = volume(json!({"name": "podinfo", "downwardAPI": {"items": [
        {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "ghost", "resource": "limits.cpu"}}
    ]}}));
    let err = project(&ctx(&pod), &vol, &Objects::default()).unwrap_err();
    assert_eq!(err.to_string(), "[unsupported fieldPath: spec.nodeName, container ghost not found]");
}

#[test]
fn projected_sources_merge_with_the_volume_default_mode() {
    let pod = pod();
    let vol = volume(json!({"name": "all", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cfg", "items": [{"key": "level", "path": "level"}, {"key": "app.conf", "path": "shared"}]}},
        {"secret": {"name": "creds", "items": [{"key": "password", "path": "shared", "mode": 0o400}]}},
        {"secret": {"name": "gone", "optional": true}},
        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
    ]}}));
    let got = project(&ctx(&pod), &vol, &objects()).unwrap();
    // A later source wins a path both project.
    assert_eq!(got, files(&[("level", b"3", 0o440), ("shared", b"s3cret", 0o400), ("ns", b"ns", 0o440)]));

    let default_mode = volume(json!({"name": "all", "projected": {"sources": [
        {"configMap": {"name": "cfg", "items": [{"key": "level", "path": "level"}]}}
    ]}}));
    assert_eq!(project(&ctx(&pod), &default_mode, &objects()).unwrap(), files(&[("level", b"3", 0o644)]));
}

#[test]
fn projected_errors() {
    let pod = pod();
    let token = volume(json!({"name": "kube-api-access", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "cfg", "items": [{"key": "level", "path": "level"}]}}
    ]}}));
    assert_eq!(project(&ctx(&pod), &token, &objects()), Err(VolumeError::UnsupportedSource("serviceAccountToken")));

    let two = volume(json!({"name": "p", "projected": {"sources": [
        {"configMap": {"name": "gone"}},
        {"secret": {"name": "creds", "items": [{"key": "user", "path": "u"}]}},
        {"configMap": {"name": "gone"}}
    ]}}));
    // Aggregated like utilerrors.Aggregate: flat, duplicates dropped.
    assert_eq!(
        project(&ctx(&pod), &two, &objects()).unwrap_err().to_string(),
        "[configmap \"gone\" not found, references non-existent secret key: user]"
    );
}
