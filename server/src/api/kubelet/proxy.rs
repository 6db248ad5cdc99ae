//! The proxy itself: logs are a streamed GET, exec/attach/port-forward an HTTP/1.1 upgrade
//! (WebSocket or SPDY/3.1) that, once the kubelet agrees with a 101, becomes a byte pipe between
//! the client and the kubelet, as upstream's upgrade-aware proxy does.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty, Limited, StreamBody};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::client::{join_host_port, KubeletError};
use super::location::{self, Params, Stream};
use crate::api::status::{ApiError, ApiResult};
use crate::api::{ApiState, Body};
use crate::resources;
use crate::store::Key;

/// How much of a kubelet's error body becomes the message (upstream's response checker reads as much).
const MAX_ERROR_BODY: usize = 50_000;

/// Serves `stream` for pod `namespace/name`.
pub async fn serve(
    state: &Arc<ApiState>,
    stream: Stream,
    namespace: &str,
    name: &str,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let allowed = match stream {
        Stream::Log => req.method() == Method::GET,
        _ => req.method() == Method::GET || req.method() == Method::POST,
    };
    if !allowed {
        return Err(ApiError::method_not_allowed());
    }
    let params = Params::parse(req.uri().query());
    let query = location::kubelet_query(stream, name, &params)?;
    let pod = get(state, "pods", namespace, name)?;
    let container = match stream {
        Stream::PortForward => String::new(),
        _ => location::container(&pod, params.container())?,
    };
    let node_name = match location::node_name(&pod) {
        Ok(n) => n,
        // Upstream serves an unscheduled pod's log as an empty stream.
        Err(_) if stream == Stream::Log => return Ok(text_response(StatusCode::OK, Empty::new().boxed_unsync())),
        Err(e) => return Err(e),
    };
    let (host, port) = location::kubelet_endpoint(&get(state, "nodes", "", node_name)?)?;
    let path = location::kubelet_path(stream, namespace, name, &container, &query);
    match stream {
        Stream::Log => logs(state, &host, port, &path, name).await,
        _ => upgrade(state, &host, port, &path, req).await,
    }
}

fn get(state: &ApiState, plural: &str, namespace: &str, name: &str) -> ApiResult<Value> {
    let res = resources::must("", "v1", plural);
    let stored = state
        .store
        .get(&Key::new(res.store_key(), namespace, name))
        .ok_or_else(|| ApiError::not_found(plural, "", name))?;
    Ok(stored.value())
}

async fn logs(state: &ApiState, host: &str, port: u16, path: &str, pod: &str) -> ApiResult<Response<Body>> {
    let req = Request::get(path)
        .body(Empty::new())
        .map_err(|e| ApiError::internal(format!("building the kubelet request: {e}")))?;
    let resp = state.kubelet.send(host, port, req).await.map_err(|e| unreachable("GET", host, port, path, e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(kubelet_refusal(status, resp.into_body(), pod).await);
    }
    Ok(text_response(StatusCode::OK, relay_body(resp.into_body(), state.shutdown.clone())))
}

async fn upgrade(
    state: &ApiState,
    host: &str,
    port: u16,
    path: &str,
    mut req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    if !is_upgrade(req.headers()) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let mut forward = Request::builder().method(req.method().clone()).uri(path);
    for (name, value) in req.headers() {
        if forwarded(name) {
            forward = forward.header(name, value);
        }
    }
    let forward =
        forward.body(Empty::new()).map_err(|e| ApiError::internal(format!("building the kubelet request: {e}")))?;
    let client_side = hyper::upgrade::on(&mut req);
    let method = req.method().as_str().to_string();
    let mut resp =
        state.kubelet.send(host, port, forward).await.map_err(|e| unreachable(&method, host, port, path, e))?;

    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The client decides what a refusal means (kubectl falls back from WebSocket to SPDY), so
        // it gets the kubelet's answer as it is.
        let status = resp.status();
        let headers = end_to_end(resp.headers());
        let mut out = Response::new(relay_body(resp.into_body(), state.shutdown.clone()));
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        return Ok(out);
    }
    let kubelet_side = hyper::upgrade::on(&mut resp);
    let mut out = Response::new(Empty::new().boxed_unsync());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *out.headers_mut() = resp.headers().clone();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let (client, kubelet) = match tokio::try_join!(client_side, kubelet_side) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut kubelet = hyper_util::rt::TokioIo::new(kubelet);
        tokio::select! {
            done = tokio::io::copy_bidirectional(&mut client, &mut kubelet) => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "upgraded stream ended with an error");
                }
            }
            _ = shutdown.cancelled() => {}
        }
    });
    Ok(out)
}

