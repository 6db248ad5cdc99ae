//! End to end with the real server, the real agent and real kubectl (root): pods are real
//! containers pulled from a real registry, on a node that is a network namespace of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{sh, Cluster};

const NGINX_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
spec:
  selector:
    matchLabels:
      app: nginx
  replicas: 3
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.7.9
        ports:
        - containerPort: 80
"#;

const MINUTE: Duration = Duration::from_secs(60);

fn pods_with(c: &Cluster, selector: &str, jsonpath: &str) -> Vec<String> {
    c.ok(&["get", "pods", "-l", selector, "-o", &format!("jsonpath={jsonpath}")])
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn deployment_logs_exec_port_forward_configmaps_and_agent_restart() {
    let Some(mut c) = Cluster::start(1) else { return };

    // The upstream nginx Deployment, verbatim, through the registry mirror.
    c.apply(NGINX_DEPLOYMENT);
    c.wait_for(&["deploy", "nginx-deployment"], "{.status.readyReplicas}", "3", 2 * MINUTE);
    let ips = pods_with(&c, "app=nginx", "{.items[*].status.podIP}");
    let uids = pods_with(&c, "app=nginx", "{.items[*].metadata.uid}");
    assert_eq!(ips.len(), 3);
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "pod IPs must be unique: {ips:?}");
    for ip in &ips {
        assert!(ip.starts_with("10.42."), "pod IP {ip} not from the cluster CIDR");
        let out = c.in_node(0, &format!("timeout 5 busybox wget -qO- http://{ip}/"));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Welcome to nginx!"), "GET {ip}: {out:?}");
    }
    // Three real processes, each in its pod's cgroup and its own network namespace.
    let mut netns = Vec::new();
    for uid in &uids {
        let cg = format!("/sys/fs/cgroup/memory/edge/{}/pod{uid}/nginx/cgroup.procs", c.nodes[0].name);
        let procs = std::fs::read_to_string(&cg).unwrap_or_else(|e| panic!("{cg}: {e}"));
        let pid = procs.lines().next().unwrap_or_else(|| panic!("no process in {cg}")).trim().to_string();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap().replace('\0', " ");
        assert!(cmdline.contains("httpd"), "{cmdline}");
        netns.push(std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap());
    }
    netns.sort();
    netns.dedup();
    assert_eq!(netns.len(), 3, "each pod has its own network namespace");

    // A ConfigMap mounted as a volume and used for env; a Secret for env.
    c.ok(&["create", "configmap", "app-config", "--from-literal=greeting=hello", "--from-literal=color=blue"]);
    c.ok(&["create", "secret", "generic", "app-secret", "--from-literal=password=s3cret"]);
    c.apply(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: reader
  labels: {app: reader}
spec:
  initContainers:
  - name: init
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo from-init > /work/init.txt"]
    volumeMounts:
    - {name: work, mountPath: /work}
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo greeting=$GREETING password=$PASSWORD color=$color; cat /config/greeting; echo; cat /work/init.txt /podinfo/labels; echo; i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done"]
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef: {name: app-config, key: greeting}
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: app-secret, key: password}
    envFrom:
    - configMapRef: {name: app-config}
    volumeMounts:
    - name: config
      mountPath: /config
    - {name: work, mountPath: /work}
    - {name: podinfo, mountPath: /podinfo}
  volumes:
  - name: config
    configMap: {name: app-config}
  - name: work
    emptyDir: {}
  - name: podinfo
    downwardAPI:
      items:
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
"#,
    );
    c.wait_for(&["pod", "reader"], "{.status.phase}", "Running", MINUTE);
    c.eventually(MINUTE, "reader logs", || {
        let out = c.kubectl(&["logs", "reader"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("greeting=hello password=s3cret color=blue\nhello\nfrom-init\napp=\"reader\"\nline 0")
    });
    // An edited ConfigMap reaches the running pod's mounted file.
    c.ok(&["patch", "configmap", "app-config", "--type=merge", "-p", r#"{"data":{"greeting":"bonjour"}}"#]);
    c.eventually(MINUTE, "updated configmap in the pod", || {
        let out = c.kubectl(&["exec", "reader", "--", "cat", "/config/greeting"]);
        String::from_utf8_lossy(&out.stdout) == "bonjour"
    });

    // kubectl logs -f streams new lines as they come.
    let mut follow = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(["logs", "-f", "reader"])
        .env("KUBECACHEDIR", c.dir.path().join("kube-cache"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 8 && started.elapsed() < MINUTE {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("line ") => seen.push(l),
            Some(_) => {}
            None => break,
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen.len() >= 8, "kubectl logs -f gave {seen:?}");
    let last: u32 = seen.last().unwrap()["line ".len()..].parse().unwrap();
    assert!(last >= 7);

    // kubectl attach shows what the container writes from now on.
    let mut attach = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(["attach", "reader", "-c", "app"])
        .env("KUBECACHEDIR", c.dir.path().join("kube-cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut attached = BufReader::new(attach.stdout.take().unwrap()).lines();
    let first = attached.next().map(|l| l.unwrap_or_default()).unwrap_or_default();
    let _ = attach.kill();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut attach.stderr.take().unwrap(), &mut err);
    let _ = attach.wait();
    assert!(first.starts_with("line "), "kubectl attach printed {first:?}; stderr: {err}\n{}", c.logs());

    // kubectl exec: output and exit code.
    let out = c.kubectl(&["exec", "reader", "--", "sh", "-c", "echo in-pod $(hostname); exit 3"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "in-pod reader");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let out = c.kubectl(&["exec", "-i", "reader", "--", "cat"]);
    assert!(out.status.success());
    // -it: a terminal (script(1) gives kubectl one) reaches the command as its stdin.
    let cmd = format!(
        "KUBECACHEDIR={} kubectl --kubeconfig {} exec -it reader -- sh -c 'test -t 0 && echo on-a-tty'",
        c.dir.path().join("kube-cache").display(),
        c.kubeconfig().display()
    );
    let out = sh(&format!("script -qec \"{cmd}\" /dev/null </dev/null"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("on-a-tty"), "exec -it: {out:?}");

    // kubectl port-forward to a pod of the Deployment.
    let pod = pods_with(&c, "app=nginx", "{.items[0].metadata.name}").remove(0);
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut pf = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(["port-forward", &format!("pod/{pod}"), &format!("{port}:80")])
        .env("KUBECACHEDIR", c.dir.path().join("kube-cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut got = String::new();
    let deadline = Instant::now() + MINUTE;
    while Instant::now() < deadline {
        let out = sh(&format!("timeout 5 busybox wget -qO- http://127.0.0.1:{port}/"));
        got = String::from_utf8_lossy(&out.stdout).into_owned();
        if got.contains("Welcome to nginx!") {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(got.contains("Welcome to nginx!"), "port-forward answered {got:?}\n{}", c.logs());

    // Restarting the server (and its embedded agent) leaves the containers running: same start
    // times, no restarts, still serving.
    let before = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=nginx",
        "-o",
        "jsonpath={.items[*].status.containerStatuses[0].state.running.startedAt}",
    ]);
    c.restart(0);
    c.wait_node_ready(0);
    std::thread::sleep(Duration::from_secs(3));
    let after = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=nginx",
        "-o",
        "jsonpath={.items[*].status.containerStatuses[0].state.running.startedAt}",
    ]);
    assert_eq!(before, after, "containers were restarted by an agent restart");
    let restarts = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=nginx",
        "-o",
        "jsonpath={.items[*].status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(restarts.trim(), "0 0 0");
    for ip in &ips {
        let out = c.in_node(0, &format!("timeout 5 busybox wget -qO- http://{ip}/"));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Welcome to nginx!"), "after restart, GET {ip}: {out:?}");
    }

    // Deleting pods removes their containers, network namespaces and cgroups.
    c.ok(&["delete", "deployment", "nginx-deployment"]);
    c.ok(&["delete", "pod", "reader"]);
    c.eventually(MINUTE, "pods gone", || c.ok(&["get", "pods", "-o", "name"]).trim().is_empty());
    let netns_dir = c.nodes[0].agent_dir(true).join("netns");
    c.eventually(Duration::from_secs(10), "netns files gone", || {
        std::fs::read_dir(&netns_dir).map(|d| d.count() == 0).unwrap_or(true)
    });
    for uid in &uids {
        let cg = format!("/sys/fs/cgroup/memory/edge/{}/pod{uid}", c.nodes[0].name);
        assert!(!std::path::Path::new(&cg).exists(), "{cg} left behind");
    }
}

#[test]
fn crash_loop_liveness_and_oom() {
    let Some(c) = Cluster::start(1) else { return };
    c.apply(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo crashing; exit 1"]
---
apiVersion: v1
kind: Pod
metadata:
  name: unhealthy
spec:
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 600"]
    livenessProbe:
      exec:
        command: ["cat", "/tmp/healthy"]
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"]
    resources:
      limits:
        memory: 32Mi
"#,
    );
    c.wait_for(&["pod", "hog"], "{.status.containerStatuses[0].state.terminated.reason}", "OOMKilled", MINUTE);
    c.wait_for(&["pod", "hog"], "{.status.phase}", "Failed", MINUTE);

    c.wait_for(&["pod", "crasher"], "{.status.containerStatuses[0].state.waiting.reason}", "CrashLoopBackOff", MINUTE);
    let msg = c.ok(&["get", "pod", "crasher", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}"]);
    assert!(msg.starts_with("back-off 10s restarting failed container=app pod=crasher_default("), "{msg}");
    // Growing delays: the restart after the second crash waits 10 s, the next one 20 s.
    c.wait_for(&["pod", "crasher"], "{.status.containerStatuses[0].restartCount}", "3", 2 * MINUTE);
    let msg = c.ok(&["get", "pod", "crasher", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}"]);
    assert!(msg.starts_with("back-off 40s"), "{msg}");
    let logs = c.ok(&["logs", "crasher", "--previous"]);
    assert_eq!(logs.trim(), "crashing");

    c.wait_for(&["pod", "unhealthy"], "{.status.containerStatuses[0].restartCount}", "1", MINUTE);
    let last = c.ok(&[
        "get",
        "pod",
        "unhealthy",
        "-o",
        "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}",
    ]);
    assert!(last == "137" || last == "143", "liveness kill exit code {last}");
}
