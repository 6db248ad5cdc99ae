//! Schema-aware walks over objects, after structured-merge-diff's `typed` package:
//! the field set an object sets (`ToFieldSet`), the difference between two objects
//! (`Compare`), apply's merge of a configuration into a live object (`Merge`), and removal of
//! a set of fields (`RemoveItems`).

use serde_json::{Map, Value};

use super::fieldpath::{Path, PathElement, Set};
use crate::schema::{self, ListSchema, SsaList};
use crate::TypeRef;

/// Paths added, modified and removed going from one object to another.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    /// Drops the given paths and everything below them (upstream's `ExcludeFields`).
    pub fn exclude(self, fields: &Set) -> Comparison {
        Comparison {
            added: self.added.recursive_difference(fields),
            modified: self.modified.recursive_difference(fields),
            removed: self.removed.recursive_difference(fields),
        }
    }

    pub fn changed(&self) -> Set {
        self.modified.union(&self.added)
    }
}

/// Walks carry the schema-lookup path (field names, list levels skipped) next to the
/// field path proper.
pub struct Walker<'a> {
    ty: &'a TypeRef<'a>,
}

impl<'a> Walker<'a> {
    pub fn new(ty: &'a TypeRef<'a>) -> Walker<'a> {
        Walker { ty }
    }

    fn list(&self, names: &[&str]) -> ListSchema {
        schema::list_schema(self.ty, names)
    }

    fn atomic_map(&self, names: &[&str]) -> bool {
        schema::is_atomic_map(self.ty, names)
    }

    /// The path element of a list item, or why the item cannot be addressed.
    fn item_element(&self, item: &Value, list: &SsaList) -> Result<PathElement, String> {
        match list {
            SsaList::Map(keys) => {
                let obj = item.as_object().ok_or_else(|| format!("associative list item is not an object: {item}"))?;
                let mut fields = Vec::with_capacity(keys.len());
                for key in keys.iter() {
                    let value = match (obj.get(key.name), key.default) {
                        (Some(v), _) => v.clone(),
                        (None, Some(default)) => Value::String(default.to_string()),
                        (None, None) => {
                            return Err(format!(
                                "associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                                key.name
                            ))
                        }
                    };
                    fields.push((key.name.to_string(), value));
                }
                Ok(PathElement::key(fields))
            }
            SsaList::Set => Ok(PathElement::Value(item.clone())),
            SsaList::Atomic => Err("atomic lists have no item paths".to_string()),
        }
    }

    /// Pairs every item of a keyed/set list with its path element. Duplicates are an error
    /// in a configuration (upstream rejects them on apply).
    fn index_items<'v>(&self, items: &'v [Value], list: &SsaList) -> Result<Vec<(PathElement, &'v Value)>, String> {
        let mut out: Vec<(PathElement, &Value)> = Vec::with_capacity(items.len());
        for item in items {
            let pe = self.item_element(item, list)?;
            if out.iter().any(|(seen, _)| *seen == pe) {
                return Err(format!("duplicate entries for key {pe}"));
            }
            out.push((pe, item));
        }
        Ok(out)
    }

    /// The fields `value` sets, as upstream's `ToFieldSet`: leaves, list items, and maps
    /// that are empty or null.
    pub fn field_set(&self, value: &Value) -> Result<Set, String> {
        let mut set = Set::new();
        self.field_set_at(value, &mut Vec::new(), &mut Vec::new(), false, &mut set)?;
        Ok(set)
    }

    fn field_set_at<'v>(
        &self,
        value: &'v Value,
        names: &mut Vec<&'v str>,
        path: &mut Path,
        atomic: bool,
        set: &mut Set,
    ) -> Result<(), String> {
        match value {
            Value::Object(map) if !atomic && !self.atomic_map(names) => {
                for (key, child) in map {
                    names.push(key);
                    path.push(PathElement::Field(key.clone()));
                    self.field_set_at(child, names, path, false, set)?;
                    if child.is_null() || child.as_object().is_some_and(Map::is_empty) {
                        set.insert(path);
                    }
                    path.pop();
                    names.pop();
                }
            }
            Value::Array(items) if !atomic => {
                let list = self.list(names);
                if list.ssa == SsaList::Atomic {
                    set.insert(path);
                    return Ok(());
                }
                for (pe, item) in self.index_items(items, &list.ssa)? {
                    path.push(pe);
                    self.field_set_at(item, names, path, list.atomic_items, set)?;
                    set.insert(path);
                    path.pop();
                }
            }
            _ => set.insert(path),
        }
        Ok(())
    }

    /// What changed from `lhs` to `rhs` (upstream's `Compare`).
    pub fn compare(&self, lhs: &Value, rhs: &Value) -> Comparison {
        let mut out = Comparison::default();
        self.compare_at(Some(lhs), Some(rhs), &mut Vec::new(), &mut Vec::new(), false, &mut out);
        out
    }

    fn compare_at<'v>(
        &self,
        lhs: Option<&'v Value>,
        rhs: Option<&'v Value>,
        names: &mut Vec<&'v str>,
        path: &mut Path,
        atomic: bool,
        out: &mut Comparison,
    ) {
        let recursed = match (lhs, rhs) {
            (None, None) => return,
            (Some(Value::Object(_)) | None, Some(Value::Object(_)) | None) if !atomic && !self.atomic_map(names) => {
                let l = lhs.and_then(Value::as_object);
                let r = rhs.and_then(Value::as_object);
                if l.is_none_or(Map::is_empty) && r.is_none_or(Map::is_empty) {
                    false
                } else {
                    let only_r = r.into_iter().flat_map(Map::keys).filter(|k| !l.is_some_and(|l| l.contains_key(*k)));
                    for key in l.into_iter().flat_map(Map::keys).chain(only_r) {
                        names.push(key);
                        path.push(PathElement::Field(key.clone()));
                        self.compare_at(
                            l.and_then(|m| m.get(key)),
                            r.and_then(|m| m.get(key)),
                            names,
                            path,
                            false,
                            out,
                        );
                        path.pop();
                        names.pop();
                    }
                    true
                }
            }
            (Some(Value::Array(_)) | None, Some(Value::Array(_)) | None) if !atomic => {
                let list = self.list(names);
                let l = lhs.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                let r = rhs.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                let indexed = (self.index_items_lenient(l, &list.ssa), self.index_items_lenient(r, &list.ssa));
                match indexed {
                    (Some(li), Some(ri)) if list.ssa != SsaList::Atomic && !(l.is_empty() && r.is_empty()) => {
                        let find = |items: &[(PathElement, &'v Value)], pe: &PathElement| {
                            items.iter().find(|(p, _)| p == pe).map(|(_, v)| *v)
                        };
                        let mut seen: Vec<&PathElement> = Vec::new();
                        for (pe, _) in li.iter().chain(&ri) {
                            if seen.contains(&pe) {
                                continue;
                            }
                            seen.push(pe);
                            path.push(pe.clone());
                            self.compare_at(find(&li, pe), find(&ri, pe), names, path, list.atomic_items, out);
                            path.pop();
                        }
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if recursed {
            if lhs.is_none() {
                out.added.insert(path);
            } else if rhs.is_none() {
                out.removed.insert(path);
            }
        } else {
            match (lhs, rhs) {
                (None, Some(_)) => out.added.insert(path),
                (Some(_), None) => out.removed.insert(path),
                (Some(l), Some(r)) if l != r => out.modified.insert(path),
                _ => {}
            }
        }
    }

    /// Live objects may hold lists a configuration could not (duplicates, missing keys);
    /// such a list is compared as a whole instead.
    fn index_items_lenient<'v>(&self, items: &'v [Value], list: &SsaList) -> Option<Vec<(PathElement, &'v Value)>> {
        if *list == SsaList::Atomic {
            return Some(Vec::new());
        }
        self.index_items(items, list).ok()
    }

    /// Apply's merge: `config` wins, maps merge key by key, keyed and set lists merge item by
    /// item, everything else is replaced. Nulls in the configuration remove the field.
    pub fn merge(&self, live: &Value, config: &Value) -> Result<Value, String> {
        self.merge_at(Some(live), config, &mut Vec::new(), false)
    }

    fn merge_at<'v>(
        &self,
        live: Option<&'v Value>,
        config: &'v Value,
        names: &mut Vec<&'v str>,
        atomic: bool,
    ) -> Result<Value, String> {
        match config {
            Value::Object(cfg) if !atomic && !self.atomic_map(names) => {
                let live_map = live.and_then(Value::as_object);
                let mut out = live_map.cloned().unwrap_or_default();
                for (key, value) in cfg {
                    if value.is_null() {
                        out.shift_remove(key);
                        continue;
                    }
                    names.push(key);
                    let merged = self.merge_at(live_map.and_then(|l| l.get(key)), value, names, false);
                    names.pop();
                    out.insert(key.clone(), merged?);
                }
                Ok(Value::Object(out))
            }
            Value::Array(cfg) if !atomic => {
                let list = self.list(names);
                if list.ssa == SsaList::Atomic {
                    return Ok(config.clone());
                }
                let cfg_items = self.index_items(cfg, &list.ssa)?;
                let live_items = match live {
                    Some(Value::Array(l)) => self.index_items_lenient(l, &list.ssa).unwrap_or_default(),
                    _ => Vec::new(),
                };
                self.merge_list(&live_items, &cfg_items, names, list.atomic_items)
            }
            other => Ok(other.clone()),
        }
    }

    /// Upstream's list merge: live-only items keep their place, configured items follow
    /// the configuration's order, and items in both are merged.
    fn merge_list<'v>(
        &self,
        live: &[(PathElement, &'v Value)],
        cfg: &[(PathElement, &'v Value)],
        names: &mut Vec<&'v str>,
        atomic_items: bool,
    ) -> Result<Value, String> {
        let in_cfg = |pe: &PathElement| cfg.iter().any(|(p, _)| p == pe);
        let find_live = |pe: &PathElement| live.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
        let mut shared = cfg.iter().map(|(pe, _)| pe).filter(|pe| find_live(pe).is_some());
        let mut next_shared = shared.next();
        let mut merged: Vec<&PathElement> = Vec::new();
        let mut out = Vec::with_capacity(live.len().max(cfg.len()));
        let (mut l, mut r) = (0, 0);
        while l < live.len() || r < cfg.len() {
            if let (Some((lpe, litem)), Some((rpe, ritem))) = (live.get(l), cfg.get(r)) {
                if lpe == rpe {
                    merged.push(rpe);
                    out.push(self.merge_at(Some(litem), ritem, names, atomic_items)?);
                    l += 1;
                    r += 1;
                    next_shared = shared.next();
                    continue;
                }
                if in_cfg(lpe) && next_shared.is_some_and(|n| n != lpe) {
                    // Shared, but not the one due now: it is emitted in configuration order.
                    l += 1;
                    continue;
                }
            }
            if let Some((lpe, litem)) = live.get(l) {
                if !in_cfg(lpe) {
                    out.push((*litem).clone());
                    l += 1;
                    continue;
                } else if merged.contains(&lpe) {
                    l += 1;
                }
            }
            if let Some((rpe, ritem)) = cfg.get(r) {
                merged.push(rpe);
                out.push(self.merge_at(find_live(rpe), ritem, names, atomic_items)?);
                r += 1;
                if next_shared == Some(rpe) {
                    next_shared = shared.next();
                }
            }
        }
        Ok(Value::Array(out))
    }

    /// Removes the members of `set` (with everything below them) from `value`.
    pub fn remove(&self, value: &mut Value, set: &Set) {
        self.remove_at(value, set, &mut Vec::new());
    }

    fn remove_at(&self, value: &mut Value, set: &Set, names: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    let pe = PathElement::Field(key.clone());
                    if set.members().contains(&pe) {
                        map.shift_remove(&key);
                    } else if let (Some(child_set), Some(child)) = (set.child(&pe), map.get_mut(&key)) {
                        names.push(key);
                        self.remove_at(child, child_set, names);
                        names.pop();
                    }
                }
            }
            Value::Array(items) => {
                let list = schema::list_schema(self.ty, names);
                if list.ssa == SsaList::Atomic {
                    return;
                }
                let mut kept = Vec::with_capacity(items.len());
                for mut item in std::mem::take(items) {
                    match self.item_element(&item, &list.ssa) {
                        Ok(pe) if set.members().contains(&pe) => continue,
                        Ok(pe) => {
                            if let Some(child_set) = set.child(&pe) {
                                self.remove_at(&mut item, child_set, names);
                            }
                        }
                        Err(_) => {}
                    }
                    kept.push(item);
                }
                *items = kept;
            }
            _ => {}
        }
    }
}
