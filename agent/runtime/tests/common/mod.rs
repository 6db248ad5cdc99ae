#![allow(clippy::unwrap_used, dead_code)]
//! Test environment for real containers on the real kernel (root): a busybox rootfs, a network namespace made with
//! `ip netns`, cgroups under a per-run parent. Everything made here is removed in `Drop`, also when a
//! test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edge_runtime::{cgroups, ContainerSpec, Sandbox};

pub const SHIM: &str = env!("CARGO_BIN_EXE_edge-shim");
pub static NEXT: AtomicUsize = AtomicUsize::new(0);

pub struct Env {
    pub tmp: PathBuf,
    pub netns_name: String,
    /// Top of every cgroup made here: `/<id>`.
    pub cgroup_top: String,
}

impl Env {
    /// None (with a SKIPPED line) when not root or busybox-static is missing.
    pub fn new() -> Option<Env> {
        if !nix::unistd::geteuid().is_root() || !Path::new("/bin/busybox").exists() {
            eprintln!("SKIPPED: needs root and /bin/busybox (apt install busybox-static)");
            return None;
        }
        let id = format!("edge-rt-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let tmp = std::env::temp_dir().join(&id);
        let rootfs = tmp.join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for tool in ["sh", "echo", "sleep", "cat", "true", "ls", "hostname", "tty", "stty", "id", "grep"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool)).unwrap();
        }
        let env = Env { tmp, netns_name: id.clone(), cgroup_top: format!("/{id}") };
        let ok = Command::new("ip").args(["netns", "add", &env.netns_name]).status().unwrap();
        assert!(ok.success(), "ip netns add");
        Some(env)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.tmp.join("rootfs")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.tmp.join("run")
    }
    pub fn netns(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.netns_name)
    }

    pub fn sandbox(&self, pod: &str) -> Sandbox {
        Sandbox::create(&self.run_dir(), pod, &self.netns(), Path::new(SHIM)).unwrap()
    }

    pub fn spec(&self, pod: &str, name: &str, script: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            rootfs: self.rootfs(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            cgroup_parent: format!("{}/node-a/pod{pod}", self.cgroup_top),
            ..Default::default()
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Stop every shim this test started (SHUTDOWN kills and deletes its containers), by pid if
        // it does not answer.
        if let Ok(rd) = std::fs::read_dir(self.run_dir()) {
            for e in rd.filter_map(Result::ok) {
                let dir = e.path();
                let pid = std::fs::read_to_string(dir.join("shim.pid")).ok();
                let _ = edge_runtime::sandbox::request(&dir, &edge_runtime::protocol::Request::Shutdown);
                if let Some(pid) = pid.and_then(|p| p.trim().parse::<i32>().ok()) {
                    let until = Instant::now() + Duration::from_secs(3);
                    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                }
            }
        }
        remove_cgroup_tree(&self.cgroup_top);
        let _ = Command::new("ip").args(["netns", "del", &self.netns_name]).status();
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// rmdir bottom-up every cgroup dir below `top` in every hierarchy.
pub fn remove_cgroup_tree(top: &str) {
    fn rm(dir: &Path) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.filter_map(Result::ok) {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rm(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    for d in cgroups::dirs(Path::new(cgroups::CGROUP_ROOT), top) {
        rm(&d);
    }
}

pub fn cgroup_exists(path: &str) -> bool {
    !cgroups::dirs(Path::new(cgroups::CGROUP_ROOT), path).is_empty()
}

/// (stream, tag, content) of each CRI record, checking the timestamp on the way.
pub fn records(log: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let ts = it.next().unwrap();
            assert!(ts.ends_with('Z') && ts.len() == 30, "timestamp {ts:?}");
            chrono::DateTime::parse_from_rfc3339(ts).unwrap();
            let stream = it.next().unwrap().to_string();
            let tag = it.next().unwrap().to_string();
            (stream, tag, it.next().unwrap_or("").to_string())
        })
        .collect()
}

pub fn ns_inode(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}
