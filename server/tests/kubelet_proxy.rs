//! Pod logs, exec, attach and port-forward proxied to a node's kubelet: a stand-in kubelet (with a
//! serving certificate from the join endpoint) behind a Node object, driven by the real kubectl and
//! by raw upgraded connections.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use support::node::{join, request, tls_connect, FakeKubelet, Identity};
use support::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Cluster {
    s: Server,
    kubelet: FakeKubelet,
    me: Identity,
}

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: p1}
spec:
  nodeName: n1
  containers: [{name: c1, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  nodeName: n1
  containers: [{name: a, image: busybox}, {name: b, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata:
  name: defaulted
  annotations: {kubectl.kubernetes.io/default-container: b}
spec:
  nodeName: n1
  containers: [{name: a, image: busybox}, {name: b, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: nohost}
spec:
  nodeSelector: {nowhere: \"true\"}
  containers: [{name: c1, image: busybox}]
";

async fn cluster() -> Cluster {
    let s = Server::start();
    let secret = s.token().rsplit(':').next().expect("token secret").to_string();
    let joined = join(&s, "n1", &["127.0.0.1", "n1"], &secret).await.unwrap_or_else(|r| panic!("{}", r.body));
    let kubelet = FakeKubelet::start(&s.ca_pem(), &joined.serving).await;
    let out = s.apply_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = format!(
        r#"{{"status":{{"addresses":[{{"type":"Hostname","address":"n1"}},{{"type":"InternalIP","address":"127.0.0.1"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{}}}}}}}}}"#,
        kubelet.port
    );
    s.ok(&["patch", "node", "n1", "--subresource=status", "--type=merge", "-p", &status]);
    let out = s.apply_stdin(&["apply", "-f", "-"], PODS);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Cluster { s, kubelet, me: joined.client }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn logs_come_from_the_kubelet() {
    let c = cluster().await;
    assert_eq!(c.s.ok(&["logs", "p1"]), "line 1\nline 2\n");
    let seen = c.kubelet.last();
    assert_eq!(seen.path, "/containerLogs/default/p1/c1");
    assert_eq!(seen.caller, "kube-apiserver-kubelet-client");

    c.s.ok(&["logs", "p1", "--tail=5", "--timestamps", "--limit-bytes=100", "--since=1h"]);
    assert_eq!(
        c.kubelet.last().path,
        "/containerLogs/default/p1/c1?limitBytes=100&sinceSeconds=3600&tailLines=5&timestamps=true"
    );

    // The annotation picks the container when the request names none.
    c.s.ok(&["get", "--raw", "/api/v1/namespaces/default/pods/defaulted/log"]);
    assert_eq!(c.kubelet.last().path, "/containerLogs/default/defaulted/b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn followed_logs_stream() {
    let c = cluster().await;
    let mut child = Command::new("kubectl")
        .args(["logs", "-f", "p1"])
        .env("KUBECONFIG", c.s.kubeconfig())
        .env("HOME", c.s.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    // The first line arrives while the kubelet still holds the second: nothing is buffered.
    let first = rx.recv_timeout(Duration::from_secs(10));
    if first.is_err() {
        let _ = child.kill();
    }
    assert_eq!(first.unwrap(), "line 1");
    assert_eq!(c.kubelet.last().path, "/containerLogs/default/p1/c1?follow=true");
    c.kubelet.release();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "line 2");
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn errors_read_like_upstream() {
    let c = cluster().await;
    let err = c.s.fails(&["get", "--raw", "/api/v1/namespaces/default/pods/two/log"]);
    assert!(
        err.contains(
            "Error from server (BadRequest): a container name must be specified for pod two, choose one of: [a b]"
        ),
        "{err}"
    );
    let err = c.s.fails(&["get", "--raw", "/api/v1/namespaces/default/pods/p1/log?container=zz"]);
    assert!(err.contains("Error from server (BadRequest): container zz is not valid for pod p1"), "{err}");
    let err = c.s.fails(&["exec", "nohost", "--", "ls"]);
    assert!(err.contains("Error from server (BadRequest): pod nohost does not have a host assigned"), "{err}");
    let err = c.s.fails(&["exec", "missing", "--", "ls"]);
    assert!(err.contains("pods \"missing\" not found"), "{err}");
    // An unscheduled pod has no log yet (upstream answers an empty stream).
    assert_eq!(c.s.ok(&["logs", "nohost"]), "");
    assert!(c.kubelet.paths().is_empty(), "{:?}", c.kubelet.paths());

    // exec without an upgrade is refused before the kubelet is called.
    let r = request(
        c.s.port(),
        &c.s.ca_pem(),
        Some(&c.me),
        "POST",
        "/api/v1/namespaces/default/pods/p1/exec?command=ls&stdout=true",
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Upgrade request required"), "{}", r.body);

    // A kubelet that is not there: upstream's wording of the dial error.
    c.s.ok(&[
        "patch",
        "node",
        "n1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":1}}}}"#,
    ]);
    let err = c.s.fails(&["logs", "p1"]);
    assert!(
        err.contains(
            "Error from server: Get \"https://127.0.0.1:1/containerLogs/default/p1/c1\": dial tcp 127.0.0.1:1:"
        ),
        "{err}"
    );
}

/// Sends an upgrade request through the API server; returns the response and, after a 101, the stream.
async fn upgrade(
    c: &Cluster,
    path: &str,
    protocol: &str,
) -> (hyper::Response<hyper::body::Incoming>, Option<TokioIo<hyper::upgrade::Upgraded>>) {
    let tls = tls_connect(c.s.port(), &c.s.ca_pem(), Some(&c.me)).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.expect("handshake");
    tokio::spawn(conn.with_upgrades());
    let req = Request::post(path)
        .header("host", "127.0.0.1")
        .header("connection", "Upgrade")
        .header("upgrade", protocol)
        .header("x-stream-protocol-version", "portforward.k8s.io")
        .header("authorization", "Bearer must-not-reach-the-kubelet")
        .body(Empty::<bytes::Bytes>::new())
        .expect("request");
    let mut resp = sender.send_request(req).await.expect("response");
    if resp.status() != 101 {
        return (resp, None);
    }
    let upgraded = hyper::upgrade::on(&mut resp).await.expect("upgraded stream");
    (resp, Some(TokioIo::new(upgraded)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn upgrades_are_spliced_to_the_kubelet() {
    let c = cluster().await;
    let (resp, io) = upgrade(&c, "/api/v1/namespaces/default/pods/p1/portforward?ports=8080", "SPDY/3.1").await;
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["upgrade"], "SPDY/3.1");
    assert_eq!(resp.headers()["x-stream-protocol-version"], "portforward.k8s.io");
    let seen = c.kubelet.last();
    assert_eq!(seen.path, "/portForward/default/p1?port=8080");
    assert!(seen.headers.contains(&("x-stream-protocol-version".into(), "portforward.k8s.io".into())));
    assert!(!seen.headers.iter().any(|(k, _)| k == "authorization"), "{:?}", seen.headers);

    let mut io = io.unwrap();
    for msg in [&b"ping"[..], &b"a longer second message"[..]] {
        io.write_all(msg).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut buf)).await.unwrap().unwrap();
        assert_eq!(buf, msg);
    }
    drop(io);

    let (resp, _) = upgrade(
        &c,
        "/api/v1/namespaces/default/pods/p1/exec?command=echo&command=hi&stdout=true&stderr=true",
        "SPDY/3.1",
    )
    .await;
    assert_eq!(resp.status(), 101);
    assert_eq!(c.kubelet.last().path, "/exec/default/p1/c1?command=echo&command=hi&error=1&output=1");
    let (resp, _) =
        upgrade(&c, "/api/v1/namespaces/default/pods/two/attach?container=b&stdin=true&tty=true", "SPDY/3.1").await;
    assert_eq!(resp.status(), 101);
    assert_eq!(c.kubelet.last().path, "/attach/default/two/b?input=1&tty=1");

    // A refusal is the kubelet's own answer, which kubectl reads to fall back to SPDY.
    let (resp, io) = upgrade(&c, "/api/v1/namespaces/default/pods/p1/portforward", "websocket").await;
    assert!(io.is_none());
    assert_eq!(resp.status(), 403);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"no websockets here");
}
