//! The API for code inside edge-server (controllers): the same verbs, defaulting, validation,
//! preconditions and managed fields as HTTP requests, without the loopback connection.

use std::sync::Arc;

use hyper::HeaderMap;
use serde_json::Value;

use super::auth::User;
use super::handlers::{self, Ctx};
use super::query::Query;
use super::status::ApiResult;
use super::ApiState;
use crate::resources::Resource;

#[derive(Clone)]
pub struct LocalClient {
    state: Arc<ApiState>,
    user: User,
    manager: String,
}

impl LocalClient {
    /// A client acting as `manager` (the field manager its writes are recorded under).
    pub fn new(state: Arc<ApiState>, manager: &str) -> LocalClient {
        LocalClient {
            state,
            user: User {
                name: format!("system:serviceaccount:kube-system:{manager}"),
                groups: vec!["system:serviceaccounts".into()],
            },
            manager: manager.to_string(),
        }
    }

    pub fn state(&self) -> &Arc<ApiState> {
        &self.state
    }

    fn ctx(&self, res: &'static Resource, namespace: Option<&str>) -> Ctx<'_> {
        let query = Query { field_manager: Some(self.manager.clone()), ..Query::default() };
        Ctx {
            state: &self.state,
            res,
            namespace: namespace.filter(|n| !n.is_empty()).map(str::to_string),
            query,
            user: &self.user,
            headers: HeaderMap::new(),
            warnings: Vec::new(),
        }
    }

    pub fn get(&self, res: &'static Resource, namespace: Option<&str>, name: &str) -> ApiResult<Value> {
        handlers::get_value(&self.ctx(res, namespace), name)
    }

    pub fn create(&self, res: &'static Resource, namespace: Option<&str>, obj: Value) -> ApiResult<Value> {
        handlers::create(&mut self.ctx(res, namespace), obj).map(|(_, v)| v)
    }

    /// Replaces the object; conditional when `obj` carries a resourceVersion.
    pub fn update(&self, res: &'static Resource, namespace: Option<&str>, obj: Value) -> ApiResult<Value> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        handlers::update(&mut self.ctx(res, namespace), &name, None, obj).map(|(_, v)| v)
    }

    pub fn update_status(&self, res: &'static Resource, namespace: Option<&str>, obj: Value) -> ApiResult<Value> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        handlers::update(&mut self.ctx(res, namespace), &name, Some("status"), obj).map(|(_, v)| v)
    }

    /// Deletes with upstream DeleteOptions (`{"propagationPolicy": "Background", "preconditions": {...}}`).
    pub fn delete(
        &self,
        res: &'static Resource,
        namespace: Option<&str>,
        name: &str,
        options: &Value,
    ) -> ApiResult<Value> {
        let body = if options.is_null() { Vec::new() } else { serde_json::to_vec(options).unwrap_or_default() };
        handlers::delete(&self.ctx(res, namespace), name, &body).map(|(_, v)| v)
    }

    /// The pods/binding subresource: assigns a pod to a node.
    pub fn bind(
        &self,
        res: &'static Resource,
        namespace: Option<&str>,
        name: &str,
        binding: Value,
    ) -> ApiResult<Value> {
        handlers::bind(&self.ctx(res, namespace), name, binding)
    }
}
