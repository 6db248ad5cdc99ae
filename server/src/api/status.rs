//! API errors as upstream's `Status` objects: the code, reason and details kubectl and client
//! libraries branch on.

use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// One field error of a 422 Invalid (upstream's field.Error).
#[derive(Debug, Clone)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    pub field: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    Forbidden,
    NotSupported,
    Duplicate,
}

impl FieldError {
    pub fn new(kind: FieldErrorKind, field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { kind, field: field.into(), detail: detail.into() }
    }
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, detail)
    }
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl Into<String>) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        FieldError {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            detail: format!("Invalid value: {shown}: {}", detail.into()),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, detail)
    }

    fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
        }
    }

    /// Upstream's text: `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }

    /// The message without the field (upstream's ErrorBody), as a cause carries it.
    pub fn body(&self) -> String {
        match self.kind {
            FieldErrorKind::Required if self.detail.is_empty() => "Required value".to_string(),
            FieldErrorKind::Required => format!("Required value: {}", self.detail),
            FieldErrorKind::Forbidden => format!("Forbidden: {}", self.detail),
            FieldErrorKind::NotSupported => format!("Unsupported value: {}", self.detail),
            FieldErrorKind::Duplicate => format!("Duplicate value: {}", self.detail),
            FieldErrorKind::Invalid => self.detail.clone(),
        }
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        let qualified = qualified(resource, group);
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{qualified} \"{name}\" not found"),
            details: Some(json!({"name": name, "group": group, "kind": resource})),
        }
    }

    pub fn path_not_found() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", qualified(resource, group)),
            details: Some(json!({"name": name, "group": group, "kind": resource})),
        }
    }

    pub fn conflict(resource: &str, group: &str, name: &str, why: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!("Operation cannot be fulfilled on {} \"{name}\": {why}", qualified(resource, group)),
            details: Some(json!({"name": name, "group": group, "kind": resource})),
        }
    }

    pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let list: Vec<String> = errors.iter().map(FieldError::message).collect();
        let summary = if list.len() == 1 { list[0].clone() } else { format!("[{}]", list.join(", ")) };
        let causes: Vec<Value> =
            errors.iter().map(|e| json!({"reason": e.reason(), "message": e.body(), "field": e.field})).collect();
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {summary}", qualified(kind, group)),
            details: Some(json!({"name": name, "group": group, "kind": kind, "causes": causes})),
        }
    }

    pub fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {ct})"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn too_large() -> Self {
        Self::new(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// "deployments.apps" for grouped resources, "pods" for core ones: upstream's GroupResource string.
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as S;
        match e {
            S::Expired { .. } => ApiError::gone(e.to_string()),
            S::AlreadyExists | S::NotFound | S::Conflict => ApiError::internal(e.to_string()),
            S::Sqlite(_) | S::Encode(_) => {
                tracing::error!(error = %e, "store failure");
                ApiError::internal(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_upstream() {
        assert_eq!(ApiError::not_found("deployments", "apps", "web").message, "deployments.apps \"web\" not found");
        assert_eq!(ApiError::not_found("pods", "", "p").message, "pods \"p\" not found");
        let e = ApiError::invalid(
            "Deployment",
            "apps",
            "web",
            &[FieldError::invalid("spec.replicas", &json!(-1), "must be greater than or equal to 0")],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let e = ApiError::invalid("ConfigMap", "", "Bad", &[FieldError::invalid("metadata.name", &json!("Bad"), "x")]);
        assert_eq!(e.message, "ConfigMap \"Bad\" is invalid: metadata.name: Invalid value: \"Bad\": x");
    }
}
