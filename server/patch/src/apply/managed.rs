//! `metadata.managedFields`: decoding entries into field sets, and encoding them back in
//! upstream's order (Apply before Update, then by time, manager, apiVersion, subresource).

use serde_json::{Map, Value};

use super::fieldpath::Set;

pub const APPLY: &str = "Apply";
pub const UPDATE: &str = "Update";

/// One manager's ownership record.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: String,
    pub set: Set,
}

impl Entry {
    /// Upstream's manager identity: apply entries ignore apiVersion, so re-applying with
    /// another version updates the same entry.
    pub fn same_manager(&self, manager: &str, operation: &str, api_version: &str, subresource: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == APPLY || self.api_version == api_version)
    }

    fn decode(v: &Value) -> Option<Entry> {
        let obj = v.as_object()?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let set = match obj.get("fieldsV1") {
            Some(f) => Set::from_fields_v1(f).ok()?,
            None => Set::new(),
        };
        Some(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation").unwrap_or_default(),
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").unwrap_or_default(),
            set,
        })
    }

    fn encode(&self) -> Value {
        // Field order of Go's ManagedFieldsEntry.
        let mut obj = Map::new();
        obj.insert("manager".into(), self.manager.clone().into());
        obj.insert("operation".into(), self.operation.clone().into());
        obj.insert("apiVersion".into(), self.api_version.clone().into());
        if let Some(time) = &self.time {
            obj.insert("time".into(), time.clone().into());
        }
        obj.insert("fieldsType".into(), "FieldsV1".into());
        obj.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            obj.insert("subresource".into(), self.subresource.clone().into());
        }
        Value::Object(obj)
    }
}

/// The entries of `object`, or `None` when they are absent or unreadable (upstream then
/// falls back to the live object's entries, or to none).
pub fn decode(object: &Value) -> Option<Vec<Entry>> {
    let list = object.get("metadata")?.get("managedFields")?.as_array()?;
    let mut entries: Vec<Entry> = Vec::with_capacity(list.len());
    for v in list {
        let entry = Entry::decode(v)?;
        // Entries of one identity are one manager: fold duplicates together.
        match entries
            .iter_mut()
            .find(|e| e.same_manager(&entry.manager, &entry.operation, &entry.api_version, &entry.subresource))
        {
            Some(existing) => existing.set = existing.set.union(&entry.set),
            None => entries.push(entry),
        }
    }
    Some(entries)
}

/// Stores `entries` into `object.metadata.managedFields`, in place when the key exists (so
/// an unchanged object stays byte-identical), removing it when there are none.
pub fn encode_into(object: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| a.time.as_deref().unwrap_or("").cmp(b.time.as_deref().unwrap_or("")))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let Some(root) = object.as_object_mut() else {
        return;
    };
    let metadata = root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        metadata.shift_remove("managedFields");
    } else {
        metadata.insert("managedFields".into(), Value::Array(entries.iter().map(Entry::encode).collect()));
    }
}
