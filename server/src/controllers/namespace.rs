//! Namespace lifecycle: a namespace being deleted (Terminating) has everything in it deleted, and
//! once it is empty its `kubernetes` finalizer is cleared and it goes away.

use std::time::Duration;

use serde_json::{json, Value};

use crate::api::local::LocalClient;
use crate::resources::{Resource, RESOURCES};
use crate::store::{Key, StoreError, Write};

#[derive(Debug, PartialEq)]
pub enum Action {
    /// Delete (or mark for deletion, if it has finalizers) one object in the namespace.
    DeleteContent(Key),
    /// The namespace is empty: clear its finalizer and remove it.
    Finalize,
}

/// What to do for a terminating namespace, given the keys of what is still in it and whether each is
/// already marked for deletion.
pub fn plan(contents: &[(Key, bool)]) -> Vec<Action> {
    if contents.is_empty() {
        return vec![Action::Finalize];
    }
    contents.iter().filter(|(_, marked)| !marked).map(|(k, _)| Action::DeleteContent(k.clone())).collect()
}

/// One served version per stored resource: the storage version.
fn namespaced_resources() -> Vec<&'static Resource> {
    RESOURCES
        .iter()
        .filter(|r| r.namespaced && r.version == r.storage_version && r.shape == crate::resources::Shape::Stored)
        .collect()
}

pub async fn run(client: LocalClient) {
    super::level_loop(&client, Duration::from_millis(100), Duration::from_secs(5), reconcile_all).await;
}

fn reconcile_all(client: &LocalClient) {
    let store = &client.state().store;
    for (key, stored) in store.list("namespaces", None, None).0 {
        if stored.value()["metadata"]["deletionTimestamp"].is_string() {
            if let Err(e) = reconcile(client, &key.name) {
                tracing::warn!(namespace = key.name, error = %e, "namespace cleanup failed; will retry");
            }
        }
    }
}

fn reconcile(client: &LocalClient, ns: &str) -> Result<(), String> {
    let store = &client.state().store;
    let resources = namespaced_resources();
    let mut contents = Vec::new();
    for r in &resources {
        for (key, stored) in store.list(&r.store_key(), Some(ns), None).0 {
            contents.push((key, stored.value()["metadata"]["deletionTimestamp"].is_string()));
        }
    }
    for action in plan(&contents) {
        match action {
            Action::DeleteContent(key) => {
                let Some(res) = resources.iter().find(|r| r.store_key() == key.resource) else { continue };
                match client.delete(res, Some(ns), &key.name, &json!({"propagationPolicy": "Background"})) {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e.message),
                }
            }
            Action::Finalize => {
                let key = Key::new("namespaces", "", ns);
                store
                    .write::<StoreError, _>(&key, false, |cur| {
                        let Some(cur) = cur else { return Ok(Write::Keep) };
                        let mut obj = cur.value();
                        let others = obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
                        if !others {
                            tracing::info!(namespace = ns, "namespace emptied, removing it");
                            return Ok(Write::Delete);
                        }
                        obj["spec"]["finalizers"] = Value::Array(vec![]);
                        Ok(Write::Put(obj))
                    })
                    .map_err(|e| e.to_string())?;
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
