//! The kubelet API of edge-agent, served over HTTPS on :10250 and reached through edge-server's proxy:
//! `GET /healthz`, `GET /containerLogs/{ns}/{pod}/{container}` (CRI log files, optionally followed),
//! `/exec/{ns}/{pod}[/{uid}]/{container}` (WebSocket `v5.channel.k8s.io` and older channel protocols) and
//! `/portForward/{ns}/{pod}[/{uid}]` (SPDY/3.1, raw or tunnelled in a WebSocket as kubectl 1.31+ tries first).
//! What runs where is the caller's [`Backend`]; this crate owns the wire protocols and the access check.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

mod auth;
mod cri_log;
mod exec;
mod logs;
mod portforward;
mod request;
mod server;
pub mod spdy;
mod status;

/// A `kubectl logs` request, as the kubelet receives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<DateTime<Utc>>,
    pub timestamps: bool,
    pub limit_bytes: Option<i64>,
}

/// Where a container's CRI-format log is.
pub struct LogSource {
    pub path: PathBuf,
    /// True while the container may still write to `path`; a followed log ends once this is false and the file is
    /// read to its end.
    pub running: Box<dyn Fn() -> bool + Send + Sync>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    /// Always false when `tty` is set (a terminal has no separate stderr), as in upstream's kubelet.
    pub stderr: bool,
    pub tty: bool,
}

/// A started exec process. The streams asked for in [`ExecRequest`] should be `Some`.
pub struct Process {
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Resizes the terminal: (cols, rows).
    pub resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>,
    /// Resolves to the exit code. Dropped unresolved when the client goes away.
    pub wait: Pin<Box<dyn Future<Output = std::io::Result<i32>> + Send>>,
}

/// A backend failure; becomes a `Status` with code 404, 400 or 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Internal(String),
}

/// What the kubelet API needs from the agent.
pub trait Backend: Send + Sync + 'static {
    fn log_source(&self, req: &LogRequest) -> Result<LogSource, BackendError>;
    fn exec(&self, req: ExecRequest) -> BoxFuture<'static, Result<Process, BackendError>>;
    /// The container's main process (`kubectl attach`); `req.command` is empty. Backends without it
    /// answer with an error the client shows.
    fn attach(&self, req: ExecRequest) -> BoxFuture<'static, Result<Process, BackendError>> {
        let msg = format!("attaching to container {} is not supported", req.container);
        Box::pin(async move { Err(BackendError::BadRequest(msg)) })
    }
    fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<tokio::net::TcpStream, BackendError>>;
}

/// What a container writes from now on (stdout and stderr interleaved, as text), read from its CRI log
/// until the container stops: the output side of `attach` for runtimes that log instead of holding
/// the container's stdio open.
pub fn follow_output(src: LogSource) -> std::io::Result<impl tokio::io::AsyncRead + Send + Unpin + 'static> {
    let req = LogRequest {
        namespace: String::new(),
        pod: String::new(),
        container: String::new(),
        follow: true,
        previous: false,
        tail_lines: Some(0),
        since_seconds: None,
        since_time: None,
        timestamps: false,
        limit_bytes: None,
    };
    let rx = logs::open(src, req)?;
    Ok(tokio_util::io::StreamReader::new(tokio_stream_from(rx)))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Unpin {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("accepting connections: {0}")]
    Accept(#[source] std::io::Error),
}

/// Serves the kubelet API on `listener` until `shutdown` is cancelled. `tls` must require client certificates from
/// the cluster CA and offer ALPN `http/1.1` only (upgrades need HTTP/1.1); in addition, a peer certificate must name
/// one of `allowed_groups` in its subject O, else every request gets 403.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    backend: Arc<dyn Backend>,
    allowed_groups: Vec<String>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), ServeError> {
    server::serve(listener, tls, backend, allowed_groups, shutdown).await
}
