//! Joining nodes, k3s-style: `GET /cacerts` hands out the cluster CA to anyone (the agent checks it
//! against the hash in its token), and `POST /v1-edge/node-certs` trades the join token and two CSRs
//! for the node's client certificate (`system:node:<name>` in `system:nodes`) and the serving
//! certificate of its kubelet API. Both answer before client-certificate authentication.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{json, Value};

use super::status::{ApiError, ApiResult};
use super::{body, full, json_response, ApiState, Body};
use crate::admission::validation::is_dns1123_subdomain;
use crate::pki::{NodeCertError, Pki};
use crate::token::JoinToken;

/// What the join endpoints need: the CA that signs and the token that admits.
pub struct Joiner {
    pki: Arc<Pki>,
    token: JoinToken,
}

impl Joiner {
    pub fn new(pki: Arc<Pki>, token: JoinToken) -> Joiner {
        Joiner { pki, token }
    }

    pub fn token(&self) -> &JoinToken {
        &self.token
    }
}

/// `GET /cacerts`: the CA certificate file as it is on disk (the token hashes exactly these bytes).
pub fn cacerts(state: &ApiState, method: &Method) -> ApiResult<Response<Body>> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let mut resp = Response::new(full(state.join.pki.ca_pem.clone()));
    resp.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/x-pem-file"));
    Ok(resp)
}

/// `POST /v1-edge/node-certs` with `Authorization: Basic base64("node:<secret>")`.
pub async fn node_certs(state: &ApiState, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| state.join.token.accepts_basic(h));
    if !authorized {
        return Err(ApiError::unauthorized());
    }
    let bytes = body::read(req.into_body()).await?;
    let request = NodeCertRequest::parse(&body::decode_json(&bytes)?)?;
    let certs = state
        .join
        .pki
        .sign_node(&request.node_name, &request.client_csr, &request.serving_csr, &request.addresses)
        .map_err(|e| match e {
            NodeCertError::ClientCsr(_) | NodeCertError::ServingCsr(_) | NodeCertError::Address(_) => {
                ApiError::bad_request(e.to_string())
            }
            NodeCertError::Sign(_) | NodeCertError::Ca(_) => ApiError::internal(e.to_string()),
        })?;
    tracing::info!(node = %request.node_name, addresses = ?request.addresses, "issued node certificates");
    Ok(json_response(
        200,
        &json!({"ca": state.join.pki.ca_pem, "clientCert": certs.client_cert, "servingCert": certs.serving_cert}),
    ))
}

#[derive(Debug, PartialEq)]
struct NodeCertRequest {
    node_name: String,
    client_csr: String,
    serving_csr: String,
    addresses: Vec<String>,
}

impl NodeCertRequest {
    fn parse(v: &Value) -> ApiResult<NodeCertRequest> {
        let text = |field: &str| -> ApiResult<String> {
            match &v[field] {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                Value::Null => Err(ApiError::bad_request(format!("{field}: Required value"))),
                _ => Err(ApiError::bad_request(format!("{field}: must be a non-empty string"))),
            }
        };
        let node_name = text("nodeName")?;
        if !is_dns1123_subdomain(&node_name) {
            return Err(ApiError::bad_request(format!(
                "nodeName: Invalid value: {node_name:?}: must be a lowercase RFC 1123 subdomain"
            )));
        }
        let addresses = match &v["addresses"] {
            Value::Null => Vec::new(),
            Value::Array(items) => items
                .iter()
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::bad_request("addresses: must be a list of strings"))?,
            _ => return Err(ApiError::bad_request("addresses: must be a list of strings")),
        };
        Ok(NodeCertRequest { node_name, client_csr: text("clientCsr")?, serving_csr: text("servingCsr")?, addresses })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_field_by_field() {
        let ok = json!({"nodeName": "n1", "clientCsr": "c", "servingCsr": "s", "addresses": ["10.0.0.5", "n1"]});
        assert_eq!(
            NodeCertRequest::parse(&ok).unwrap(),
            NodeCertRequest {
                node_name: "n1".into(),
                client_csr: "c".into(),
                serving_csr: "s".into(),
                addresses: vec!["10.0.0.5".into(), "n1".into()]
            }
        );
        let cases = [
            (json!({"clientCsr": "c", "servingCsr": "s"}), "nodeName: Required value"),
            (json!({"nodeName": "N_1", "clientCsr": "c", "servingCsr": "s"}), "nodeName: Invalid value: \"N_1\""),
            (json!({"nodeName": "n1", "servingCsr": "s"}), "clientCsr: Required value"),
            (json!({"nodeName": "n1", "clientCsr": "c", "servingCsr": 3}), "servingCsr: must be"),
            (json!({"nodeName": "n1", "clientCsr": "c", "servingCsr": "s", "addresses": [1]}), "addresses: must be"),
        ];
        for (input, want) in cases {
            let err = NodeCertRequest::parse(&input).unwrap_err();
            assert_eq!(err.code, 400);
            assert!(err.message.starts_with(want), "{input}: {}", err.message);
        }
    }
}
