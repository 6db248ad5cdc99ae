//! Recording core/v1 Events for what controllers do, in the shape upstream's event recorder writes
//! them (`kubectl describe` shows their type, reason, age, source and message). A repeat of the
//! same event for the same object bumps `count` and `lastTimestamp` of the existing one, as
//! upstream's event correlator does, instead of piling up copies.

use serde_json::{json, Value};

use crate::api::local::LocalClient;
use crate::api::status::ApiError;
use crate::resources::must;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The `involvedObject` reference for `obj` (an object as stored or served: apiVersion, kind and
/// metadata are read from it).
pub fn object_ref(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let mut r = json!({
        "kind": obj["kind"],
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": obj["apiVersion"],
        "resourceVersion": meta["resourceVersion"],
    });
    if let Some(m) = r.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    r
}

/// Records an event about `obj` from `component`. Events are best effort, as upstream's recorder
/// treats them: a failure is logged, never returned to the controller's work.
/// Upstream's PodControl: creates a pod on behalf of `owner` and records SuccessfulCreate or
/// FailedCreate on the owner, as every pod-making controller does.
pub fn create_pod(
    client: &LocalClient,
    owner: &Value,
    ns: Option<&str>,
    pod: Value,
    component: &str,
) -> Result<Value, ApiError> {
    let pods = must("", "v1", "pods");
    match client.create(pods, ns, pod) {
        Ok(created) => {
            let name = created["metadata"]["name"].as_str().unwrap_or_default();
            record(client, owner, EventType::Normal, "SuccessfulCreate", &format!("Created pod: {name}"), component);
            Ok(created)
        }
        Err(e) => {
            record(
                client,
                owner,
                EventType::Warning,
                "FailedCreate",
                &format!("Error creating: {}", e.message),
                component,
            );
            Err(e)
        }
    }
}

/// Deletes a pod of `owner`, recording SuccessfulDelete or FailedDelete; a pod already gone is
/// not an error and records nothing.
pub fn delete_pod(
    client: &LocalClient,
    owner: &Value,
    ns: Option<&str>,
    name: &str,
    component: &str,
) -> Result<(), ApiError> {
    let pods = must("", "v1", "pods");
    match client.delete(pods, ns, name, &Value::Null) {
        Ok(_) => {
            record(client, owner, EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {name}"), component);
            Ok(())
        }
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => {
            record(
                client,
                owner,
                EventType::Warning,
                "FailedDelete",
                &format!("Error deleting: {}", e.message),
                component,
            );
            Err(e)
        }
    }
}

pub fn record(client: &LocalClient, obj: &Value, kind: EventType, reason: &str, message: &str, component: &str) {
    if let Err(e) = try_record(client, obj, kind, reason, message, component) {
        tracing::debug!(reason, error = %e.message, "could not record event");
    }
}

fn try_record(
    client: &LocalClient,
    obj: &Value,
    kind: EventType,
    reason: &str,
    message: &str,
    component: &str,
) -> Result<(), ApiError> {
    let involved = object_ref(obj);
    // Cluster-scoped objects (nodes) get their events in "default", as upstream's recorder does.
    let ns = involved["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or("default").to_string();
    let now = chrono::Utc::now();
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let res = must("", "v1", "events");
    let store = &client.state().store;
    // Event names start with the involved object's name: only those need reading.
    let prefix = format!("{}.", involved["name"].as_str().unwrap_or("object"));
    let from = crate::store::Key::new(res.store_key(), ns.as_str(), prefix.as_str());
    let (candidates, _) = store.list(&res.store_key(), Some(&ns), Some(&from));
    let existing =
        candidates.into_iter().take_while(|(k, _)| k.name.starts_with(&prefix)).map(|(_, s)| s.value()).find(|e| {
            e["involvedObject"]["uid"] == involved["uid"]
                && e["involvedObject"]["name"] == involved["name"]
                && e["reason"] == reason
                && e["message"] == message
                && e["source"]["component"] == component
                && e["type"] == kind.as_str()
        });
    if let Some(mut e) = existing {
        let count = e["count"].as_i64().unwrap_or(1) + 1;
        e["count"] = json!(count);
        e["lastTimestamp"] = json!(stamp);
        e["involvedObject"] = involved;
        client.update(res, Some(&ns), e)?;
        return Ok(());
    }
    let name = format!(
        "{}.{:x}",
        involved["name"].as_str().unwrap_or("object"),
        now.timestamp_nanos_opt().unwrap_or_default()
    );
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": kind.as_str(),
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    client.create(res, Some(&ns), event)?;
    Ok(())
}
