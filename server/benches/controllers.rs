//! Controller benchmark: `cargo bench -p edge-server --bench controllers`.
//!
//! Starts the real edge-server, registers 3 roomy Nodes, creates 100 Deployments × 10 replicas and
//! measures the time until all 1000 pods exist and are bound to nodes, with the server's CPU time.
//! Baseline in the same run: creating 1000 pods directly through the API on a fresh server (the
//! floor any controller set has to build on). Then the server's CPU use over an idle minute
//! (`EDGE_BENCH_IDLE_SECS`, default 30). Goals (reported, never asserted): all 1000 pods created and
//! bound in under 10 s; idle controllers use < 1 % CPU.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    /// Nodes here have no kubelet renewing Leases: a long grace period keeps them Ready.
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new(env!("CARGO_BIN_EXE_edge-server"))
            .args([
                "--disable-agent",
                "--bind-address",
                "127.0.0.1",
                "--https-listen-port",
                "0",
                "--node-monitor-grace-period",
                "1h",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--write-kubeconfig")
            .arg(dir.path().join("kubeconfig"))
            .arg("--config")
            .arg(dir.path().join("none.yaml"))
            .env("EDGE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start edge-server");
        let s = Server { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !s.dir.path().join("kubeconfig").exists() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        s
    }

    async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.dir.path().join("kubeconfig")).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
        kube::Client::try_from(cfg).expect("client")
    }

    /// User + system CPU time of the server process so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may contain spaces) start after the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn deployment(i: usize) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": format!("app-{i}")},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                 "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.7.9",
                                       "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}
    }))
    .expect("deployment")
}

fn node(name: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                   "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "lastHeartbeatTime": chrono::Utc::now().to_rfc3339(), "lastTransitionTime": chrono::Utc::now().to_rfc3339()}]}
    }))
    .expect("node")
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let idle_secs: u64 = std::env::var("EDGE_BENCH_IDLE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);

    // Baseline: 1000 pods created straight through the API.
    let base = Server::start();
    let pods: Api<Pod> = Api::namespaced(base.client().await, "default");
    let cpu0 = base.cpu();
    let started = Instant::now();
    for i in 0..1000 {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": format!("p-{i}")}, "spec": {"containers": [{"name": "c", "image": "nginx:1.7.9"}]}})).expect("pod");
        pods.create(&PostParams::default(), &p).await.expect("create pod");
    }
    let base_time = started.elapsed();
    let base_cpu = base.cpu() - cpu0;
    drop(base);

    // The controllers: 100 Deployments × 10 replicas on 3 nodes.
    let server = Server::start();
    let client = server.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    for n in ["n1", "n2", "n3"] {
        // A Node is created with the status its kubelet reports.
        nodes.create(&PostParams::default(), &node(n)).await.expect("node");
    }
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let cpu0 = server.cpu();
    let started = Instant::now();
    for i in 0..100 {
        deploys.create(&PostParams::default(), &deployment(i)).await.expect("deployment");
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut created, mut bound);
    loop {
        let list = pods.list(&ListParams::default()).await.expect("list");
        created = list.items.len();
        bound = list.items.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()).count();
        if bound >= 1000 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converge = started.elapsed();
    let converge_cpu = server.cpu() - cpu0;

    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle0 = server.cpu();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle_cpu = server.cpu() - idle0;
    let idle_pct = idle_cpu.as_secs_f64() * 100.0 / idle_secs as f64;

    println!(
        "\nedge-server controllers benchmark ({} cores)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("{:<52} {:>14} {:>14}", "what", "time", "server CPU");
    println!(
        "{:<52} {:>12.2} s {:>12.2} s",
        "baseline: 1000 pods created directly via the API",
        base_time.as_secs_f64(),
        base_cpu.as_secs_f64()
    );
    println!(
        "{:<52} {:>12.2} s {:>12.2} s   ({created} created, {bound} bound; {:.1}x the baseline time; goal < 10 s)",
        "100 Deployments x 10 replicas: all pods bound",
        converge.as_secs_f64(),
        converge_cpu.as_secs_f64(),
        converge.as_secs_f64() / base_time.as_secs_f64()
    );
    println!(
        "{:<52} {:>14} {:>12.2} s   ({idle_pct:.2} % of one core; goal < 1 %)",
        format!("idle {idle_secs} s with 1000 pods"),
        "",
        idle_cpu.as_secs_f64()
    );
}
