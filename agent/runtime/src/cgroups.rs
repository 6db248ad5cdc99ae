//! Reading and cleaning the cgroups libcontainer made for our containers, on v1 (one hierarchy per
//! controller) and v2 (one unified hierarchy), and finding where a process's cgroups are mounted so an
//! exec can join them. libcontainer creates and deletes a container's own cgroup; the pod-level
//! parents above it are ours to remove once empty.

use std::path::{Path, PathBuf};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Which layout the machine uses, decided the way libcgroups decides: a v1 `memory` hierarchy wins
/// (hybrid hosts mount v2 without controllers at `unified`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    V1,
    V2,
}

pub fn detect(root: &Path) -> Layout {
    if root.join("memory").join("memory.limit_in_bytes").exists() {
        Layout::V1
    } else {
        Layout::V2
    }
}

/// The `oom_kill` counter from v1 `memory.oom_control` or v2 `memory.events`; both are
/// `key value` lines.
pub fn parse_oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_ascii_whitespace();
        match (it.next(), it.next()) {
            (Some("oom_kill"), Some(v)) => v.parse().ok(),
            _ => None,
        }
    })
}

fn rel(cgroup_path: &str) -> &str {
    cgroup_path.trim_start_matches('/')
}

/// How many processes the kernel OOM-killed in this cgroup (None when unreadable).
pub fn oom_kills(root: &Path, cgroup_path: &str) -> Option<u64> {
    let file = match detect(root) {
        Layout::V1 => root.join("memory").join(rel(cgroup_path)).join("memory.oom_control"),
        Layout::V2 => root.join(rel(cgroup_path)).join("memory.events"),
    };
    std::fs::read_to_string(file).ok().as_deref().and_then(parse_oom_kills)
}

