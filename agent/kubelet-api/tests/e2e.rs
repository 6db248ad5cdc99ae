//! End to end over TLS with client certificates: logs (follow), exec over WebSocket v5, port-forward over raw SPDY
//! and over kubectl's SPDY-in-WebSocket tunnel, against a test backend that runs real processes and sockets.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use edge_kubelet_api::spdy::frame::FLAG_FIN;
use edge_kubelet_api::spdy::{Decoder, Encoder, Frame};
use edge_kubelet_api::{Backend, BackendError, ExecRequest, LogRequest, LogSource, Process};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const GROUP: &str = "edge:kubelet-api-clients";
const T: Duration = Duration::from_secs(10);

struct Pki {
    server: Arc<rustls::ServerConfig>,
    allowed: Arc<rustls::ClientConfig>,
    other: Arc<rustls::ClientConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "test-ca");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |cn: &str, org: Option<&str>, sans: Vec<String>| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if let Some(o) = org {
            p.distinguished_name.push(rcgen::DnType::OrganizationName, o);
        }
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        (vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let roots = Arc::new(roots);

    let (chain, key) = leaf("node", None, vec!["127.0.0.1".into(), "localhost".into()]);
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider()).build().unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];

    let client = |org: &str| {
        let (chain, key): (Vec<CertificateDer<'static>>, _) = leaf("edge-server", Some(org), vec![]);
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(chain, key)
                .unwrap(),
        )
    };
    Pki { server: Arc::new(server), allowed: client(GROUP), other: client("system:nodes") }
}

struct TestBackend {
    log: PathBuf,
    running: Arc<AtomicBool>,
    echo_port: u16,
}

impl Backend for TestBackend {
    fn log_source(&self, req: &LogRequest) -> Result<LogSource, BackendError> {
        if req.container != "c" {
            return Err(BackendError::NotFound(format!("container {} not found", req.container)));
        }
        let running = self.running.clone();
        Ok(LogSource { path: self.log.clone(), running: Box::new(move || running.load(Ordering::SeqCst)) })
    }

    fn exec(&self, req: ExecRequest) -> BoxFuture<'static, Result<Process, BackendError>> {
        Box::pin(async move {
            let mut cmd = tokio::process::Command::new(&req.command[0]);
            cmd.args(&req.command[1..]).kill_on_drop(true);
            let io = |on: bool| if on { std::process::Stdio::piped() } else { std::process::Stdio::null() };
            cmd.stdin(io(req.stdin)).stdout(io(req.stdout)).stderr(io(req.stderr));
            let mut child = cmd.spawn().map_err(|e| BackendError::Internal(e.to_string()))?;
            let stdin = child.stdin.take().map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>);
            let stdout = child.stdout.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
            let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
            let wait = Box::pin(async move { Ok(child.wait().await?.code().unwrap_or(-1)) });
            Ok(Process { stdin, stdout, stderr, resize: None, wait })
        })
    }

    fn port_forward(&self, _ns: &str, _pod: &str, port: u16) -> BoxFuture<'static, Result<TcpStream, BackendError>> {
        let echo = self.echo_port;
        Box::pin(async move {
            if port != 7777 {
                return Err(BackendError::NotFound(format!("nothing listens on port {port}")));
            }
            TcpStream::connect(("127.0.0.1", echo)).await.map_err(|e| BackendError::Internal(e.to_string()))
        })
    }
}

