//! Events expire an hour after they were last seen, as upstream's `--event-ttl` makes etcd do.
//! Events live in the store's memory tier, so without this they would only ever grow.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::api::local::LocalClient;
use crate::resources;
use crate::store::Key;

pub const TTL: Duration = Duration::from_secs(3600);

/// When an event was last touched: lastTimestamp, else eventTime, else creationTimestamp.
fn last_seen(obj: &Value) -> Option<DateTime<Utc>> {
    ["lastTimestamp", "eventTime"]
        .iter()
        .filter_map(|f| obj[*f].as_str())
        .chain(obj["metadata"]["creationTimestamp"].as_str())
        .find_map(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The events to delete at `now`.
pub fn plan(events: &[(Key, Value)], now: DateTime<Utc>, ttl: Duration) -> Vec<Key> {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
    events.iter().filter(|(_, e)| last_seen(e).is_none_or(|t| now - t > ttl)).map(|(k, _)| k.clone()).collect()
}

pub async fn run(client: LocalClient) {
    let state = client.state().clone();
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let events: Vec<(Key, Value)> =
            state.store.list("events", None, None).0.into_iter().map(|(k, s)| (k, s.value())).collect();
        let res = resources::must("", "v1", "events");
        for key in plan(&events, Utc::now(), TTL) {
            if let Err(e) = client.delete(res, Some(&key.namespace), &key.name, &Value::Null) {
                if e.code != 404 {
                    tracing::warn!(event = key.name, error = %e.message, "expiring event failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_older_than_the_ttl_expire() {
        let now: DateTime<Utc> = "2026-01-01T12:00:00Z".parse().unwrap();
        let ev = |name: &str, last: &str| {
            (
                Key::new("events", "ns", name),
                json!({"lastTimestamp": last, "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}}),
            )
        };
        let events = [ev("old", "2026-01-01T10:59:00Z"), ev("fresh", "2026-01-01T11:30:00Z")];
        assert_eq!(plan(&events, now, TTL), vec![Key::new("events", "ns", "old")]);
        let created_only =
            [(Key::new("events", "ns", "c"), json!({"metadata": {"creationTimestamp": "2026-01-01T11:59:00Z"}}))];
        assert!(plan(&created_only, now, TTL).is_empty());
    }
}
