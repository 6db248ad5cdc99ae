//! `as=Table` responses (meta.k8s.io/v1 Table): the columns `kubectl get` prints.

use serde_json::{json, Value};

use crate::resources::Resource;

/// Whether the Accept header asks for a Table.
pub fn wanted(accept: &str) -> bool {
    accept.split(',').any(|part| part.contains("as=Table"))
}

fn row(r: &Resource, obj: &Value, include: &str, now: chrono::DateTime<chrono::Utc>) -> Value {
    let cells = edge_printers::cells(r.group, r.kind, obj, now);
    let object = match include {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}),
    };
    let mut row = json!({"cells": cells});
    if !object.is_null() {
        row["object"] = object;
    }
    row
}

/// A Table of `items` with `metadata` as the list metadata.
pub fn build(r: &Resource, items: &[Value], metadata: Value, include: Option<&str>) -> Value {
    let now = chrono::Utc::now();
    let columns: Vec<Value> = edge_printers::columns(r.group, r.kind)
        .into_iter()
        .map(|c| json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}))
        .collect();
    let include = include.unwrap_or("Metadata");
    let rows: Vec<Value> = items.iter().map(|o| row(r, o, include, now)).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}
