//! Server-side apply and field ownership (`metadata.managedFields`), after upstream's
//! `fieldmanager` + structured-merge-diff.
//!
//! Every write records who owns which fields: [`server_side_apply`] for apply requests,
//! [`track_update`] for create/update/patch. Differences from upstream, on purpose:
//! - Writes to the main resource of kinds with a status subresource ignore `status` (the
//!   applied `status` stanza is dropped, and status changes are not tracked), as upstream's
//!   reset fields do; writes to the `status` subresource ignore `spec`. Which kinds reset
//!   status is [`crate::schema::resets_status`]; custom resources do not.
//! - No cap of ten Update entries ("ancient-changes"), no last-applied-configuration
//!   annotation upkeep for client-side-apply interop.
//! - Lists unknown to [`crate::schema`] are atomic, as for a CRD without list markers.

mod fieldpath;
mod managed;
mod typed;

use serde_json::Value;

use crate::schema;
use crate::TypeRef;
use fieldpath::{path_string, PathElement, Set};
use managed::{Entry, APPLY, UPDATE};
use typed::Walker;

/// A field the applier would change that another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    /// Upstream's path form: `.spec.replicas`, `.spec.containers[name="nginx"].image`.
    pub field: String,
    /// `"Apply"` or `"Update"`.
    pub operation: String,
    /// Empty for the main resource.
    pub subresource: String,
}

impl Conflict {
    /// Upstream's `printManager`: `"name"`, plus ` with subresource "x"`, plus
    /// ` using apps/v1` for Update managers.
    fn manager_text(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            text.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == UPDATE {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }

    /// The `message` of this conflict's `StatusCause` (type `FieldManagerConflict`, field
    /// [`Conflict::field`]).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_text())
    }
}

/// Upstream's conflict error text.
pub fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", only.manager_text(), only.field);
    }
    let mut managers: Vec<String> = conflicts.iter().map(Conflict::manager_text).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        for c in conflicts.iter().filter(|c| c.manager_text() == manager) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Answered as 409 Conflict with one cause per conflict.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration cannot be applied (answered as 400/422).
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// Upstream's message text for the Status.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// The manager upstream records for an object's fields when it is first applied to without
/// any managedFields.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

fn field(name: &str) -> PathElement {
    PathElement::Field(name.to_string())
}

/// Fields nobody owns (upstream's stripMeta), removed from every recorded set.
fn strip_set() -> Set {
    let mut set = Set::new();
    set.insert(&[field("apiVersion")]);
    set.insert(&[field("kind")]);
    set.insert(&[field("metadata")]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
        // Set by the server on delete, never by a manager.
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        set.insert(&[field("metadata"), field(name)]);
    }
    set
}

/// Subtrees a write neither changes nor owns (upstream's reset fields), plus managedFields
/// itself, which is bookkeeping rather than content.
fn ignored_fields(ty: &TypeRef, subresource: Option<&str>) -> Set {
    let mut set = Set::new();
    set.insert(&[field("metadata"), field("managedFields")]);
    match subresource {
        None if schema::resets_status(ty) => set.insert(&[field("status")]),
        Some("status") => set.insert(&[field("spec")]),
        _ => {}
    }
    set
}

fn prepare_config(applied: &Value, ty: &TypeRef) -> Result<Value, ApplyError> {
    let mut config = applied.clone();
    let obj =
        config.as_object_mut().ok_or_else(|| ApplyError::Invalid("apply configuration must be an object".into()))?;
    if schema::resets_status(ty) {
        obj.shift_remove("status");
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        match meta.get("managedFields") {
            Some(Value::Array(a)) if !a.is_empty() => {
                return Err(ApplyError::Invalid("metadata.managedFields must be nil".into()))
            }
            Some(Value::Array(_) | Value::Null) => {
                meta.shift_remove("managedFields");
            }
            Some(_) => return Err(ApplyError::Invalid("metadata.managedFields must be nil".into())),
            None => {}
        }
    }
    Ok(config)
}

