//! The HTTPS listener: TLS handshakes, the client-group check, routing, and the HTTP/1.1 upgrades that hand
//! connections to exec (WebSocket) and port-forward (SPDY, raw or in a WebSocket tunnel).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::request::{self, QueryError, Route};
use crate::{auth, exec, logs, portforward, status, Backend, ServeError};

pub(crate) type Body = BoxBody<Bytes, io::Error>;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";

struct Ctx {
    backend: Arc<dyn Backend>,
    allowed_groups: Vec<String>,
    shutdown: CancellationToken,
}

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    backend: Arc<dyn Backend>,
    allowed_groups: Vec<String>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let acceptor = TlsAcceptor::from(tls);
    let ctx = Arc::new(Ctx { backend, allowed_groups, shutdown });
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = ctx.shutdown.cancelled() => return Ok(()),
        };
        match accepted {
            Ok((tcp, _)) => {
                tokio::spawn(connection(tcp, acceptor.clone(), ctx.clone()));
            }
            // Running out of descriptors or memory passes; anything else means the listener is broken.
            Err(e) if is_transient(&e) => {
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(ServeError::Accept(e)),
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted)
        || e.raw_os_error().is_some_and(|c| [23, 24, 105, 12].contains(&c)) // ENFILE, EMFILE, ENOBUFS, ENOMEM
}

async fn connection(tcp: tokio::net::TcpStream, acceptor: TlsAcceptor, ctx: Arc<Ctx>) {
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let access = Arc::new(auth::authorize(tls.get_ref().1.peer_certificates(), &ctx.allowed_groups));
    let svc_ctx = ctx.clone();
    let svc = hyper::service::service_fn(move |req| {
        let ctx = svc_ctx.clone();
        let access = access.clone();
        async move { Ok::<_, Infallible>(handle(req, &ctx, &access).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "kubelet API connection ended with an error");
            }
        }
        _ = ctx.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

async fn handle(mut req: Request<Incoming>, ctx: &Ctx, access: &Result<Vec<String>, String>) -> Response<Body> {
    if let Err(why) = access {
        tracing::info!(%why, path = req.uri().path(), "kubelet API request refused");
        return failure(403, why);
    }
    let Some(route) = request::route(req.uri().path()) else {
        return failure(404, "the server could not find the requested resource");
    };
    let get_only = matches!(route, Route::Healthz | Route::Logs { .. });
    if !(req.method() == Method::GET || (!get_only && req.method() == Method::POST)) {
        return failure(405, &format!("the server does not allow method {} here", req.method()));
    }
    let query = req.uri().query().map(str::to_string);
    match route {
        Route::Healthz => text(StatusCode::OK, "ok"),
        Route::Logs { namespace, pod, container } => {
            let lr = match request::log_request(namespace, pod, container, query.as_deref()) {
                Ok(r) => r,
                Err(e) => return query_failure(&e),
            };
            let src = match ctx.backend.log_source(&lr) {
                Ok(s) => s,
                Err(e) => return failure(status::backend_code(&e), &e.to_string()),
            };
            let path = src.path.display().to_string();
            match logs::open(src, lr) {
                Ok(rx) => Response::builder()
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(ChannelBody(rx).boxed())
                    .unwrap_or_else(|_| failure(500, "building the response failed")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    failure(404, &format!("log file {path:?} does not exist"))
                }
                Err(e) => failure(500, &format!("failed to open log file {path:?}: {e}")),
            }
        }
        Route::Exec { namespace, pod, container, attach } => {
            let er = match request::exec_request(namespace, pod, container, query.as_deref(), attach) {
                Ok(r) => r,
                Err(e) => return query_failure(&e),
            };
            if !is_websocket(req.headers()) {
                return failure(
                    400,
                    "exec needs a WebSocket upgrade with subprotocol v5.channel.k8s.io; SPDY is not supported",
                );
            }
            let offered = ws_protocols(req.headers());
            let (chosen, proto) = match exec::negotiate(&offered) {
                Ok(x) => x,
                Err(msg) => return failure(400, &msg),
            };
            let backend = ctx.backend.clone();
            let cancel = ctx.shutdown.child_token();
            websocket_upgrade(&mut req, chosen, move |ws| exec::serve(ws, proto, er, attach, backend, cancel))
        }
        Route::PortForward { namespace, pod, uid } => {
            let target = portforward::Target { namespace, pod, uid };
            let backend = ctx.backend.clone();
            let cancel = ctx.shutdown.child_token();
            if is_websocket(req.headers()) {
                // Only the SPDY tunnel is spoken over WebSocket; refusing anything else with a non-101 makes
                // kubectl fall back to plain SPDY (client-go treats a failed handshake as an upgrade failure).
                if !ws_protocols(req.headers()).iter().any(|p| p == portforward::TUNNEL_PROTOCOL) {
                    return failure(
                        400,
                        &format!("port-forward over WebSocket needs subprotocol {}", portforward::TUNNEL_PROTOCOL),
                    );
                }
                return websocket_upgrade(&mut req, Some(portforward::TUNNEL_PROTOCOL), move |ws| {
                    portforward::serve_spdy(portforward::tunnel(ws), target, backend, cancel)
                });
            }
            spdy_upgrade(&mut req, target, backend, cancel)
        }
    }
}

fn spdy_upgrade(
    req: &mut Request<Incoming>,
    target: portforward::Target,
    backend: Arc<dyn Backend>,
    cancel: CancellationToken,
) -> Response<Body> {
    let h = req.headers();
    let upgrade_ok = header_has_token(h, header::CONNECTION, "upgrade")
        && h.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"));
    if !upgrade_ok {
        return failure(400, "unable to upgrade: missing upgrade headers in request");
    }
    // httpstream.Handshake: no versions offered means the legacy protocol; otherwise one must match.
    let offered: Vec<String> = h
        .get_all(STREAM_PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    let chosen = if offered.is_empty() {
        None
    } else if offered.iter().any(|p| p == portforward::PROTOCOL) {
        Some(portforward::PROTOCOL)
    } else {
        return failure(
            403,
            &format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [{:?}]",
                portforward::PROTOCOL
            ),
        );
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => portforward::serve_spdy(TokioIo::new(upgraded), target, backend, cancel).await,
            Err(e) => tracing::debug!(error = %e, "SPDY upgrade failed"),
        }
    });
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hm = resp.headers_mut();
    hm.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    hm.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if let Some(p) = chosen {
        hm.insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static(p));
    }
    resp
}

