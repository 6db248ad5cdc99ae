//! Writes: create, update, patch (JSON, merge, strategic) and server-side apply, with the
//! server-owned fields, defaulting, validation, managed fields and address allocation they share.

use super::*;

pub(in crate::api) fn create(ctx: &mut Ctx, mut obj: Value) -> ApiResult<(u16, Value)> {
    ctx.check_type_meta(&mut obj)?;
    ctx.check_namespace(&mut obj)?;
    let meta = meta_mut(&mut obj);
    let has_name = meta.get("name").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    if !has_name {
        if let Some(prefix) = meta.get("generateName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            let name = format!("{prefix}{}", admission::generate_suffix());
            meta.insert("name".into(), json!(name));
        }
    }
    if meta.get("resourceVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::internal("resourceVersion should not be set on objects to be created"));
    }
    let obj = ctx.decode_typed(obj)?;
    let (obj, name) = prepare_new(ctx, obj, None)?;
    ctx.namespace_usable()?;
    store_new(ctx, &name, obj, false)
}

/// Server-owned metadata, status, defaults, validation and managed fields of a new object. `managed`
/// carries managedFields already computed (server-side apply); otherwise this write is tracked as
/// an Update by the request's manager. Returns the object in storage form and its name.
pub(super) fn prepare_new(ctx: &Ctx, mut obj: Value, managed: Option<Value>) -> ApiResult<(Value, String)> {
    let (group, kind) = (ctx.res.group, ctx.res.kind);
    let now = now_rfc3339();
    {
        let meta = meta_mut(&mut obj);
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("resourceVersion");
        meta.remove("selfLink");
        if admission::tracks_generation(group, kind) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    admission::status_on_create(group, kind, &mut obj, ctx.res.status_is_subresource());
    let mut obj = ctx.to_storage(obj);
    defaults::apply(group, kind, &mut obj, &ctx.state.nodes);
    let name = name_of(&obj).to_string();
    let errors = validation::validate(group, kind, &obj);
    if !errors.is_empty() {
        return Err(ctx.invalid(&name, &errors));
    }
    let managed = match managed {
        Some(m) => m,
        None => {
            let tracked = edge_patch::apply::track_update(
                None,
                &ctx.present(obj.clone()),
                &ctx.manager(),
                None,
                &ctx.type_ref(),
                &now,
            );
            tracked["metadata"]["managedFields"].clone()
        }
    };
    if !managed.is_null() {
        meta_mut(&mut obj).insert("managedFields".into(), managed);
    }
    Ok((obj, name))
}

/// How a changed object arrives at `finish_update`.
pub(super) enum Change {
    /// A plain write by the request's manager (update, JSON/merge/strategic patch).
    Update,
    /// Server-side apply: managedFields already computed.
    Applied,
}

/// Turns a requested new state into the write: keeps server-owned fields, applies the subresource
/// rules, defaults, validates, tracks managed fields, and drops writes that change nothing.
pub(super) fn finish_update(
    ctx: &Ctx,
    old: &Value,
    mut new: Value,
    sub: Option<&str>,
    change: Change,
) -> ApiResult<Write> {
    let (group, kind) = (ctx.res.group, ctx.res.kind);
    let name = name_of(old).to_string();
    if name_of(&new) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(&new)
        )));
    }
    match sub {
        Some("status") => {
            // Only status moves through the status subresource.
            let status = new.get("status").cloned().unwrap_or(Value::Null);
            let managed = new["metadata"].get("managedFields").cloned();
            new = old.clone();
            new["status"] = status;
            if let (Change::Applied, Some(m)) = (&change, managed) {
                meta_mut(&mut new).insert("managedFields".into(), m);
            }
        }
        _ => {
            if ctx.res.status_is_subresource() {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
        }
    }
    {
        let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
        let meta = meta_mut(&mut new);
        for key in
            ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace"]
        {
            match old_meta.get(key) {
                Some(v) => meta.insert(key.into(), v.clone()),
                None => meta.remove(key),
            };
        }
        meta.remove("selfLink");
    }
    defaults::apply(group, kind, &mut new, &ctx.state.nodes);
    if admission::tracks_generation(group, kind) && old.get("spec") != new.get("spec") {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        meta_mut(&mut new).insert("generation".into(), json!(generation));
    }
    let mut errors = validation::validate(group, kind, &new);
    errors.extend(validation::validate_update(group, kind, old, &new));
    if !errors.is_empty() {
        return Err(ctx.invalid(&name, &errors));
    }
    // Adding a finalizer to an object already being deleted is forbidden upstream; removing the
    // last one completes the deletion.
    let deleting = old["metadata"]["deletionTimestamp"].is_string();
    if deleting {
        let finalizers_of = |v: &Value| -> Vec<String> {
            v["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        };
        let (before, after) = (finalizers_of(old), finalizers_of(&new));
        if after.iter().any(|f| !before.contains(f)) {
            return Err(ctx.invalid(
                &name,
                &[FieldError::forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted",
                )],
            ));
        }
        if after.is_empty() {
            return Ok(Write::Delete);
        }
    }
    // The managed fields follow the object, not the other way round: compare without them first,
    // so that a write changing nothing costs nothing.
    let mut old_cmp = old.clone();
    let mut new_cmp = new.clone();
    for v in [&mut old_cmp, &mut new_cmp] {
        let m = meta_mut(v);
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    if old_cmp == new_cmp {
        return Ok(Write::Keep);
    }
    if let Change::Update = change {
        let now = now_rfc3339();
        let tracked = edge_patch::apply::track_update(
            Some(&ctx.present(old.clone())),
            &ctx.present(new.clone()),
            &ctx.manager(),
            sub,
            &ctx.type_ref(),
            &now,
        );
        let managed = tracked["metadata"]["managedFields"].clone();
        let m = meta_mut(&mut new);
        if managed.is_null() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), managed);
        }
    }
    Ok(Write::Put(new))
}

