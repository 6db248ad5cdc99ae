//! Query parameters of the REST verbs.

use super::status::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    /// Upstream's default: unknown fields are dropped with a warning.
    #[default]
    Warn,
    Strict,
}

#[derive(Debug, Default, Clone)]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub watch: bool,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout_seconds: Option<u64>,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    pub force: bool,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub include_object: Option<String>,
}

fn boolean(v: &str) -> bool {
    v.is_empty() || v == "true" || v == "1"
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut q = Query::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "labelSelector" => q.label_selector = Some(v),
                "fieldSelector" => q.field_selector = Some(v),
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| ApiError::bad_request(format!("invalid limit {v:?}")))?;
                    q.limit = (n > 0).then_some(n as usize);
                }
                "continue" => q.continue_token = Some(v).filter(|s| !s.is_empty()),
                "resourceVersion" => q.resource_version = Some(v),
                "watch" => q.watch = boolean(&v),
                "allowWatchBookmarks" => q.allow_watch_bookmarks = boolean(&v),
                "sendInitialEvents" => q.send_initial_events = boolean(&v),
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(v.parse().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {v:?}")))?)
                }
                "dryRun" => {
                    if v != "All" {
                        return Err(ApiError::bad_request(format!("dryRun: Unsupported value: {v:?}: supported values: \"All\"")));
                    }
                    q.dry_run = true;
                }
                "fieldManager" => q.field_manager = Some(v),
                "fieldValidation" => {
                    q.field_validation = match v.as_str() {
                        "Ignore" => FieldValidation::Ignore,
                        "Warn" | "" => FieldValidation::Warn,
                        "Strict" => FieldValidation::Strict,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
                            )))
                        }
                    }
                }
                "force" => q.force = boolean(&v),
                "propagationPolicy" => q.propagation_policy = Some(v),
                "gracePeriodSeconds" => {
                    q.grace_period_seconds =
                        Some(v.parse().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {v:?}")))?)
                }
                "includeObject" => q.include_object = Some(v),
                _ => {}
            }
        }
        Ok(q)
    }
}
