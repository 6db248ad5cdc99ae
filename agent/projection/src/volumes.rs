//! The files of configMap, secret, downwardAPI and projected volumes, as upstream's volume plugins
//! (pkg/volume/configmap, secret, downwardapi, projected) build the payload they hand the atomic writer.

mod downward;
mod keyed;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Volume;
use thiserror::Error;

use crate::fieldpath::FieldPathError;
use crate::paths::{self, PathError};
use crate::{Lookup, PodContext};

/// The mode of a file whose volume and item set none (the API server's default for `defaultMode`).
pub const DEFAULT_MODE: i32 = 0o644;

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub data: Vec<u8>,
    /// Permission bits (`0o644`), applied regardless of umask.
    pub mode: u32,
}

/// Why a volume cannot be set up; the text is what upstream reports after
/// `MountVolume.SetUp failed for volume "x" : `.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VolumeError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKeyNotFound(String),
    #[error("references non-existent secret key: {0}")]
    SecretKeyNotFound(String),
    #[error(transparent)]
    Field(#[from] FieldPathError),
    #[error(transparent)]
    InvalidPath(#[from] PathError),
    /// A projected source edge does not serve (serviceAccountToken, clusterTrustBundle).
    #[error("projected volume source {0} is not supported")]
    UnsupportedSource(&'static str),
    #[error("volume {0:?} is not a configMap, secret, downwardAPI or projected volume")]
    NotProjected(String),
    /// Several failures of one volume, reported together as utilerrors.Aggregate does.
    #[error("{}", aggregate_message(.0))]
    Aggregate(Vec<VolumeError>),
}

impl VolumeError {
    /// `utilerrors.NewAggregate`: nothing for no errors, the error itself for one, else a flat list.
    fn aggregate(errors: Vec<VolumeError>) -> Option<VolumeError> {
        let mut flat = Vec::new();
        for error in errors {
            match error {
                VolumeError::Aggregate(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => None,
            1 => flat.pop(),
            _ => Some(VolumeError::Aggregate(flat)),
        }
    }
}

/// Distinct messages in order; one message alone, several as `[a, b]`.
fn aggregate_message(errors: &[VolumeError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for error in errors {
        let message = error.to_string();
        if !seen.contains(&message) {
            seen.push(message);
        }
    }
    match seen.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The files of `volume`, keyed by cleaned relative path. Errors if the volume is not one of the
/// four projected kinds, if a referenced object or key is missing and not optional, or if a path
/// would leave the volume.
pub fn project(ctx: &PodContext, volume: &Volume, lookup: &dyn Lookup) -> Result<BTreeMap<String, File>, VolumeError> {
    let namespace = ctx.namespace();
    let raw = if let Some(src) = &volume.config_map {
        let default_mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        let optional = src.optional.unwrap_or(false);
        let cm = keyed::config_map_or_empty(lookup, namespace, &src.name, optional)?;
        keyed::config_map_payload(src.items.as_deref(), &cm, default_mode, optional)?
    } else if let Some(src) = &volume.secret {
        let default_mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        let optional = src.optional.unwrap_or(false);
        let name = src.secret_name.as_deref().unwrap_or_default();
        let secret = keyed::secret_or_empty(lookup, namespace, name, optional)?;
        keyed::secret_payload(src.items.as_deref(), &secret, default_mode, optional)?
    } else if let Some(src) = &volume.downward_api {
        let default_mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        downward::collect(ctx, src.items.as_deref().unwrap_or_default(), default_mode)?
    } else if let Some(src) = &volume.projected {
        let default_mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        projected(ctx, src.sources.as_deref().unwrap_or_default(), default_mode, lookup)?
    } else {
        return Err(VolumeError::NotProjected(volume.name.clone()));
    };
    let mut files = BTreeMap::new();
    for (path, file) in raw {
        files.insert(paths::checked(&path)?, file);
    }
    Ok(files)
}

/// `projectedVolumeMounter.collectData`: every source is tried, later sources overwrite earlier ones
/// at the same path, and the failures are reported together.
fn projected(
    ctx: &PodContext,
    sources: &[k8s_openapi::api::core::v1::VolumeProjection],
    default_mode: i32,
    lookup: &dyn Lookup,
) -> Result<BTreeMap<String, File>, VolumeError> {
    let namespace = ctx.namespace();
    let mut payload = BTreeMap::new();
    let mut errors = Vec::new();
    for source in sources {
        let part = if let Some(src) = &source.secret {
            let optional = src.optional.unwrap_or(false);
            keyed::secret_or_empty(lookup, namespace, &src.name, optional)
                .and_then(|s| keyed::secret_payload(src.items.as_deref(), &s, default_mode, optional))
        } else if let Some(src) = &source.config_map {
            let optional = src.optional.unwrap_or(false);
            keyed::config_map_or_empty(lookup, namespace, &src.name, optional)
                .and_then(|cm| keyed::config_map_payload(src.items.as_deref(), &cm, default_mode, optional))
        } else if let Some(src) = &source.downward_api {
            downward::collect(ctx, src.items.as_deref().unwrap_or_default(), default_mode)
        } else if source.service_account_token.is_some() {
            Err(VolumeError::UnsupportedSource("serviceAccountToken"))
        } else if source.cluster_trust_bundle.is_some() {
            Err(VolumeError::UnsupportedSource("clusterTrustBundle"))
        } else {
            Ok(BTreeMap::new())
        };
        match part {
            Ok(files) => payload.extend(files),
            Err(e) => errors.push(e),
        }
    }
    match VolumeError::aggregate(errors) {
        Some(e) => Err(e),
        None => Ok(payload),
    }
}

/// An API mode (`int32`, validated to 0..=0777) as permission bits.
fn mode_bits(mode: i32) -> u32 {
    (mode as u32) & 0o777
}
