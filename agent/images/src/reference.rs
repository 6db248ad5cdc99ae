//! Image references as Kubernetes pod specs write them (`nginx:1.7.9`, `registry:5000/a/b@sha256:...`),
//! normalized the way Docker and containerd do (`docker.io/library/nginx:1.7.9`).

use std::fmt;

use crate::digest::{Digest, DigestError};

pub const DOCKER_HUB: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid image reference {0:?}: repository name must be lowercase [a-z0-9] separated by '.', '_', '__', '-' or '/'")]
    InvalidName(String),
    #[error("invalid tag in image reference {0:?}")]
    InvalidTag(String),
    #[error("invalid digest in image reference: {0}")]
    InvalidDigest(#[from] DigestError),
}

/// A fully qualified reference: registry host, repository path, and tag and/or digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d)?)),
            None => (input, None),
        };
        // A ':' after the last '/' separates the tag; an earlier one is a registry port.
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..])),
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::InvalidTag(input.to_string()));
            }
        }
        let (registry, repository) = split_registry(name);
        let registry = match registry {
            Some("index.docker.io") | None => DOCKER_HUB.to_string(),
            Some(r) => r.to_string(),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        if !valid_repository(&repository) || !valid_registry(&registry) {
            return Err(ReferenceError::InvalidName(input.to_string()));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// Registry host (and port) as written in the reference, `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }
    pub fn repository(&self) -> &str {
        &self.repository
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository@digest`: the "repo digest" kubelet reports as a container's imageID.
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference { digest: Some(digest.clone()), tag: None, ..self.clone() }
    }

    /// Whether the reference names `:latest` (explicitly or by default) and no digest: Kubernetes
    /// then defaults imagePullPolicy to Always.
    pub fn is_latest(&self) -> bool {
        self.digest.is_none() && self.tag.as_deref() == Some(DEFAULT_TAG)
    }
}

fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn valid_registry(r: &str) -> bool {
    !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// Path components: `[a-z0-9]+` joined by `.`, `_`, `__` or any run of `-`.
fn valid_repository(repo: &str) -> bool {
    !repo.is_empty()
        && repo.len() <= 255
        && repo.split('/').all(|c| {
            let b = c.as_bytes();
            if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
                return false;
            }
            let mut i = 0;
            while i < b.len() {
                if is_alnum(b[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < b.len() && !is_alnum(b[i]) {
                    i += 1;
                }
                let sep = &c[start..i];
                if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
                    return false;
                }
            }
            true
        })
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalization_table() {
        let cases = [
            ("nginx", "docker.io", "library/nginx", Some("latest"), false),
            ("nginx:1.7.9", "docker.io", "library/nginx", Some("1.7.9"), false),
            ("library/nginx:1.7.9", "docker.io", "library/nginx", Some("1.7.9"), false),
            ("rancher/pause:3.6", "docker.io", "rancher/pause", Some("3.6"), false),
            ("index.docker.io/nginx", "docker.io", "library/nginx", Some("latest"), false),
            ("registry:5000/a/b", "registry:5000", "a/b", Some("latest"), false),
            ("localhost/a", "localhost", "a", Some("latest"), false),
            ("quay.io/coreos/etcd:v3.5.0", "quay.io", "coreos/etcd", Some("v3.5.0"), false),
            ("127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", Some("latest"), false),
        ];
        for (input, reg, repo, tag, has_digest) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(
                (r.registry(), r.repository(), r.tag(), r.digest().is_some()),
                (reg, repo, tag, has_digest),
                "{input}"
            );
        }
        assert_eq!(Reference::parse("nginx:1.7.9").unwrap().to_string(), "docker.io/library/nginx:1.7.9");
    }

    #[test]
    fn digest_references() {
        let r = Reference::parse(&format!("registry:5000/a/b@{D}")).unwrap();
        assert_eq!((r.registry(), r.repository(), r.tag()), ("registry:5000", "a/b", None));
        assert_eq!(r.object(), D);
        assert!(!r.is_latest());
        let r = Reference::parse(&format!("nginx:1.7.9@{D}")).unwrap();
        assert_eq!(r.tag(), Some("1.7.9"));
        assert_eq!(r.object(), D, "the digest wins over the tag");
        assert_eq!(r.to_string(), format!("docker.io/library/nginx:1.7.9@{D}"));
        assert_eq!(
            Reference::parse("nginx:1.7.9").unwrap().with_digest(&Digest::parse(D).unwrap()).to_string(),
            format!("docker.io/library/nginx@{D}")
        );
    }

    #[test]
    fn invalid_table() {
        for input in ["", "Nginx", "nginx:", "nginx:-bad", "a//b", "nginx@sha256:zz", "-a/b", "a/b-", "a..b"] {
            assert!(Reference::parse(input).is_err(), "{input} should be rejected");
        }
        assert!(Reference::parse("nginx").unwrap().is_latest());
        assert!(!Reference::parse("nginx:1").unwrap().is_latest());
    }
}
