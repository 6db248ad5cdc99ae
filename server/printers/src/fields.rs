//! Tolerant reads from an object's JSON: every accessor yields the Go zero value ("" / 0 / empty)
//! for missing or mistyped fields, which is what upstream's printers see for unset fields.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::duration::human_duration;

const EMPTY: &[Value] = &[];

pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(*key)).filter(|found| !found.is_null())
}

/// A nested object; absent when missing, null or not an object (Go's nil pointer).
pub(crate) fn object<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    at(v, path).filter(|found| found.is_object())
}

pub(crate) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    opt_str(v, path).unwrap_or("")
}

pub(crate) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

pub(crate) fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

pub(crate) fn opt_bool(v: &Value, path: &[&str]) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

pub(crate) fn bool_at(v: &Value, path: &[&str]) -> bool {
    opt_bool(v, path).unwrap_or(false)
}

pub(crate) fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).and_then(Value::as_array).map_or(EMPTY, Vec::as_slice)
}

pub(crate) fn map_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a serde_json::Map<String, Value>> {
    at(v, path).and_then(Value::as_object)
}

pub(crate) fn map_len(v: &Value, path: &[&str]) -> usize {
    map_at(v, path).map_or(0, serde_json::Map::len)
}

/// A metav1.Time or MicroTime; Go's zero time (how some clients spell "unset") counts as absent.
pub(crate) fn time_at(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(opt_str(v, path)?).ok()?.with_timezone(&Utc);
    (parsed.timestamp() != GO_ZERO_TIME).then_some(parsed)
}

/// Seconds from the Unix epoch to 0001-01-01T00:00:00Z.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// Upstream's translateTimestampSince: "<unknown>" for unset times.
pub(crate) fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map_or_else(|| "<unknown>".to_string(), |t| human_duration(now - t))
}

pub(crate) fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

pub(crate) fn name(obj: &Value) -> Value {
    string(str_at(obj, &["metadata", "name"]))
}

pub(crate) fn age(obj: &Value, now: DateTime<Utc>) -> Value {
    string(since(time_at(obj, &["metadata", "creationTimestamp"]), now))
}

pub(crate) fn deleting(obj: &Value) -> bool {
    at(obj, &["metadata", "deletionTimestamp"]).is_some()
}

pub(crate) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    map_at(obj, &["metadata", "annotations"])?.get(key)?.as_str()
}

/// A resource.Quantity as upstream prints it; `None` when unset (Go prints a nil *Quantity as
/// "<nil>" and a zero Quantity as "0", callers choose).
pub(crate) fn quantity(v: &Value, path: &[&str]) -> Option<String> {
    match at(v, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Upstream's layoutContainerCells: comma-joined container names and images of a pod spec.
pub(crate) fn container_cells(pod_spec: &Value) -> [Value; 2] {
    let containers = list_at(pod_spec, &["containers"]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    [string(names.join(",")), string(images.join(","))]
}
