//! The cluster's certificates: a CA made on first start, the API server's serving certificate and the
//! admin client certificate signed by it, and the admin kubeconfig. Restarts reuse what is on disk; the
//! serving certificate is re-issued only when its names change (a new node IP, say).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

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

fn write_private(path: &Path, text: &str) -> Result<()> {
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
}
