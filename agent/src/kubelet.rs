//! The kubelet API on :10250: TLS with the serving certificate from the join, only clients with a
//! certificate from the cluster CA in group system:masters (the API server) are let in; the routes
//! and stream protocols live in edge-kubelet-api, this module answers them from the pod registry.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use edge_kubelet_api::{Backend, BackendError, ExecRequest, LogRequest, LogSource, Process};
use edge_runtime::{ContainerStatus, Sandbox};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::join::Credentials;
use crate::pods::{PodCtx, PodEntry};

pub async fn start(
    cfg: &AgentConfig,
    creds: &Credentials,
    ctx: Arc<PodCtx>,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let tls = server_tls(creds)?;
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, cfg.kubelet_port)).await?;
    let addr = listener.local_addr()?;
    let backend: Arc<dyn Backend> = Arc::new(KubeletBackend { ctx });
    tokio::spawn(async move {
        if let Err(e) = edge_kubelet_api::serve(listener, tls, backend, vec!["system:masters".into()], shutdown).await {
            tracing::error!(error = %e, "kubelet API stopped");
        }
    });
    Ok(addr)
}

fn server_tls(c: &Credentials) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut c.ca.as_bytes()) {
        roots.add(cert?)?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let certs = rustls_pemfile::certs(&mut c.serving_cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut c.serving_key.as_bytes())?
        .ok_or_else(|| anyhow::anyhow!("no private key in the serving key PEM"))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

struct KubeletBackend {
    ctx: Arc<PodCtx>,
}

impl KubeletBackend {
    fn entry(&self, namespace: &str, pod: &str, container: Option<&str>) -> Result<PodEntry, BackendError> {
        let e = self
            .ctx
            .registry
            .get(namespace, pod)
            .ok_or_else(|| BackendError::NotFound(format!("pod {namespace}/{pod} is not running on this node")))?;
        if let Some(c) = container {
            if !e.containers.iter().any(|n| n == c) {
                return Err(BackendError::NotFound(format!("container {c} is not valid for pod {pod}")));
            }
        }
        Ok(e)
    }

    fn sandbox(&self, e: &PodEntry) -> Result<Sandbox, BackendError> {
        Sandbox::open(&self.ctx.cfg.run_dir(), &e.uid).map_err(|err| BackendError::Internal(err.to_string()))
    }
}

impl Backend for KubeletBackend {
    fn log_source(&self, req: &LogRequest) -> Result<LogSource, BackendError> {
        let e = self.entry(&req.namespace, &req.pod, Some(&req.container))?;
        let sb = self.sandbox(&e)?;
        let current = sb.log_path(&req.container);
        if req.previous {
            let path = crate::pods::worker::previous_log(&current);
            if !path.exists() {
                return Err(BackendError::BadRequest(format!(
                    "previous terminated container \"{}\" in pod \"{}\" not found",
                    req.container, req.pod
                )));
            }
            return Ok(LogSource { path, running: Box::new(|| false) });
        }
        if !current.exists() {
            return Err(BackendError::BadRequest(format!(
                "container \"{}\" in pod \"{}\" is waiting to start: ContainerCreating",
                req.container, req.pod
            )));
        }
        let name = req.container.clone();
        Ok(LogSource {
            path: current,
            running: Box::new(move || matches!(sb.status(&name), Ok(ContainerStatus::Running { .. }))),
        })
    }

    fn exec(&self, req: ExecRequest) -> BoxFuture<'static, Result<Process, BackendError>> {
        let found = self.entry(&req.namespace, &req.pod, Some(&req.container)).and_then(|e| self.sandbox(&e));
        let shim = self.ctx.cfg.shim_binary.clone();
        async move {
            let sb = found?;
            let pid = match sb.status(&req.container) {
                Ok(ContainerStatus::Running { pid }) => pid,
                _ => {
                    return Err(BackendError::BadRequest(format!(
                        "container {} is not running in pod {}",
                        req.container, req.pod
                    )))
                }
            };
            spawn_exec(&shim, pid, &req)
        }
        .boxed()
    }

    /// Containers here have no stdin (the shim writes their output to the CRI log), so attach
    /// streams what the container writes from now on until it exits, with its exit code.
    fn attach(&self, req: ExecRequest) -> BoxFuture<'static, Result<Process, BackendError>> {
        let found = self.entry(&req.namespace, &req.pod, Some(&req.container)).and_then(|e| self.sandbox(&e));
        async move {
            let sb = found?;
            if req.stdin || req.tty {
                return Err(BackendError::BadRequest(format!(
                    "container {} was not started with stdin: attach can only show its output",
                    req.container
                )));
            }
            if !matches!(sb.status(&req.container), Ok(ContainerStatus::Running { .. })) {
                return Err(BackendError::BadRequest(format!(
                    "container {} is not running in pod {}",
                    req.container, req.pod
                )));
            }
            let (sb2, name) = (sb.clone(), req.container.clone());
            let running = Box::new(move || matches!(sb2.status(&name), Ok(ContainerStatus::Running { .. })));
            let src = LogSource { path: sb.log_path(&req.container), running };
            let out = edge_kubelet_api::follow_output(src).map_err(|e| BackendError::Internal(e.to_string()))?;
            let name = req.container.clone();
            let wait = async move {
                loop {
                    if let Ok(ContainerStatus::Exited { code, .. }) = sb.status(&name) {
                        return Ok(code);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            };
            Ok(Process { stdin: None, stdout: Some(Box::new(out)), stderr: None, resize: None, wait: Box::pin(wait) })
        }
        .boxed()
    }

    fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<tokio::net::TcpStream, BackendError>> {
        let found = self.entry(namespace, pod, None);
        async move {
            let e = found?;
            let ip = e.pod_ip.ok_or_else(|| BackendError::Internal("the pod has no IP yet".into()))?;
            tokio::net::TcpStream::connect((ip.as_str(), port))
                .await
                .map_err(|err| BackendError::Internal(format!("connecting to {ip}:{port}: {err}")))
        }
        .boxed()
    }
}

fn spawn_exec(shim: &std::path::Path, pid: u32, req: &ExecRequest) -> Result<Process, BackendError> {
    use std::process::Stdio;
    let internal = |e: std::io::Error| BackendError::Internal(e.to_string());
    let mut cmd = tokio::process::Command::from(edge_runtime::exec::exec_command(shim, pid, &req.command, req.tty));
    cmd.kill_on_drop(true);
    if req.tty {
        let (master, slave) = edge_runtime::exec::pty::open().map_err(|e| BackendError::Internal(e.to_string()))?;
        let dup = |fd: &std::os::fd::OwnedFd| fd.try_clone().map_err(internal);
        cmd.stdin(Stdio::from(dup(&slave)?)).stdout(Stdio::from(dup(&slave)?)).stderr(Stdio::from(slave));
        let mut child = cmd.spawn().map_err(internal)?;
        let resize_fd = master.try_clone().map_err(internal)?;
        let reader = tokio::fs::File::from_std(std::fs::File::from(master.try_clone().map_err(internal)?));
        let writer = tokio::fs::File::from_std(std::fs::File::from(master));
        let wait = async move { child.wait().await.map(|s| exit_code(&s)) };
        return Ok(Process {
            stdin: req.stdin.then(|| Box::new(writer) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>),
            stdout: Some(Box::new(reader)),
            stderr: None,
            resize: Some(Box::new(move |cols, rows| {
                let _ = edge_runtime::exec::pty::resize(resize_fd.as_fd(), cols, rows);
            })),
            wait: Box::pin(wait),
        });
    }
    cmd.stdin(if req.stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(if req.stdout { Stdio::piped() } else { Stdio::null() })
        .stderr(if req.stderr { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().map_err(internal)?;
    let stdin = child.stdin.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>);
    let stdout = child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let wait = async move { child.wait().await.map(|s| exit_code(&s)) };
    Ok(Process { stdin, stdout, stderr, resize: None, wait: Box::pin(wait) })
}

fn exit_code(s: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9))
}
