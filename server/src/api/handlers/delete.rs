//! Delete and deletecollection: preconditions, finalizers, graceful pod termination and
//! propagation policies.

use super::*;

#[derive(Default)]
pub(super) struct DeleteOptions {
    pub(super) grace_period: Option<i64>,
    pub(super) propagation: Option<String>,
    pub(super) uid: Option<String>,
    pub(super) resource_version: Option<String>,
    pub(super) dry_run: bool,
}

pub(super) fn delete_options(ctx: &Ctx, bytes: &[u8]) -> ApiResult<DeleteOptions> {
    let mut o = DeleteOptions {
        grace_period: ctx.query.grace_period_seconds,
        propagation: ctx.query.propagation_policy.clone(),
        dry_run: ctx.query.dry_run,
        ..Default::default()
    };
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        let v = body::decode_json(bytes)?;
        if let Some(g) = v["gracePeriodSeconds"].as_i64() {
            o.grace_period = Some(g);
        }
        if let Some(p) = v["propagationPolicy"].as_str() {
            o.propagation = Some(p.to_string());
        }
        if v["orphanDependents"] == json!(true) {
            o.propagation = Some("Orphan".into());
        }
        o.uid = v["preconditions"]["uid"].as_str().map(str::to_string);
        o.resource_version = v["preconditions"]["resourceVersion"].as_str().map(str::to_string);
        if v["dryRun"].as_array().is_some_and(|d| d.iter().any(|x| x == "All")) {
            o.dry_run = true;
        }
    }
    if let Some(p) = &o.propagation {
        if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
            return Err(ApiError::bad_request(format!("propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\"")));
        }
    }
    Ok(o)
}

/// Decides what deleting `old` does: mark it (finalizers, graceful pod termination) or remove it.
pub(super) fn delete_decision(ctx: &Ctx, name: &str, old: &Value, opts: &DeleteOptions) -> ApiResult<Write> {
    let meta = &old["metadata"];
    if let Some(uid) = &opts.uid {
        if meta["uid"].as_str() != Some(uid.as_str()) {
            return Err(ApiError::conflict(
                ctx.res.plural,
                ctx.res.group,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta["uid"].as_str().unwrap_or_default()
                ),
            ));
        }
    }
    if let Some(rv) = &opts.resource_version {
        if meta["resourceVersion"].as_str() != Some(rv.as_str()) {
            return Err(ApiError::conflict(
                ctx.res.plural,
                ctx.res.group,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta["resourceVersion"].as_str().unwrap_or_default()
                ),
            ));
        }
    }
    let mut finalizers: Vec<Value> = meta["finalizers"].as_array().cloned().unwrap_or_default();
    let mut new = old.clone();
    // Namespaces go through Terminating: their content is removed before they are.
    if ctx.res.plural == "namespaces" {
        if meta["deletionTimestamp"].is_string() {
            return Ok(Write::Keep);
        }
        let m = meta_mut(&mut new);
        m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        new["status"]["phase"] = json!("Terminating");
        return Ok(Write::Put(new));
    }
    // A pod on a node terminates gracefully: the node's agent stops it and then removes it.
    let grace = if ctx.res.plural == "pods" && old["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
        let phase = old["status"]["phase"].as_str().unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            0
        } else {
            opts.grace_period.or_else(|| old["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30).max(0)
        }
    } else {
        0
    };
    match opts.propagation.as_deref() {
        Some("Foreground") if !finalizers.contains(&json!("foregroundDeletion")) => {
            finalizers.push(json!("foregroundDeletion"))
        }
        Some("Orphan") if !finalizers.contains(&json!("orphan")) => finalizers.push(json!("orphan")),
        _ => {}
    }
    if finalizers.is_empty() && grace == 0 {
        return Ok(Write::Delete);
    }
    let already = meta["deletionTimestamp"].is_string();
    let m = meta_mut(&mut new);
    if !already || grace < m.get("deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(i64::MAX) {
        let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
        m.insert("deletionTimestamp".into(), json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    if new == *old {
        return Ok(Write::Keep);
    }
    Ok(Write::Put(new))
}

pub(super) fn deleted_status(ctx: &Ctx, obj: &Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": obj["metadata"]["name"], "group": ctx.res.group, "kind": ctx.res.plural, "uid": obj["metadata"]["uid"]},
    })
}

pub(in crate::api) fn delete(ctx: &Ctx, name: &str, bytes: &[u8]) -> ApiResult<(u16, Value)> {
    let opts = delete_options(ctx, bytes)?;
    if opts.dry_run {
        let cur = ctx.state.store.get(&ctx.key(name)).ok_or_else(|| ctx.not_found(name))?;
        let old = cur.value();
        delete_decision(ctx, name, &old, &opts)?;
        return Ok((200, ctx.present(old)));
    }
    let written = ctx.state.store.write(&ctx.key(name), ctx.ephemeral(), |cur: Option<&Stored>| {
        let cur = cur.ok_or_else(|| ctx.not_found(name))?;
        delete_decision(ctx, name, &cur.value(), &opts)
    })?;
    if let Written::Deleted(s) = &written {
        ctx.state.ipam.release(&held_addresses(ctx, &s.value()));
    }
    Ok(match written {
        Written::Deleted(s) if ctx.res.plural != "pods" => (200, deleted_status(ctx, &s.value())),
        // Objects that remain (finalizers, graceful termination) come back as they are now.
        other => (200, ctx.present(written_value(&other))),
    })
}

pub(super) fn delete_collection(ctx: &Ctx, bytes: &[u8]) -> ApiResult<Value> {
    let sel = Selectors::parse(ctx)?;
    delete_options(ctx, bytes)?;
    let (items, _) = ctx.state.store.list(&ctx.res.store_key(), ctx.namespace.as_deref(), None);
    let mut out = Vec::new();
    for (key, stored) in items {
        let obj = ctx.present(stored.value());
        if !sel.matches(&obj) {
            continue;
        }
        let one = Ctx {
            state: ctx.state,
            res: ctx.res,
            namespace: Some(key.namespace.clone()).filter(|n| !n.is_empty()),
            query: ctx.query.clone(),
            user: ctx.user,
            headers: ctx.headers.clone(),
            warnings: Vec::new(),
        };
        match delete(&one, &key.name, bytes) {
            Ok(_) => out.push(obj),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(
        json!({"kind": format!("{}List", ctx.res.kind), "apiVersion": ctx.res.api_version(), "metadata": {"resourceVersion": ctx.state.store.revision().to_string()}, "items": out}),
    )
}
