//! Root-only: a pod network namespace bound to a file under a per-run temp dir. A guard removes
//! the bind mount and the directory also when an assertion fails.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use netlink_packet_route::link::LinkFlags;

use edge_net::{netns, RtNetlink};

struct Guard {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Unmount before TempDir removes the directory (it cannot delete a mount point).
        let _ = netns::remove(&self.path);
    }
}

/// Whether `lo` is up, as seen from inside the namespace at `path`.
fn loopback_up(path: &Path) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    rt.block_on(async {
        let nl = RtNetlink::in_netns(path).unwrap();
        let mut links = nl.handle().link().get().match_name("lo").execute();
        let lo = links.try_next().await.unwrap().unwrap();
        lo.header.flags.contains(LinkFlags::Up)
    })
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn create_exists_remove() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let dir = tempfile::Builder::new().prefix(&format!("edge-netns-{}-", std::process::id())).tempdir().unwrap();
    // A parent that does not exist yet is created, as the agent's run dir may be fresh.
    let path = dir.path().join("netns").join("pod-a");
    let guard = Guard { path: path.clone(), _dir: dir };

    assert!(!netns::exists(&path));
    netns::create(&path).unwrap();
    assert!(netns::exists(&path));
    let ns = inode(&path);
    assert_ne!(ns, inode(Path::new("/proc/self/ns/net")), "a new namespace, not ours");
    assert_ne!(ns, inode(Path::new("/proc/thread-self/ns/net")), "the caller's thread stayed where it was");
    assert!(loopback_up(&path), "lo is up inside");

    // Idempotent: the same namespace is kept, not replaced or stacked.
    netns::create(&path).unwrap();
    assert_eq!(inode(&path), ns);

    netns::remove(&path).unwrap();
    assert!(!netns::exists(&path));
    assert!(!path.exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(path.to_str().unwrap()), "mount left behind");
    // Removing again (nothing there) is fine.
    netns::remove(&path).unwrap();
    drop(guard);
}

#[test]
fn plain_files_are_not_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("plain");
    std::fs::write(&f, "").unwrap();
    let cases = [(f.as_path(), false), (dir.path(), false), (Path::new("/nonexistent/x"), false)];
    for (p, want) in cases {
        assert_eq!(netns::exists(p), want, "{}", p.display());
    }
    // A leftover plain file that is not mounted is removed without error.
    netns::remove(&f).unwrap();
    assert!(!f.exists());
    if nix::unistd::geteuid().is_root() {
        assert!(netns::exists(Path::new("/proc/self/ns/net")));
    }
}
