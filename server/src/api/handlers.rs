//! The REST verbs on stored resources: get, list, create, update, patch, delete, deletecollection and
//! the status/scale/binding subresources, with upstream's semantics for metadata, preconditions and
//! errors. Every write decides its outcome under the store's lock, so a write either fully happens
//! or leaves nothing behind.

use std::sync::Arc;

use base64::Engine;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response};
use serde_json::{json, Map, Value};

use super::auth::User;
use super::body;
use super::path::Target;
use super::query::{FieldValidation, Query};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{qualified, ApiError, ApiResult, FieldError};
use super::{json_response, table, watch, ApiState, Body};
use crate::admission::{self, convert, defaults, validation};
use crate::ipam::Taken;
use crate::resources::{Resource, Shape, Tier};
use crate::store::{Key, Stored, Write, Written};

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One request on a resource, with everything the verbs need.
pub struct Ctx<'a> {
    pub state: &'a ApiState,
    pub res: &'static Resource,
    pub namespace: Option<String>,
    pub query: Query,
    pub user: &'a User,
    pub headers: HeaderMap,
    pub warnings: Vec<String>,
}

pub async fn dispatch(state: &Arc<ApiState>, user: &User, target: Target, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let (parts, incoming) = req.into_parts();
    let mut query = Query::parse(parts.uri.query())?;
    if target.watch_prefix {
        query.watch = true;
    }
    let res = target.resource;
    if res.namespaced && target.namespace.is_none() && (target.name.is_some() || parts.method != Method::GET) {
        return Err(ApiError::path_not_found());
    }
    if !res.namespaced && target.namespace.is_some() {
        return Err(ApiError::path_not_found());
    }
    let mut ctx = Ctx { state, res, namespace: target.namespace.clone(), query, user, headers: parts.headers, warnings: Vec::new() };
    let accept = ctx.headers.get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let as_table = table::wanted(&accept);
    let content_type = ctx.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let sub = target.subresource.as_deref();
    if let Some(s) = sub {
        if !res.has_subresource(s) {
            return Err(ApiError::path_not_found());
        }
    }
    if res.shape == Shape::Review {
        if parts.method != Method::POST || target.name.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let bytes = body::read(incoming).await?;
        let obj = body::decode_object(content_type.as_deref(), &bytes)?;
        return Ok(json_response(201, &review(&ctx, obj)?));
    }
    let (code, value) = match (&parts.method, target.name.as_deref(), sub) {
        (&Method::GET, None, None) if ctx.query.watch => return watch::serve(&ctx, as_table),
        (&Method::GET, None, None) => {
            if let Some(bytes) = list_verbatim(&ctx, as_table)? {
                return Ok(super::json_bytes(200, bytes));
            }
            (200, list(&ctx, as_table)?)
        }
        (&Method::GET, Some(name), None) if ctx.query.watch => {
            // A watch on one object: upstream turns the name into a field selector.
            let sel = format!("metadata.name={name}");
            ctx.query.field_selector = Some(match ctx.query.field_selector.take() {
                Some(f) if !f.is_empty() => format!("{f},{sel}"),
                _ => sel,
            });
            return watch::serve(&ctx, as_table);
        }
        (&Method::GET, Some(name), None | Some("status")) if !as_table && ctx.res.version == ctx.res.storage_version => {
            // Stored JSON is already what the client gets: serve the bytes as they are.
            let stored = ctx.state.store.get(&ctx.key(name)).ok_or_else(|| ctx.not_found(name))?;
            return Ok(super::json_bytes(200, stored.json));
        }
        (&Method::GET, Some(name), None | Some("status")) => (200, get(&ctx, name, as_table)?),
        (&Method::GET, Some(name), Some("scale")) => (200, scale_of(&ctx, &get_value(&ctx, name)?)?),
        (&Method::POST, None, None) => {
            let bytes = body::read(incoming).await?;
            let obj = body::decode_object(content_type.as_deref(), &bytes)?;
            create(&mut ctx, obj)?
        }
        (&Method::POST, Some(name), Some("binding")) => {
            let bytes = body::read(incoming).await?;
            let obj = body::decode_object(content_type.as_deref(), &bytes)?;
            (201, bind(&ctx, name, obj)?)
        }
        (&Method::PUT, Some(name), sub) => {
            let bytes = body::read(incoming).await?;
            let obj = body::decode_object(content_type.as_deref(), &bytes)?;
            update(&mut ctx, name, sub, obj)?
        }
        (&Method::PATCH, Some(name), sub) => {
            let bytes = body::read(incoming).await?;
            patch(&mut ctx, name, sub, content_type.as_deref(), &bytes)?
        }
        (&Method::DELETE, Some(name), None) => {
            let bytes = body::read(incoming).await?;
            delete(&ctx, name, &bytes)?
        }
        (&Method::DELETE, None, None) => {
            let bytes = body::read(incoming).await?;
            (200, delete_collection(&ctx, &bytes)?)
        }
        (_, Some(_), Some("log" | "exec" | "attach" | "portforward" | "eviction" | "ephemeralcontainers")) => {
            return Err(ApiError::new(503, "ServiceUnavailable", "this subresource needs the node agent, which this edge-server build does not run yet"));
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    let mut resp = json_response(code, &value);
    for w in &ctx.warnings {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("299 - {:?}", w)) {
            resp.headers_mut().append("Warning", v);
        }
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the verbs.

impl Ctx<'_> {
    fn key(&self, name: &str) -> Key {
        Key::new(self.res.store_key(), self.namespace.clone().unwrap_or_default(), name)
    }

    fn ephemeral(&self) -> bool {
        self.res.tier == Tier::Ephemeral
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(self.res.plural, self.res.group, name)
    }

    /// The field manager: the query parameter, else the User-Agent's program name (upstream's rule).
    fn manager(&self) -> String {
        if let Some(m) = &self.query.field_manager {
            return m.clone();
        }
        let ua = self.headers.get(hyper::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("unknown");
        ua.split('/').next().unwrap_or("unknown").to_string()
    }

    fn type_ref(&self) -> edge_patch::TypeRef<'static> {
        edge_patch::TypeRef { group: self.res.group, version: self.res.version, kind: self.res.kind }
    }

    /// Stored (storage-version) JSON to the version this request speaks.
    fn present(&self, stored: Value) -> Value {
        if self.res.version == self.res.storage_version {
            return stored;
        }
        convert::from_storage(self.res.group, self.res.kind, stored, self.res.version)
    }

    fn to_storage(&self, obj: Value) -> Value {
        if self.res.version == self.res.storage_version {
            return obj;
        }
        convert::to_storage(self.res.group, self.res.kind, obj, self.res.version)
    }

    fn invalid(&self, name: &str, errors: &[FieldError]) -> ApiError {
        ApiError::invalid(self.res.kind, self.res.group, name, errors)
    }

    /// Type-checks `obj` through the upstream type, reporting unknown fields per fieldValidation.
    fn decode_typed(&mut self, obj: Value) -> ApiResult<Value> {
        let typed = (self.res.roundtrip)(obj.clone()).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                self.res.kind, self.res.version, self.res.kind
            ))
        })?;
        let mut unknown = Vec::new();
        unknown_fields(&obj, &typed, "", &mut unknown);
        if !unknown.is_empty() {
            match self.query.field_validation {
                FieldValidation::Strict => {
                    let list: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        self.res.kind,
                        self.res.version,
                        self.res.kind,
                        list.join(", ")
                    )));
                }
                FieldValidation::Warn => self.warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\""))),
                FieldValidation::Ignore => {}
            }
        }
        Ok(typed)
    }

    /// apiVersion/kind must match the URL's resource; missing ones are filled in.
    fn check_type_meta(&self, obj: &mut Value) -> ApiResult<()> {
        let want_av = self.res.api_version();
        let map = obj.as_object_mut().ok_or_else(|| ApiError::bad_request("the request body must be an object"))?;
        match map.get("apiVersion").and_then(Value::as_str) {
            Some(av) if av != want_av => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )))
            }
            _ => {
                map.insert("apiVersion".into(), json!(want_av));
            }
        }
        match map.get("kind").and_then(Value::as_str) {
            Some(k) if k != self.res.kind => {
                return Err(ApiError::bad_request(format!("the kind in the data ({k}) does not match the expected kind ({})", self.res.kind)))
            }
            _ => {
                map.insert("kind".into(), json!(self.res.kind));
            }
        }
        if !matches!(map.get("metadata"), Some(Value::Object(_))) {
            map.insert("metadata".into(), json!({}));
        }
        Ok(())
    }

    /// The URL's namespace wins; a different one in the body is an error.
    fn check_namespace(&self, obj: &mut Value) -> ApiResult<()> {
        let meta = meta_mut(obj);
        if self.res.namespaced {
            let url_ns = self.namespace.clone().unwrap_or_default();
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    meta.insert("namespace".into(), json!(url_ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    fn namespace_usable(&self) -> ApiResult<()> {
        let Some(ns) = &self.namespace else { return Ok(()) };
        match self.state.store.get(&Key::new("namespaces", "", ns.as_str())) {
            None => Err(ApiError::not_found("namespaces", "", ns)),
            Some(s) if s.value()["metadata"]["deletionTimestamp"].is_string() => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    qualified(self.res.plural, self.res.group),
                    "",
                ),
            )),
            Some(_) => Ok(()),
        }
    }
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !matches!(obj.get("metadata"), Some(Value::Object(_))) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        // Just made sure it is an object.
        _ => unreachable!("metadata is an object"),
    }
}

