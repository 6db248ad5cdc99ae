//! The cluster's certificates: a CA made on first start, the API server's serving certificate and the
//! admin client certificate signed by it, and the admin kubeconfig. Restarts reuse what is on disk; the
//! serving certificate is re-issued only when its names change (a new node IP, say). Nodes get their
//! client and kubelet serving certificates signed here from their CSRs, and the API server has its own
//! client certificate for calling kubelets.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use crate::admission::validation::is_dns1123_subdomain;

/// The identity the API server presents to kubelets (upstream's kubeadm name for it).
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// Why node certificates could not be issued; the first three are the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum NodeCertError {
    #[error("clientCsr: {0}")]
    ClientCsr(rcgen::Error),
    #[error("servingCsr: {0}")]
    ServingCsr(rcgen::Error),
    #[error("addresses: {0:?} is neither an IP address nor a DNS-1123 subdomain")]
    Address(String),
    #[error("signing: {0}")]
    Sign(#[from] rcgen::Error),
    #[error("loading the CA: {0:#}")]
    Ca(anyhow::Error),
}

/// What a joining node gets back: PEM certificates for the keys in its CSRs.
#[derive(Debug, Clone)]
pub struct NodeCerts {
    pub client_cert: String,
    pub serving_cert: String,
}

pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    ca_key_pem: String,
}

struct Issuer {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Pki {
    /// Loads the PKI from `<data_dir>/tls`, creating what is missing.
    pub fn ensure(data_dir: &Path, hosts: &[String], ips: &[IpAddr]) -> Result<Pki> {
        let dir = data_dir.join("tls");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (ca_pem, ca_key_pem) = match (read(&dir.join("ca.crt"))?, read(&dir.join("ca.key"))?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::default();
                params.distinguished_name = dn("edge-ca", None);
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages =
                    vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
                params.not_after = rcgen::date_time_ymd(2036, 1, 1);
                let cert = params.self_signed(&key)?;
                write_private(&dir.join("ca.key"), &key.serialize_pem())?;
                write_public(&dir.join("ca.crt"), &cert.pem())?;
                tracing::info!(dir = %dir.display(), "created cluster CA");
                (cert.pem(), key.serialize_pem())
            }
        };
        let issuer = issuer(&ca_pem, &ca_key_pem)?;

