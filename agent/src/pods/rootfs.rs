//! A container's root filesystem: the image's layer snapshots as overlayfs lower dirs with a
//! writable upper dir of its own, mounted under the pod's directory. A restarted container gets a
//! fresh upper dir, as the kubelet gives it a new container.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("mounting overlay on {0}: {1}")]
    Mount(PathBuf, nix::Error),
    #[error("unmounting {0}: {1}")]
    Unmount(PathBuf, nix::Error),
    #[error("image has no layers")]
    NoLayers,
}

/// `<dir>/rootfs`, with `<dir>/upper` and `<dir>/work` beside it.
pub fn rootfs_path(dir: &Path) -> PathBuf {
    dir.join("rootfs")
}

/// Mounts the overlay at `<dir>/rootfs` unless it is mounted already (a re-adopted container);
/// `fresh` discards an earlier upper dir first.
pub fn mount_overlay(dir: &Path, layers_lowest_first: &[PathBuf], fresh: bool) -> Result<PathBuf, RootfsError> {
    if layers_lowest_first.is_empty() {
        return Err(RootfsError::NoLayers);
    }
    let target = rootfs_path(dir);
    if is_mountpoint(&target) {
        if !fresh {
            return Ok(target);
        }
        unmount(&target)?;
    }
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    if fresh {
        for d in [&upper, &work] {
            match std::fs::remove_dir_all(d) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(RootfsError::Io(d.clone(), e)),
                _ => {}
            }
        }
    }
    for d in [&upper, &work, &target] {
        std::fs::create_dir_all(d).map_err(|e| RootfsError::Io(d.clone(), e))?;
    }
    let lower = edge_images::snapshots::overlay_lowerdir(layers_lowest_first);
    let opts = format!("lowerdir={lower},upperdir={},workdir={}", upper.display(), work.display());
    mount(Some("overlay"), &target, Some("overlay"), MsFlags::empty(), Some(opts.as_str()))
        .map_err(|e| RootfsError::Mount(target.clone(), e))?;
    Ok(target)
}

/// Unmounts `target` if it is a mount point (lazily, so a process still inside cannot block teardown).
pub fn unmount(target: &Path) -> Result<(), RootfsError> {
    if !is_mountpoint(target) {
        return Ok(());
    }
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(RootfsError::Unmount(target.to_path_buf(), e)),
    }
}

/// Every mount point at or below `dir`, deepest first (for teardown).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = mount_points(&text).into_iter().filter(|p| p.starts_with(dir)).collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

pub fn is_mountpoint(path: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mount_points(&text).iter().any(|p| p == path)
}

/// Mount points from mountinfo (field 5, with the kernel's octal escapes undone).
fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(edge_runtime::cgroups::unescape_mount_path(p)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing() {
        let mi = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                  40 22 0:40 / /var/lib/edge/pods/a/c/rootfs rw - overlay overlay rw\n\
                  41 22 0:41 / /var/lib/edge/pods/a/vol\\040x rw - tmpfs tmpfs rw\n";
        let pts = mount_points(mi);
        assert_eq!(pts[1], PathBuf::from("/var/lib/edge/pods/a/c/rootfs"));
        assert_eq!(pts[2], PathBuf::from("/var/lib/edge/pods/a/vol x"));
    }
}
