//! OCI and Docker v2 manifest formats: media types, descriptors, image indexes and manifests, the
//! image config, and picking the node's platform out of an index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The Accept header for manifest requests, in containerd's order of preference.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused before parsing (containerd uses 4 MiB too).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("malformed {what}: {source}")]
    Json { what: &'static str, source: serde_json::Error },
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("no manifest for platform {platform} in index (has: {available})")]
    NoMatchingPlatform { platform: Platform, available: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A fetched manifest document, by kind.
#[derive(Clone, Debug)]
pub enum Manifest {
    Index(Index),
    Image(ImageManifest),
}

impl Manifest {
    /// Parses by media type; when the server sent a generic type, by the document's own
    /// `mediaType` field or its shape (the media type field is optional in OCI).
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Manifest, ManifestError> {
        let ct = content_type.split(';').next().unwrap_or("").trim();
        let media = match ct {
            OCI_INDEX | DOCKER_LIST | OCI_MANIFEST | DOCKER_MANIFEST => ct.to_string(),
            _ => sniff_media_type(body)?,
        };
        match media.as_str() {
            OCI_INDEX | DOCKER_LIST => serde_json::from_slice(body)
                .map(Manifest::Index)
                .map_err(|source| ManifestError::Json { what: "image index", source }),
            OCI_MANIFEST | DOCKER_MANIFEST => serde_json::from_slice(body)
                .map(Manifest::Image)
                .map_err(|source| ManifestError::Json { what: "image manifest", source }),
            other => Err(ManifestError::UnsupportedMediaType(other.to_string())),
        }
    }
}

fn sniff_media_type(body: &[u8]) -> Result<String, ManifestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: String,
        #[serde(default)]
        schema_version: u32,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(body).map_err(|source| ManifestError::Json { what: "manifest", source })?;
    Ok(match (p.media_type.as_str(), p.manifests.is_some(), p.layers.is_some()) {
        ("", true, _) => OCI_INDEX.into(),
        ("", false, true) if p.schema_version == 2 => OCI_MANIFEST.into(),
        ("", _, _) => format!("schemaVersion {}", p.schema_version),
        (m, _, _) => m.into(),
    })
}

impl Index {
    /// The best manifest for `platform`; entries without a platform are skipped, as containerd does.
    pub fn select(&self, platform: &Platform) -> Result<&Descriptor, ManifestError> {
        self.manifests
            .iter()
            .filter(|d| matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST | ""))
            .filter_map(|d| d.platform.as_ref().and_then(|p| platform.rank(p)).map(|r| (r, d)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, d)| d)
            .ok_or_else(|| ManifestError::NoMatchingPlatform {
                platform: platform.clone(),
                available: self
                    .manifests
                    .iter()
                    .map(|d| d.platform.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "?".into()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The parts of the image config blob the runtime needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    #[serde(default)]
    pub config: ContainerConfig,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

impl ImageConfigFile {
    pub fn parse(body: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(body).map_err(|source| ManifestError::Json { what: "image config", source })
    }
}

/// Whether a layer media type is one this crate can unpack (compression is sniffed from the bytes).
pub fn is_layer_media_type(m: &str) -> bool {
    matches!(m, OCI_LAYER | OCI_LAYER_GZIP | OCI_LAYER_ZSTD | DOCKER_LAYER | DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN)
        || m.starts_with("application/vnd.oci.image.layer.nondistributable.v1.tar")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn desc(n: u8, platform: &str) -> serde_json::Value {
        let p = Platform::parse(platform).unwrap();
        serde_json::json!({"mediaType": OCI_MANIFEST, "digest": Digest::of(&[n]).to_string(), "size": 1,
            "platform": {"os": p.os, "architecture": p.architecture, "variant": p.variant}})
    }

    #[test]
    fn select_platform_table() {
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            desc(1, "linux/amd64"), desc(2, "linux/arm/v6"), desc(3, "linux/arm64/v8"), desc(4, "linux/386"), desc(5, "linux/arm/v7")]});
        let Manifest::Index(index) = Manifest::parse(OCI_INDEX, &serde_json::to_vec(&index).unwrap()).unwrap() else {
            panic!("not an index")
        };
        let cases = [
            ("linux/amd64", Some(1)),
            ("linux/arm64", Some(3)),
            ("linux/arm/v7", Some(5)),
            ("linux/arm/v6", Some(2)),
            ("linux/s390x", None),
        ];
        for (node, want) in cases {
            let got = index.select(&Platform::parse(node).unwrap()).ok().map(|d| d.digest.clone());
            assert_eq!(got, want.map(|n| Digest::of(&[n])), "{node}");
        }
        let only_v6 = Index {
            manifests: index.manifests.iter().filter(|d| d.digest == Digest::of(&[2])).cloned().collect(),
            ..index.clone()
        };
        assert_eq!(
            only_v6.select(&Platform::parse("linux/arm/v7").unwrap()).unwrap().digest,
            Digest::of(&[2]),
            "v7 node runs v6"
        );
        assert_eq!(
            only_v6.select(&Platform::parse("linux/arm64").unwrap()).unwrap().digest,
            Digest::of(&[2]),
            "arm64 node runs 32-bit arm"
        );
    }

    #[test]
    fn parse_by_content_type_or_shape() {
        let m = serde_json::json!({"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG, "digest": Digest::of(b"c").to_string(), "size": 1}, "layers": []});
        let body = serde_json::to_vec(&m).unwrap();
        assert!(matches!(Manifest::parse("application/json", &body).unwrap(), Manifest::Image(_)));
        assert!(matches!(Manifest::parse(DOCKER_MANIFEST, &body).unwrap(), Manifest::Image(_)));
        let v1 = br#"{"schemaVersion": 1, "name": "x", "fsLayers": []}"#;
        assert!(matches!(
            Manifest::parse("application/vnd.docker.distribution.manifest.v1+prettyjws", v1),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
    }
}
