//! Applying layer tarballs to directories. Two modes:
//! - [`Mode::Overlay`]: each layer into its own directory, ready to be an overlayfs lowerdir; OCI
//!   whiteouts become overlay whiteouts (`.wh.x` → char device 0/0, `.wh..wh..opq` → the
//!   `trusted.overlay.opaque=y` xattr), so this needs root.
//! - [`Mode::Apply`]: layers applied one after another onto one directory (flattening), whiteouts
//!   delete what lower layers put there.
//!
//! Every path is resolved inside the target root: entries whose path climbs out with `..` are
//! rejected, and symlinks met on the way (even absolute ones) are followed as if the root were `/`,
//! so a layer can never write outside its directory.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode as FsMode, Timespec, Timestamps, XattrFlags, CWD};

use crate::compression::decompress;
use crate::digest::{Digest, HashingReader};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const MAX_SYMLINK_HOPS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading layer: {0}")]
    Read(#[source] io::Error),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("layer entry {0:?} escapes the root")]
    PathTraversal(String),
    #[error("hardlink {path:?} → {target:?}: {reason}")]
    BadHardlink { path: String, target: String, reason: &'static str },
    #[error("{0:?} is not a directory but the layer puts entries under it")]
    NotADirectory(String),
    #[error("too many levels of symbolic links resolving {0:?}")]
    SymlinkLoop(String),
    #[error("invalid whiteout {0:?}")]
    BadWhiteout(String),
    #[error("layer diff ID mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Io { op, path: path.to_path_buf(), source }
}

fn rx<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(rustix::io::Errno) -> UnpackError + 'a {
    move |e| UnpackError::Io { op, path: path.to_path_buf(), source: e.into() }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Overlay,
    Apply,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub mode: Mode,
    /// Keep uid/gid, device nodes and xattrs from the tar: only possible as root.
    pub same_owner: bool,
}

impl Options {
    pub fn new(mode: Mode) -> Self {
        Options { mode, same_owner: rustix::process::geteuid().is_root() }
    }
}

/// Decompresses (gzip/zstd/none, sniffed) and applies one layer blob, checking the uncompressed
/// stream against `diff_id` when given. Returns the diff ID computed.
pub fn apply_layer_blob(
    blob: impl Read,
    root: &Path,
    diff_id: Option<&Digest>,
    opts: Options,
) -> Result<Digest, UnpackError> {
    let mut hashing = HashingReader::new(decompress(blob).map_err(UnpackError::Read)?);
    apply_tar(&mut hashing, root, opts)?;
    let (actual, _) = hashing.finish().map_err(UnpackError::Read)?;
    if let Some(expected) = diff_id {
        if expected != &actual {
            return Err(UnpackError::DiffIdMismatch { expected: expected.clone(), actual });
        }
    }
    Ok(actual)
}