struct Harness {
    addr: std::net::SocketAddr,
    pki: Pki,
    log: tempfile::NamedTempFile,
    running: Arc<AtomicBool>,
    stop: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

async fn start() -> Harness {
    let pki = pki();
    let log = tempfile::NamedTempFile::new().unwrap();
    let running = Arc::new(AtomicBool::new(true));
    let backend =
        TestBackend { log: log.path().to_path_buf(), running: running.clone(), echo_port: echo_server().await };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(edge_kubelet_api::serve(
        listener,
        pki.server.clone(),
        Arc::new(backend),
        vec![GROUP.to_string()],
        stop.clone(),
    ));
    Harness { addr, pki, log, running, stop }
}

impl Harness {
    async fn tls(&self, cfg: &Arc<rustls::ClientConfig>) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, tcp).await.unwrap()
    }

    async fn get(
        &self,
        cfg: &Arc<rustls::ClientConfig>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> hyper::Response<hyper::body::Incoming> {
        let io = hyper_util::rt::TokioIo::new(self.tls(cfg).await);
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::get(path).header("host", "127.0.0.1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        send.send_request(req.body(http_body_util::Empty::<Bytes>::new()).unwrap()).await.unwrap()
    }

    fn append(&self, s: &str) {
        let mut f = std::fs::OpenOptions::new().append(true).open(self.log.path()).unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }
}

async fn body_string(resp: hyper::Response<hyper::body::Incoming>) -> String {
    let b = tokio::time::timeout(T, resp.into_body().collect()).await.unwrap().unwrap().to_bytes();
    String::from_utf8(b.to_vec()).unwrap()
}

#[tokio::test]
async fn healthz_auth_and_errors() {
    let h = start().await;
    let resp = h.get(&h.pki.allowed, "/healthz", &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body_string(resp).await, "ok");

    let resp = h.get(&h.pki.other, "/healthz", &[]).await;
    assert_eq!(resp.status(), 403);
    let v: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["reason"].as_str(), v["code"].as_i64()),
        (Some("Status"), Some("Forbidden"), Some(403))
    );

    let resp = h.get(&h.pki.allowed, "/containerLogs/ns/p/missing", &[]).await;
    assert_eq!(resp.status(), 404);
    let resp = h.get(&h.pki.allowed, "/containerLogs/ns/p/c?tailLines=-2", &[]).await;
    assert_eq!(resp.status(), 422);
    let resp = h.get(&h.pki.allowed, "/nope", &[]).await;
    assert_eq!(resp.status(), 404);
    // An exec upgrade that is not WebSocket (old SPDY clients) is refused with a Status.
    let spdy = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1"), ("x-stream-protocol-version", "v4.channel.k8s.io")];
    let resp = h.get(&h.pki.allowed, "/exec/ns/p/c?command=true&output=1", &spdy).await;
    assert_eq!(resp.status(), 400);
    assert!(body_string(resp).await.contains("\"status\":\"Failure\""));
}

#[tokio::test]
async fn logs_tail_and_follow() {
    let h = start().await;
    h.append("2024-05-01T10:00:00Z stdout F one\n2024-05-01T10:00:01.5Z stderr F two\n");
    let resp = h.get(&h.pki.allowed, "/containerLogs/ns/p/c?tailLines=1&timestamps=true", &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body_string(resp).await, "2024-05-01T10:00:01.5Z two\n");

    let resp = h.get(&h.pki.allowed, "/containerLogs/ns/p/c?follow=true", &[]).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = String::new();
    let mut read_until = async |want: &str, got: &mut String| {
        while !got.ends_with(want) {
            let frame = tokio::time::timeout(T, body.frame()).await.unwrap().unwrap().unwrap();
            got.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap());
        }
    };
    read_until("one\ntwo\n", &mut got).await;
    // A partial line is joined with its continuation, even when the continuation arrives later.
    h.append("2024-05-01T10:00:02Z stdout P thr");
    tokio::time::sleep(Duration::from_millis(250)).await;
    h.append("ee-is-\n2024-05-01T10:00:02Z stdout F joined\n");
    read_until("three-is-joined\n", &mut got).await;
    assert_eq!(got, "one\ntwo\nthree-is-joined\n");
    // Written just before the container stops: still delivered, then the body ends.
    h.append("2024-05-01T10:00:03Z stdout F last\n");
    h.running.store(false, Ordering::SeqCst);
    let rest = tokio::time::timeout(T, body.collect()).await.unwrap().unwrap().to_bytes();
    assert_eq!(&rest[..], b"last\n");
}

async fn ws_connect(
    h: &Harness,
    path: &str,
    protocol: &str,
) -> tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>> {
    let mut req = format!("wss://127.0.0.1{path}").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::client_async(req, h.tls(&h.pki.allowed).await).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], protocol.split(',').next().unwrap().trim());
    ws
}

