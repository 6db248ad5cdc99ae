//! kube-rs as a client: list paging, watch semantics (exactly-once, 410 after compaction), and bad
//! input answered with the right Status and nothing written.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod support;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use support::Server;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"set": "a"}}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    for i in 0..7 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}"))).await.unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    let selected = api.list(&ListParams::default().labels("set=a").fields("metadata.name=cm-3")).await.unwrap();
    assert_eq!(selected.items.len(), 1);
}

#[tokio::test]
async fn watch_delivers_later_events_once_and_expires_compacted_versions() {
    let s = Server::start_with(&["--watch-history", "5"]);
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    api.create(&PostParams::default(), &cm("w")).await.unwrap();
    api.delete("w", &Default::default()).await.unwrap();
    let mut kinds = Vec::new();
    for _ in 0..2 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(c) => kinds.push(format!("ADDED {}", c.metadata.name.unwrap())),
            WatchEvent::Deleted(c) => kinds.push(format!("DELETED {}", c.metadata.name.unwrap())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED w", "DELETED w"]);
    // More changes than the history keeps: a watch from the old version gets 410 Expired.
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("x{i}"))).await.unwrap();
    }
    let mut old = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    match old.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn kube_runtime_watcher_sees_the_state() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    api.create(&PostParams::default(), &cm("first")).await.unwrap();
    let stream = kube::runtime::watcher(api.clone(), kube::runtime::watcher::Config::default());
    let mut objects = kube::runtime::WatchStreamExt::applied_objects(stream).boxed();
    let first = objects.try_next().await.unwrap().unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("first"));
    api.create(&PostParams::default(), &cm("second")).await.unwrap();
    let second = objects.try_next().await.unwrap().unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("second"));
}

async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let req =
        http::Request::builder().method(method).uri(path).header("Content-Type", content_type).body(body).unwrap();
    let resp = client.send(req.map(kube::client::Body::from)).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn bad_input_gets_a_status_and_writes_nothing() {
    let s = Server::start();
    let client = s.client().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let rv_before = Api::<ConfigMap>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("application/json", b"{not json".to_vec(), 400, "BadRequest"),
        ("application/yaml", b"a: [unclosed".to_vec(), 400, "BadRequest"),
        ("application/vnd.kubernetes.protobuf", b"k8s\0\x0a\xff\xff".to_vec(), 400, "BadRequest"),
        ("application/vnd.kubernetes.protobuf", b"nope".to_vec(), 400, "BadRequest"),
        ("text/plain", b"x".to_vec(), 415, "UnsupportedMediaType"),
        (
            "application/json",
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":1}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        ("application/json", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#.to_vec(), 422, "Invalid"),
        ("application/json", vec![b' '; 4 * 1024 * 1024], 413, "RequestEntityTooLarge"),
    ];
    for (ct, body, code, reason) in cases {
        let (got, status) = raw(&client, "POST", path, ct, body).await;
        assert_eq!((got, status["reason"].as_str().unwrap_or_default()), (code, reason), "{ct}: {status}");
        assert_eq!(status["kind"], "Status");
    }
    let (code, status) =
        raw(&client, "GET", "/apis/apps/v1/namespaces/default/widgets", "application/json", vec![]).await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    let (code, _) = raw(
        &client,
        "PUT",
        &format!("{path}/a"),
        "application/json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}"#.to_vec(),
    )
    .await;
    assert_eq!(code, 400);
    let list = Api::<ConfigMap>::namespaced(client, "default").list(&ListParams::default()).await.unwrap();
    assert!(list.items.is_empty());
    assert_eq!(list.metadata.resource_version, rv_before, "a refused request must not spend a revision");
}

#[tokio::test]
async fn delete_collection_honours_selectors() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    for (name, set) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let obj: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"set": set}}})).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
    }
    api.delete_collection(&Default::default(), &ListParams::default().labels("set=x")).await.unwrap();
    let left: Vec<String> =
        api.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|c| c.metadata.name).collect();
    assert_eq!(left, ["c"]);
}

#[tokio::test]
async fn streaming_list_ends_initial_events_with_a_bookmark() {
    let s = Server::start();
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("one")).await.unwrap();
    let req = http::Request::builder()
        .uri("/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
        .body(Vec::new())
        .unwrap();
    let mut lines = client.request_events::<ConfigMap>(req).await.unwrap().boxed();
    match lines.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(c) => assert_eq!(c.metadata.name.as_deref(), Some("one")),
        other => panic!("expected ADDED, got {other:?}"),
    }
    match lines.try_next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => {
            assert_eq!(b.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str), Some("true"))
        }
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
}
