//! HTTPS to kubelets: the API server's own client certificate, the kubelet's serving certificate
//! checked against the cluster CA (its SANs carry the node's address), one HTTP/1.1 connection per
//! request so that an upgrade can take the connection over.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::{Request, Response};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Upstream's kubelet client dials with a 30 s timeout; a board on the LAN answers far sooner.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KubeletClientError {
    #[error("kubelet client certificate: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    #[error("kubelet client TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why a kubelet could not be asked; the text reads like Go's net/http errors, which kubectl users know.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("dial tcp {addr}: {source}")]
    Dial {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dial tcp {0}: i/o timeout")]
    Timeout(String),
    #[error("{0:?} is not a valid kubelet host name")]
    Name(String),
    #[error("tls: {0}")]
    Handshake(#[source] std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

#[derive(Clone)]
pub struct KubeletClient {
    connector: TlsConnector,
}

impl KubeletClient {
    /// A client presenting `cert_pem`/`key_pem` and trusting kubelets signed by `ca_pem`.
    pub fn new(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<KubeletClient, KubeletClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(ca?)?;
        }
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
        // Upgrades (exec, attach, port-forward) exist only in HTTP/1.1.
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient { connector: TlsConnector::from(Arc::new(cfg)) })
    }

    /// Sends `req` to the kubelet at `host:port` on a new connection, which lives as long as the
    /// response body or, after a 101, the upgraded stream.
    pub async fn send(
        &self,
        host: &str,
        port: u16,
        mut req: Request<Empty<Bytes>>,
    ) -> Result<Response<Incoming>, KubeletError> {
        let addr = join_host_port(host, port);
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => return Err(KubeletError::Dial { addr, source }),
            Err(_) => return Err(KubeletError::Timeout(addr)),
        };
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.to_string()).map_err(|_| KubeletError::Name(host.to_string()))?;
        let tls = self.connector.connect(name, tcp).await.map_err(KubeletError::Handshake)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended with an error");
            }
        });
        if let Ok(v) = hyper::header::HeaderValue::from_str(&addr) {
            req.headers_mut().insert(hyper::header::HOST, v);
        }
        Ok(sender.send_request(req).await?)
    }
}

/// `host:port`, with IPv6 addresses bracketed (Go's net.JoinHostPort).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
