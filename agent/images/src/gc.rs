//! Image garbage collection: images not in use are dropped least recently used first until the
//! store's disk usage meets a target (kubelet's image GC), and blobs and snapshots no remaining
//! image references are swept.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::{io_err, ContentStore, ImageRecord, StoreError};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub removed_images: Vec<String>,
    pub removed_blobs: usize,
    pub removed_snapshots: usize,
    pub usage_before: u64,
    pub usage_after: u64,
}

#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Stop removing images once usage is at or below this many bytes; None only sweeps.
    pub target_bytes: Option<u64>,
    /// Blobs and snapshots younger than this are kept even if unreferenced: a pull that has
    /// written them may not have recorded its image yet.
    pub min_age: Duration,
}

/// Bytes on disk (allocated blocks) of blobs and snapshots.
pub fn disk_usage(store: &ContentStore) -> Result<u64, StoreError> {
    Ok(dir_usage(&store.root().join("blobs"))? + dir_usage(&store.root().join("snapshots"))?)
}

fn dir_usage(p: &Path) -> Result<u64, StoreError> {
    let m = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(_) => return Ok(0),
    };
    let mut total = m.blocks() * 512;
    if m.is_dir() {
        for e in fs::read_dir(p).map_err(io_err("listing", p))? {
            let e = e.map_err(io_err("listing", p))?;
            total += dir_usage(&e.path())?;
        }
    }
    Ok(total)
}

/// Whether `image` is named by one of the in-use references (names, repo digests or image IDs).
fn in_use(image: &ImageRecord, refs: &[String]) -> bool {
    refs.iter().any(|r| {
        if let Ok(d) = Digest::parse(r) {
            return image.config == d || image.target == d;
        }
        match Reference::parse(r) {
            Ok(parsed) => match parsed.digest() {
                Some(d) => &image.target == d || &image.manifest == d,
                None => image.name == parsed.to_string(),
            },
            Err(_) => image.name == *r,
        }
    })
}

/// Runs a collection. `in_use_refs` are the images of containers that exist on the node.
pub fn collect(store: &ContentStore, in_use_refs: &[String], opts: &GcOptions) -> Result<GcReport, StoreError> {
    let mut report = GcReport { usage_before: disk_usage(store)?, ..Default::default() };
    sweep(store, opts.min_age, &mut report)?;
    let mut usage = disk_usage(store)?;
    if let Some(target) = opts.target_bytes {
        let mut candidates: Vec<ImageRecord> =
            store.images()?.into_iter().filter(|i| !in_use(i, in_use_refs)).collect();
        candidates.sort_by_key(|i| (i.last_used, i.pulled_at));
        for image in candidates {
            if usage <= target {
                break;
            }
            store.remove_image(&image.name)?;
            tracing::info!(image = %image.name, last_used = image.last_used, "image garbage collected");
            report.removed_images.push(image.name);
            sweep(store, opts.min_age, &mut report)?;
            usage = disk_usage(store)?;
        }
        if usage > target {
            tracing::warn!(usage, target, "image GC could not reach its target: remaining images are in use");
        }
    }
    report.usage_after = usage;
    Ok(report)
}

fn sweep(store: &ContentStore, min_age: Duration, report: &mut GcReport) -> Result<(), StoreError> {
    let images = store.images()?;
    let blobs: HashSet<String> = images.iter().flat_map(|i| i.blobs().map(|d| d.hex().to_string())).collect();
    let snapshots: HashSet<String> =
        images.iter().flat_map(|i| i.layers.iter().map(|l| l.diff_id.hex().to_string())).collect();
    report.removed_blobs += sweep_dir(&store.root().join("blobs/sha256"), &blobs, min_age)?;
    report.removed_snapshots += sweep_dir(&store.root().join("snapshots/sha256"), &snapshots, min_age)?;
    Ok(())
}

fn sweep_dir(dir: &Path, keep: &HashSet<String>, min_age: Duration) -> Result<usize, StoreError> {
    let mut removed = 0;
    let now = SystemTime::now();
    for e in fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let e = e.map_err(io_err("listing", dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let p = e.path();
        let meta = fs::symlink_metadata(&p).map_err(io_err("stat", &p))?;
        let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
        if age < min_age {
            continue;
        }
        let res = if meta.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        res.map_err(io_err("removing", &p))?;
        tracing::debug!(path = %p.display(), "removed unreferenced content");
        removed += 1;
    }
    Ok(removed)
}
