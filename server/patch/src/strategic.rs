//! Strategic merge patch (`application/strategic-merge-patch+json`), following upstream's
//! `apimachinery/pkg/util/strategicpatch` as the API server runs it: directives are executed
//! (never stored), `null` deletes, and nulls inside newly added values are dropped.
//!
//! List order follows upstream's rule: `$setElementOrder` first, then the order of the patch
//! list, then the order of the live list, with live-only items kept in their relative place.

use serde_json::{Map, Value};

use crate::schema::{self, ListSchema, SmpList};
use crate::TypeRef;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList/";

/// Why a strategic merge patch could not be applied; the texts are upstream's, and the API
/// server answers them as a 422/400 Status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("the patch and the object must be JSON objects")]
    NotAnObject,
    #[error("unknown patch type: {directive} in map: {context}")]
    BadPatchType { directive: String, context: String },
    #[error("map: {item} does not contain declared merge key: {key}")]
    NoMergeKey { item: String, key: String },
    #[error("cannot merge lists without merge key for {field}")]
    NoMergeKeyDefined { field: String },
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    SetElementOrderMismatch { patch: String, order: String },
    #[error("lists of lists are not supported")]
    ListOfLists,
    #[error("list element types are not identical: {0}")]
    MixedList(String),
    #[error("field {field}: expected a list, got {got}")]
    NotAList { field: String, got: String },
}

/// Applies a strategic merge patch to the live object `original` of type `ty`.
pub fn strategic_merge(original: &Value, patch: &Value, ty: &TypeRef) -> Result<Value, PatchError> {
    let patch = patch.as_object().ok_or(PatchError::NotAnObject)?;
    let original = match original {
        Value::Object(o) => o.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::NotAnObject),
    };
    let merger = Merger { ty };
    merger.merge_map(original, patch, &mut Vec::new()).map(Value::Object)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Map,
    Scalar,
}

struct Merger<'a> {
    ty: &'a TypeRef<'a>,
}

