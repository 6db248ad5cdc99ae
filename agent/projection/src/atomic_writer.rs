//! Kubelet's atomic writer layout for projected volumes. The files live in a hidden timestamped
//! directory `..YYYY_MM_DD_HH_MM_SS.N`; `..data` is a symlink to it, swapped in one rename of
//! `..data_tmp`; the user-visible top-level names are symlinks `name -> ..data/name`. A reader that
//! resolves a path sees either the old or the new version, never a mix, and a file it already opened
//! keeps its old content. Applications (and inotify users) watch `..data`.
//!
//! Not safe for concurrent writers on one directory; the caller serializes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::paths::{self, PathError};
use crate::volumes::File;

const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";
/// The mode upstream gives the timestamped directory so any user in the pod can traverse it.
const DIR_MODE: u32 = 0o755;
/// The mode of a volume directory this writer creates (an emptyDir's).
const TARGET_DIR_MODE: u32 = 0o777;

#[derive(Debug, Error)]
pub enum WriteError {
    #[error(transparent)]
    InvalidPath(#[from] PathError),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> WriteError + 'p {
    move |source| WriteError::Io { op, path: path.to_path_buf(), source }
}

/// Writes payloads into one volume directory.
#[derive(Debug, Clone)]
pub struct AtomicWriter {
    target_dir: PathBuf,
}

impl AtomicWriter {
    /// The directory is created on the first write if it does not exist.
    pub fn new(target_dir: PathBuf) -> Self {
        Self { target_dir }
    }

    pub fn target_dir(&self) -> &Path {
        &self.target_dir
    }

    /// Makes the directory show exactly `payload`. Returns whether anything on disk changed: an
    /// unchanged payload touches nothing (a missing user-visible link is still restored, which counts).
    pub fn write(&self, payload: &BTreeMap<String, File>) -> Result<bool, WriteError> {
        let payload = clean_payload(payload)?;
        self.ensure_target_dir()?;

        let data_dir = self.target_dir.join(DATA_DIR);
        let old_ts_name = match fs::read_link(&data_dir) {
            // Only ever a sibling `..name` of ours; anything else is not followed, let alone removed.
            Ok(name) => name.to_str().filter(|n| n.starts_with("..") && !n.contains('/')).map(PathBuf::from),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("reading link", &data_dir)(e)),
        };

        let mut stale = BTreeSet::new();
        let mut should_write = true;
        if let Some(old) = &old_ts_name {
            let old_ts_dir = self.target_dir.join(old);
            stale = paths_to_remove(&payload, &old_ts_dir)?;
            should_write = payload_differs(&payload, &old_ts_dir)? || !stale.is_empty();
        }

        if should_write {
            let ts_dir = self.new_timestamp_dir()?;
            if let Err(e) = self.swap_in(&payload, &ts_dir) {
                let _ = fs::remove_dir_all(&ts_dir);
                return Err(e);
            }
        }

        let created = self.create_user_visible_links(&payload)?;
        // The removed names' symlinks now dangle into the new ..data; only top-level names have links.
        self.remove_user_visible(&stale)?;

        if should_write {
            if let Some(old) = old_ts_name {
                let old_ts_dir = self.target_dir.join(old);
                match fs::remove_dir_all(&old_ts_dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(io_err("removing old data directory", &old_ts_dir)(e))
                    }
                    _ => {}
                }
            }
        }
        Ok(should_write || created)
    }

    fn ensure_target_dir(&self) -> Result<(), WriteError> {
        if self.target_dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&self.target_dir).map_err(io_err("creating volume directory", &self.target_dir))?;
        set_mode(&self.target_dir, TARGET_DIR_MODE)
    }

    /// Writes the payload into `ts_dir`, then renames a fresh `..data_tmp` link to it over `..data`.
    fn swap_in(&self, payload: &BTreeMap<String, File>, ts_dir: &Path) -> Result<(), WriteError> {
        write_payload(payload, ts_dir)?;
        let ts_name = ts_dir.file_name().map(PathBuf::from).unwrap_or_default();
        let tmp_link = self.target_dir.join(NEW_DATA_DIR);
        // Left over from a write that died between symlink and rename.
        match fs::remove_file(&tmp_link) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("removing", &tmp_link)(e)),
            _ => {}
        }
        symlink(&ts_name, &tmp_link).map_err(io_err("creating symlink", &tmp_link))?;
        let data_dir = self.target_dir.join(DATA_DIR);
        if let Err(e) = fs::rename(&tmp_link, &data_dir) {
            let _ = fs::remove_file(&tmp_link);
            return Err(io_err("renaming data directory link", &data_dir)(e));
        }
        Ok(())
    }

    fn new_timestamp_dir(&self) -> Result<PathBuf, WriteError> {
        let prefix = chrono::Utc::now().format("..%Y_%m_%d_%H_%M_%S.").to_string();
        loop {
            let dir = self.target_dir.join(format!("{prefix}{}", random_u32()));
            match fs::create_dir(&dir) {
                Ok(()) => {
                    set_mode(&dir, DIR_MODE)?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("creating data directory", &dir)(e)),
            }
        }
    }

    /// `name -> ..data/name` for each top-level name of the payload that has no link yet.
    fn create_user_visible_links(&self, payload: &BTreeMap<String, File>) -> Result<bool, WriteError> {
        let mut created = false;
        let top_level: BTreeSet<&str> = payload.keys().map(|p| p.split('/').next().unwrap_or(p)).collect();
        for name in top_level {
            let visible = self.target_dir.join(name);
            match fs::symlink_metadata(&visible) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    symlink(Path::new(DATA_DIR).join(name), &visible).map_err(io_err("creating symlink", &visible))?;
                    created = true;
                }
                Err(e) => return Err(io_err("inspecting", &visible)(e)),
                Ok(_) => {}
            }
        }
        Ok(created)
    }

    fn remove_user_visible(&self, stale: &BTreeSet<String>) -> Result<(), WriteError> {
        let mut last_error = None;
        for name in stale.iter().filter(|p| !p.contains('/')) {
            let visible = self.target_dir.join(name);
            match fs::remove_file(&visible) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    last_error = Some(io_err("removing old user-visible path", &visible)(e))
                }
                _ => {}
            }
        }
        last_error.map_or(Ok(()), Err)
    }
}