/// Applies an uncompressed tar stream onto `root` (which must exist).
pub fn apply_tar(reader: impl Read, root: &Path, opts: Options) -> Result<(), UnpackError> {
    let mut archive = tar::Archive::new(reader);
    // Paths this layer wrote: an opaque marker in Apply mode must spare them.
    let mut written: HashSet<PathBuf> = HashSet::new();
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        let raw = entry.path().map_err(UnpackError::Read)?.to_string_lossy().into_owned();
        let rel = clean(&raw)?;
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue; // the root itself ("./")
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = resolve(root, parent_rel, true, &raw)?;

        if name == OPAQUE_MARKER {
            match opts.mode {
                Mode::Overlay => rustix::fs::lsetxattr(&parent, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(rx("setting opaque xattr on", &parent))?,
                Mode::Apply => clear_dir_except(root, &parent, &written)?,
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.starts_with(WHITEOUT_PREFIX) {
                return Err(UnpackError::BadWhiteout(raw));
            }
            let target = parent.join(hidden);
            remove_any(&target)?;
            if opts.mode == Mode::Overlay {
                rustix::fs::mknodat(CWD, &target, FileType::CharacterDevice, FsMode::empty(), 0)
                    .map_err(rx("creating whiteout", &target))?;
            }
            continue;
        }

        let target = parent.join(&name);
        let xattrs = pax_xattrs(&mut entry)?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().map_err(UnpackError::Read)? & 0o7777;
        let uid = header.uid().map_err(UnpackError::Read)?;
        let gid = header.gid().map_err(UnpackError::Read)?;
        let mtime = header.mtime().map_err(UnpackError::Read)? as i64;
        let link = entry.link_name().map_err(UnpackError::Read)?.map(|l| l.to_string_lossy().into_owned());

        use tar::EntryType as T;
        match kind {
            T::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_any(&target)?;
                        fs::create_dir(&target).map_err(io_err("creating", &target))?;
                    }
                    Err(_) => fs::create_dir(&target).map_err(io_err("creating", &target))?,
                }
                dir_times.push((target.clone(), mtime));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                remove_any(&target)?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .map_err(io_err("creating", &target))?;
                io::copy(&mut entry, &mut f).map_err(UnpackError::Read)?;
            }
            T::Symlink => {
                let link = link.unwrap_or_default();
                remove_any(&target)?;
                std::os::unix::fs::symlink(&link, &target).map_err(io_err("creating symlink", &target))?;
            }
            T::Link => {
                let link = link.unwrap_or_default();
                let link_rel = clean(&link)?;
                let Some(link_name) = link_rel.file_name() else {
                    return Err(UnpackError::BadHardlink { path: raw, target: link, reason: "target is the root" });
                };
                let source = resolve(root, link_rel.parent().unwrap_or(Path::new("")), false, &link)?.join(link_name);
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_dir() => {
                        return Err(UnpackError::BadHardlink {
                            path: raw,
                            target: link,
                            reason: "target is a directory",
                        })
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(UnpackError::BadHardlink {
                            path: raw,
                            target: link,
                            reason: "target not in this layer",
                        })
                    }
                }
                if source != target {
                    remove_any(&target)?;
                    fs::hard_link(&source, &target).map_err(io_err("hardlinking", &target))?;
                }
                written.insert(rel);
                continue; // a hardlink shares the inode: its metadata is the target's
            }
            T::Char | T::Block | T::Fifo => {
                if !opts.same_owner && kind != T::Fifo {
                    tracing::debug!(path = %raw, "skipping device node: not root");
                    continue;
                }
                remove_any(&target)?;
                let ft = match kind {
                    T::Char => FileType::CharacterDevice,
                    T::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(CWD, &target, ft, FsMode::from_raw_mode(mode), dev)
                    .map_err(rx("creating device", &target))?;
            }
            other => {
                tracing::debug!(path = %raw, kind = ?other, "skipping unsupported tar entry");
                continue;
            }
        }

        let is_symlink = kind == T::Symlink;
        if opts.same_owner {
            // chown before chmod: chown clears set-uid bits.
            rustix::fs::chownat(
                CWD,
                &target,
                Some(rustix::fs::Uid::from_raw(uid as u32)),
                Some(rustix::fs::Gid::from_raw(gid as u32)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(rx("chown", &target))?;
            for (k, v) in &xattrs {
                if let Err(e) = rustix::fs::lsetxattr(&target, k.as_str(), v, XattrFlags::empty()) {
                    tracing::debug!(path = %raw, xattr = %k, error = %e, "xattr not set");
                }
            }
        }
        if !is_symlink {
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", &target))?;
        }
        if kind != T::Directory {
            set_mtime(&target, mtime);
        }
        written.insert(rel);
    }
    // Directory mtimes last: creating their children changed them.
    for (d, t) in dir_times.iter().rev() {
        set_mtime(d, *t);
    }
    Ok(())
}

fn set_mtime(path: &Path, secs: i64) {
    let ts = Timespec { tv_sec: secs, tv_nsec: 0 };
    let _ = rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps { last_access: ts, last_modification: ts },
        AtFlags::SYMLINK_NOFOLLOW,
    );
}

fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>, UnpackError> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(UnpackError::Read)? {
        for ext in exts {
            let ext = ext.map_err(UnpackError::Read)?;
            if let Ok(key) = ext.key() {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

/// Normalizes an entry path to a relative path; a `..` that would climb above the root is an error.
fn clean(raw: &str) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(UnpackError::PathTraversal(raw.to_string()));
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

/// Resolves `rel` (a directory path) inside `root`, following symlinks as if `root` were `/`.
/// Missing directories are created when `create` is set.
fn resolve(root: &Path, rel: &Path, create: bool, raw: &str) -> Result<PathBuf, UnpackError> {
    let mut pending: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c == "." || c.is_empty() {
            continue;
        }
        if c == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&c);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(UnpackError::SymlinkLoop(raw.to_string()));
                }
                let target = fs::read_link(&candidate).map_err(io_err("reading symlink", &candidate))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for comp in target.components().rev() {
                    match comp {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            Ok(m) if m.is_dir() => resolved.push(c),
            Ok(_) => return Err(UnpackError::NotADirectory(raw.to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&candidate).map_err(io_err("creating", &candidate))?;
                resolved.push(c);
            }
            Err(e) => return Err(UnpackError::Io { op: "resolving", path: candidate, source: e }),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

fn remove_any(path: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("removing", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("removing", path)),
        Err(_) => Ok(()),
    }
}

/// Opaque directory in Apply mode: drop what lower layers left in `dir`, keep this layer's entries.
fn clear_dir_except(root: &Path, dir: &Path, keep: &HashSet<PathBuf>) -> Result<(), UnpackError> {
    for e in fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let e = e.map_err(io_err("listing", dir))?;
        let p = e.path();
        let rel = p.strip_prefix(root).map(Path::to_path_buf).unwrap_or_default();
        if !keep.contains(&rel) {
            remove_any(&p)?;
        }
    }
    Ok(())
}

/// Convenience for callers holding a blob file.
pub fn apply_layer_file(
    path: &Path,
    root: &Path,
    diff_id: Option<&Digest>,
    opts: Options,
) -> Result<Digest, UnpackError> {
    let f = File::open(path).map_err(io_err("opening", path))?;
    apply_layer_blob(f, root, diff_id, opts)
}
