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

mod delete;
mod read;
mod subresources;
mod write;

use delete::*;
use read::*;
use subresources::*;
use write::*;

pub(in crate::api) use delete::delete;
pub(in crate::api) use read::{get_value, Selectors};
pub(in crate::api) use subresources::bind;
pub(in crate::api) use write::{create, update};

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

pub async fn dispatch(
    state: &Arc<ApiState>,
    user: &User,
    target: Target,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    if let (Some(sub), Some(ns), Some(name)) = (&target.subresource, &target.namespace, &target.name) {
        let stream = super::kubelet::Stream::from_subresource(sub);
        if let Some(stream) = stream.filter(|_| target.resource.group.is_empty() && target.resource.plural == "pods") {
            return super::kubelet::serve(state, stream, ns, name, req).await;
        }
    }
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
    let mut ctx = Ctx {
        state,
        res,
        namespace: target.namespace.clone(),
        query,
        user,
        headers: parts.headers,
        warnings: Vec::new(),
    };
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
        (&Method::GET, Some(name), None | Some("status"))
            if !as_table && ctx.res.version == ctx.res.storage_version =>
        {
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
        (_, Some(_), Some("eviction" | "ephemeralcontainers")) => {
            return Err(ApiError::new(
                503,
                "ServiceUnavailable",
                "this subresource is not served by this edge-server build yet",
            ));
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
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    self.res.kind
                )))
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