impl Merger<'_> {
    fn schema(&self, path: &[String]) -> ListSchema {
        schema::list_schema(self.ty, path)
    }

    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            match directive.as_str() {
                Some("replace") => {
                    let mut rest = patch.clone();
                    rest.shift_remove(DIRECTIVE);
                    return Ok(fresh_map(&rest));
                }
                Some("delete") => return Ok(Map::new()),
                // Upstream rejects this; it is the default behaviour, so accept it as a no-op.
                Some("merge") => {}
                _ => return Err(bad_patch_type(directive, patch)),
            }
        }

        if let Some(retain) = patch.get(RETAIN_KEYS) {
            apply_retain_keys(&mut original, patch, retain)?;
        }

        let ordered = self.merge_ordered_lists(&mut original, patch, path)?;

        for (key, patch_value) in patch {
            if key == DIRECTIVE
                || key == RETAIN_KEYS
                || key.starts_with(SET_ORDER_PREFIX)
                || ordered.contains(&key.as_str())
            {
                continue;
            }
            if let Some(field) = key.strip_prefix(DELETE_PRIMITIVE_PREFIX) {
                let doomed = patch_value.as_array().ok_or(PatchError::BadPrimitiveList)?;
                if let Some(Value::Array(current)) = original.get_mut(field) {
                    current.retain(|v| !doomed.contains(v));
                }
                continue;
            }
            if patch_value.is_null() {
                original.shift_remove(key);
                continue;
            }
            path.push(key.clone());
            // Taking the value out (instead of cloning) and inserting it back keeps the
            // key's position in the object.
            let merged = match (original.get_mut(key).map(std::mem::take), patch_value) {
                (Some(Value::Object(current)), Value::Object(p)) => {
                    Some(Value::Object(self.merge_map(current, p, path)?))
                }
                (Some(Value::Array(current)), Value::Array(p)) => {
                    Some(Value::Array(self.merge_list(current, p, self.schema(path), path)?))
                }
                _ => fresh(patch_value),
            };
            match merged {
                Some(v) => {
                    original.insert(key.clone(), v);
                }
                None => {
                    original.shift_remove(key);
                }
            }
            path.pop();
        }
        Ok(original)
    }

    /// Handles every `$setElementOrder/<field>` in `patch` together with `<field>`, returning
    /// the fields done so the main loop skips them.
    fn merge_ordered_lists<'p>(
        &self,
        original: &mut Map<String, Value>,
        patch: &'p Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Vec<&'p str>, PatchError> {
        let mut done = Vec::new();
        for (key, order) in patch {
            let Some(field) = key.strip_prefix(SET_ORDER_PREFIX) else {
                continue;
            };
            let order = order.as_array().ok_or(PatchError::BadSetElementOrder)?;
            path.push(field.to_string());
            let schema = self.schema(path);
            let merge_key = schema.merge_key();
            let live = match original.get(field) {
                None => None,
                Some(Value::Array(a)) => Some(a.clone()),
                Some(other) => return Err(not_a_list(path, other)),
            };
            let patch_list = match patch.get(field) {
                None => None,
                Some(Value::Array(a)) => Some(a.as_slice()),
                Some(other) => return Err(not_a_list(path, other)),
            };
            validate_set_order(patch_list.unwrap_or_default(), order, merge_key)?;
            let merged = match (&live, patch_list) {
                (Some(live), None) => live.clone(),
                (live, Some(p)) => self.merge_list(live.clone().unwrap_or_default(), p, schema, path)?,
                (None, None) => {
                    path.pop();
                    continue;
                }
            };
            let order_ids = identities(order, merge_key)?;
            let live_ids = identities(live.as_deref().unwrap_or_default(), merge_key)?;
            let (in_order, server_only) = partition(merged, &order_ids, merge_key)?;
            let both = normalize_order(in_order, server_only, &order_ids, &live_ids, merge_key);
            original.insert(field.to_string(), Value::Array(both));
            done.push(field);
            path.pop();
        }
        Ok(done)
    }

    fn merge_list(
        &self,
        live: Vec<Value>,
        patch: &[Value],
        schema: ListSchema,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        match schema.smp {
            SmpList::Replace => Ok(patch.iter().filter_map(fresh).collect()),
            SmpList::MergeScalars => self.merge_slice(live, patch, None, path),
            SmpList::MergeByKey(key) => self.merge_slice(live, patch, Some(key), path),
        }
    }

    fn merge_slice(
        &self,
        live: Vec<Value>,
        patch: &[Value],
        merge_key: Option<&str>,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        if live.is_empty() && patch.is_empty() {
            return Ok(live);
        }
        match element_kind(&live, patch)? {
            ElementKind::Scalar => {
                let mut merged: Vec<Value> = Vec::with_capacity(live.len() + patch.len());
                for v in live.iter().chain(patch) {
                    if !merged.contains(v) {
                        merged.push(v.clone());
                    }
                }
                let (in_patch, server_only) = partition(merged, patch, None)?;
                Ok(normalize_order(in_patch, server_only, patch, &live, None))
            }
            ElementKind::Map => {
                let key = merge_key.ok_or_else(|| PatchError::NoMergeKeyDefined { field: path.join(".") })?;
                let (live, patch_items) = self.split_list_directives(live, patch, key)?;
                let live_ids = identities(&live, Some(key))?;
                let patch_ids = identities(&patch_items, Some(key))?;
                let mut merged = live;
                for item in &patch_items {
                    let Value::Object(item) = item else { continue };
                    let id = item.get(key);
                    match merged.iter().position(|m| m.get(key) == id) {
                        Some(i) => {
                            let current = match std::mem::take(&mut merged[i]) {
                                Value::Object(m) => m,
                                _ => Map::new(),
                            };
                            merged[i] = Value::Object(self.merge_map(current, item, path)?);
                        }
                        None => merged.push(Value::Object(fresh_map(item))),
                    }
                }
                let (in_patch, server_only) = partition(merged, &patch_ids, Some(key))?;
                Ok(normalize_order(in_patch, server_only, &patch_ids, &live_ids, Some(key)))
            }
        }
    }

    /// Executes `$patch` items of a keyed list: `delete` removes matching live items,
    /// `replace` makes the remaining patch items the whole list. Returns the live list and
    /// the plain patch items still to merge.
    fn split_list_directives(
        &self,
        mut live: Vec<Value>,
        patch: &[Value],
        key: &str,
    ) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
        let mut plain = Vec::new();
        let mut replace = false;
        for item in patch {
            let Value::Object(map) = item else { continue };
            let Some(directive) = map.get(DIRECTIVE) else {
                if !map.contains_key(key) {
                    return Err(no_merge_key(item, key));
                }
                plain.push(item.clone());
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let id = map.get(key).ok_or_else(|| no_merge_key(item, key))?;
                    live.retain(|v| v.get(key) != Some(id));
                }
                Some("replace") => replace = true,
                Some("merge") => return Err(PatchError::MergeDirectiveInList),
                _ => return Err(bad_patch_type(directive, map)),
            }
        }
        if replace {
            return Ok((plain.iter().filter_map(fresh).collect(), Vec::new()));
        }
        Ok((live, plain))
    }
}