        let mut names: Vec<String> = hosts.to_vec();
        names.extend(ips.iter().map(|ip| ip.to_string()));
        names.sort();
        names.dedup();
        let names_file = dir.join("serving.names");
        let wanted = names.join("\n");
        let serving = match (read(&dir.join("serving.crt"))?, read(&dir.join("serving.key"))?, read(&names_file)?) {
            (Some(c), Some(k), Some(n)) if n == wanted => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::default();
                params.distinguished_name = dn("edge-server", None);
                params.subject_alt_names = names
                    .iter()
                    .map(|n| match n.parse::<IpAddr>() {
                        Ok(ip) => Ok(SanType::IpAddress(ip)),
                        Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
                    })
                    .collect::<Result<Vec<_>, rcgen::Error>>()?;
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.not_after = rcgen::date_time_ymd(2036, 1, 1);
                let cert = params.signed_by(&key, &issuer.cert, &issuer.key)?;
                write_private(&dir.join("serving.key"), &key.serialize_pem())?;
                write_public(&dir.join("serving.crt"), &cert.pem())?;
                write_public(&names_file, &wanted)?;
                (cert.pem(), key.serialize_pem())
            }
        };
        Ok(Pki { dir, ca_pem, serving_cert_pem: serving.0, serving_key_pem: serving.1, ca_key_pem })
    }

    /// Issues a client certificate (CN = user, O = groups) signed by the cluster CA.
    pub fn issue_client(&self, user: &str, group: Option<&str>) -> Result<(String, String)> {
        let issuer = issuer(&self.ca_pem, &self.ca_key_pem)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(user, group);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = params.signed_by(&key, &issuer.cert, &issuer.key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The admin client certificate (system:admin in system:masters), made once and kept.
    pub fn admin(&self) -> Result<(String, String)> {
        let (crt, key) = (self.dir.join("admin.crt"), self.dir.join("admin.key"));
        if let (Some(c), Some(k)) = (read(&crt)?, read(&key)?) {
            return Ok((c, k));
        }
        let (c, k) = self.issue_client("system:admin", Some("system:masters"))?;
        write_private(&key, &k)?;
        write_public(&crt, &c)?;
        Ok((c, k))
    }

    /// The API server's client certificate for kubelets (`kube-apiserver-kubelet-client` in
    /// `system:masters`), made once and kept.
    pub fn kubelet_client(&self) -> Result<(String, String)> {
        let (crt, key) = (self.dir.join("kubelet-client.crt"), self.dir.join("kubelet-client.key"));
        if let (Some(c), Some(k)) = (read(&crt)?, read(&key)?) {
            return Ok((c, k));
        }
        let (c, k) = self.issue_client(KUBELET_CLIENT_USER, Some("system:masters"))?;
        write_private(&key, &k)?;
        write_public(&crt, &c)?;
        Ok((c, k))
    }

    /// Signs a node's certificates from its CSRs. Only the CSRs' public keys are used: the names,
    /// usages and validity come from here, so a CSR cannot ask for more (a CA, another identity).
    /// `addresses` become the serving certificate's SANs (IPs as IP SANs, the rest as DNS names).
    pub fn sign_node(
        &self,
        node: &str,
        client_csr: &str,
        serving_csr: &str,
        addresses: &[String],
    ) -> Result<NodeCerts, NodeCertError> {
        let mut client = CertificateSigningRequestParams::from_pem(client_csr).map_err(NodeCertError::ClientCsr)?;
        let mut serving = CertificateSigningRequestParams::from_pem(serving_csr).map_err(NodeCertError::ServingCsr)?;
        let sans = addresses
            .iter()
            .map(|a| match a.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) if is_dns1123_subdomain(a) => {
                    Ok(SanType::DnsName(a.clone().try_into().map_err(|_| NodeCertError::Address(a.clone()))?))
                }
                Err(_) => Err(NodeCertError::Address(a.clone())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let issuer = issuer(&self.ca_pem, &self.ca_key_pem).map_err(NodeCertError::Ca)?;

        client.params = leaf_params(dn(&format!("system:node:{node}"), Some("system:nodes")));
        client.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        serving.params = leaf_params(dn(node, None));
        serving.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving.params.subject_alt_names = sans;
        Ok(NodeCerts {
            client_cert: client.signed_by(&issuer.cert, &issuer.key)?.pem(),
            serving_cert: serving.signed_by(&issuer.cert, &issuer.key)?.pem(),
        })
    }

    /// Writes an admin kubeconfig for `server` (mode 0600: it holds a private key).
    pub fn write_kubeconfig(&self, path: &Path, server: &str) -> Result<()> {
        let (cert, key) = self.admin()?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: default\n\
             contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\n\
             preferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&self.ca_pem),
            server,
            b64(&cert),
            b64(&key)
        );
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        write_private(path, &text)
    }
}

fn issuer(ca_pem: &str, ca_key_pem: &str) -> Result<Issuer> {
    let key = KeyPair::from_pem(ca_key_pem).context("parsing CA key")?;
    // Re-signing the same parameters with the same key yields an issuer whose name and key match the
    // CA on disk, which is all that signing needs.
    let params = CertificateParams::from_ca_cert_pem(ca_pem).context("parsing CA certificate")?;
    let cert = params.self_signed(&key)?;
    Ok(Issuer { cert, key })
}

/// Parameters of an end-entity certificate with a random serial, so that re-issuing for the same key
/// never repeats a serial number.
fn leaf_params(name: DistinguishedName) -> CertificateParams {
    use rand::RngCore;
    let mut serial = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut serial);
    serial[0] &= 0x7f;
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    params
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_public(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, text, 0o644)
}

pub(crate) fn write_private(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, text, 0o600)
}

