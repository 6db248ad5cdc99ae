//! Request bodies captured from real kubectl 1.32 (tools/capture_kubectl.py): each `<name>.pb` must decode
//! to `<name>.json`. The expected JSON was checked against `kubectl create ... --dry-run=client -o json`
//! (equal up to Go's `null`/`{}` placeholders for unset fields).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::Path;

#[test]
fn captured_kubectl_bodies_decode_to_expected_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for pb in entries.iter().filter(|p| p.extension().is_some_and(|e| e == "pb")) {
        let body = std::fs::read(pb).unwrap();
        let want: serde_json::Value =
            serde_json::from_slice(&std::fs::read(pb.with_extension("json")).unwrap()).unwrap();
        let got = edge_proto::decode(&body).unwrap_or_else(|e| panic!("{}: {e}", pb.display()));
        assert_eq!(got, want, "{}", pb.display());
        assert!(edge_proto::is_supported(want["apiVersion"].as_str().unwrap(), want["kind"].as_str().unwrap()));
        checked += 1;
    }
    // configmap, secrets, namespace, deployment, services, serviceaccount, rbac, quota, job, cronjob,
    // priorityclass, pdb, ingress, token, autoscale, can-i, whoami.
    assert_eq!(checked, 22, "fixture count changed");
}

/// Damaged bodies (every truncation, every single-byte corruption) must give an error or a value, never a
/// panic: the server feeds this untrusted request bodies.
#[test]
fn damaged_bodies_never_panic() {
    let body = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/deployment.pb")).unwrap();
    let mut errors = 0;
    for len in 0..body.len() {
        errors += usize::from(edge_proto::decode(&body[..len]).is_err());
    }
    // Only the last 4 bytes (empty contentEncoding/contentType) can go without breaking the envelope.
    assert!(errors >= body.len() - 4, "{errors} of {} truncations failed", body.len());
    for i in 0..body.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut damaged = body.clone();
            damaged[i] ^= flip;
            let _ = edge_proto::decode(&damaged);
        }
    }
}
