//! Airgap import (k3s's habit): image tarballs dropped in `<data-dir>/images/` — OCI image layouts
//! (`oci-layout`, `index.json`, `blobs/`) or `docker save` archives (`manifest.json`) — optionally
//! gzip/zstd compressed, are loaded into the content store with their tags.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::compression::{decompress, sniff, Compression};
use crate::digest::{Digest, HashingReader};
use crate::manifest::{self, Descriptor, ImageConfigFile, ImageManifest, Index, Manifest, ManifestError};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::{io_err, unix_now, ContentStore, ImageRecord, LayerRecord, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading archive {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("archive entry {0:?} escapes the archive")]
    PathTraversal(String),
    #[error("{0}: neither an OCI layout (index.json) nor a docker archive (manifest.json)")]
    UnknownFormat(PathBuf),
    #[error("archive is missing {0}")]
    Missing(String),
    #[error("parsing {what}: {source}")]
    Json { what: String, source: serde_json::Error },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image {name}: {layers} layers but {diff_ids} diff IDs in its config")]
    LayerCount { name: String, layers: usize, diff_ids: usize },
}

/// Imports every `*.tar`, `*.tar.gz`, `*.tgz`, `*.tar.zst` in `dir`. One bad file does not stop the
/// others: failures are returned beside the imported images.
pub fn import_dir(
    store: &ContentStore,
    dir: &Path,
    platform: &Platform,
) -> (Vec<ImageRecord>, Vec<(PathBuf, ImportError)>) {
    let mut images = Vec::new();
    let mut failures = Vec::new();
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (images, failures),
        Err(source) => {
            failures.push((dir.to_path_buf(), ImportError::Read { path: dir.to_path_buf(), source }));
            return (images, failures);
        }
    };
    files.sort();
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if ![".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd"].iter().any(|s| name.ends_with(s)) || !path.is_file() {
            continue;
        }
        match import_archive(store, &path, platform) {
            Ok(mut imgs) => {
                tracing::info!(archive = %path.display(), images = imgs.len(), "imported airgap images");
                images.append(&mut imgs);
            }
            Err(e) => {
                tracing::warn!(archive = %path.display(), error = %e, "airgap import failed");
                failures.push((path, e));
            }
        }
    }
    (images, failures)
}

/// Imports one archive and returns the images it tagged.
pub fn import_archive(store: &ContentStore, path: &Path, platform: &Platform) -> Result<Vec<ImageRecord>, ImportError> {
    let tmp = store.temp_dir("import")?;
    let res = extract(path, &tmp).and_then(|_| {
        if tmp.join("index.json").is_file() && has_oci_names(&tmp)? {
            import_oci(store, &tmp, platform)
        } else if tmp.join("manifest.json").is_file() {
            import_docker(store, &tmp)
        } else if tmp.join("index.json").is_file() {
            import_oci(store, &tmp, platform)
        } else {
            Err(ImportError::UnknownFormat(path.to_path_buf()))
        }
    });
    let _ = fs::remove_dir_all(&tmp);
    res
}