/// A patch value with nothing to merge into, as upstream stores it: nulls are discarded
/// (`IgnoreUnmatchedNulls`) and any map carrying `$patch` is dropped (`removeDirectives`).
/// Other `$`-keys are dropped too: upstream loses them when decoding into Go structs.
fn fresh(value: &Value) -> Option<Value> {
    match value {
        Value::Object(m) if m.contains_key(DIRECTIVE) => None,
        Value::Object(m) => Some(Value::Object(fresh_map(m))),
        Value::Array(items) => Some(Value::Array(items.iter().filter_map(fresh).collect())),
        other => Some(other.clone()),
    }
}

fn fresh_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, v)| !v.is_null() && !k.starts_with('$'))
        .filter_map(|(k, v)| fresh(v).map(|v| (k.clone(), v)))
        .collect()
}

fn bad_patch_type(directive: &Value, context: &Map<String, Value>) -> PatchError {
    PatchError::BadPatchType {
        directive: directive.as_str().map_or_else(|| directive.to_string(), str::to_string),
        context: Value::Object(context.clone()).to_string(),
    }
}

fn no_merge_key(item: &Value, key: &str) -> PatchError {
    PatchError::NoMergeKey { item: item.to_string(), key: key.to_string() }
}

fn not_a_list(path: &[String], got: &Value) -> PatchError {
    PatchError::NotAList { field: path.join("."), got: got.to_string() }
}

/// `$retainKeys`: every key the patch sets must be listed, and live keys not listed go.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
) -> Result<(), PatchError> {
    let retain = retain.as_array().ok_or(PatchError::BadRetainKeys)?;
    let keep: Vec<&str> =
        retain.iter().map(|v| v.as_str().ok_or(PatchError::BadRetainKeys)).collect::<Result<_, _>>()?;
    for (key, value) in patch {
        let directive = key == DIRECTIVE
            || key == RETAIN_KEYS
            || key.starts_with(SET_ORDER_PREFIX)
            || key.starts_with(DELETE_PRIMITIVE_PREFIX);
        if !value.is_null() && !directive && !keep.contains(&key.as_str()) {
            return Err(PatchError::BadRetainKeys);
        }
    }
    original.retain(|k, _| keep.contains(&k.as_str()));
    Ok(())
}

fn element_kind(live: &[Value], patch: &[Value]) -> Result<ElementKind, PatchError> {
    let mut kind = None;
    for v in live.iter().chain(patch) {
        let this = match v {
            Value::Array(_) => return Err(PatchError::ListOfLists),
            Value::Object(_) => ElementKind::Map,
            _ => ElementKind::Scalar,
        };
        match kind {
            None => kind = Some(this),
            Some(k) if k != this => {
                return Err(PatchError::MixedList(
                    Value::Array(live.iter().chain(patch).cloned().collect()).to_string(),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(kind.unwrap_or(ElementKind::Scalar))
}

/// What identifies a list item for ordering: its merge key value, or the item itself for
/// scalar lists.
fn identity<'v>(item: &'v Value, merge_key: Option<&str>) -> Result<&'v Value, PatchError> {
    match merge_key {
        None => Ok(item),
        Some(key) => item.get(key).ok_or_else(|| no_merge_key(item, key)),
    }
}

fn identities(items: &[Value], merge_key: Option<&str>) -> Result<Vec<Value>, PatchError> {
    items.iter().map(|v| identity(v, merge_key).cloned()).collect()
}

/// Splits `items` into those whose identity is in `ids` and the rest (server-only).
fn partition(
    items: Vec<Value>,
    ids: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    for item in items {
        if ids.contains(identity(&item, merge_key)?) {
            inside.push(item);
        } else {
            outside.push(item);
        }
    }
    Ok((inside, outside))
}

fn position(ids: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    let id = identity(item, merge_key).ok()?;
    ids.iter().position(|v| v == id)
}

/// Sorts the patch items by the patch order and the server-only items by the live order,
/// then interleaves the two so server-only items keep their place relative to patch items
/// that were already in the live list.
fn normalize_order(
    mut in_patch: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    in_patch.sort_by_key(|v| position(patch_order, v, merge_key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| position(server_order, v, merge_key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(in_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = in_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(server_order, l, merge_key), position(server_order, r, merge_key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// The patch list (deletions aside) must be a subsequence of the `$setElementOrder` list.
fn validate_set_order(patch: &[Value], order: &[Value], merge_key: Option<&str>) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let has_directive = |v: &Value| v.get(DIRECTIVE).is_some();
    let items: Vec<&Value> = patch.iter().filter(|v| merge_key.is_none() || !has_directive(v)).collect();
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if has_directive(items[p]) {
            p += 1;
            continue;
        }
        if identity(items[p], merge_key)? == identity(&order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        return Err(PatchError::SetElementOrderMismatch {
            patch: Value::Array(patch.to_vec()).to_string(),
            order: Value::Array(order.to_vec()).to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
