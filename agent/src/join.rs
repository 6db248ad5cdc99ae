//! Joining the cluster, k3s-style: the agent fetches the cluster CA from `/cacerts` (checking it against
//! the hash in a full `K10<sha256>::server:<secret>` token), then trades the token for a client
//! certificate (`system:node:<name>`, group `system:nodes`) and a serving certificate for its kubelet
//! API, both made from CSRs so the private keys never leave the board.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};

use crate::config::{host_port, AgentConfig};

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("server URL {0:?} is not https://HOST:PORT")]
    Url(String),
    #[error("connecting to {0}: {1}")]
    Connect(String, String),
    #[error("the server's CA does not match the token's hash (token {token}…, CA {actual}): wrong server or token")]
    CaMismatch { token: String, actual: String },
    #[error("the server refused the token (401): check --token")]
    Unauthorized,
    #[error("{path}: HTTP {status}: {body}")]
    Http { path: String, status: u16, body: String },
    #[error("making keys: {0}")]
    Keys(#[from] rcgen::Error),
    #[error("bad reply from {0}: {1}")]
    Reply(String, String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// PEM texts of everything the agent needs to talk to the cluster and serve its kubelet API.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub ca: String,
    pub client_cert: String,
    pub client_key: String,
    pub serving_cert: String,
    pub serving_key: String,
}

/// The secret and, for a full token, the CA hash it pins.
pub fn parse_token(token: &str) -> (Option<String>, String) {
    match token.strip_prefix("K10").and_then(|rest| rest.split_once("::")) {
        Some((hash, cred)) => {
            let secret = cred.split_once(':').map_or(cred, |(_, s)| s);
            (Some(hash.to_ascii_lowercase()), secret.to_string())
        }
        None => (None, token.to_string()),
    }
}

pub fn ca_hash(ca_pem: &str) -> String {
    Sha256::digest(ca_pem.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Joins and stores the credentials under `<data-dir>/pki` (the kubelet API and debugging use the files).
pub async fn join(cfg: &AgentConfig) -> Result<Credentials, JoinError> {
    let (host, port) = host_port(&cfg.server).ok_or_else(|| JoinError::Url(cfg.server.clone()))?;
    let (pinned, secret) = parse_token(&cfg.token);

    // Without a pinned hash there is nothing to verify the first connection against (k3s behaves
    // the same with a bare secret): trust on first use.
    let (status, body) = request(&host, port, None, "GET", "/cacerts", None, None).await?;
    if status != 200 {
        return Err(JoinError::Http { path: "/cacerts".into(), status, body: String::from_utf8_lossy(&body).into() });
    }
    let ca = String::from_utf8(body.to_vec()).map_err(|e| JoinError::Reply("/cacerts".into(), e.to_string()))?;
    if let Some(want) = pinned {
        let actual = ca_hash(&ca);
        if actual != want {
            return Err(JoinError::CaMismatch { token: want.chars().take(12).collect(), actual });
        }
    }

    let client_key = KeyPair::generate()?;
    let serving_key = KeyPair::generate()?;
    let csr = |cn: &str, key: &KeyPair| -> Result<String, rcgen::Error> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.serialize_request(key)?.pem()
    };
    let mut addresses = vec![cfg.node_ip.to_string(), cfg.node_name.clone()];
    if cfg.node_ip.to_string() != "127.0.0.1" {
        addresses.push("127.0.0.1".into());
    }
    let req = serde_json::json!({
        "nodeName": cfg.node_name,
        "clientCsr": csr(&format!("system:node:{}", cfg.node_name), &client_key)?,
        "servingCsr": csr(&cfg.node_name, &serving_key)?,
        "addresses": addresses,
    });
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("node:{secret}")));
    let body = serde_json::to_vec(&req).map_err(|e| JoinError::Reply("request".into(), e.to_string()))?;
    let path = "/v1-edge/node-certs";
    let (status, reply) = request(&host, port, Some(&ca), "POST", path, Some(&auth), Some(body)).await?;
    match status {
        200 => {}
        401 => return Err(JoinError::Unauthorized),
        _ => return Err(JoinError::Http { path: path.into(), status, body: String::from_utf8_lossy(&reply).into() }),
    }
    let v: serde_json::Value =
        serde_json::from_slice(&reply).map_err(|e| JoinError::Reply(path.into(), e.to_string()))?;
    let field = |k: &str| {
        v[k].as_str().map(str::to_string).ok_or_else(|| JoinError::Reply(path.into(), format!("no {k:?} in the reply")))
    };
    let creds = Credentials {
        ca,
        client_cert: field("clientCert")?,
        client_key: client_key.serialize_pem(),
        serving_cert: field("servingCert")?,
        serving_key: serving_key.serialize_pem(),
    };
    store(&cfg.pki_dir(), &creds)?;
    Ok(creds)
}

fn store(dir: &Path, c: &Credentials) -> Result<(), JoinError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| JoinError::Io(dir.display().to_string(), e))?;
    for (name, text, mode) in [
        ("ca.crt", &c.ca, 0o644),
        ("client.crt", &c.client_cert, 0o644),
        ("client.key", &c.client_key, 0o600),
        ("serving.crt", &c.serving_cert, 0o644),
        ("serving.key", &c.serving_key, 0o600),
    ] {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let io = |e| JoinError::Io(path.display().to_string(), e);
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
    }
    Ok(())
}

/// A kubeconfig for this node's identity (what kube-rs reads, and handy for debugging with kubectl).
pub fn kubeconfig(server: &str, c: &Credentials) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: edge\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\n\
         users:\n- name: node\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n\
         contexts:\n- name: edge\n  context:\n    cluster: edge\n    user: node\ncurrent-context: edge\n",
        b64(&c.ca),
        b64(&c.client_cert),
        b64(&c.client_key)
    )
}

pub async fn client(server: &str, c: &Credentials) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig(server, c))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// One HTTPS request on a fresh connection; `ca` None accepts any server certificate (only for
/// `/cacerts`, whose answer is checked against the token instead).
async fn request(
    host: &str,
    port: u16,
    ca: Option<&str>,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<(u16, Bytes), JoinError> {
    let target = format!("{host}:{port}");
    let conn_err = |e: String| JoinError::Connect(target.clone(), e);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| conn_err(e.to_string()))?;
    let tls = match ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                roots.add(cert.map_err(|e| conn_err(e.to_string()))?).map_err(|e| conn_err(e.to_string()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(edge_images::http::SkipVerify(provider)))
            .with_no_client_auth(),
    };
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(host.to_string()).map_err(|e| conn_err(e.to_string()))?,
    };
    let tcp = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| conn_err(e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| conn_err(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| conn_err(e.to_string()))?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(path).header("host", &target);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default()))).map_err(|e| conn_err(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(|e| conn_err(e.to_string()))?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.map_err(|e| conn_err(e.to_string()))?.to_bytes();
    Ok((status, bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let cases = [
            ("K10abcDEF::server:s3cret", Some("abcdef"), "s3cret"),
            ("K10abc::node:pw", Some("abc"), "pw"),
            ("plain-secret", None, "plain-secret"),
            ("K10nohash", None, "K10nohash"),
        ];
        for (token, hash, secret) in cases {
            assert_eq!(parse_token(token), (hash.map(str::to_string), secret.to_string()), "{token}");
        }
    }

    #[test]
    fn ca_hash_is_sha256_hex_of_the_pem() {
        assert_eq!(ca_hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
