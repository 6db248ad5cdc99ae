//! Garbage collection through ownerReferences, as upstream's garbage collector: dependents whose
//! owners are all gone are deleted (background propagation); an owner deleted with
//! `propagationPolicy=Foreground` waits (finalizer `foregroundDeletion`) until its dependents that
//! block owner deletion are gone; one deleted with `Orphan` (finalizer `orphan`) first has its
//! dependents' references to it removed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::local::LocalClient;
use crate::resources::{self, Shape, RESOURCES};
use crate::store::Key;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

#[derive(Debug, Clone)]
pub struct OwnerRef {
    pub uid: String,
    pub block: bool,
}

/// What the collector needs to know of one object.
#[derive(Debug, Clone)]
pub struct Node {
    pub key: Key,
    pub uid: String,
    pub owners: Vec<OwnerRef>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    pub fn from_object(key: Key, obj: &Value) -> Node {
        let meta = &obj["metadata"];
        Node {
            key,
            uid: meta["uid"].as_str().unwrap_or_default().to_string(),
            owners: meta["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| OwnerRef {
                    uid: o["uid"].as_str().unwrap_or_default().to_string(),
                    block: o["blockOwnerDeletion"] == json!(true),
                })
                .collect(),
            deleting: meta["deletionTimestamp"].is_string(),
            finalizers: meta["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect(),
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Action {
    Delete(Key),
    RemoveOwnerRefs(Key, Vec<String>),
    RemoveFinalizer(Key, &'static str),
}

pub fn plan(nodes: &[Node]) -> Vec<Action> {
    let by_uid: HashMap<&str, &Node> = nodes.iter().map(|n| (n.uid.as_str(), n)).collect();
    let mut referenced: HashSet<&str> = HashSet::new();
    let mut blocking: HashSet<&str> = HashSet::new();
    for n in nodes {
        for o in &n.owners {
            referenced.insert(o.uid.as_str());
            if o.block {
                blocking.insert(o.uid.as_str());
            }
        }
    }
    let mut actions = Vec::new();
    for n in nodes {
        if !n.owners.is_empty() && !n.deleting {
            let mut drop_refs = Vec::new();
            let mut foreground_refs = Vec::new();
            let mut live_staying = 0;
            for o in &n.owners {
                match by_uid.get(o.uid.as_str()) {
                    None => drop_refs.push(o.uid.clone()),
                    Some(owner) if owner.deleting && owner.finalizers.iter().any(|f| f == ORPHAN) => {
                        drop_refs.push(o.uid.clone())
                    }
                    Some(owner) if owner.deleting && owner.finalizers.iter().any(|f| f == FOREGROUND) => {
                        foreground_refs.push(o.uid.clone())
                    }
                    Some(_) => live_staying += 1,
                }
            }
            let gone_all = n.owners.iter().all(|o| !by_uid.contains_key(o.uid.as_str()));
            if live_staying == 0 && (!foreground_refs.is_empty() || gone_all) {
                actions.push(Action::Delete(n.key.clone()));
            } else {
                // Other owners stay: only the references to gone, orphaning or foreground-deleted
                // owners go, so that those owners can finish.
                drop_refs.extend(foreground_refs);
                if !drop_refs.is_empty() {
                    actions.push(Action::RemoveOwnerRefs(n.key.clone(), drop_refs));
                }
            }
        }
        if n.deleting {
            if n.finalizers.iter().any(|f| f == ORPHAN) && !referenced.contains(n.uid.as_str()) {
                actions.push(Action::RemoveFinalizer(n.key.clone(), ORPHAN));
            }
            if n.finalizers.iter().any(|f| f == FOREGROUND) && !blocking.contains(n.uid.as_str()) {
                actions.push(Action::RemoveFinalizer(n.key.clone(), FOREGROUND));
            }
        }
    }
    actions
}

pub async fn run(client: LocalClient) {
    super::level_loop(&client, Duration::from_millis(200), Duration::from_secs(30), reconcile).await;
}

fn reconcile(client: &LocalClient) {
    let store = &client.state().store;
    let mut nodes = Vec::new();
    let mut seen = HashSet::new();
    for r in RESOURCES.iter().filter(|r| r.shape == Shape::Stored && r.version == r.storage_version) {
        if !seen.insert(r.store_key()) {
            continue;
        }
        for (key, stored) in store.list(&r.store_key(), None, None).0 {
            nodes.push(Node::from_object(key, &stored.value()));
        }
    }
    for action in plan(&nodes) {
        if let Err(e) = apply(client, &action) {
            if e.code != 404 && e.code != 409 {
                tracing::warn!(?action, error = %e.message, "garbage collection step failed; will retry");
            }
        }
    }
}

fn apply(client: &LocalClient, action: &Action) -> Result<(), crate::api::status::ApiError> {
    let key = match action {
        Action::Delete(k) | Action::RemoveOwnerRefs(k, _) | Action::RemoveFinalizer(k, _) => k,
    };
    let Some(res) = resources::by_store_key(&key.resource) else { return Ok(()) };
    let ns = Some(key.namespace.as_str()).filter(|n| !n.is_empty());
    match action {
        Action::Delete(_) => {
            tracing::debug!(?key, "deleting dependent whose owners are gone");
            client.delete(res, ns, &key.name, &json!({"propagationPolicy": "Background"}))?;
        }
        Action::RemoveOwnerRefs(_, uids) => {
            let mut obj = client.get(res, ns, &key.name)?;
            if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| !uids.iter().any(|u| r["uid"].as_str() == Some(u.as_str())));
            }
            drop_if_empty(&mut obj, "ownerReferences");
            client.update(res, ns, obj)?;
        }
        Action::RemoveFinalizer(_, finalizer) => {
            let mut obj = client.get(res, ns, &key.name)?;
            if let Some(f) = obj["metadata"]["finalizers"].as_array_mut() {
                f.retain(|x| x.as_str() != Some(finalizer));
            }
            drop_if_empty(&mut obj, "finalizers");
            client.update(res, ns, obj)?;
        }
    }
    Ok(())
}

/// Upstream omits empty metadata lists (`omitempty`), so the collector leaves none behind.
fn drop_if_empty(obj: &mut Value, field: &str) {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        if meta.get(field).and_then(Value::as_array).is_some_and(Vec::is_empty) {
            meta.remove(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, owners: &[(&str, bool)], deleting: bool, finalizers: &[&str]) -> Node {
        Node {
            key: Key::new("x", "ns", name),
            uid: format!("uid-{name}"),
            owners: owners.iter().map(|(o, b)| OwnerRef { uid: format!("uid-{o}"), block: *b }).collect(),
            deleting,
            finalizers: finalizers.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn key(name: &str) -> Key {
        Key::new("x", "ns", name)
    }

    #[test]
    fn background_deletes_dependents_of_gone_owners_only() {
        let nodes = [node("rs", &[("deploy", true)], false, &[]), node("pod", &[("rs", true)], false, &[])];
        assert_eq!(plan(&nodes), vec![Action::Delete(key("rs"))]);
        let with_owner = [node("deploy", &[], false, &[]), node("rs", &[("deploy", true)], false, &[])];
        assert!(plan(&with_owner).is_empty());
        // One of two owners gone: only that reference goes.
        let two = [node("a", &[], false, &[]), node("d", &[("a", false), ("b", false)], false, &[])];
        assert_eq!(plan(&two), vec![Action::RemoveOwnerRefs(key("d"), vec!["uid-b".into()])]);
    }

    #[test]
    fn foreground_waits_for_blocking_dependents() {
        let nodes = [node("deploy", &[], true, &[FOREGROUND]), node("rs", &[("deploy", true)], false, &[])];
        assert_eq!(plan(&nodes), vec![Action::Delete(key("rs"))]);
        let dependent_terminating =
            [node("deploy", &[], true, &[FOREGROUND]), node("rs", &[("deploy", true)], true, &["x"])];
        assert!(plan(&dependent_terminating).is_empty());
        let done = [node("deploy", &[], true, &[FOREGROUND])];
        assert_eq!(plan(&done), vec![Action::RemoveFinalizer(key("deploy"), FOREGROUND)]);
    }

    #[test]
    fn orphan_removes_references_then_the_finalizer() {
        let nodes = [node("deploy", &[], true, &[ORPHAN]), node("rs", &[("deploy", true)], false, &[])];
        assert_eq!(plan(&nodes), vec![Action::RemoveOwnerRefs(key("rs"), vec!["uid-deploy".into()])]);
        let after = [node("deploy", &[], true, &[ORPHAN]), node("rs", &[], false, &[])];
        assert_eq!(plan(&after), vec![Action::RemoveFinalizer(key("deploy"), ORPHAN)]);
    }
}
