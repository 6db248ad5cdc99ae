//! Reads: get, list (selectors, paging, Tables) and the verbatim fast path.

use super::*;

pub(in crate::api) fn get_value(ctx: &Ctx, name: &str) -> ApiResult<Value> {
    let stored = ctx.state.store.get(&ctx.key(name)).ok_or_else(|| ctx.not_found(name))?;
    Ok(ctx.present(stored.value()))
}

pub(super) fn get(ctx: &Ctx, name: &str, as_table: bool) -> ApiResult<Value> {
    let obj = get_value(ctx, name)?;
    if as_table {
        let rv = obj["metadata"]["resourceVersion"].clone();
        return Ok(table::build(
            ctx.res,
            std::slice::from_ref(&obj),
            json!({"resourceVersion": rv}),
            ctx.query.include_object.as_deref(),
        ));
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
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
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
pub(super) fn list_verbatim(ctx: &Ctx, as_table: bool) -> ApiResult<Option<bytes::Bytes>> {
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
pub(super) struct Continue {
    rv: i64,
    ns: String,
    name: String,
}

pub(super) fn list(ctx: &Ctx, as_table: bool) -> ApiResult<Value> {
    let sel = Selectors::parse(ctx)?;
    let resource = ctx.res.store_key();
    let (after, list_rv) = match &ctx.query.continue_token {
        Some(token) => {
            let bad = || {
                ApiError::bad_request(
                    "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
                )
            };
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
        let token =
            serde_json::to_vec(&Continue { rv: list_rv, ns: key.namespace, name: key.name }).unwrap_or_default();
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
