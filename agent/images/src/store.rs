//! The content store under one root directory: blobs keyed by digest (`blobs/sha256/<hex>`), written
//! through `ingest/` temp files and renamed into place only once verified; the image index
//! (`images.json`: name → manifest, config, layers); and the per-layer snapshot directories
//! (`snapshots/sha256/<diff-id hex>`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Hasher};
use crate::manifest::ImageConfigFile;
use crate::reference::Reference;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
    #[error("blob {0} not in the content store")]
    MissingBlob(Digest),
    #[error("corrupt image index {path}: {source}")]
    Index { path: PathBuf, source: serde_json::Error },
    #[error("image config {digest}: {source}")]
    Config { digest: Digest, source: crate::manifest::ManifestError },
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { op, path: path.to_path_buf(), source }
}

/// One pulled or imported image as the index records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Normalized reference, e.g. `docker.io/library/nginx:1.7.9`.
    pub name: String,
    /// What the name resolved to at the registry (an index or a manifest): the repo digest.
    pub target: Digest,
    /// The platform manifest actually used.
    pub manifest: Digest,
    /// The config blob: the image ID.
    pub config: Digest,
    pub layers: Vec<LayerRecord>,
    /// Sum of the stored blob sizes.
    pub size: u64,
    pub pulled_at: u64,
    pub last_used: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// Digest of the uncompressed tar: names the layer's snapshot directory.
    pub diff_id: Digest,
}

impl ImageRecord {
    /// `registry/repository@<target>`, what kubelet reports as a container's imageID.
    pub fn repo_digest(&self) -> String {
        match Reference::parse(&self.name) {
            Ok(r) => r.with_digest(&self.target).to_string(),
            Err(_) => format!("{}@{}", self.name, self.target),
        }
    }

    /// Every blob this image needs kept.
    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        [&self.target, &self.manifest, &self.config].into_iter().chain(self.layers.iter().map(|l| &l.digest))
    }
}

#[derive(Default, Serialize, Deserialize)]
struct IndexFile {
    images: BTreeMap<String, ImageRecord>,
}

pub struct ContentStore {
    root: PathBuf,
    index_lock: Mutex<()>,
}

impl ContentStore {
    /// Opens (creating) the store; leftovers of interrupted downloads in `ingest/` are removed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for d in ["blobs/sha256", "snapshots/sha256", "ingest"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        }
        let ingest = root.join("ingest");
        if let Ok(entries) = fs::read_dir(&ingest) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            }
        }
        Ok(ContentStore { root, index_lock: Mutex::new(()) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Reads a small blob (manifest, config) and re-verifies it, so a corrupted file is never trusted.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(d);
        let bytes = fs::read(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(d.clone()),
            _ => StoreError::Io { op: "reading", path: p.clone(), source: e },
        })?;
        let actual = Digest::of(&bytes);
        if &actual != d {
            return Err(StoreError::DigestMismatch { expected: d.clone(), actual });
        }
        Ok(bytes)
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(d);
        File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(d.clone()),
            _ => StoreError::Io { op: "opening", path: p.clone(), source: e },
        })
    }

    pub fn write_blob(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest, StoreError> {
        let actual = Digest::of(bytes);
        if let Some(e) = expected {
            if e != &actual {
                return Err(StoreError::DigestMismatch { expected: e.clone(), actual });
            }
        }
        if !self.has_blob(&actual) {
            let mut ingest = self.ingest()?;
            ingest.write(bytes)?;
            ingest.commit(&actual, Some(bytes.len() as u64))?;
        }
        Ok(actual)
    }

    /// A temp file in `ingest/` that becomes a blob only through [`Ingest::commit`].
    pub fn ingest(&self) -> Result<Ingest, StoreError> {
        let (path, file) = temp_file(&self.root.join("ingest"), "blob")?;
        Ok(Ingest { file: Some(file), path, hasher: Hasher::new(), blobs: self.root.join("blobs/sha256") })
    }

    pub(crate) fn temp_dir(&self, prefix: &str) -> Result<PathBuf, StoreError> {
        let base = self.root.join("ingest");
        for n in 0..1000u32 {
            let p = base.join(format!("{prefix}-{}-{}-{n}", std::process::id(), now_nanos()));
            match fs::create_dir(&p) {
                Ok(()) => return Ok(p),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::Io { op: "creating", path: p, source: e }),
            }
        }
        Err(StoreError::Io { op: "creating temp dir in", path: base, source: io::ErrorKind::AlreadyExists.into() })
    }

    /// Directory holding one layer unpacked with overlay whiteouts.
    pub fn snapshot_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("snapshots/sha256").join(diff_id.hex())
    }

    pub fn image_config(&self, image: &ImageRecord) -> Result<ImageConfigFile, StoreError> {
        let bytes = self.read_blob(&image.config)?;
        ImageConfigFile::parse(&bytes).map_err(|source| StoreError::Config { digest: image.config.clone(), source })
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn read_index(&self) -> Result<IndexFile, StoreError> {
        let p = self.index_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| StoreError::Index { path: p, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexFile::default()),
            Err(e) => Err(StoreError::Io { op: "reading", path: p, source: e }),
        }
    }

    fn write_index(&self, index: &IndexFile) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec_pretty(index).map_err(|source| StoreError::Index { path: self.index_path(), source })?;
        atomic_write(&self.index_path(), &bytes)
    }

    fn update_index<T>(&self, f: impl FnOnce(&mut IndexFile) -> T) -> Result<T, StoreError> {
        let _guard = self.index_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut index = self.read_index()?;
        let out = f(&mut index);
        self.write_index(&index)?;
        Ok(out)
    }

    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let _guard = self.index_lock.lock().unwrap_or_else(|e| e.into_inner());
        Ok(self.read_index()?.images.into_values().collect())
    }

    /// Finds an image by reference: by its name, or for a digest reference by repo digest, or by
    /// image ID (config digest) when given `sha256:...`.
    pub fn find_image(&self, reference: &str) -> Result<Option<ImageRecord>, StoreError> {
        let images = self.images()?;
        if let Ok(d) = Digest::parse(reference) {
            return Ok(images.into_iter().find(|i| i.config == d || i.target == d));
        }
        let Ok(r) = Reference::parse(reference) else { return Ok(None) };
        if let Some(d) = r.digest() {
            return Ok(images
                .into_iter()
                .find(|i| &i.target == d && Reference::parse(&i.name).map(|n| n.name() == r.name()).unwrap_or(false)));
        }
        let name = r.to_string();
        Ok(images.into_iter().find(|i| i.name == name))
    }

    pub fn put_image(&self, record: ImageRecord) -> Result<(), StoreError> {
        self.update_index(|idx| {
            idx.images.insert(record.name.clone(), record);
        })
    }

    pub fn remove_image(&self, name: &str) -> Result<bool, StoreError> {
        self.update_index(|idx| idx.images.remove(name).is_some())
    }

    /// Marks an image used now: GC removes least recently used images first.
    pub fn touch_image(&self, name: &str) -> Result<(), StoreError> {
        let now = unix_now();
        self.update_index(|idx| {
            if let Some(i) = idx.images.get_mut(name) {
                i.last_used = now;
            }
        })
    }
}