/// Kinds whose update creates a missing object (upstream's AllowCreateOnUpdate).
pub(super) fn create_on_update(res: &Resource) -> bool {
    matches!(res.plural, "leases" | "endpoints" | "events" | "endpointslices" | "nodes")
}

pub(in crate::api) fn update(ctx: &mut Ctx, name: &str, sub: Option<&str>, mut obj: Value) -> ApiResult<(u16, Value)> {
    ctx.check_type_meta(&mut obj)?;
    ctx.check_namespace(&mut obj)?;
    if name_of(&obj).is_empty() {
        meta_mut(&mut obj).insert("name".into(), json!(name));
    }
    if name_of(&obj) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(&obj)
        )));
    }
    if sub == Some("scale") {
        return scale_update(ctx, name, obj, None);
    }
    let obj = ctx.decode_typed(obj)?;
    let precondition = rv_of(&obj).map(str::to_string);
    if ctx.state.store.get(&ctx.key(name)).is_none() && sub.is_none() && create_on_update(ctx.res) {
        if precondition.is_some() {
            return Err(ctx.not_found(name));
        }
        return create(ctx, obj);
    }
    let new = ctx.to_storage(obj);
    commit_change(ctx, name, |ctx, old| {
        if let Some(rv) = &precondition {
            if rv_of(old) != Some(rv.as_str()) {
                return Err(conflict(ctx, name));
            }
        }
        finish_update(ctx, old, new, sub, Change::Update)
    })
}

