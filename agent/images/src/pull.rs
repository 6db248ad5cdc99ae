//! Pulling images: endpoint fallback (mirrors, then the registry), index → platform manifest,
//! config and layers into the content store, the image recorded in the index; and kubelet's
//! imagePullPolicy decisions.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::http::HttpClient;
use crate::manifest::{is_layer_media_type, ImageConfigFile, Manifest, ManifestError};
use crate::platform::Platform;
use crate::reference::{Reference, ReferenceError};
use crate::registries::{ConfigError, DockerConfig, RegistriesConfig};
use crate::registry::{RegistryError, Session};
use crate::snapshots::{prepare_snapshots, SnapshotError};
use crate::store::{unix_now, ContentStore, ImageRecord, LayerRecord, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("pulling {reference}: {}", display_attempts(.attempts))]
    AllEndpointsFailed { reference: String, attempts: Vec<(String, PullAttemptError)> },
    #[error("Container image \"{0}\" is not present with pull policy of Never")]
    NeverPull(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("unpacking task failed: {0}")]
    Join(String),
}

/// Why pulling from one endpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum PullAttemptError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("manifest has {layers} layers but config lists {diff_ids} diff IDs")]
    LayerCount { layers: usize, diff_ids: usize },
    #[error("unsupported layer media type {0:?}")]
    LayerMediaType(String),
}

fn display_attempts(a: &[(String, PullAttemptError)]) -> String {
    a.iter().map(|(e, err)| format!("{e}: {err}")).collect::<Vec<_>>().join("; ")
}

impl PullError {
    /// The error of each endpoint tried, for callers that need to tell digest mismatches or
    /// auth failures apart.
    pub fn attempts(&self) -> &[(String, PullAttemptError)] {
        match self {
            PullError::AllEndpointsFailed { attempts, .. } => attempts,
            _ => &[],
        }
    }
}

