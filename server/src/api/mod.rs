//! The Kubernetes API over HTTPS: TLS and client-certificate authentication, routing of
//! upstream's URL layout to discovery, OpenAPI and the REST verbs, the join endpoints, and the
//! pod subresources proxied to kubelets.

pub mod auth;
pub mod body;
pub mod discovery;
pub mod handlers;
pub mod join;
pub mod kubelet;
pub mod local;
pub mod openapi;
pub mod path;
pub mod query;
pub mod selectors;
pub mod status;
pub mod table;
pub mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::store::Store;
use auth::User;
use path::Route;
use status::ApiError;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What every request handler shares.
pub struct ApiState {
    pub store: Arc<Store>,
    pub shutdown: CancellationToken,
    pub ready: AtomicBool,
    /// Node heartbeat and eviction settings, shared by pod admission and node lifecycle.
    pub nodes: crate::config::NodeSettings,
    /// Cluster IPs, node ports and pod CIDRs.
    pub ipam: crate::ipam::Ipam,
    /// The join token and the CA that signs node certificates.
    pub join: join::Joiner,
    /// How this server reaches kubelets (logs, exec, attach, port-forward).
    pub kubelet: kubelet::KubeletClient,
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn json_response(code: u16, value: &serde_json::Value) -> Response<Body> {
    json_bytes(code, serde_json::to_vec(value).unwrap_or_default())
}

pub fn json_bytes(code: u16, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

pub fn error_response(err: &ApiError) -> Response<Body> {
    json_response(err.code, &err.to_status())
}

fn text(code: u16, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// Accepts TLS connections until `state.shutdown` fires; each connection is served on its own task.
pub async fn serve(state: Arc<ApiState>, listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(
            async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                };
                let user = auth::from_tls(tls.get_ref().1);
                serve_connection(state, tls, user, peer).await;
            }
            .instrument(tracing::debug_span!("conn", %peer)),
        );
    }
}

async fn serve_connection<IO>(state: Arc<ApiState>, io: IO, user: Option<User>, _peer: SocketAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let user = Arc::new(user);
    let shutdown = state.shutdown.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        let user = user.clone();
        async move { Ok::<_, Infallible>(handle(state, user.as_ref().as_ref(), req).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn handle(state: Arc<ApiState>, user: Option<&User>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let started = std::time::Instant::now();
    let resp = match route(state, user, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %uri, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    resp
}

async fn route(state: Arc<ApiState>, user: Option<&User>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let route = path::parse(&path);
    // Health and version are public, as upstream's system:public-info-viewer makes them.
    match &route {
        Some(Route::Healthz) | Some(Route::Livez) => return Ok(text(200, "ok")),
        Some(Route::Readyz) => {
            return Ok(if state.ready.load(Ordering::Acquire) { text(200, "ok") } else { text(500, "not ready") });
        }
        Some(Route::Version) => return Ok(json_response(200, &discovery::version())),
        // Joining agents have no client certificate yet: the CA is public, node certificates take the token.
        Some(Route::CaCerts) => return join::cacerts(&state, req.method()),
        Some(Route::NodeCerts) => return join::node_certs(&state, req).await,
        _ => {}
    }
    let Some(user) = user else {
        return Err(ApiError::unauthorized());
    };
    let Some(route) = route else {
        return Err(ApiError::path_not_found());
    };
    let get_only =
        |resp: Response<Body>| if req.method() == Method::GET { Ok(resp) } else { Err(ApiError::method_not_allowed()) };
    match route {
        Route::ApiVersions => get_only(json_response(200, &discovery::api_versions())),
        Route::GroupList => get_only(json_response(200, &discovery::group_list())),
        Route::Group(g) => match discovery::group(&g) {
            Some(v) => get_only(json_response(200, &v)),
            None => Err(ApiError::path_not_found()),
        },
        Route::ResourceList(g, v) => match discovery::resource_list(&g, &v) {
            Some(list) => get_only(json_response(200, &list)),
            None => Err(ApiError::path_not_found()),
        },
        Route::OpenApiV3Index => get_only(json_response(200, &openapi::index())),
        Route::OpenApiV3(g, v) => match openapi::document(&g, &v) {
            Some(doc) => get_only(json_response(200, &doc)),
            None => Err(ApiError::path_not_found()),
        },
        Route::Resource(target) => handlers::dispatch(&state, user, target, req).await,
        Route::Healthz | Route::Livez | Route::Readyz | Route::Version | Route::CaCerts | Route::NodeCerts => {
            Err(ApiError::path_not_found())
        }
    }
}