/// A blob being written: hashed as it goes, renamed into `blobs/` only if its digest matches.
pub struct Ingest {
    file: Option<File>,
    path: PathBuf,
    hasher: Hasher,
    blobs: PathBuf,
}

impl Ingest {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        match &mut self.file {
            Some(f) => f.write_all(bytes).map_err(io_err("writing", &self.path)),
            None => Ok(()),
        }
    }

    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Verifies digest and size, syncs, and renames into place. On mismatch the temp file is removed.
    pub fn commit(mut self, expected: &Digest, expected_size: Option<u64>) -> Result<Digest, StoreError> {
        let actual = std::mem::take(&mut self.hasher);
        let len = actual.len();
        let actual = actual.finish();
        if &actual != expected {
            return Err(StoreError::DigestMismatch { expected: expected.clone(), actual });
        }
        if let Some(size) = expected_size {
            if size != len {
                return Err(StoreError::SizeMismatch { digest: expected.clone(), expected: size, actual: len });
            }
        }
        if let Some(f) = self.file.take() {
            f.sync_all().map_err(io_err("syncing", &self.path))?;
        }
        let dest = self.blobs.join(expected.hex());
        fs::rename(&self.path, &dest).map_err(io_err("renaming into", &dest))?;
        Ok(actual)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // Not committed (error or mismatch): the partial download must not linger.
        if self.path.exists() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn temp_file(dir: &Path, prefix: &str) -> Result<(PathBuf, File), StoreError> {
    for n in 0..1000u32 {
        let p = dir.join(format!(".{prefix}-{}-{}-{n}", std::process::id(), now_nanos()));
        match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StoreError::Io { op: "creating", path: p, source: e }),
        }
    }
    Err(StoreError::Io {
        op: "creating temp file in",
        path: dir.to_path_buf(),
        source: io::ErrorKind::AlreadyExists.into(),
    })
}

/// Writes `bytes` to `path` via a synced temp file in the same directory and a rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let (tmp, mut f) = temp_file(dir, "tmp")?;
    let res = f
        .write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err("writing", &tmp))
        .and_then(|_| fs::rename(&tmp, path).map_err(io_err("renaming into", path)));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ingest_verifies_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.write_blob(b"hello", None).unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");
        assert!(matches!(
            store.write_blob(b"hello", Some(&Digest::of(b"other"))),
            Err(StoreError::DigestMismatch { .. })
        ));
        let mut ing = store.ingest().unwrap();
        ing.write(b"abc").unwrap();
        assert!(matches!(ing.commit(&Digest::of(b"abc"), Some(4)), Err(StoreError::SizeMismatch { .. })));
        assert!(!store.has_blob(&Digest::of(b"abc")));
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0, "failed ingest leaves nothing behind");
        // A corrupted blob on disk is detected on read.
        fs::write(store.blob_path(&d), b"tampered").unwrap();
        assert!(matches!(store.read_blob(&d), Err(StoreError::DigestMismatch { .. })));
    }

    #[test]
    fn index_roundtrip_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let rec = ImageRecord {
            name: "docker.io/library/nginx:1.7.9".into(),
            target: Digest::of(b"t"),
            manifest: Digest::of(b"m"),
            config: Digest::of(b"c"),
            layers: vec![],
            size: 0,
            pulled_at: 1,
            last_used: 1,
        };
        store.put_image(rec.clone()).unwrap();
        let reopened = ContentStore::open(dir.path()).unwrap();
        assert_eq!(reopened.find_image("nginx:1.7.9").unwrap(), Some(rec.clone()));
        assert_eq!(reopened.find_image(&format!("nginx@{}", Digest::of(b"t"))).unwrap(), Some(rec.clone()));
        assert_eq!(reopened.find_image(Digest::of(b"c").as_str()).unwrap(), Some(rec.clone()));
        assert_eq!(reopened.find_image("nginx:1.7.8").unwrap(), None);
        assert_eq!(rec.repo_digest(), format!("docker.io/library/nginx@{}", Digest::of(b"t")));
        assert!(reopened.remove_image(&rec.name).unwrap());
        assert_eq!(reopened.images().unwrap(), vec![]);
    }
}
