//! A small HTTP/1.1 client for registries: one connection per request over TCP or rustls, redirects
//! followed (blob downloads bounce to CDNs), bodies streamed with idle timeouts. Per-host TLS follows
//! registries.yaml (`ca_file`, client cert, `insecure_skip_verify`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, HOST, LOCATION};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::registries::TlsConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// A blob download stalls out after this long without a byte.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("TLS handshake with {host}: {source}")]
    Tls { host: String, source: std::io::Error },
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    #[error("HTTP: {0}")]
    Hyper(#[from] hyper::Error),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("response body larger than {0} bytes")]
    BodyTooLarge(usize),
}

/// Reusable client; TLS configurations are built once per distinct registries.yaml TLS block.
#[derive(Default)]
pub struct HttpClient {
    tls: Mutex<HashMap<TlsKey, Arc<ClientConfig>>>,
}

type TlsKey = (Option<std::path::PathBuf>, Option<std::path::PathBuf>, Option<std::path::PathBuf>, bool);

impl HttpClient {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends a request, following redirects for GET/HEAD. Authorization is dropped when a redirect
    /// leaves the original host (a CDN must not see registry tokens).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        tls: &TlsConfig,
    ) -> Result<Response<Incoming>, HttpError> {
        let mut url = url.to_string();
        let mut headers = headers;
        let first_authority = authority_of(&url)?;
        for _ in 0..=MAX_REDIRECTS {
            let resp = self.send_once(method.clone(), &url, &headers, body.clone(), tls).await?;
            let redirect = matches!(
                resp.status(),
                StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
            );
            if !redirect || !(method == Method::GET || method == Method::HEAD) {
                return Ok(resp);
            }
            let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                return Ok(resp);
            };
            url = resolve(&url, loc)?;
            if authority_of(&url)? != first_authority {
                headers.remove(AUTHORIZATION);
            }
            tracing::debug!(%url, "following redirect");
        }
        Err(HttpError::TooManyRedirects)
    }

    async fn send_once(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Bytes,
        tls: &TlsConfig,
    ) -> Result<Response<Incoming>, HttpError> {
        let uri: Uri = url.parse().map_err(|_| HttpError::InvalidUrl(url.to_string()))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(HttpError::InvalidUrl(url.to_string())),
        };
        let authority = uri.authority().ok_or_else(|| HttpError::InvalidUrl(url.to_string()))?.clone();
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut req = Request::builder().method(method).uri(path);
        if let Some(h) = req.headers_mut() {
            h.extend(headers.clone());
            h.insert(
                HOST,
                HeaderValue::from_str(authority.as_str()).map_err(|_| HttpError::InvalidUrl(url.to_string()))?,
            );
            h.entry(hyper::header::USER_AGENT)
                .or_insert(HeaderValue::from_static(concat!("edge/", env!("CARGO_PKG_VERSION"))));
        }
        let req = req.body(Full::new(body)).map_err(|_| HttpError::InvalidUrl(url.to_string()))?;
        let addr = format!("{host}:{port}");
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| HttpError::Timeout("connecting"))?
            .map_err(|source| HttpError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        if https {
            let config = self.tls_config(tls)?;
            let name = ServerName::try_from(host.clone()).map_err(|_| HttpError::InvalidUrl(url.to_string()))?;
            let stream =
                tokio::time::timeout(CONNECT_TIMEOUT, tokio_rustls::TlsConnector::from(config).connect(name, tcp))
                    .await
                    .map_err(|_| HttpError::Timeout("in TLS handshake"))?
                    .map_err(|source| HttpError::Tls { host, source })?;
            exchange(stream, req).await
        } else {
            exchange(tcp, req).await
        }
    }

    fn tls_config(&self, tls: &TlsConfig) -> Result<Arc<ClientConfig>, HttpError> {
        let key = (tls.ca_file.clone(), tls.cert_file.clone(), tls.key_file.clone(), tls.insecure_skip_verify);
        let mut cache = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let c = Arc::new(build_tls_config(tls)?);
        cache.insert(key, c.clone());
        Ok(c)
    }
}

async fn exchange<T>(io: T, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, HttpError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "registry connection closed");
        }
    });
    tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| HttpError::Timeout("waiting for response headers"))?
        .map_err(HttpError::from)
}

/// The next chunk of a body, or None at its end; fails after [`IDLE_TIMEOUT`] without data.
pub async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, HttpError> {
    loop {
        let frame =
            tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await.map_err(|_| HttpError::Timeout("reading body"))?;
        match frame {
            None => return Ok(None),
            Some(f) => {
                if let Ok(data) = f?.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn read_body(mut body: Incoming, limit: usize) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await? {
        if out.len() + chunk.len() > limit {
            return Err(HttpError::BodyTooLarge(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn authority_of(url: &str) -> Result<String, HttpError> {
    let uri: Uri = url.parse().map_err(|_| HttpError::InvalidUrl(url.to_string()))?;
    Ok(format!("{}://{}", uri.scheme_str().unwrap_or(""), uri.authority().map(|a| a.as_str()).unwrap_or("")))
}

/// Resolves a Location header against the request URL (absolute, host-relative or path-relative).
pub fn resolve(base: &str, location: &str) -> Result<String, HttpError> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_string());
    }
    let origin = authority_of(base)?;
    if location.starts_with("//") {
        let scheme = origin.split("://").next().unwrap_or("https");
        return Ok(format!("{scheme}:{location}"));
    }
    if location.starts_with('/') {
        return Ok(format!("{origin}{location}"));
    }
    let uri: Uri = base.parse().map_err(|_| HttpError::InvalidUrl(base.to_string()))?;
    let dir = uri.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    Ok(format!("{origin}{dir}/{location}"))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let result = rustls_native_certs::load_native_certs();
        for e in &result.errors {
            tracing::warn!(error = %e, "loading system CA certificates");
        }
        result.certs
    })
}

fn build_tls_config(tls: &TlsConfig) -> Result<ClientConfig, HttpError> {
    let err = |e: &dyn std::fmt::Display| HttpError::TlsConfig(e.to_string());
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(|e| err(&e))?;
    let builder = if tls.insecure_skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(SkipVerify(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(native_roots().iter().cloned());
        if let Some(ca) = &tls.ca_file {
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| err(&format!("{}: {e}", ca.display())))? {
                roots.add(cert.map_err(|e| err(&format!("{}: {e}", ca.display())))?).map_err(|e| err(&e))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| err(&format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| err(&format!("{}: {e}", key.display())))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| err(&e))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// `insecure_skip_verify`: any certificate is accepted, but handshake signatures are still checked.
/// Also what edge-agent's join uses for its one unverified request (`/cacerts`, checked by hash).
#[derive(Debug)]
pub struct SkipVerify(pub Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolve_table() {
        let base = "https://reg.example.com/v2/a/b/blobs/sha256:1";
        let cases = [
            ("https://cdn.example.net/x?sig=1", "https://cdn.example.net/x?sig=1"),
            ("/v2/a/b/blobs/uploads/u1?_state=z", "https://reg.example.com/v2/a/b/blobs/uploads/u1?_state=z"),
            ("//cdn.example.net/y", "https://cdn.example.net/y"),
            ("other", "https://reg.example.com/v2/a/b/blobs/other"),
        ];
        for (loc, want) in cases {
            assert_eq!(resolve(base, loc).unwrap(), want, "{loc}");
        }
    }
}