/// Answers 101 and runs `serve` on the WebSocket once hyper hands over the connection.
fn websocket_upgrade<F, Fut>(req: &mut Request<Incoming>, protocol: Option<&'static str>, serve: F) -> Response<Body>
where
    F: FnOnce(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return failure(400, "missing Sec-WebSocket-Key");
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                serve(ws).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hm = resp.headers_mut();
    hm.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    hm.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        hm.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol {
        hm.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    resp
}

fn header_has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn is_websocket(h: &HeaderMap) -> bool {
    header_has_token(h, header::CONNECTION, "upgrade")
        && h.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && h.contains_key(header::SEC_WEBSOCKET_KEY)
}

fn ws_protocols(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn empty() -> Body {
    Empty::new().map_err(|never: Infallible| match never {}).boxed()
}

fn text(code: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())).map_err(|n| match n {}).boxed());
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn failure(code: u16, message: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(status::failure_body(code, message))).map_err(|n| match n {}).boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn query_failure(e: &QueryError) -> Response<Body> {
    match e {
        QueryError::Bad(m) => failure(400, m),
        QueryError::Invalid(m) => failure(422, m),
    }
}

/// A streamed body fed by a channel; the sender sees the channel close when the client goes away.
struct ChannelBody(mpsc::Receiver<io::Result<Bytes>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx).map(|item| item.map(|r| r.map(Frame::data)))
    }
}