/// Every directory that represents `cgroup_path` (one per v1 hierarchy, or the single v2 one).
pub fn dirs(root: &Path, cgroup_path: &str) -> Vec<PathBuf> {
    match detect(root) {
        Layout::V2 => vec![root.join(rel(cgroup_path))],
        Layout::V1 => std::fs::read_dir(root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    // Symlinks such as `cpu -> cpu,cpuacct` would name the same hierarchy twice.
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path().join(rel(cgroup_path)))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Removes `cgroup_path` in every hierarchy if it has no processes and no children; cgroup dirs are
/// removed with rmdir (their files are virtual). Returns the first error other than "not there".
pub fn remove_if_empty(root: &Path, cgroup_path: &str) -> std::io::Result<()> {
    let mut first_err = None;
    for d in dirs(root, cgroup_path) {
        if let Err(e) = std::fs::remove_dir(&d) {
            if e.kind() != std::io::ErrorKind::NotFound && first_err.is_none() {
                first_err = Some(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The `cgroup.procs` file of every hierarchy a process belongs to, from its `/proc/PID/cgroup` and
/// our `/proc/self/mountinfo`; one per mounted hierarchy, whether v1, v2 or both (hybrid). Hierarchies
/// that are not mounted here (nothing to write to) are left out.
pub fn procs_files(proc_cgroup: &str, mountinfo: &str) -> Vec<PathBuf> {
    let mounts: Vec<CgroupMount> = mountinfo.lines().filter_map(CgroupMount::parse).collect();
    let mut out = Vec::new();
    for line in proc_cgroup.lines() {
        // `hierarchy-id:controllers:path`; the path may itself contain colons.
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (it.next(), it.next(), it.next()) else { continue };
        let found = mounts.iter().find(|m| match &m.controllers {
            None => controllers.is_empty(),
            Some(opts) => !controllers.is_empty() && controllers.split(',').all(|c| opts.iter().any(|o| o == c)),
        });
        let Some(m) = found else { continue };
        // A mount of a sub-cgroup (as inside a cgroup namespace) shows paths below its root.
        let below = path.strip_prefix(m.root.as_str()).unwrap_or(path);
        let file = m.mount_point.join(below.trim_start_matches('/')).join("cgroup.procs");
        if !out.contains(&file) {
            out.push(file);
        }
    }
    out
}

struct CgroupMount {
    root: String,
    mount_point: PathBuf,
    /// v1: the super options (controllers and `name=...`); None for the v2 hierarchy.
    controllers: Option<Vec<String>>,
}

impl CgroupMount {
    /// One mountinfo line: `id parent dev root mount-point options [optional...] - fstype source super-options`.
    fn parse(line: &str) -> Option<Self> {
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (root, mount_point) = (*left.get(3)?, *left.get(4)?);
        let controllers = match *right.first()? {
            "cgroup2" => None,
            "cgroup" => Some(right.get(2)?.split(',').map(str::to_string).collect()),
            _ => return None,
        };
        Some(Self {
            root: unescape_mount_path(root),
            mount_point: unescape_mount_path(mount_point).into(),
            controllers,
        })
    }
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
/// A mountinfo path with the kernel's octal escapes (`\040` for a space…) undone.
pub fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/systemd rw,nosuid shared:16 - cgroup cgroup rw,xattr,name=systemd
37 30 0:33 / /sys/fs/cgroup/pids rw,nosuid shared:17 - cgroup cgroup rw,pids
25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
";

    #[test]
    fn procs_files_per_hierarchy() {
        let v2_mountinfo = "26 1 0:23 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw\n";
        let ns_mountinfo = "26 1 0:23 /edge/n /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let spaced = "26 1 0:23 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n";
        let p = |s: &str| PathBuf::from(s);
        let cases: Vec<(&str, &str, Vec<PathBuf>)> = vec![
            ("0::/edge/n/pod1/app\n", v2_mountinfo, vec![p("/sys/fs/cgroup/edge/n/pod1/app/cgroup.procs")]),
            (
                "5:memory:/edge/n/pod1/app\n4:cpu,cpuacct:/edge/n/pod1/app\n3:name=systemd:/\n\
                 2:net_cls:/\n1:pids:/edge/n/pod1/app\n0::/user.slice\n",
                HYBRID_MOUNTINFO,
                vec![
                    p("/sys/fs/cgroup/memory/edge/n/pod1/app/cgroup.procs"),
                    p("/sys/fs/cgroup/cpu,cpuacct/edge/n/pod1/app/cgroup.procs"),
                    p("/sys/fs/cgroup/systemd/cgroup.procs"),
                    // net_cls is not mounted: nothing to join.
                    p("/sys/fs/cgroup/pids/edge/n/pod1/app/cgroup.procs"),
                    p("/sys/fs/cgroup/unified/user.slice/cgroup.procs"),
                ],
            ),
            ("0::/edge/n/pod1/app\n", ns_mountinfo, vec![p("/sys/fs/cgroup/pod1/app/cgroup.procs")]),
            ("0::/a:b\n", spaced, vec![p("/mnt/my cg/a:b/cgroup.procs")]),
            ("garbage\n", v2_mountinfo, vec![]),
        ];
        for (cg, mi, want) in cases {
            assert_eq!(procs_files(cg, mi), want, "{cg:?}");
        }
    }

    #[test]
    fn oom_counter() {
        let cases = [
            ("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", Some(2)),
            ("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n", Some(1)),
            ("oom_kill_disable 0\nunder_oom 0\n", None),
            ("oom_kill x\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_oom_kills(text), want, "{text:?}");
        }
    }

    #[test]
    fn layout_detection_and_dirs() {
        let t = std::env::temp_dir().join(format!("edge-rt-cg-{}", std::process::id()));
        let v1 = t.join("v1");
        std::fs::create_dir_all(v1.join("memory/edge/n/pod1")).unwrap();
        std::fs::write(v1.join("memory/memory.limit_in_bytes"), "1").unwrap();
        std::fs::create_dir_all(v1.join("pids/edge/n/pod1")).unwrap();
        std::fs::create_dir_all(v1.join("cpu")).unwrap();
        std::fs::write(v1.join("memory/edge/n/pod1/memory.oom_control"), "oom_kill 3\n").unwrap();
        let v2 = t.join("v2");
        std::fs::create_dir_all(v2.join("edge/n/pod1")).unwrap();
        std::fs::write(v2.join("edge/n/pod1/memory.events"), "oom 1\noom_kill 1\n").unwrap();

        assert_eq!(detect(&v1), Layout::V1);
        assert_eq!(detect(&v2), Layout::V2);
        assert_eq!(oom_kills(&v1, "/edge/n/pod1"), Some(3));
        assert_eq!(oom_kills(&v2, "/edge/n/pod1"), Some(1));
        assert_eq!(oom_kills(&v2, "/edge/n/none"), None);
        let mut d = dirs(&v1, "/edge/n/pod1");
        d.sort();
        assert_eq!(d, vec![v1.join("memory/edge/n/pod1"), v1.join("pids/edge/n/pod1")]);
        assert_eq!(dirs(&v2, "/edge/n/pod1"), vec![v2.join("edge/n/pod1")]);
        std::fs::remove_dir_all(&t).unwrap();
    }
}
