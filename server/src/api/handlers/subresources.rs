//! The scale and binding subresources, and the review kinds answered on the spot.

use super::*;

pub(super) fn label_selector_string(selector: &Value) -> String {
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

pub(super) fn scale_of(ctx: &Ctx, obj: &Value) -> ApiResult<Value> {
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

pub(super) fn scale_update(
    ctx: &mut Ctx,
    name: &str,
    scale: Value,
    precondition: Option<String>,
) -> ApiResult<(u16, Value)> {
    let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            &[FieldError::invalid("spec.replicas", &json!(replicas), "must be greater than or equal to 0")],
        ));
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

pub(in crate::api) fn bind(ctx: &Ctx, name: &str, binding: Value) -> ApiResult<Value> {
    let node = binding["target"]["name"].as_str().unwrap_or_default().to_string();
    if node.is_empty() {
        return Err(ApiError::invalid("Binding", "", name, &[FieldError::required("target.name", "")]));
    }
    commit_change(ctx, name, |ctx, old| {
        if old["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
            return Err(ApiError::conflict(
                ctx.res.plural,
                "",
                name,
                &format!(
                    "pod {name} is already assigned to node {:?}",
                    old["spec"]["nodeName"].as_str().unwrap_or_default()
                ),
            ));
        }
        if old["metadata"]["deletionTimestamp"].is_string() {
            return Err(ApiError::conflict(
                ctx.res.plural,
                "",
                name,
                "pod is being deleted, cannot be assigned to a host",
            ));
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

pub(super) fn review(ctx: &Ctx, mut obj: Value) -> ApiResult<Value> {
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
