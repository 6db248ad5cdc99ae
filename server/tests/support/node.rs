//! What a node does against the server without the agent: HTTPS requests with or without a client
//! certificate, joining with the token, and a stand-in kubelet API that records what it is asked.
// Everything here runs inside tests, where a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Server;

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

/// A client certificate and key, PEM.
#[derive(Clone)]
pub struct Identity {
    pub cert: String,
    pub key: String,
}

fn roots(ca_pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS connection to 127.0.0.1:`port`, trusting `ca_pem`, presenting `identity` if given.
pub async fn tls_connect(
    port: u16,
    ca_pem: &str,
    identity: Option<&Identity>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca_pem));
    let mut cfg = match identity {
        Some(id) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(id.cert.as_bytes()).map(|c| c.unwrap()).collect(),
                PrivateKeyDer::from_pem_slice(id.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    connector.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await.unwrap()
}

/// One HTTP/1.1 request; the response body is read to the end.
pub async fn request(
    port: u16,
    ca_pem: &str,
    identity: Option<&Identity>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let tls = tls_connect(port, ca_pem, identity).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(path).header("host", format!("127.0.0.1:{port}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender.send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

impl Server {
    pub fn port(&self) -> u16 {
        let kc = std::fs::read_to_string(self.kubeconfig()).unwrap();
        let line = kc.lines().find(|l| l.trim_start().starts_with("server: ")).unwrap();
        line.rsplit(':').next().unwrap().trim().parse().unwrap()
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("tls/ca.crt")).unwrap()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("token")).unwrap().trim().to_string()
    }
}

pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

pub fn csr(cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    (params.serialize_request(&key).unwrap().pem().unwrap(), key.serialize_pem())
}

/// The node's client and serving identities, from the join endpoint.
pub struct Joined {
    pub client: Identity,
    pub serving: Identity,
}

pub async fn join(s: &Server, node: &str, addresses: &[&str], password: &str) -> Result<Joined, Reply> {
    let (client_csr, client_key) = csr(&format!("system:node:{node}"));
    let (serving_csr, serving_key) = csr(node);
    let body = serde_json::json!({"nodeName": node, "clientCsr": client_csr, "servingCsr": serving_csr, "addresses": addresses});
    let auth = basic("node", password);
    let reply = request(
        s.port(),
        &s.ca_pem(),
        None,
        "POST",
        "/v1-edge/node-certs",
        &[("authorization", &auth), ("content-type", "application/json")],
        &body.to_string(),
    )
    .await;
    if reply.status != 200 {
        return Err(reply);
    }
    let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(v["ca"].as_str().unwrap(), s.ca_pem());
    Ok(Joined {
        client: Identity { cert: v["clientCert"].as_str().unwrap().into(), key: client_key },
        serving: Identity { cert: v["servingCert"].as_str().unwrap().into(), key: serving_key },
    })
}

/// What the stand-in kubelet was asked.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The CN of the caller's client certificate.
    pub caller: String,
}

/// A kubelet API on 127.0.0.1 that needs a client certificate from the cluster CA. Logs answer
/// "line 1\n" at once and, when followed, "line 2\n" only after `release`; upgrades to SPDY/3.1
/// are accepted and echo bytes back; WebSocket upgrades are refused with a 403.
pub struct FakeKubelet {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    release: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKubelet {
    /// Starts on the current (multi-threaded) runtime.
    pub async fn start(ca_pem: &str, serving: &Identity) -> FakeKubelet {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)), provider())
            .build()
            .unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                CertificateDer::pem_slice_iter(serving.cert.as_bytes()).map(|c| c.unwrap()).collect(),
                PrivateKeyDer::from_pem_slice(serving.key.as_bytes()).unwrap(),
            )
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(tokio::sync::Notify::new());
        let (seen2, release2) = (seen.clone(), release.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, seen, release) = (acceptor.clone(), seen2.clone(), release2.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let caller = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| {
                            let (_, cert) = x509_parser::parse_x509_certificate(c.as_ref()).ok()?;
                            let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
                            Some(cn)
                        })
                        .unwrap_or_default();
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, caller.clone(), seen.clone(), release.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        FakeKubelet { port, seen, release, task }
    }

    /// Lets a followed log send its second line.
    pub fn release(&self) {
        self.release.notify_one();
    }

    pub fn paths(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|s| s.path.clone()).collect()
    }

    pub fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().expect("the kubelet was not called")
    }
}

type FakeBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn handle(
    mut req: Request<Incoming>,
    caller: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    release: Arc<tokio::sync::Notify>,
) -> Result<Response<FakeBody>, Infallible> {
    let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    seen.lock().unwrap().push(Seen { path: path.clone(), headers, caller });

    if let Some(upgrade) = req.headers().get("upgrade").cloned() {
        if upgrade.as_bytes().eq_ignore_ascii_case(b"websocket") {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"no websockets here")).boxed());
            *resp.status_mut() = StatusCode::FORBIDDEN;
            return Ok(resp);
        }
        let protocol = req.headers().get("x-stream-protocol-version").cloned();
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if io.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut resp = Response::new(Empty::new().boxed());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut().insert("connection", "Upgrade".parse().unwrap());
        resp.headers_mut().insert("upgrade", upgrade);
        if let Some(p) = protocol {
            resp.headers_mut().insert("x-stream-protocol-version", p);
        }
        return Ok(resp);
    }

    if path.starts_with("/containerLogs/") {
        let follow = path.contains("follow=true");
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"line 1\n")).await;
            if follow {
                release.notified().await;
            }
            let _ = tx.send(Bytes::from_static(b"line 2\n")).await;
        });
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        let mut resp = Response::new(StreamBody::new(frames).boxed());
        resp.headers_mut().insert("content-type", "text/plain".parse().unwrap());
        return Ok(resp);
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(b"no such thing")).boxed());
    *resp.status_mut() = StatusCode::NOT_FOUND;
    Ok(resp)
}