/// Paths present (non-null) in `input` but gone after decoding into the upstream type.
fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get(k) {
                    None if !v.is_null() => out.push(p),
                    Some(tv) => unknown_fields(v, tv, &p, out),
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn rv_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["resourceVersion"].as_str().filter(|s| !s.is_empty())
}

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

fn written_value(w: &Written) -> Value {
    match w {
        Written::Put { stored, .. } | Written::Deleted(stored) | Written::Unchanged(stored) => stored.value(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reads.

pub(super) fn get_value(ctx: &Ctx, name: &str) -> ApiResult<Value> {
    let stored = ctx.state.store.get(&ctx.key(name)).ok_or_else(|| ctx.not_found(name))?;
    Ok(ctx.present(stored.value()))
}

fn get(ctx: &Ctx, name: &str, as_table: bool) -> ApiResult<Value> {
    let obj = get_value(ctx, name)?;
    if as_table {
        let rv = obj["metadata"]["resourceVersion"].clone();
        return Ok(table::build(ctx.res, std::slice::from_ref(&obj), json!({"resourceVersion": rv}), ctx.query.include_object.as_deref()));
    }
    Ok(obj)
}

pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(ctx: &Ctx) -> ApiResult<Selectors> {
        let labels = LabelSelector::parse(ctx.query.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(ctx.query.field_selector.as_deref().unwrap_or(""), ctx.res.field_selectors)
            .map_err(|e| ApiError::bad_request(format!("{e}")))?;
        Ok(Selectors { labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj["metadata"]["labels"].as_object()) && self.fields.matches(obj)
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

/// A list without selectors, paging or conversion is the stored JSON of each item spliced into
/// the list envelope, with no parsing: the common case for informers' relists.
fn list_verbatim(ctx: &Ctx, as_table: bool) -> ApiResult<Option<bytes::Bytes>> {
    let q = &ctx.query;
    let plain = !as_table
        && q.limit.is_none()
        && q.continue_token.is_none()
        && q.label_selector.as_deref().is_none_or(str::is_empty)
        && q.field_selector.as_deref().is_none_or(str::is_empty)
        && ctx.res.version == ctx.res.storage_version;
    if !plain {
        return Ok(None);
    }
    let (items, rev) = ctx.state.store.list(&ctx.res.store_key(), ctx.namespace.as_deref(), None);
    let mut out = Vec::with_capacity(128 + items.iter().map(|(_, s)| s.json.len() + 1).sum::<usize>());
    out.extend_from_slice(
        format!(
            "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rev}\"}},\"items\":[",
            ctx.res.kind,
            ctx.res.api_version()
        )
        .as_bytes(),
    );
    for (i, (_, stored)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&stored.json);
    }
    out.extend_from_slice(b"]}");
    Ok(Some(out.into()))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: i64,
    ns: String,
    name: String,
}

fn list(ctx: &Ctx, as_table: bool) -> ApiResult<Value> {
    let sel = Selectors::parse(ctx)?;
    let resource = ctx.res.store_key();
    let (after, list_rv) = match &ctx.query.continue_token {
        Some(token) => {
            let bad = || ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
            let c: Continue = serde_json::from_slice(&raw).map_err(|_| bad())?;
            (Some(Key::new(resource.clone(), c.ns, c.name)), Some(c.rv))
        }
        None => (None, None),
    };
    let (items, rev) = ctx.state.store.list(&resource, ctx.namespace.as_deref(), after.as_ref());
    let list_rv = list_rv.unwrap_or(rev);
    let limit = ctx.query.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut next: Option<Key> = None;
    let mut remaining = 0i64;
    for (key, stored) in items {
        let obj = ctx.present(stored.value());
        if !sel.matches(&obj) {
            continue;
        }
        if out.len() < limit {
            out.push(obj);
            if out.len() == limit {
                next = Some(key);
            }
        } else {
            remaining += 1;
        }
    }
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if let Some(key) = next.filter(|_| remaining > 0) {
        let token = serde_json::to_vec(&Continue { rv: list_rv, ns: key.namespace, name: key.name }).unwrap_or_default();
        metadata["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
        metadata["remainingItemCount"] = json!(remaining);
    }
    if as_table {
        return Ok(table::build(ctx.res, &out, metadata, ctx.query.include_object.as_deref()));
    }
    Ok(json!({
        "kind": format!("{}List", ctx.res.kind),
        "apiVersion": ctx.res.api_version(),
        "metadata": metadata,
        "items": out,
    }))
}

// ---------------------------------------------------------------------------------------------
// Create.

pub(super) fn create(ctx: &mut Ctx, mut obj: Value) -> ApiResult<(u16, Value)> {
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
fn prepare_new(ctx: &Ctx, mut obj: Value, managed: Option<Value>) -> ApiResult<(Value, String)> {
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
            let tracked = edge_patch::apply::track_update(None, &ctx.present(obj.clone()), &ctx.manager(), None, &ctx.type_ref(), &now);
            tracked["metadata"]["managedFields"].clone()
        }
    };
    if !managed.is_null() {
        meta_mut(&mut obj).insert("managedFields".into(), managed);
    }
    Ok((obj, name))
}

// ---------------------------------------------------------------------------------------------
// Update and patch.

/// How a changed object arrives at `finish_update`.
enum Change {
    /// A plain write by the request's manager (update, JSON/merge/strategic patch).
    Update,
    /// Server-side apply: managedFields already computed.
    Applied,
}

/// Turns a requested new state into the write: keeps server-owned fields, applies the subresource
/// rules, defaults, validates, tracks managed fields, and drops writes that change nothing.
fn finish_update(ctx: &Ctx, old: &Value, mut new: Value, sub: Option<&str>, change: Change) -> ApiResult<Write> {
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
        for key in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace"] {
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
            v["metadata"]["finalizers"].as_array().into_iter().flatten().filter_map(|f| f.as_str().map(str::to_string)).collect()
        };
        let (before, after) = (finalizers_of(old), finalizers_of(&new));
        if after.iter().any(|f| !before.contains(f)) {
            return Err(ctx.invalid(&name, &[FieldError::forbidden("metadata.finalizers", "no new finalizers can be added if the object is being deleted")]));
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
fn create_on_update(res: &Resource) -> bool {
    matches!(res.plural, "leases" | "endpoints" | "events" | "endpointslices" | "nodes")
}

pub(super) fn update(ctx: &mut Ctx, name: &str, sub: Option<&str>, mut obj: Value) -> ApiResult<(u16, Value)> {
    ctx.check_type_meta(&mut obj)?;
    ctx.check_namespace(&mut obj)?;
    if name_of(&obj).is_empty() {
        meta_mut(&mut obj).insert("name".into(), json!(name));
    }
    if name_of(&obj) != name {
        return Err(ApiError::bad_request(format!("the name of the object ({}) does not match the name on the URL ({name})", name_of(&obj))));
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

fn conflict(ctx: &Ctx, name: &str) -> ApiError {
    ApiError::conflict(
        ctx.res.plural,
        ctx.res.group,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// Runs `decide` on the current object under the store's lock and commits its write.
fn commit_change<F>(ctx: &Ctx, name: &str, decide: F) -> ApiResult<(u16, Value)>
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
fn held_addresses(ctx: &Ctx, obj: &Value) -> Taken {
    match ctx.res.plural {
        "services" => ctx.state.ipam.taken_by_service(obj),
        "nodes" => ctx.state.ipam.taken_by_node(obj),
        _ => Taken::default(),
    }
}

/// Allocates what a new object needs (Services: cluster IP and node ports).
fn allocate_new(ctx: &Ctx, name: &str, obj: &mut Value) -> ApiResult<Taken> {
    if ctx.res.plural != "services" {
        return Ok(Taken::default());
    }
    ctx.state.ipam.allocate_service(obj, None).map_err(|e| ctx.invalid(name, &e))
}

/// Stores a new object, giving back its addresses if the write fails or is a dry run.
fn store_new(ctx: &Ctx, name: &str, mut obj: Value, conflict_on_exists: bool) -> ApiResult<(u16, Value)> {
    let taken = allocate_new(ctx, name, &mut obj)?;
    if ctx.query.dry_run {
        ctx.state.ipam.release(&taken);
        if ctx.state.store.get(&ctx.key(name)).is_some() {
            return Err(ApiError::already_exists(ctx.res.plural, ctx.res.group, name));
        }
        return Ok((201, ctx.present(obj)));
    }
    let written = ctx.state.store.write(&ctx.key(name), ctx.ephemeral(), |cur| match cur {
        Some(_) if conflict_on_exists => Err(ApiError::conflict(ctx.res.plural, ctx.res.group, name, "the object was created concurrently; retry")),
        Some(_) => Err(ApiError::already_exists(ctx.res.plural, ctx.res.group, name)),
        None => Ok(Write::Put(obj)),
    });
    if written.is_err() {
        ctx.state.ipam.release(&taken);
    }
    Ok((201, ctx.present(written_value(&written?))))
}

fn patch(ctx: &mut Ctx, name: &str, sub: Option<&str>, content_type: Option<&str>, bytes: &[u8]) -> ApiResult<(u16, Value)> {
    let mt = body::media_type(content_type);
    let patch_doc = match mt.as_str() {
        "application/apply-patch+yaml" => body::decode_yaml(bytes)?,
        "application/json-patch+json" | "application/merge-patch+json" | "application/strategic-merge-patch+json" => body::decode_json(bytes)?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if sub == Some("scale") {
        let current = get_value(ctx, name)?;
        let scale = scale_of(ctx, &current)?;
        let patched = apply_plain_patch(&mt, &scale, &patch_doc, &edge_patch::TypeRef { group: "autoscaling", version: "v1", kind: "Scale" })?;
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

fn apply_plain_patch(mt: &str, current: &Value, patch_doc: &Value, ty: &edge_patch::TypeRef) -> ApiResult<Value> {
    match mt {
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_value(patch_doc.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &p).map_err(|e| ApiError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: {e}")))?;
            Ok(doc)
        }
        "application/merge-patch+json" => Ok(edge_patch::merge_patch(current, patch_doc)),
        _ => edge_patch::strategic_merge(current, patch_doc, ty).map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

/// Server-side apply: creates the object when missing, otherwise merges the applied configuration
/// with field ownership, answering 409 with the conflicting fields unless forced.
fn apply(ctx: &mut Ctx, name: &str, sub: Option<&str>, mut applied: Value) -> ApiResult<(u16, Value)> {
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
        edge_patch::apply::server_side_apply(live, &applied, &manager, force, &ty, &now).map_err(|e| apply_error(ctx, name, e))
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

fn apply_error(ctx: &Ctx, name: &str, e: edge_patch::apply::ApplyError) -> ApiError {
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

// ---------------------------------------------------------------------------------------------
// Scale and binding subresources.

fn label_selector_string(selector: &Value) -> String {
    let mut parts: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

fn scale_of(ctx: &Ctx, obj: &Value) -> ApiResult<Value> {
    if !ctx.res.has_subresource("scale") {
        return Err(ApiError::path_not_found());
    }
    let meta = &obj["metadata"];
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                      "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": label_selector_string(&obj["spec"]["selector"])},
    }))
}

fn scale_update(ctx: &mut Ctx, name: &str, scale: Value, precondition: Option<String>) -> ApiResult<(u16, Value)> {
    let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid("Scale", "autoscaling", name, &[FieldError::invalid("spec.replicas", &json!(replicas), "must be greater than or equal to 0")]));
    }
    let precondition = precondition.or_else(|| rv_of(&scale).map(str::to_string));
    let (code, obj) = commit_change(ctx, name, |ctx, old| {
        if let Some(rv) = &precondition {
            if rv_of(old) != Some(rv.as_str()) {
                return Err(conflict(ctx, name));
            }
        }
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        finish_update(ctx, old, new, Some("scale"), Change::Update)
    })?;
    Ok((code, scale_of(ctx, &obj)?))
}

pub(super) fn bind(ctx: &Ctx, name: &str, binding: Value) -> ApiResult<Value> {
    let node = binding["target"]["name"].as_str().unwrap_or_default().to_string();
    if node.is_empty() {
        return Err(ApiError::invalid("Binding", "", name, &[FieldError::required("target.name", "")]));
    }
    commit_change(ctx, name, |ctx, old| {
        if old["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
            return Err(ApiError::conflict(ctx.res.plural, "", name, &format!("pod {name} is already assigned to node {:?}", old["spec"]["nodeName"].as_str().unwrap_or_default())));
        }
        if old["metadata"]["deletionTimestamp"].is_string() {
            return Err(ApiError::conflict(ctx.res.plural, "", name, "pod is being deleted, cannot be assigned to a host"));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        let conditions = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
        conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}));
        new["status"]["conditions"] = json!(conditions);
        // Binding is the scheduler's write of spec.nodeName: it skips the main resource's rules.
        let m = meta_mut(&mut new);
        m.remove("resourceVersion");
        Ok(Write::Put(new))
    })?;
    Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))
}

// ---------------------------------------------------------------------------------------------
// Delete.

#[derive(Default)]
struct DeleteOptions {
    grace_period: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

fn delete_options(ctx: &Ctx, bytes: &[u8]) -> ApiResult<DeleteOptions> {
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
fn delete_decision(ctx: &Ctx, name: &str, old: &Value, opts: &DeleteOptions) -> ApiResult<Write> {
    let meta = &old["metadata"];
    if let Some(uid) = &opts.uid {
        if meta["uid"].as_str() != Some(uid.as_str()) {
            return Err(ApiError::conflict(ctx.res.plural, ctx.res.group, name, &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta["uid"].as_str().unwrap_or_default())));
        }
    }
    if let Some(rv) = &opts.resource_version {
        if meta["resourceVersion"].as_str() != Some(rv.as_str()) {
            return Err(ApiError::conflict(ctx.res.plural, ctx.res.group, name, &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", meta["resourceVersion"].as_str().unwrap_or_default())));
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
        Some("Foreground") if !finalizers.contains(&json!("foregroundDeletion")) => finalizers.push(json!("foregroundDeletion")),
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

fn deleted_status(ctx: &Ctx, obj: &Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": obj["metadata"]["name"], "group": ctx.res.group, "kind": ctx.res.plural, "uid": obj["metadata"]["uid"]},
    })
}

pub(super) fn delete(ctx: &Ctx, name: &str, bytes: &[u8]) -> ApiResult<(u16, Value)> {
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

fn delete_collection(ctx: &Ctx, bytes: &[u8]) -> ApiResult<Value> {
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
    Ok(json!({"kind": format!("{}List", ctx.res.kind), "apiVersion": ctx.res.api_version(), "metadata": {"resourceVersion": ctx.state.store.revision().to_string()}, "items": out}))
}

// ---------------------------------------------------------------------------------------------
// Reviews.

fn review(ctx: &Ctx, mut obj: Value) -> ApiResult<Value> {
    ctx.check_type_meta(&mut obj)?;
    match ctx.res.kind {
        "SelfSubjectAccessReview" => {
            // No authorization is enforced yet: every authenticated user may do everything.
            obj["status"] = json!({"allowed": true, "reason": "edge does not enforce RBAC yet: authenticated users may do everything"});
        }
        "SelfSubjectReview" => {
            obj["status"] = json!({"userInfo": {"username": ctx.user.name, "groups": ctx.user.all_groups()}});
        }
        _ => return Err(ApiError::method_not_allowed()),
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_found_by_path() {
        let input = json!({"spec": {"replicas": 1, "bogus": 2, "template": {"spec": {"containers": [{"name": "a", "imagex": "b"}]}}}, "extra": null});
        let typed = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a"}]}}}});
        let mut out = Vec::new();
        unknown_fields(&input, &typed, "", &mut out);
        assert_eq!(out, ["spec.bogus", "spec.template.spec.containers[0].imagex"]);
    }

    #[test]
    fn selectors_render_like_upstream() {
        let s = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]});
        assert_eq!(label_selector_string(&s), "app=web,tier in (a,b)");
    }
}
