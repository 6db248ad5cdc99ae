//! Pod network namespaces kept alive by a bind mount on a file, like `ip netns add` but at any path
//! (the agent keeps them in its own run directory). The file is what [`crate::NodeNetwork::add_pod`]
//! and the runtime's sandbox join; the namespace lives until [`remove`] unmounts it and the last
//! process inside it exits.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::statfs::{statfs, NSFS_MAGIC};
use rtnetlink::LinkUnspec;

use crate::error::{NetError, Result};
use crate::rtnl::RtNetlink;

/// Creates a new network namespace bound to `path` (parent directories are created) with `lo` up.
/// An existing bound namespace at `path` is kept as it is, so a restarted agent can call this again.
///
/// Runs on a dedicated thread: `unshare(CLONE_NEWNET)` moves only the calling thread, and that
/// thread ends afterwards, so no caller thread (nor a tokio worker) is left in the new namespace.
pub fn create(path: &Path) -> Result<()> {
    if exists(path) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| NetError::io(format!("creating {}", dir.display()), e))?;
    }
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("netns-create".into())
        .spawn(move || create_on_this_thread(&owned))
        .map_err(|e| NetError::io("spawning the netns thread", e))?
        .join()
        .map_err(|_| NetError::io("creating a netns", std::io::Error::other("netns thread panicked")))?
}

fn create_on_this_thread(path: &Path) -> Result<()> {
    let ns_err = |source| NetError::Netns { path: path.display().to_string(), source };
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(ns_err)?;
    // An empty file that is only ever a mount point; a leftover one (not bound) is reused.
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o444)
        .open(path)
        .map_err(|e| NetError::io(format!("creating {}", path.display()), e))?;
    if let Err(source) = mount(Some("/proc/thread-self/ns/net"), path, None::<&str>, MsFlags::MS_BIND, None::<&str>) {
        let _ = std::fs::remove_file(path);
        return Err(ns_err(source));
    }
    if let Err(e) = loopback_up() {
        let _ = remove(path);
        return Err(e);
    }
    Ok(())
}

/// A new namespace has `lo` down; pods expect 127.0.0.1 to work. This thread is inside the new
/// namespace, so a connection opened here talks to it.
fn loopback_up() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| NetError::io("starting a runtime for lo", e))?;
    rt.block_on(async {
        let nl = RtNetlink::new()?;
        nl.handle().link().set(LinkUnspec::new_with_name("lo").up().build()).execute().await?;
        Ok(())
    })
}

/// Unmounts (lazily, so processes still inside keep their namespace) and deletes the file at `path`.
/// A missing file or one that is no longer mounted is fine.
pub fn remove(path: &Path) -> Result<()> {
    // Bound twice (by hand, or by a crash between checks) means stacked mounts: peel them all.
    for _ in 0..8 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL | Errno::ENOENT) => break,
            Err(source) => return Err(NetError::Netns { path: path.display().to_string(), source }),
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(NetError::io(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Whether `path` is a namespace file (a bound nsfs, or a `/proc/PID/ns/*` link).
pub fn exists(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}
