//! The real kubectl (v1.32) against the real edge-server binary.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{write, Server, NGINX_DEPLOYMENT};

#[test]
fn apply_creates_configures_and_leaves_unchanged() {
    let s = Server::start();
    let f = write(s.dir.path(), "d.yaml", NGINX_DEPLOYMENT);
    let f = f.to_str().unwrap();
    assert_eq!(s.ok(&["apply", "-f", f]).trim(), "deployment.apps/nginx-deployment created");
    assert_eq!(s.ok(&["apply", "-f", f]).trim(), "deployment.apps/nginx-deployment unchanged");
    let rv_before = s.ok(&["get", "deploy", "nginx-deployment", "-o", "jsonpath={.metadata.resourceVersion}"]);
    write(s.dir.path(), "d.yaml", &NGINX_DEPLOYMENT.replace("replicas: 3", "replicas: 2"));
    assert_eq!(s.ok(&["apply", "-f", f]).trim(), "deployment.apps/nginx-deployment configured");
    let out = s.ok(&[
        "get",
        "deploy",
        "nginx-deployment",
        "-o",
        "jsonpath={.spec.replicas} {.metadata.generation} {.metadata.resourceVersion}",
    ]);
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&parts[..2], ["2", "2"], "{out}");
    assert_ne!(parts[2], rv_before);
    // Upstream's defaults are visible.
    let y = s.ok(&["get", "deploy", "nginx-deployment", "-o", "yaml"]);
    for want in [
        "maxSurge: 25%",
        "maxUnavailable: 25%",
        "revisionHistoryLimit: 10",
        "progressDeadlineSeconds: 600",
        "imagePullPolicy: IfNotPresent",
        "dnsPolicy: ClusterFirst",
        "kubectl.kubernetes.io/last-applied-configuration",
    ] {
        assert!(y.contains(want), "missing {want} in\n{y}");
    }
    // An unchanged apply writes nothing: the resourceVersion stays. The controllers write the
    // Deployment's status after each change, so first wait until they are done.
    let rv_now = || s.ok(&["get", "deploy", "nginx-deployment", "-o", "jsonpath={.metadata.resourceVersion}"]);
    let mut rv = rv_now();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let again = rv_now();
        if again == rv {
            break;
        }
        rv = again;
    }
    assert_eq!(s.ok(&["apply", "-f", f]).trim(), "deployment.apps/nginx-deployment unchanged");
    assert_eq!(rv, rv_now());
}