pub(super) fn conflict(ctx: &Ctx, name: &str) -> ApiError {
    ApiError::conflict(
        ctx.res.plural,
        ctx.res.group,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// Runs `decide` on the current object under the store's lock and commits its write.
pub(super) fn commit_change<F>(ctx: &Ctx, name: &str, decide: F) -> ApiResult<(u16, Value)>
where
    F: FnOnce(&Ctx, &Value) -> ApiResult<Write>,
{
    // Addresses taken by this write (given back if it fails or is a dry run) and those the object
    // stops holding (given back once the write is stored).
    let taken = std::cell::RefCell::new(Taken::default());
    let freed = std::cell::RefCell::new(Taken::default());
    let decide = |ctx: &Ctx, old: &Value| -> ApiResult<Write> {
        match decide(ctx, old)? {
            Write::Put(mut new) if ctx.res.plural == "services" => {
                let t = ctx.state.ipam.allocate_service(&mut new, Some(old)).map_err(|e| ctx.invalid(name, &e))?;
                *taken.borrow_mut() = t;
                *freed.borrow_mut() = ctx.state.ipam.released_by_update(old, &new);
                Ok(Write::Put(new))
            }
            Write::Delete => {
                *freed.borrow_mut() = held_addresses(ctx, old);
                Ok(Write::Delete)
            }
            other => Ok(other),
        }
    };
    if ctx.query.dry_run {
        let cur = ctx.state.store.get(&ctx.key(name)).ok_or_else(|| ctx.not_found(name))?;
        let old = cur.value();
        let result = decide(ctx, &old);
        ctx.state.ipam.release(&taken.borrow());
        return Ok(match result? {
            Write::Put(v) => (200, ctx.present(v)),
            Write::Delete | Write::Keep => (200, ctx.present(old)),
        });
    }
    let written = ctx.state.store.write(&ctx.key(name), ctx.ephemeral(), |cur: Option<&Stored>| {
        let cur = cur.ok_or_else(|| ctx.not_found(name))?;
        decide(ctx, &cur.value())
    });
    match &written {
        Ok(_) => ctx.state.ipam.release(&freed.borrow()),
        Err(_) => ctx.state.ipam.release(&taken.borrow()),
    }
    Ok((200, ctx.present(written_value(&written?))))
}

/// The cluster IP, node ports or pod CIDR an object holds: freed when it is deleted.
pub(super) fn held_addresses(ctx: &Ctx, obj: &Value) -> Taken {
    match ctx.res.plural {
        "services" => ctx.state.ipam.taken_by_service(obj),
        "nodes" => ctx.state.ipam.taken_by_node(obj),
        _ => Taken::default(),
    }
}

/// Allocates what a new object needs (Services: cluster IP and node ports).
pub(super) fn allocate_new(ctx: &Ctx, name: &str, obj: &mut Value) -> ApiResult<Taken> {
    if ctx.res.plural != "services" {
        return Ok(Taken::default());
    }
    ctx.state.ipam.allocate_service(obj, None).map_err(|e| ctx.invalid(name, &e))
}

/// Stores a new object, giving back its addresses if the write fails or is a dry run.
pub(super) fn store_new(ctx: &Ctx, name: &str, mut obj: Value, conflict_on_exists: bool) -> ApiResult<(u16, Value)> {
    let taken = allocate_new(ctx, name, &mut obj)?;
    if ctx.query.dry_run {
        ctx.state.ipam.release(&taken);
        if ctx.state.store.get(&ctx.key(name)).is_some() {
            return Err(ApiError::already_exists(ctx.res.plural, ctx.res.group, name));
        }
        return Ok((201, ctx.present(obj)));
    }
    let written = ctx.state.store.write(&ctx.key(name), ctx.ephemeral(), |cur| match cur {
        Some(_) if conflict_on_exists => {
            Err(ApiError::conflict(ctx.res.plural, ctx.res.group, name, "the object was created concurrently; retry"))
        }
        Some(_) => Err(ApiError::already_exists(ctx.res.plural, ctx.res.group, name)),
        None => Ok(Write::Put(obj)),
    });
    if written.is_err() {
        ctx.state.ipam.release(&taken);
    }
    Ok((201, ctx.present(written_value(&written?))))
}

pub(super) fn patch(
    ctx: &mut Ctx,
    name: &str,
    sub: Option<&str>,
    content_type: Option<&str>,
    bytes: &[u8],
) -> ApiResult<(u16, Value)> {
    let mt = body::media_type(content_type);
    let patch_doc = match mt.as_str() {
        "application/apply-patch+yaml" => body::decode_yaml(bytes)?,
        "application/json-patch+json" | "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            body::decode_json(bytes)?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if sub == Some("scale") {
        let current = get_value(ctx, name)?;
        let scale = scale_of(ctx, &current)?;
        let patched = apply_plain_patch(
            &mt,
            &scale,
            &patch_doc,
            &edge_patch::TypeRef { group: "autoscaling", version: "v1", kind: "Scale" },
        )?;
        return scale_update(ctx, name, patched, rv_of(&patch_doc).map(str::to_string));
    }
    if mt == "application/apply-patch+yaml" {
        return apply(ctx, name, sub, patch_doc);
    }
    let ty = ctx.type_ref();
    let exists = ctx.state.store.get(&ctx.key(name)).is_some();
    if !exists {
        return Err(ctx.not_found(name));
    }
    // Decoding happens inside the lock so the patch applies to exactly the object it replaces.
    let mut warnings = Vec::new();
    let result = {
        let ctx_ref: &Ctx = ctx;
        commit_change(ctx_ref, name, |ctx, old| {
            let current = ctx.present(old.clone());
            let mut patched = apply_plain_patch(&mt, &current, &patch_doc, &ty)?;
            if !patched.is_object() {
                return Err(ApiError::bad_request("the patch turned the object into a non-object"));
            }
            ctx.check_type_meta(&mut patched)?;
            let precondition = rv_of(&patched).map(str::to_string);
            if precondition.is_some() && precondition.as_deref() != rv_of(old) {
                return Err(conflict(ctx, name));
            }
            let mut scratch = Ctx {
                state: ctx.state,
                res: ctx.res,
                namespace: ctx.namespace.clone(),
                query: ctx.query.clone(),
                user: ctx.user,
                headers: ctx.headers.clone(),
                warnings: Vec::new(),
            };
            let typed = scratch.decode_typed(patched)?;
            warnings = scratch.warnings;
            finish_update(ctx, old, ctx.to_storage(typed), sub, Change::Update)
        })
    };
    ctx.warnings.extend(warnings);
    result
}

pub(super) fn apply_plain_patch(
    mt: &str,
    current: &Value,
    patch_doc: &Value,
    ty: &edge_patch::TypeRef,
) -> ApiResult<Value> {
    match mt {
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_value(patch_doc.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
            Ok(doc)
        }
        "application/merge-patch+json" => Ok(edge_patch::merge_patch(current, patch_doc)),
        _ => edge_patch::strategic_merge(current, patch_doc, ty).map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

/// Server-side apply: creates the object when missing, otherwise merges the applied configuration
/// with field ownership, answering 409 with the conflicting fields unless forced.
pub(super) fn apply(ctx: &mut Ctx, name: &str, sub: Option<&str>, mut applied: Value) -> ApiResult<(u16, Value)> {
    if ctx.query.field_manager.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request("PATCH, application/apply-patch+yaml requests require fieldManager"));
    }
    ctx.check_type_meta(&mut applied)?;
    ctx.check_namespace(&mut applied)?;
    if name_of(&applied) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(&applied)
        )));
    }
    let applied = ctx.decode_typed(applied)?;
    let manager = ctx.manager();
    let ty = ctx.type_ref();
    let now = now_rfc3339();
    let force = ctx.query.force;
    let ssa = |live: Option<&Value>| -> ApiResult<Value> {
        edge_patch::apply::server_side_apply(live, &applied, &manager, force, &ty, &now)
            .map_err(|e| apply_error(ctx, name, e))
    };
    if ctx.state.store.get(&ctx.key(name)).is_none() {
        let obj = ssa(None)?;
        let managed = obj["metadata"]["managedFields"].clone();
        let obj = ctx.decode_typed(obj)?;
        let (obj, name) = prepare_new(ctx, obj, Some(managed))?;
        ctx.namespace_usable()?;
        return store_new(ctx, &name, obj, true);
    }
    let ctx_ref: &Ctx = ctx;
    commit_change(ctx_ref, name, |ctx, old| {
        let current = ctx.present(old.clone());
        let merged = ssa(Some(&current))?;
        let managed = merged["metadata"]["managedFields"].clone();
        let mut new = ctx.to_storage(merged);
        if !managed.is_null() {
            meta_mut(&mut new).insert("managedFields".into(), managed);
        }
        finish_update(ctx, old, new, sub, Change::Applied)
    })
}

pub(super) fn apply_error(ctx: &Ctx, name: &str, e: edge_patch::apply::ApplyError) -> ApiError {
    match &e {
        edge_patch::apply::ApplyError::Conflicts(conflicts) => {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version), "field": c.field}))
                .collect();
            ApiError {
                code: 409,
                reason: "Conflict",
                message: e.to_string(),
                details: Some(json!({"name": name, "group": ctx.res.group, "kind": ctx.res.plural, "causes": causes})),
            }
        }
        #[allow(unreachable_patterns)]
        _ => ApiError::bad_request(e.to_string()),
    }
}
