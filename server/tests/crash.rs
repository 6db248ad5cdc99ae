//! kill -9 during concurrent writers: after a restart every acknowledged write is there, and
//! resourceVersions keep growing.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let mut s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let acked = Arc::new(Mutex::new(Vec::<(String, i64)>::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let api = api.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                let obj: ConfigMap = serde_json::from_value(
                    serde_json::json!({"metadata": {"name": name}, "data": {"payload": "x".repeat(512)}}),
                )
                .unwrap();
                match api.create(&PostParams::default(), &obj).await {
                    Ok(created) => {
                        let rv = created.metadata.resource_version.unwrap().parse().unwrap();
                        acked.lock().unwrap().push((name, rv));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "writers made too little progress: {}", acked.len());
    s.restart();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    let names: std::collections::HashSet<String> = list.items.iter().filter_map(|c| c.metadata.name.clone()).collect();
    let missing: Vec<&String> = acked.iter().map(|(n, _)| n).filter(|n| !names.contains(*n)).collect();
    assert!(missing.is_empty(), "{} acknowledged writes lost: {:?}", missing.len(), &missing[..missing.len().min(5)]);
    // Every object is whole and revisions never go back.
    for c in &list.items {
        assert_eq!(c.data.as_ref().unwrap()["payload"].len(), 512);
    }
    let max_acked = acked.iter().map(|(_, rv)| *rv).max().unwrap();
    let fresh = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "after"}})).unwrap(),
        )
        .await
        .unwrap();
    assert!(fresh.metadata.resource_version.unwrap().parse::<i64>().unwrap() > max_acked);
}
