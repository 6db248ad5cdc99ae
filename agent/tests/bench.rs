//! `EDGE_E2E_PROFILE=release cargo test -p edge-agent --test bench -- --ignored --nocapture` (root):
//! on a two-node test cluster, pod create→Running
//! latency with a cached image (p50/p95 over 50 pods, each created after the previous one runs),
//! the agent's RSS idle and with 20 pods, and each shim's RSS. The container start itself beside
//! runc and crun is `cargo test -p edge-runtime --test bench -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Pids of the shims of sandboxes under `dir`.
fn shims_under(dir: &std::path::Path) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmd.contains("edge-shim") && cmd.contains("--serve") && cmd.contains(&*dir.to_string_lossy()) {
            out.push(pid);
        }
    }
    out
}

fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "app", "image": "nginx:1.7.9", "imagePullPolicy": "IfNotPresent"}]}
    }))
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn pod_startup_and_agent_memory() {
    let Some(c) = support::Cluster::start(2) else { return };
    let node = c.nodes[1].name.clone();
    let agent_pid = c.nodes[1].pid().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let pods: Api<Pod> = Api::namespaced(client, "default");

        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle_rss = rss_kib(agent_pid);

        let run = |name: String| {
            let pods = pods.clone();
            let node = node.clone();
            async move {
                let wp = WatchParams::default().fields(&format!("metadata.name={name}"));
                let mut stream = pods.watch(&wp, "0").await.unwrap().boxed();
                let started = Instant::now();
                pods.create(&PostParams::default(), &pod(&name, &node)).await.unwrap();
                while let Some(ev) = stream.next().await {
                    if let Ok(WatchEvent::Added(p) | WatchEvent::Modified(p)) = ev {
                        if p.status.and_then(|s| s.phase).as_deref() == Some("Running") {
                            return started.elapsed();
                        }
                    }
                }
                panic!("watch ended before {name} ran");
            }
        };
        // Warm-up: pull the image once.
        run("warmup".into()).await;

        let mut lat = Vec::new();
        for i in 0..50 {
            lat.push(run(format!("bench-{i}")).await);
            if i == 19 {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
        let rss_20 = rss_kib(agent_pid);
        let shims = shims_under(&c.nodes[1].agent_dir(false));
        let shim_rss: Vec<u64> = shims.iter().map(|p| rss_kib(*p)).collect();
        let rss_50 = rss_kib(agent_pid);
        lat.sort();
        println!("edge-agent pod benchmark ({} build of edge-agent/edge-server)", support::profile());
        println!(
            "pod create→Running, cached image, 50 pods: p50 {:.1} ms  p95 {:.1} ms  (goal p50 < 150 ms)",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.95).as_secs_f64() * 1e3
        );
        println!(
            "agent RSS: idle {:.1} MB, 20+ pods {:.1} MB, 51 pods {:.1} MB  (goal < 20 / < 40 MB)",
            idle_rss as f64 / 1024.0,
            rss_20 as f64 / 1024.0,
            rss_50 as f64 / 1024.0
        );
        if !shim_rss.is_empty() {
            let avg = shim_rss.iter().sum::<u64>() as f64 / shim_rss.len() as f64;
            println!(
                "shim RSS: {} shims, mean {:.2} MB, max {:.2} MB  (goal < 2 MB)",
                shim_rss.len(),
                avg / 1024.0,
                *shim_rss.iter().max().unwrap() as f64 / 1024.0
            );
        }
        let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
        for i in 0..50 {
            let _ = pods.delete(&format!("bench-{i}"), &dp).await;
        }
        let _ = pods.delete("warmup", &dp).await;
    });
}