/// Writes through a temporary file and a rename, so a crash never leaves half a key behind.
fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let a = Pki::ensure(dir.path(), &["kubernetes".into()], &[ip]).unwrap();
        let b = Pki::ensure(dir.path(), &["kubernetes".into()], &[ip]).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.serving_cert_pem, b.serving_cert_pem);
        let other: IpAddr = "10.0.0.6".parse().unwrap();
        let c = Pki::ensure(dir.path(), &["kubernetes".into()], &[other]).unwrap();
        assert_eq!(a.ca_pem, c.ca_pem);
        assert_ne!(a.serving_cert_pem, c.serving_cert_pem);
        assert_eq!(a.admin().unwrap(), b.admin().unwrap());
    }

    fn csr(cn: &str) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        params.distinguished_name = dn(cn, Some("system:masters"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    struct Seen {
        subject: String,
        issuer: String,
        is_ca: bool,
        client_auth: bool,
        server_auth: bool,
        sans: Vec<String>,
    }

    fn inspect(pem: &str) -> Seen {
        use x509_parser::extensions::GeneralName;
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let eku = cert.extended_key_usage().unwrap().map(|e| e.value.clone());
        let sans = cert
            .subject_alternative_name()
            .unwrap()
            .map(|s| {
                s.value
                    .general_names
                    .iter()
                    .map(|n| match n {
                        GeneralName::DNSName(d) => format!("DNS:{d}"),
                        GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Seen {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            is_ca: cert.is_ca(),
            client_auth: eku.as_ref().is_some_and(|e| e.client_auth),
            server_auth: eku.as_ref().is_some_and(|e| e.server_auth),
            sans,
        }
    }

    use rustls_pki_types::{pem::PemObject, CertificateDer};

    #[test]
    fn node_certificates_take_only_the_key_from_the_csr() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::ensure(dir.path(), &["kubernetes".into()], &[]).unwrap();
        let addresses = vec!["10.0.0.5".to_string(), "n1".to_string()];
        let certs = pki.sign_node("n1", &csr("evil"), &csr("evil"), &addresses).unwrap();

        let client = inspect(&certs.client_cert);
        assert_eq!(client.subject, "O=system:nodes, CN=system:node:n1");
        assert_eq!(client.issuer, "CN=edge-ca");
        assert!(!client.is_ca && client.client_auth && !client.server_auth);
        assert!(client.sans.is_empty(), "{:?}", client.sans);

        let serving = inspect(&certs.serving_cert);
        assert_eq!(serving.subject, "CN=n1");
        assert!(!serving.is_ca && serving.server_auth && !serving.client_auth);
        assert_eq!(serving.sans, ["IP:[10, 0, 0, 5]", "DNS:n1"]);

        let user =
            crate::api::auth::from_der(CertificateDer::from_pem_slice(certs.client_cert.as_bytes()).unwrap().as_ref())
                .unwrap();
        assert_eq!((user.name.as_str(), user.groups.as_slice()), ("system:node:n1", &["system:nodes".to_string()][..]));
    }

    #[test]
    fn bad_node_requests_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::ensure(dir.path(), &["kubernetes".into()], &[]).unwrap();
        let good = csr("n1");
        let cases: [(&str, &str, &[&str], &str); 4] = [
            ("garbage", &good, &["n1"], "clientCsr"),
            (
                &good,
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                &["n1"],
                "servingCsr",
            ),
            (&good, &good, &["Not_A_Name"], "addresses"),
            (&good, &good, &["a b"], "addresses"),
        ];
        for (client, serving, addrs, field) in cases {
            let addrs: Vec<String> = addrs.iter().map(|s| s.to_string()).collect();
            let err = pki.sign_node("n1", client, serving, &addrs).unwrap_err();
            assert!(err.to_string().starts_with(field), "{field}: {err}");
        }
    }

    #[test]
    fn the_kubelet_client_certificate_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::ensure(dir.path(), &["kubernetes".into()], &[]).unwrap();
        let (cert, _) = pki.kubelet_client().unwrap();
        assert_eq!(pki.kubelet_client().unwrap().0, cert);
        assert_eq!(inspect(&cert).subject, "O=system:masters, CN=kube-apiserver-kubelet-client");
    }
}