fn clean_payload(payload: &BTreeMap<String, File>) -> Result<BTreeMap<String, File>, PathError> {
    payload.iter().map(|(path, file)| Ok((paths::checked(path)?, file.clone()))).collect()
}

/// Everything under the old data directory (files and directories, relative) that the new payload
/// no longer has, counting each payload path's parent directories as kept.
fn paths_to_remove(payload: &BTreeMap<String, File>, old_ts_dir: &Path) -> Result<BTreeSet<String>, WriteError> {
    let mut existing = BTreeSet::new();
    walk(old_ts_dir, "", &mut existing)?;
    let mut kept = BTreeSet::new();
    for path in payload.keys() {
        let mut prefix = path.as_str();
        loop {
            kept.insert(prefix.to_string());
            match prefix.rfind('/') {
                Some(i) => prefix = &prefix[..i],
                None => break,
            }
        }
    }
    Ok(existing.difference(&kept).cloned().collect())
}

fn walk(dir: &Path, relative: &str, out: &mut BTreeSet<String>) -> Result<(), WriteError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // ..data pointing nowhere: nothing old to compare with.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("reading directory", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("reading directory", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if relative.is_empty() { name } else { format!("{relative}/{name}") };
        let is_dir = entry.file_type().map_err(io_err("inspecting", &entry.path()))?.is_dir();
        if is_dir {
            walk(&entry.path(), &rel, out)?;
        }
        out.insert(rel);
    }
    Ok(())
}

/// Whether any payload file is missing from the old data directory or has other content.
fn payload_differs(payload: &BTreeMap<String, File>, old_ts_dir: &Path) -> Result<bool, WriteError> {
    for (path, file) in payload {
        let on_disk = old_ts_dir.join(path);
        match fs::symlink_metadata(&on_disk) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(io_err("inspecting", &on_disk)(e)),
            Ok(meta) if !meta.is_file() => return Ok(true),
            Ok(_) => {}
        }
        let content = fs::read(&on_disk).map_err(io_err("reading", &on_disk))?;
        if content != file.data {
            return Ok(true);
        }
    }
    Ok(false)
}

fn write_payload(payload: &BTreeMap<String, File>, ts_dir: &Path) -> Result<(), WriteError> {
    for (path, file) in payload {
        let full = ts_dir.join(path);
        if let Some((parent, _)) = path.rsplit_once('/') {
            create_dirs(ts_dir, parent)?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&full)
            .map_err(io_err("creating", &full))?;
        out.write_all(&file.data).map_err(io_err("writing", &full))?;
        // The open applied the umask; the volume's mode must not depend on the agent's umask.
        set_mode(&full, file.mode)?;
    }
    Ok(())
}

/// Creates `relative`'s directories under `base` with [`DIR_MODE`], whatever the umask.
fn create_dirs(base: &Path, relative: &str) -> Result<(), WriteError> {
    let mut dir = base.to_path_buf();
    for part in relative.split('/') {
        dir.push(part);
        match fs::create_dir(&dir) {
            Ok(()) => set_mode(&dir, DIR_MODE)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("creating directory", &dir)(e)),
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), WriteError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("setting mode of", path))
}

/// A random suffix for the timestamped directory, as Go's MkdirTemp uses; std's hasher keys are
/// randomly seeded per process, which is all the uniqueness a name in a private directory needs.
fn random_u32() -> u32 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.finish() as u32
}