#[tokio::test]
async fn exec_over_websocket_v5() {
    let h = start().await;
    let script = "read x; echo out:$x; echo err >&2; exit 3";
    let path = format!(
        "/exec/ns/p/c?command=sh&command=-c&command={}&input=1&output=1&error=1",
        script.replace(' ', "%20").replace(';', "%3B").replace('$', "%24").replace('>', "%3E").replace('&', "%26")
    );
    let mut ws = ws_connect(&h, &path, "v5.channel.k8s.io, v4.channel.k8s.io").await;
    // kubectl may open streams with empty messages: they must be harmless.
    ws.send(Message::Binary(Bytes::from_static(&[0]))).await.unwrap();
    ws.send(Message::Ping(Bytes::from_static(b"hb"))).await.unwrap();
    ws.send(Message::Binary(Bytes::from_static(b"\x00hello\n"))).await.unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[255, 0]))).await.unwrap();

    let (mut stdout, mut stderr, mut status, mut pong) = (Vec::new(), Vec::new(), None, false);
    while let Some(msg) = tokio::time::timeout(T, ws.next()).await.unwrap() {
        match msg.unwrap() {
            Message::Binary(b) => match b[0] {
                1 => stdout.extend_from_slice(&b[1..]),
                2 => stderr.extend_from_slice(&b[1..]),
                3 => status = Some(serde_json::from_slice::<serde_json::Value>(&b[1..]).unwrap()),
                c => panic!("unexpected channel {c}"),
            },
            Message::Pong(p) => pong = &p[..] == b"hb",
            Message::Close(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pong, "ping was not answered");
    assert_eq!(String::from_utf8(stdout).unwrap(), "out:hello\n");
    assert_eq!(String::from_utf8(stderr).unwrap(), "err\n");
    let status = status.expect("no status on the error channel");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    assert_eq!(
        status["message"],
        format!("command terminated with non-zero exit code: error executing command [sh -c {script}], exit code 3")
    );

    // Success, on v4.
    let mut ws = ws_connect(&h, "/exec/ns/p/c?command=echo&command=hi&output=1", "v4.channel.k8s.io").await;
    let mut out = Vec::new();
    let mut last = None;
    while let Some(Ok(msg)) = tokio::time::timeout(T, ws.next()).await.unwrap() {
        if let Message::Binary(b) = msg {
            match b[0] {
                1 => out.extend_from_slice(&b[1..]),
                3 => last = Some(b[1..].to_vec()),
                _ => {}
            }
        }
    }
    assert_eq!(out, b"hi\n");
    assert_eq!(last.unwrap(), br#"{"metadata":{},"status":"Success"}"#);
}

/// A SPDY client over any byte stream, from the crate's own frame codec.
struct SpdyClient<S> {
    io: S,
    enc: Encoder,
    dec: Decoder,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SpdyClient<S> {
    fn new(io: S, leftover: &[u8]) -> Self {
        Self { io, enc: Encoder::new(), dec: Decoder::new(), buf: BytesMut::from(leftover) }
    }

    async fn send(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        self.enc.encode(&f, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
        self.io.flush().await.unwrap();
    }

    async fn recv(&mut self) -> Frame {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                return f;
            }
            let n = tokio::time::timeout(T, self.io.read_buf(&mut self.buf)).await.unwrap().unwrap();
            assert!(n > 0, "connection closed");
        }
    }

    async fn open(&mut self, id: u32, kind: &str, port: &str, request: &str) {
        let headers = vec![
            ("streamtype".to_string(), kind.to_string()),
            ("port".to_string(), port.to_string()),
            ("requestid".to_string(), request.to_string()),
        ];
        self.send(Frame::SynStream { stream_id: id, associated_to: 0, priority: 0, slot: 0, flags: 0, headers }).await;
    }

    /// Drives one forwarded connection the way client-go does and returns (echoed data, error stream text).
    async fn forward(
        &mut self,
        err_id: u32,
        data_id: u32,
        port: &str,
        request: &str,
        payload: &[u8],
    ) -> (Vec<u8>, String) {
        self.open(err_id, "error", port, request).await;
        // client-go half-closes the error stream at once.
        self.send(Frame::Data { stream_id: err_id, flags: FLAG_FIN, data: Bytes::new() }).await;
        self.open(data_id, "data", port, request).await;
        self.send(Frame::Data { stream_id: data_id, flags: 0, data: Bytes::copy_from_slice(payload) }).await;
        self.send(Frame::Data { stream_id: data_id, flags: FLAG_FIN, data: Bytes::new() }).await;
        self.send(Frame::Ping { id: 1 }).await;
        let (mut data, mut err, mut fins, mut replies, mut ponged) = (Vec::new(), Vec::new(), 0, 0, false);
        while fins < 2 || replies < 2 || !ponged {
            match self.recv().await {
                Frame::SynReply { stream_id, .. } => {
                    assert!(stream_id == err_id || stream_id == data_id);
                    replies += 1;
                }
                Frame::Data { stream_id, flags, data: d } => {
                    let sink = if stream_id == data_id { &mut data } else { &mut err };
                    sink.extend_from_slice(&d);
                    if flags & FLAG_FIN != 0 {
                        fins += 1;
                    }
                }
                Frame::Ping { id } => {
                    assert_eq!(id, 1);
                    ponged = true;
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
        (data, String::from_utf8(err).unwrap())
    }
}

#[tokio::test]
async fn port_forward_over_spdy() {
    let h = start().await;
    let mut tls = h.tls(&h.pki.allowed).await;
    tls.write_all(
        b"POST /portForward/ns/p HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
          X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut b = [0u8; 512];
        let n = tokio::time::timeout(T, tls.read(&mut b)).await.unwrap().unwrap();
        assert!(n > 0);
        head.extend_from_slice(&b[..n]);
    }
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let text = String::from_utf8_lossy(&head[..end]).to_lowercase();
    assert!(text.starts_with("http/1.1 101"), "{text}");
    assert!(text.contains("upgrade: spdy/3.1") && text.contains("x-stream-protocol-version: portforward.k8s.io"));
    let mut c = SpdyClient::new(tls, &head[end..]);

    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (echoed, err) = c.forward(1, 3, "7777", "0", &big).await;
    assert_eq!(echoed.len(), big.len());
    assert!(echoed == big);
    assert_eq!(err, "");

    // A second connection on the same session, to a port the backend cannot reach.
    let (echoed, err) = c.forward(5, 7, "81", "1", b"x").await;
    assert!(echoed.is_empty());
    assert_eq!(err, "error forwarding port 81 to pod ns/p, uid : nothing listens on port 81");

    // A stream without a port is refused.
    c.send(Frame::SynStream { stream_id: 9, associated_to: 0, priority: 0, slot: 0, flags: 0, headers: vec![] }).await;
    assert!(matches!(c.recv().await, Frame::RstStream { stream_id: 9, .. }));
}

#[tokio::test]
async fn port_forward_tunnelled_in_websocket() {
    let h = start().await;
    // Anything but the tunnel subprotocol is refused with a non-101, which makes kubectl fall back to SPDY.
    let mut req = "wss://127.0.0.1/portForward/ns/p".into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "v4.channel.k8s.io".parse().unwrap());
    let err = tokio_tungstenite::client_async(req, h.tls(&h.pki.allowed).await).await.unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");

    let ws = ws_connect(&h, "/portForward/ns/p", "SPDY/3.1+portforward.k8s.io").await;
    // Mirror client-go's TunnelingConnection: bytes in binary messages, in both directions.
    let (client_end, adapter_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let (mut rd, mut wr) = tokio::io::split(adapter_end);
        let up = async move {
            let mut b = vec![0u8; 16 * 1024];
            loop {
                let n = rd.read(&mut b).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                sink.send(Message::Binary(Bytes::copy_from_slice(&b[..n]))).await.unwrap();
            }
        };
        let down = async move {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Binary(b) = m {
                    wr.write_all(&b).await.unwrap();
                }
            }
        };
        tokio::join!(up, down);
    });
    let mut c = SpdyClient::new(client_end, &[]);
    let (echoed, err) = c.forward(1, 3, "7777", "0", b"through the tunnel").await;
    assert_eq!(echoed, b"through the tunnel");
    assert_eq!(err, "");
}
