use super::*;
use serde_json::json;

fn cm(name: &str, v: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"k": v}})
}

fn put(store: &Store, name: &str, v: &str, ephemeral: bool) -> Stored {
    let key = Key::new("configmaps", "default", name);
    match store.write::<StoreError, _>(&key, ephemeral, |_| Ok(Write::Put(cm(name, v)))).unwrap() {
        Written::Put { stored, .. } => stored,
        _ => unreachable!(),
    }
}

#[test]
fn revisions_grow_and_survive_reopen_including_ephemeral_reservations() {
    let dir = tempfile::tempdir().unwrap();
    let last;
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let a = put(&store, "a", "1", false);
        let b = put(&store, "b", "1", true);
        assert_eq!(b.rv, a.rv + 1);
        assert_eq!(
            store.get(&Key::new("configmaps", "default", "a")).unwrap().value()["metadata"]["resourceVersion"],
            a.rv.to_string()
        );
        last = b.rv;
    }
    let store = Store::open(dir.path(), Options::default()).unwrap();
    // The durable object is back, the ephemeral one is gone, and no revision is handed out twice.
    assert!(store.get(&Key::new("configmaps", "default", "a")).is_some());
    assert!(store.get(&Key::new("configmaps", "default", "b")).is_none());
    assert!(store.revision() >= last);
    let c = put(&store, "c", "1", false);
    assert!(c.rv > last);
}

#[test]
fn deletes_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        put(&store, "a", "1", false);
        let key = Key::new("configmaps", "default", "a");
        store.write::<StoreError, _>(&key, false, |_| Ok(Write::Delete)).unwrap();
        assert!(matches!(store.write::<StoreError, _>(&key, false, |_| Ok(Write::Delete)), Err(StoreError::NotFound)));
    }
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert!(store.get(&Key::new("configmaps", "default", "a")).is_none());
}

#[test]
fn list_is_scoped_by_resource_and_namespace_and_pages_after_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    for (ns, name) in [("a", "x"), ("b", "y"), ("b", "z")] {
        store
            .write::<StoreError, _>(&Key::new("configmaps", ns, name), false, |_| Ok(Write::Put(cm(name, "v"))))
            .unwrap();
    }
    store.write::<StoreError, _>(&Key::new("secrets", "b", "s"), false, |_| Ok(Write::Put(cm("s", "v")))).unwrap();
    assert_eq!(store.list("configmaps", None, None).0.len(), 3);
    let (b, _) = store.list("configmaps", Some("b"), None);
    assert_eq!(b.iter().map(|(k, _)| k.name.as_str()).collect::<Vec<_>>(), ["y", "z"]);
    let (rest, _) = store.list("configmaps", None, Some(&Key::new("configmaps", "b", "y")));
    assert_eq!(rest.iter().map(|(k, _)| k.name.as_str()).collect::<Vec<_>>(), ["z"]);
}

#[test]
fn watch_replays_history_after_a_revision_and_expires_compacted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options { history: 3 }).unwrap();
    let start = store.revision();
    let revs: Vec<i64> = (0..5).map(|i| put(&store, "a", &i.to_string(), false).rv).collect();
    assert!(matches!(store.watch("configmaps", start), Err(StoreError::Expired { .. })));
    let (replay, _) = store.watch("configmaps", revs[2]).unwrap();
    assert_eq!(replay.iter().map(|e| e.rv).collect::<Vec<_>>(), &revs[3..]);
    assert!(replay.iter().all(|e| e.kind == EventType::Modified));
    assert!(store.watch("secrets", revs[2]).unwrap().0.is_empty());
}

#[test]
fn a_refused_write_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    put(&store, "a", "1", false);
    let rev = store.revision();
    let key = Key::new("configmaps", "default", "a");
    assert!(matches!(
        store.write::<StoreError, _>(&key, false, |_| Err(StoreError::Conflict)),
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.revision(), rev);
    assert_eq!(store.get(&key).unwrap().value()["data"]["k"], "1");
}