/// Server-side apply (`application/apply-patch+yaml`, body parsed to JSON). `live` is `None`
/// when the object does not exist yet. Returns the new object with managedFields updated,
/// or the conflicts with other managers unless `force`.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    ty: &TypeRef,
    now: &str,
) -> Result<Value, ApplyError> {
    let config = prepare_config(applied, ty)?;
    let walker = Walker::new(ty);
    let api_version = ty.api_version();
    let ignored = ignored_fields(ty, None);
    let strip = strip_set();
    let zero = schema::zero_object(ty);
    let base = live.cloned().unwrap_or_else(|| Value::Object(Default::default()));
    let before = live.unwrap_or(&zero);

    let mut entries = live.and_then(managed::decode).unwrap_or_default();
    if let (Some(live), true) = (live, entries.is_empty()) {
        // Whoever wrote the object before any tracking owns everything it set.
        let set = walker.compare(&zero, live).exclude(&ignored).changed().difference(&strip);
        entries.push(Entry {
            manager: BEFORE_FIRST_APPLY.into(),
            operation: UPDATE.into(),
            api_version: api_version.clone(),
            time: Some(now.into()),
            subresource: String::new(),
            set,
        });
    }

    let mut result = walker.merge(&base, &config).map_err(ApplyError::Invalid)?;
    // Unstripped, so metadata.name keeps `metadata` itself owned while pruning.
    let applied_set = walker.field_set(&config).map_err(ApplyError::Invalid)?.recursive_difference(&ignored);
    let previous =
        entries.iter().position(|e| e.same_manager(manager, APPLY, &api_version, "")).map(|i| entries.remove(i));

    if let Some(previous) = &previous {
        // Fields this manager applied before and dropped now go, unless someone owns them.
        let owned = entries.iter().fold(applied_set.clone(), |acc, e| acc.union(&e.set)).with_fields_as_members();
        let dropped = previous.set.with_fields_as_members().difference(&owned);
        walker.remove(&mut result, &dropped);
    }

    let comparison = walker.compare(before, &result).exclude(&ignored);
    let changed = comparison.changed();
    let mut conflicts = Vec::new();
    for entry in &entries {
        for path in entry.set.intersection(&changed).paths() {
            conflicts.push(Conflict {
                manager: entry.manager.clone(),
                api_version: entry.api_version.clone(),
                field: path_string(&path),
                operation: entry.operation.clone(),
                subresource: entry.subresource.clone(),
            });
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort_by(|a, b| (&a.manager, &a.operation).cmp(&(&b.manager, &b.operation)));
        return Err(ApplyError::Conflicts(conflicts));
    }
    for entry in &mut entries {
        entry.set = entry.set.difference(&changed).difference(&comparison.removed);
    }

    let time = match &previous {
        Some(p) if live == Some(&result) => p.time.clone(),
        _ => Some(now.to_string()),
    };
    entries.push(Entry {
        manager: manager.into(),
        operation: APPLY.into(),
        api_version,
        time,
        subresource: String::new(),
        set: applied_set.difference(&strip),
    });
    managed::encode_into(&mut result, entries);
    Ok(result)
}

/// After a create/update/patch by `manager` (operation "Update"): returns `new` with
/// managedFields recording that `manager` now owns what this write changed, taken away from
/// everyone else. `old` is `None` on create.
pub fn track_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    ty: &TypeRef,
    now: &str,
) -> Value {
    let walker = Walker::new(ty);
    let api_version = ty.api_version();
    let sub = subresource.unwrap_or("");
    let ignored = ignored_fields(ty, subresource);
    let zero = schema::zero_object(ty);

    // A client may edit managedFields directly on the main resource; an empty or unreadable
    // list means "keep what the server has".
    let sent = if sub.is_empty() { managed::decode(new).filter(|e| !e.is_empty()) } else { None };
    let mut entries = sent.or_else(|| old.and_then(managed::decode)).unwrap_or_default();

    let comparison = walker.compare(old.unwrap_or(&zero), new).exclude(&ignored);
    let changed = comparison.changed();
    for entry in &mut entries {
        entry.set = entry.set.difference(&changed).difference(&comparison.removed);
    }
    let mine = changed.difference(&strip_set());
    if !mine.is_empty() {
        match entries.iter_mut().find(|e| e.same_manager(manager, UPDATE, &api_version, sub)) {
            Some(entry) => {
                entry.set = entry.set.union(&mine);
                entry.time = Some(now.to_string());
            }
            None => entries.push(Entry {
                manager: manager.into(),
                operation: UPDATE.into(),
                api_version,
                time: Some(now.to_string()),
                subresource: sub.to_string(),
                set: mine,
            }),
        }
    }
    let mut out = new.clone();
    managed::encode_into(&mut out, entries);
    out
}

#[cfg(test)]
mod tests;
