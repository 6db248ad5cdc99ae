//! Turning an image's layers into directories: one snapshot per layer (keyed by diff ID, shared
//! between images) for overlayfs, or everything flattened into one directory.

use std::fs;
use std::path::{Path, PathBuf};

use crate::store::{ContentStore, ImageRecord, StoreError};
use crate::unpack::{apply_layer_blob, Mode, Options, UnpackError};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("layer {layer}: {source}")]
    Unpack { layer: String, source: UnpackError },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

/// Unpacks every layer not yet unpacked and returns the snapshot directories, lowest layer first.
/// Each is unpacked into a temp directory and renamed into place, so a crash never leaves a
/// half-unpacked snapshot that looks complete.
pub fn prepare_snapshots(store: &ContentStore, image: &ImageRecord) -> Result<Vec<PathBuf>, SnapshotError> {
    let mut dirs = Vec::with_capacity(image.layers.len());
    for layer in &image.layers {
        let dest = store.snapshot_dir(&layer.diff_id);
        if !dest.is_dir() {
            let started = std::time::Instant::now();
            let tmp = store.temp_dir("unpack")?;
            let res = store.open_blob(&layer.digest).map_err(SnapshotError::from).and_then(|blob| {
                apply_layer_blob(blob, &tmp, Some(&layer.diff_id), Options::new(Mode::Overlay))
                    .map_err(|source| SnapshotError::Unpack { layer: layer.digest.to_string(), source })
            });
            if let Err(e) = res {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
            if let Err(e) = fs::rename(&tmp, &dest) {
                let _ = fs::remove_dir_all(&tmp);
                // Someone else finished the same layer first: theirs is as good as ours.
                if !dest.is_dir() {
                    return Err(SnapshotError::Io { op: "renaming snapshot into", path: dest, source: e });
                }
            }
            tracing::info!(layer = %layer.digest, diff_id = %layer.diff_id, elapsed_ms = started.elapsed().as_millis() as u64, "unpacked layer");
        }
        dirs.push(dest);
    }
    Ok(dirs)
}

/// overlayfs's `lowerdir=` value: the topmost layer comes first.
pub fn overlay_lowerdir(snapshots: &[PathBuf]) -> String {
    snapshots.iter().rev().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>().join(":")
}

/// Applies all layers of `image` onto `dest` (created if missing), whiteouts deleting lower files:
/// a plain rootfs for runtimes without overlayfs, and for tests.
pub fn flatten(store: &ContentStore, image: &ImageRecord, dest: &Path) -> Result<(), SnapshotError> {
    fs::create_dir_all(dest).map_err(|source| SnapshotError::Io {
        op: "creating",
        path: dest.to_path_buf(),
        source,
    })?;
    for layer in &image.layers {
        let blob = store.open_blob(&layer.digest)?;
        apply_layer_blob(blob, dest, Some(&layer.diff_id), Options::new(Mode::Apply))
            .map_err(|source| SnapshotError::Unpack { layer: layer.digest.to_string(), source })?;
    }
    Ok(())
}
