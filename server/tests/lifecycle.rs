//! Object lifecycle through kubectl: finalizers, garbage collection by ownerReferences with each
//! propagation policy, dry-run and generateName.

mod support;

use std::time::Duration;

use support::{eventually, Server, NGINX_DEPLOYMENT};

fn owned_configmap(name: &str, owner_uid: &str, block: bool) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n  - apiVersion: apps/v1\n    kind: Deployment\n    name: nginx-deployment\n    uid: {owner_uid}\n    controller: true\n    blockOwnerDeletion: {block}\n"
    )
}

fn setup(s: &Server, dependent: &str, block: bool) {
    let out = s.apply_stdin(&["apply", "-f", "-"], NGINX_DEPLOYMENT);
    assert!(out.status.success());
    let uid = s.ok(&["get", "deploy", "nginx-deployment", "-o", "jsonpath={.metadata.uid}"]);
    let out = s.apply_stdin(&["apply", "-f", "-"], &owned_configmap(dependent, &uid, block));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn background_deletion_collects_dependents() {
    let s = Server::start();
    setup(&s, "dep", false);
    s.ok(&["delete", "deploy", "nginx-deployment"]);
    eventually("the dependent to be collected", Duration::from_secs(15), || {
        !s.kubectl(&["get", "cm", "dep"]).status.success()
    });
}

#[test]
fn orphan_deletion_keeps_dependents_without_the_reference() {
    let s = Server::start();
    setup(&s, "dep", true);
    s.ok(&["delete", "deploy", "nginx-deployment", "--cascade=orphan"]);
    eventually("the owner to go", Duration::from_secs(15), || {
        !s.kubectl(&["get", "deploy", "nginx-deployment"]).status.success()
    });
    assert_eq!(s.ok(&["get", "cm", "dep", "-o", "jsonpath={.metadata.ownerReferences}"]), "");
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    let s = Server::start();
    setup(&s, "dep", true);
    // A finalizer on the dependent holds the owner in foreground deletion until it is released.
    s.ok(&["patch", "cm", "dep", "--type=merge", "-p", r#"{"metadata":{"finalizers":["example.com/hold"]}}"#]);
    s.ok(&["delete", "deploy", "nginx-deployment", "--cascade=foreground", "--wait=false"]);
    std::thread::sleep(Duration::from_millis(800));
    let fin = s.ok(&["get", "deploy", "nginx-deployment", "-o", "jsonpath={.metadata.finalizers}"]);
    assert!(fin.contains("foregroundDeletion"), "{fin}");
    assert!(s.ok(&["get", "cm", "dep", "-o", "jsonpath={.metadata.deletionTimestamp}"]).len() > 10);
    s.ok(&["patch", "cm", "dep", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    eventually("the owner to go", Duration::from_secs(15), || {
        !s.kubectl(&["get", "deploy", "nginx-deployment"]).status.success()
    });
    assert!(!s.kubectl(&["get", "cm", "dep"]).status.success());
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let s = Server::start();
    s.apply_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/x]\n",
    );
    s.ok(&["delete", "cm", "held", "--wait=false"]);
    assert!(s.ok(&["get", "cm", "held", "-o", "jsonpath={.metadata.deletionTimestamp}"]).ends_with('Z'));
    let err = s.fails(&[
        "patch",
        "cm",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/y"}]"#,
    ]);
    assert!(err.contains("no new finalizers"), "{err}");
    s.ok(&["patch", "cm", "held", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]);
    assert!(!s.kubectl(&["get", "cm", "held"]).status.success());
}

#[test]
fn dry_run_writes_nothing_and_generate_name_makes_names() {
    let s = Server::start();
    let out = s.ok(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
        "-o",
        "jsonpath={.metadata.name}",
    ]);
    assert_eq!(out, "dry");
    assert!(!s.kubectl(&["get", "cm", "dry"]).status.success());
    let made = s.apply_stdin(
        &["create", "-f", "-", "-o", "name"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: job-\n",
    );
    let name = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert!(name.starts_with("configmap/job-") && name.len() == "configmap/job-".len() + 5, "{name}");
    s.ok(&["delete", "configmap", "--all"]);
    assert!(s.ok(&["get", "cm", "-o", "name"]).trim().is_empty());
}
