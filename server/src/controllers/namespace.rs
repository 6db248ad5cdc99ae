//! Namespace lifecycle: a namespace being deleted (Terminating) has everything in it deleted, and
//! once it is empty its `kubernetes` finalizer is removed and it goes away.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::resources::{Tier, RESOURCES};
use crate::store::{Key, Store, StoreError, Write};

#[derive(Debug, PartialEq)]
pub enum Action {
    /// Delete (or mark for deletion, if it has finalizers) one object in the namespace.
    DeleteContent(Key),
    /// The namespace is empty: drop its finalizer and remove it.
    Finalize,
}

/// What to do for a terminating namespace, given the keys of what is still in it and which of
/// those are already marked for deletion.
pub fn plan(contents: &[(Key, bool)]) -> Vec<Action> {
    if contents.is_empty() {
        return vec![Action::Finalize];
    }
    contents.iter().filter(|(_, marked)| !marked).map(|(k, _)| Action::DeleteContent(k.clone())).collect()
}

fn namespaced_resources() -> BTreeSet<(String, bool)> {
    RESOURCES.iter().filter(|r| r.namespaced).map(|r| (r.store_key(), r.tier == Tier::Ephemeral)).collect()
}

pub async fn run(store: Arc<Store>, shutdown: CancellationToken) {
    let mut events = store.snapshot_and_watch("namespaces", None).2;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            ev = events.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = ev {
                    return;
                }
            }
        }
        if let Err(e) = reconcile_all(&store) {
            tracing::warn!(error = %e, "namespace reconcile failed; will retry");
        }
    }
}

fn reconcile_all(store: &Store) -> Result<(), StoreError> {
    let (namespaces, _) = store.list("namespaces", None, None);
    let resources = namespaced_resources();
    for (key, stored) in namespaces {
        if stored.value()["metadata"]["deletionTimestamp"].is_string() {
            reconcile(store, &key.name, &resources)?;
        }
    }
    Ok(())
}

fn reconcile(store: &Store, ns: &str, resources: &BTreeSet<(String, bool)>) -> Result<(), StoreError> {
    let mut contents = Vec::new();
    for (resource, _) in resources {
        for (key, stored) in store.list(resource, Some(ns), None).0 {
            contents.push((key, stored.value()["metadata"]["deletionTimestamp"].is_string()));
        }
    }
    for action in plan(&contents) {
        match action {
            Action::DeleteContent(key) => {
                let ephemeral = resources.iter().any(|(r, e)| *r == key.resource && *e);
                let res = store.write::<StoreError, _>(&key, ephemeral, |cur| {
                    let Some(cur) = cur else { return Ok(Write::Keep) };
                    let mut obj = cur.value();
                    let finalizers = obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
                    let on_node = key.resource == "pods" && obj["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
                    if !finalizers && !on_node {
                        return Ok(Write::Delete);
                    }
                    let grace = if on_node { obj["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30) } else { 0 };
                    let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
                    obj["metadata"]["deletionTimestamp"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                    obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                    Ok(Write::Put(obj))
                });
                match res {
                    Ok(_) | Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            Action::Finalize => {
                let key = Key::new("namespaces", "", ns);
                store.write::<StoreError, _>(&key, false, |cur| {
                    let Some(cur) = cur else { return Ok(Write::Keep) };
                    let obj = cur.value();
                    let others = obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
                    if !others {
                        tracing::info!(namespace = ns, "namespace emptied, removing it");
                        return Ok(Write::Delete);
                    }
                    let mut obj = obj;
                    obj["spec"]["finalizers"] = Value::Array(vec![]);
                    Ok(Write::Put(obj))
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_deletes_unmarked_content_then_finalizes() {
        let a = Key::new("pods", "ns", "a");
        let b = Key::new("configmaps", "ns", "b");
        assert_eq!(plan(&[(a.clone(), false), (b.clone(), true)]), vec![Action::DeleteContent(a)]);
        assert_eq!(plan(&[(b, true)]), vec![]);
        assert_eq!(plan(&[]), vec![Action::Finalize]);
    }
}