#[test]
fn server_side_apply_tracks_managers_and_reports_conflicts() {
    let s = Server::start();
    let f = write(s.dir.path(), "d.yaml", NGINX_DEPLOYMENT);
    let f = f.to_str().unwrap();
    assert!(s.ok(&["apply", "--server-side", "-f", f]).contains("serverside-applied"));
    let managers = s.ok(&[
        "get",
        "deploy",
        "nginx-deployment",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("kubectl"), "{managers}");
    // Another manager takes spec.replicas; re-applying a different value by the first conflicts.
    s.ok(&["scale", "deploy", "nginx-deployment", "--replicas=5"]);
    write(s.dir.path(), "d.yaml", &NGINX_DEPLOYMENT.replace("replicas: 3", "replicas: 4"));
    let err = s.fails(&["apply", "--server-side", "-f", f]);
    assert!(err.contains("conflict") && err.contains(".spec.replicas"), "{err}");
    s.ok(&["apply", "--server-side", "--force-conflicts", "-f", f]);
    assert_eq!(s.ok(&["get", "deploy", "nginx-deployment", "-o", "jsonpath={.spec.replicas}"]), "4");
}

#[test]
fn get_prints_tables_yaml_json_and_wide() {
    let s = Server::start();
    s.apply_stdin(&["apply", "-f", "-"], NGINX_DEPLOYMENT);
    let table = s.ok(&["get", "deployments"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(table.contains("nginx-deployment   0/3"), "{table}");
    let wide = s.ok(&["get", "deploy", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("CONTAINERS   IMAGES        SELECTOR"), "{wide}");
    assert!(wide.contains("nginx:1.7.9   app=nginx"), "{wide}");
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "deploy", "nginx-deployment", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "Deployment");
    assert!(json["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(s.ok(&["get", "deploy", "nginx-deployment", "-o", "yaml"]).contains("apiVersion: apps/v1"));
    let ns = s.ok(&["get", "ns"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{ns}");
    }
}

#[test]
fn get_watch_sees_each_later_change_exactly_once() {
    let s = Server::start();
    s.ok(&["create", "configmap", "before"]);
    let mut watch = Command::new("kubectl")
        .args([
            "get",
            "configmaps",
            "-w",
            "-o",
            "custom-columns=NAME:.metadata.name,V:.data.v,RV:.metadata.resourceVersion",
            "--request-timeout=0",
        ])
        .env("KUBECONFIG", s.kubeconfig())
        .env("KUBECACHEDIR", s.dir.path().join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    s.ok(&["create", "configmap", "watched", "--from-literal=v=1"]);
    s.ok(&["patch", "configmap", "watched", "-p", r#"{"data":{"v":"2"}}"#]);
    s.ok(&["delete", "configmap", "watched"]);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let watched: Vec<&str> = text.lines().filter(|l| l.starts_with("watched")).collect();
    // ADDED v=1, MODIFIED v=2, DELETED (last state v=2): three events, in order, each once.
    assert_eq!(watched.len(), 3, "{text}");
    assert!(watched[0].contains(" 1 ") && watched[1].contains(" 2 ") && watched[2].contains(" 2 "), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("before")).count(), 1, "{text}");
}

#[test]
fn create_configmap_secret_and_namespace() {
    let s = Server::start();
    assert_eq!(
        s.ok(&["create", "configmap", "cm", "--from-literal=db.host=localhost", "--from-literal=db.port=3306"]).trim(),
        "configmap/cm created"
    );
    let y = s.ok(&["get", "configmap", "cm", "-o", "yaml"]);
    assert!(y.contains("db.host: localhost") && y.contains("db.port: \"3306\""), "{y}");
    s.ok(&["create", "secret", "generic", "creds", "--from-literal=password=hunter2"]);
    assert_eq!(s.ok(&["get", "secret", "creds", "-o", "jsonpath={.data.password}"]), "aHVudGVyMg==");
    assert_eq!(s.ok(&["get", "secret", "creds", "-o", "jsonpath={.type}"]), "Opaque");
    s.ok(&["create", "namespace", "team-a"]);
    s.ok(&["create", "deployment", "web", "--image=nginx:1.7.9", "--replicas=2", "--port=80", "-n", "team-a"]);
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort}"
        ]),
        "2 80"
    );
    // Deleting the namespace removes its content, then the namespace.
    s.ok(&["delete", "namespace", "team-a", "--wait=true", "--timeout=30s"]);
    assert!(s.fails(&["get", "namespace", "team-a"]).contains("NotFound"));
    assert!(s.ok(&["get", "deploy", "-A", "-o", "name"]).trim().is_empty());
}

#[test]
fn edit_label_annotate_and_scale() {
    let s = Server::start();
    s.apply_stdin(&["apply", "-f", "-"], NGINX_DEPLOYMENT);
    s.ok(&["create", "configmap", "cm", "--from-literal=db.host=localhost"]);
    let out = s.kubectl_in(&["edit", "configmap", "cm"], None, &[("KUBE_EDITOR", "sed -i s/localhost/db.internal/")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.ok(&["get", "cm", "cm", "-o", "jsonpath={.data.db\\.host}"]), "db.internal");
    s.ok(&["label", "cm", "cm", "tier=db"]);
    s.ok(&["annotate", "cm", "cm", "owner=ops"]);
    assert_eq!(s.ok(&["get", "cm", "-l", "tier=db", "-o", "name"]).trim(), "configmap/cm");
    assert_eq!(s.ok(&["get", "cm", "cm", "-o", "jsonpath={.metadata.annotations.owner}"]), "ops");
    assert!(s.fails(&["label", "cm", "cm", "tier=cache"]).contains("already has a value"));
    s.ok(&["label", "cm", "cm", "tier-"]);
    assert!(s.ok(&["get", "cm", "-l", "tier", "-o", "name"]).trim().is_empty());
    assert_eq!(
        s.ok(&["scale", "deploy", "nginx-deployment", "--replicas=5"]).trim(),
        "deployment.apps/nginx-deployment scaled"
    );
    assert_eq!(s.ok(&["get", "deploy", "nginx-deployment", "-o", "jsonpath={.spec.replicas}"]), "5");
    let scale = s.ok(&["get", "--raw", "/apis/apps/v1/namespaces/default/deployments/nginx-deployment/scale"]);
    assert!(scale.contains("\"selector\":\"app=nginx\""), "{scale}");
    // Scaling with a stale precondition conflicts.
    assert!(s.fails(&["scale", "deploy", "nginx-deployment", "--current-replicas=3", "--replicas=1"]).contains("3"));
}

#[test]
fn delete_from_file_and_discovery_commands() {
    let s = Server::start();
    let f = write(s.dir.path(), "d.yaml", NGINX_DEPLOYMENT);
    let f = f.to_str().unwrap();
    s.ok(&["apply", "-f", f]);
    let all = s.ok(&["get", "all"]);
    assert!(all.contains("deployment.apps/nginx-deployment"), "{all}");
    s.ok(&["autoscale", "deployment", "nginx-deployment", "--max=4", "--cpu-percent=60"]);
    let hpa = s.ok(&["get", "hpa", "nginx-deployment"]);
    assert!(hpa.contains("cpu: <unknown>/60%"), "{hpa}");
    assert_eq!(s.ok(&["delete", "-f", f]).trim(), "deployment.apps \"nginx-deployment\" deleted");
    assert!(s.fails(&["get", "deploy", "nginx-deployment"]).contains("NotFound"));
    let resources = s.ok(&["api-resources"]);
    for line in
        ["deployments                 deploy", "configmaps                  cm", "horizontalpodautoscalers    hpa"]
    {
        let want: Vec<&str> = line.split_whitespace().collect();
        assert!(
            resources.lines().any(|l| l.split_whitespace().take(2).eq(want.iter().copied())),
            "{line} in\n{resources}"
        );
    }
    assert_eq!(s.ok(&["auth", "can-i", "create", "deployments"]).trim(), "yes");
    assert!(s.ok(&["auth", "whoami"]).contains("system:masters"));
}

#[test]
fn errors_read_like_upstream() {
    let s = Server::start();
    s.ok(&["create", "configmap", "cm"]);
    assert!(s.fails(&["create", "configmap", "cm"]).contains("configmaps \"cm\" already exists"));
    assert!(s
        .fails(&["get", "configmap", "nope"])
        .contains("Error from server (NotFound): configmaps \"nope\" not found"));
    let invalid = s.fails(&["create", "configmap", "Bad_Name"]);
    assert!(
        invalid.contains("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""),
        "{invalid}"
    );
    s.apply_stdin(&["apply", "-f", "-"], NGINX_DEPLOYMENT);
    let json = s.ok(&["get", "deploy", "nginx-deployment", "-o", "json"]);
    let f = write(s.dir.path(), "d.json", &json);
    s.ok(&["scale", "deploy", "nginx-deployment", "--replicas=4"]);
    let conflict = s.fails(&["replace", "-f", f.to_str().unwrap()]);
    assert!(
        conflict.contains("Error from server (Conflict)") && conflict.contains("the object has been modified"),
        "{conflict}"
    );
    let immutable = s.apply_stdin(&["apply", "-f", "-"], &NGINX_DEPLOYMENT.replace("app: nginx", "app: other"));
    let err = String::from_utf8_lossy(&immutable.stderr);
    assert!(err.contains("spec.selector: Invalid value") && err.contains("field is immutable"), "{err}");
    let strict =
        s.apply_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\nbogus: 1\n");
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(err.contains("strict decoding error: unknown field \"bogus\""), "{err}");
    assert!(s.fails(&["get", "pods", "--field-selector", "spec.foo=x"]).contains("field label not supported"));
}