/// Unpacks regular files and directories only, refusing paths that leave `dest`.
fn extract(path: &Path, dest: &Path) -> Result<(), ImportError> {
    let read_err = |source| ImportError::Read { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(read_err)?;
    let mut archive = tar::Archive::new(decompress(file).map_err(read_err)?);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path().map_err(read_err)?.to_string_lossy().into_owned();
        let mut rel = PathBuf::new();
        for c in Path::new(&raw).components() {
            match c {
                Component::Normal(n) => rel.push(n),
                Component::CurDir | Component::RootDir => {}
                _ => return Err(ImportError::PathTraversal(raw)),
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => fs::create_dir_all(&target).map_err(io_err("creating", &target))?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(p) = target.parent() {
                    fs::create_dir_all(p).map_err(io_err("creating", p))?;
                }
                let mut f = File::create(&target).map_err(io_err("creating", &target))?;
                io::copy(&mut entry, &mut f).map_err(read_err)?;
            }
            // docker save uses symlinks for layers shared between images: resolve later by name.
            tar::EntryType::Symlink => {
                if let (Some(link), Some(p)) = (entry.link_name().map_err(read_err)?, target.parent()) {
                    let src = clean_join(p, &link).ok_or_else(|| ImportError::PathTraversal(raw.clone()))?;
                    if !src.starts_with(dest) {
                        return Err(ImportError::PathTraversal(raw));
                    }
                    fs::create_dir_all(p).map_err(io_err("creating", p))?;
                    std::os::unix::fs::symlink(&src, &target).map_err(io_err("creating", &target))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn clean_join(base: &Path, rel: &Path) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T, ImportError> {
    let bytes = fs::read(path).map_err(|_| ImportError::Missing(what.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|source| ImportError::Json { what: what.to_string(), source })
}

/// Moves a file into the store under its digest, verifying it (or computing it when unknown).
fn adopt(store: &ContentStore, file: &Path, expected: Option<&Digest>) -> Result<(Digest, u64), ImportError> {
    let f = File::open(file).map_err(|_| ImportError::Missing(file.display().to_string()))?;
    let (actual, len) =
        HashingReader::new(f).finish().map_err(|source| ImportError::Read { path: file.to_path_buf(), source })?;
    if let Some(e) = expected {
        if e != &actual {
            return Err(StoreError::DigestMismatch { expected: e.clone(), actual }.into());
        }
    }
    let dest = store.blob_path(&actual);
    if dest.exists() {
        let _ = fs::remove_file(file);
    } else {
        // Move the real file (docker save links shared layers with symlinks) and leave a symlink
        // behind so that other names for it still resolve.
        let real = fs::canonicalize(file).map_err(io_err("resolving", file))?;
        fs::rename(&real, &dest).map_err(io_err("storing", &dest))?;
        std::os::unix::fs::symlink(&dest, &real).map_err(io_err("linking", &real))?;
    }
    Ok((actual, len))
}

fn oci_blob(root: &Path, d: &Digest) -> PathBuf {
    root.join("blobs").join(d.algorithm()).join(d.hex())
}

fn has_oci_names(root: &Path) -> Result<bool, ImportError> {
    let index: Index = read_json(&root.join("index.json"), "index.json")?;
    Ok(index.manifests.iter().any(|d| oci_name(d).is_some()))
}

fn oci_name(d: &Descriptor) -> Option<String> {
    if let Some(n) = d.annotations.get("io.containerd.image.name") {
        return Reference::parse(n).ok().map(|r| r.to_string());
    }
    // ref.name may be a full reference or only a tag; only the former names an image.
    let n = d.annotations.get("org.opencontainers.image.ref.name")?;
    if n.contains('/') || n.contains(':') {
        Reference::parse(n).ok().map(|r| r.to_string())
    } else {
        None
    }
}

fn import_oci(store: &ContentStore, root: &Path, platform: &Platform) -> Result<Vec<ImageRecord>, ImportError> {
    let index: Index = read_json(&root.join("index.json"), "index.json")?;
    let mut out = Vec::new();
    for desc in &index.manifests {
        let Some(name) = oci_name(desc) else {
            tracing::warn!(digest = %desc.digest, "OCI archive entry without an image name, skipped");
            continue;
        };
        let target = desc.digest.clone();
        let body = fs::read(oci_blob(root, &target)).map_err(|_| ImportError::Missing(target.to_string()))?;
        let (manifest_digest, manifest_body) = match Manifest::parse(&desc.media_type, &body)? {
            Manifest::Index(idx) => {
                adopt(store, &oci_blob(root, &target), Some(&target))?;
                let chosen = idx.select(platform)?;
                let b = fs::read(oci_blob(root, &chosen.digest))
                    .map_err(|_| ImportError::Missing(chosen.digest.to_string()))?;
                (chosen.digest.clone(), b)
            }
            Manifest::Image(_) => (target.clone(), body),
        };
        let Manifest::Image(m) = Manifest::parse(manifest::OCI_MANIFEST, &manifest_body)? else {
            return Err(ManifestError::UnsupportedMediaType("nested index".into()).into());
        };
        adopt(store, &oci_blob(root, &manifest_digest), Some(&manifest_digest))?;
        out.push(record_image(store, name, target, manifest_digest, &m, |d| oci_blob(root, d))?);
    }
    Ok(out)
}

fn record_image(
    store: &ContentStore,
    name: String,
    target: Digest,
    manifest_digest: Digest,
    m: &ImageManifest,
    blob_path: impl Fn(&Digest) -> PathBuf,
) -> Result<ImageRecord, ImportError> {
    let cfg_path = blob_path(&m.config.digest);
    if !store.has_blob(&m.config.digest) {
        adopt(store, &cfg_path, Some(&m.config.digest))?;
    }
    let config = store.image_config_bytes(&m.config.digest)?;
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(ImportError::LayerCount { name, layers: m.layers.len(), diff_ids: config.rootfs.diff_ids.len() });
    }
    let mut layers = Vec::new();
    let mut size = 0;
    for (l, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
        if !store.has_blob(&l.digest) {
            adopt(store, &blob_path(&l.digest), Some(&l.digest))?;
        }
        size += l.size;
        layers.push(LayerRecord {
            digest: l.digest.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
            diff_id: diff_id.clone(),
        });
    }
    let now = unix_now();
    let rec = ImageRecord {
        name,
        target,
        manifest: manifest_digest,
        config: m.config.digest.clone(),
        layers,
        size,
        pulled_at: now,
        last_used: now,
    };
    store.put_image(rec.clone())?;
    Ok(rec)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// `docker save`: layers are (usually uncompressed) tars named in manifest.json; a Docker v2
/// manifest is synthesized for them so the image looks pulled.
fn import_docker(store: &ContentStore, root: &Path) -> Result<Vec<ImageRecord>, ImportError> {
    let entries: Vec<DockerArchiveEntry> = read_json(&root.join("manifest.json"), "manifest.json")?;
    let mut out = Vec::new();
    for e in entries {
        let cfg_path = safe_rel(root, &e.config)?;
        let (config_digest, config_size) = adopt(store, &cfg_path, None)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let p = safe_rel(root, l)?;
            let mut head = [0u8; 4];
            let n = File::open(&p).and_then(|mut f| f.read(&mut head)).map_err(|_| ImportError::Missing(l.clone()))?;
            let media_type = match sniff(&head[..n]) {
                Compression::Gzip => manifest::DOCKER_LAYER_GZIP,
                Compression::Zstd => manifest::OCI_LAYER_ZSTD,
                Compression::None => manifest::DOCKER_LAYER,
            };
            let (digest, size) = adopt(store, &p, None)?;
            layers.push(Descriptor {
                media_type: media_type.into(),
                digest,
                size,
                platform: None,
                annotations: Default::default(),
                urls: vec![],
            });
        }
        let m = ImageManifest {
            schema_version: 2,
            media_type: manifest::DOCKER_MANIFEST.into(),
            config: Descriptor {
                media_type: manifest::DOCKER_CONFIG.into(),
                digest: config_digest,
                size: config_size,
                platform: None,
                annotations: Default::default(),
                urls: vec![],
            },
            layers,
            annotations: Default::default(),
        };
        let body = serde_json::to_vec(&m)
            .map_err(|source| ImportError::Json { what: "synthesized manifest".into(), source })?;
        let manifest_digest = store.write_blob(&body, None)?;
        for tag in e.repo_tags.unwrap_or_default() {
            let Ok(r) = Reference::parse(&tag) else {
                tracing::warn!(tag, "invalid tag in docker archive, skipped");
                continue;
            };
            out.push(record_image(store, r.to_string(), manifest_digest.clone(), manifest_digest.clone(), &m, |d| {
                store.blob_path(d)
            })?);
        }
    }
    Ok(out)
}

fn safe_rel(root: &Path, rel: &str) -> Result<PathBuf, ImportError> {
    let p = Path::new(rel);
    if p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(ImportError::PathTraversal(rel.to_string()));
    }
    Ok(root.join(p))
}

impl ContentStore {
    fn image_config_bytes(&self, d: &Digest) -> Result<ImageConfigFile, ImportError> {
        Ok(ImageConfigFile::parse(&self.read_blob(d)?)?)
    }
}