/// Upstream's httpstream.IsUpgradeRequest: a Connection header naming `upgrade`, and an Upgrade header.
fn is_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(UPGRADE)
}

/// The request headers the kubelet needs to agree to an upgrade. Credentials stay here: the
/// kubelet trusts this server's client certificate, not the caller's.
fn forwarded(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "upgrade"
        || n == "connection"
        || n == "user-agent"
        || n == "x-stream-protocol-version"
        || n.starts_with("sec-websocket-")
}

/// The response headers without the hop-by-hop ones, which belong to the kubelet connection.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    const HOP: &[&str] =
        &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"];
    let mut out = headers.clone();
    for h in HOP {
        out.remove(*h);
    }
    out
}

/// The kubelet's body as ours, frame by frame as it arrives (a followed log never ends on its own).
/// It ends early when the server shuts down, and quietly when the kubelet connection breaks.
fn relay_body(body: Incoming, shutdown: CancellationToken) -> Body {
    let frames = futures_util::stream::unfold((body, shutdown), |(mut body, shutdown)| async move {
        let frame = tokio::select! {
            f = body.frame() => f?,
            _ = shutdown.cancelled() => return None,
        };
        match frame {
            Ok(f) => Some((Ok::<_, Infallible>(f), (body, shutdown))),
            Err(e) => {
                tracing::debug!(error = %e, "kubelet response ended with an error");
                None
            }
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

fn text_response(status: StatusCode, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// A kubelet that could not be reached: a 500 without a reason, worded like Go's client error, as
/// upstream answers.
fn unreachable(method: &str, host: &str, port: u16, path: &str, e: KubeletError) -> ApiError {
    let url = format!("https://{}{path}", join_host_port(host, port));
    tracing::debug!(%url, error = %e, "kubelet unreachable");
    let verb: String = method.chars().take(1).chain(method.chars().skip(1).flat_map(char::to_lowercase)).collect();
    ApiError::new(500, "", format!("{verb} {url:?}: {e}"))
}

/// A kubelet's error answer as upstream's response checker turns it into a Status.
async fn kubelet_refusal(status: StatusCode, body: Incoming, pod: &str) -> ApiError {
    let text = match Limited::new(body, MAX_ERROR_BODY).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    };
    let code = status.as_u16();
    let (reason, message) = match code {
        400 => ("BadRequest", text.clone()),
        500 => ("InternalError", format!("Internal error occurred: {text}")),
        401 => ("Unauthorized", text.clone()),
        403 => ("Forbidden", text.clone()),
        404 => ("NotFound", "the server could not find the requested resource".to_string()),
        503 => ("ServiceUnavailable", text.clone()),
        c if c >= 500 => {
            ("InternalError", format!("an error on the server ({text:?}) has prevented the request from succeeding"))
        }
        _ => ("", format!("the server responded with the status code {code} but did not return more information")),
    };
    let mut e = ApiError::new(code, reason, message);
    if code != 400 && code != 500 {
        e.details = Some(json!({"name": pod, "kind": "pods/log", "causes": [{"message": text}]}));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_are_recognised_like_upstream() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let cases = [
            (headers(&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")]), true),
            (headers(&[("connection", "keep-alive, upgrade"), ("upgrade", "websocket")]), true),
            (headers(&[("connection", "keep-alive"), ("connection", "Upgrade"), ("upgrade", "websocket")]), true),
            (headers(&[("connection", "Upgrade")]), false),
            (headers(&[("upgrade", "websocket")]), false),
            (headers(&[("connection", "upgraded"), ("upgrade", "websocket")]), false),
            (headers(&[]), false),
        ];
        for (h, want) in cases {
            assert_eq!(is_upgrade(&h), want, "{h:?}");
        }
    }

    #[test]
    fn only_upgrade_headers_reach_the_kubelet() {
        for (name, want) in [
            ("upgrade", true),
            ("connection", true),
            ("sec-websocket-key", true),
            ("sec-websocket-protocol", true),
            ("x-stream-protocol-version", true),
            ("authorization", false),
            ("impersonate-user", false),
            ("cookie", false),
        ] {
            assert_eq!(forwarded(&HeaderName::from_static(name)), want, "{name}");
        }
    }

    #[test]
    fn unreachable_kubelets_read_like_go_errors() {
        let e = unreachable("POST", "10.0.0.5", 10250, "/exec/ns/p/c", KubeletError::Timeout("10.0.0.5:10250".into()));
        assert_eq!(
            (e.code, e.reason, e.message.as_str()),
            (500, "", "Post \"https://10.0.0.5:10250/exec/ns/p/c\": dial tcp 10.0.0.5:10250: i/o timeout")
        );
    }
}