/// Kubernetes' imagePullPolicy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The pod spec's value, or Kubernetes' default: Always for `:latest` (or no tag), else IfNotPresent.
    pub fn from_spec(value: Option<&str>, image: &Reference) -> Self {
        match value {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ if image.is_latest() => PullPolicy::Always,
            _ => PullPolicy::IfNotPresent,
        }
    }

    /// What to do, given whether the image is already in the store.
    pub fn decide(self, present: bool) -> PullDecision {
        match (self, present) {
            (PullPolicy::Always, _) | (PullPolicy::IfNotPresent, false) => PullDecision::Pull,
            (PullPolicy::IfNotPresent, true) | (PullPolicy::Never, true) => PullDecision::UseLocal,
            (PullPolicy::Never, false) => PullDecision::Refuse,
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullDecision {
    Pull,
    UseLocal,
    /// Never and absent: kubelet's ErrImageNeverPull.
    Refuse,
}

/// Pulls images into a content store for one node platform.
pub struct Puller {
    store: Arc<ContentStore>,
    registries: RegistriesConfig,
    platform: Platform,
    http: HttpClient,
}

impl Puller {
    pub fn new(store: Arc<ContentStore>, registries: RegistriesConfig, platform: Platform) -> Self {
        Puller { store, registries, platform, http: HttpClient::new() }
    }

    pub fn store(&self) -> &Arc<ContentStore> {
        &self.store
    }

    /// Applies `policy`: returns the stored image, pulling it first when the policy says so.
    pub async fn ensure(
        &self,
        image: &str,
        policy: PullPolicy,
        secrets: &[DockerConfig],
    ) -> Result<ImageRecord, PullError> {
        let present = self.store.find_image(image)?;
        match policy.decide(present.is_some()) {
            PullDecision::Refuse => Err(PullError::NeverPull(image.to_string())),
            PullDecision::Pull => self.pull(image, secrets).await,
            PullDecision::UseLocal => {
                let rec = present.ok_or_else(|| PullError::NeverPull(image.to_string()))?;
                self.store.touch_image(&rec.name)?;
                Ok(rec)
            }
        }
    }

    /// Pulls `image` from the first endpoint that serves it and records it in the index.
    pub async fn pull(&self, image: &str, secrets: &[DockerConfig]) -> Result<ImageRecord, PullError> {
        let reference = Reference::parse(image)?;
        let endpoints = self.registries.endpoints(&reference, secrets)?;
        let mut attempts = Vec::new();
        let started = Instant::now();
        for endpoint in endpoints {
            let label = endpoint.url("").trim_end_matches('/').to_string();
            tracing::info!(image = %reference, endpoint = %label, "pulling image");
            let session = Session::new(&self.http, endpoint);
            match self.pull_from(&session, &reference).await {
                Ok(rec) => {
                    tracing::info!(image = %reference, digest = %rec.target, bytes = rec.size, elapsed_ms = started.elapsed().as_millis() as u64, "pulled image");
                    return Ok(rec);
                }
                Err(PullAttemptError::Store(e @ StoreError::Io { .. })) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(image = %reference, endpoint = %label, error = %e, "pull from endpoint failed");
                    attempts.push((label, e));
                }
            }
        }
        Err(PullError::AllEndpointsFailed { reference: reference.to_string(), attempts })
    }

    async fn pull_from(&self, session: &Session<'_>, reference: &Reference) -> Result<ImageRecord, PullAttemptError> {
        let (ct, body, target) = session.fetch_manifest(&reference.object(), reference.digest()).await?;
        let (manifest_digest, manifest) = match Manifest::parse(&ct, &body)? {
            Manifest::Index(index) => {
                self.store.write_blob(&body, Some(&target))?;
                let desc = index.select(&self.platform)?;
                tracing::debug!(platform = %self.platform, manifest = %desc.digest, "selected platform manifest");
                let (ct, body, digest) = session.fetch_manifest(desc.digest.as_str(), Some(&desc.digest)).await?;
                let ct = if ct.is_empty() { desc.media_type.clone() } else { ct };
                match Manifest::parse(&ct, &body)? {
                    Manifest::Image(m) => {
                        self.store.write_blob(&body, Some(&digest))?;
                        (digest, m)
                    }
                    Manifest::Index(_) => {
                        return Err(ManifestError::UnsupportedMediaType("nested image index".into()).into())
                    }
                }
            }
            Manifest::Image(m) => {
                self.store.write_blob(&body, Some(&target))?;
                (target.clone(), m)
            }
        };
        let config_bytes = if self.store.has_blob(&manifest.config.digest) {
            self.store.read_blob(&manifest.config.digest)?
        } else {
            let b = session.fetch_small_blob(&manifest.config).await?;
            self.store.write_blob(&b, Some(&manifest.config.digest))?;
            b
        };
        let config = ImageConfigFile::parse(&config_bytes)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(PullAttemptError::LayerCount {
                layers: manifest.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        let mut layers = Vec::new();
        let mut size = (body.len() + config_bytes.len()) as u64;
        for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            if !is_layer_media_type(&desc.media_type) {
                return Err(PullAttemptError::LayerMediaType(desc.media_type.clone()));
            }
            if self.store.has_blob(&desc.digest) {
                tracing::debug!(digest = %desc.digest, "layer already present");
            } else {
                tracing::info!(digest = %desc.digest, size = desc.size, "pulling layer");
                session.fetch_blob(desc, &self.store).await?;
            }
            size += desc.size;
            layers.push(LayerRecord {
                digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size,
                diff_id: diff_id.clone(),
            });
        }
        let now = unix_now();
        let record = ImageRecord {
            name: reference.to_string(),
            target,
            manifest: manifest_digest,
            config: manifest.config.digest.clone(),
            layers,
            size,
            pulled_at: now,
            last_used: now,
        };
        self.store.put_image(record.clone())?;
        Ok(record)
    }

    /// Unpacks the image's layers (off the async threads) and returns the snapshot dirs, lowest first.
    pub async fn prepare(&self, image: &ImageRecord) -> Result<Vec<std::path::PathBuf>, PullError> {
        let store = self.store.clone();
        let image = image.clone();
        tokio::task::spawn_blocking(move || prepare_snapshots(&store, &image))
            .await
            .map_err(|e| PullError::Join(e.to_string()))?
            .map_err(PullError::from)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        let r = |s: &str| Reference::parse(s).unwrap();
        let cases = [
            (None, "nginx", PullPolicy::Always),
            (None, "nginx:latest", PullPolicy::Always),
            (None, "nginx:1.7.9", PullPolicy::IfNotPresent),
            (
                None,
                "nginx@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                PullPolicy::IfNotPresent,
            ),
            (Some("Never"), "nginx", PullPolicy::Never),
            (Some("IfNotPresent"), "nginx", PullPolicy::IfNotPresent),
            (Some("Always"), "nginx:1", PullPolicy::Always),
        ];
        for (spec, image, want) in cases {
            assert_eq!(PullPolicy::from_spec(spec, &r(image)), want, "{spec:?} {image}");
        }
        let decisions = [
            (PullPolicy::Always, true, PullDecision::Pull),
            (PullPolicy::Always, false, PullDecision::Pull),
            (PullPolicy::IfNotPresent, true, PullDecision::UseLocal),
            (PullPolicy::IfNotPresent, false, PullDecision::Pull),
            (PullPolicy::Never, true, PullDecision::UseLocal),
            (PullPolicy::Never, false, PullDecision::Refuse),
        ];
        for (p, present, want) in decisions {
            assert_eq!(p.decide(present), want, "{p} present={present}");
        }
    }
}
