//! Reading and cleaning the cgroups libcontainer made for our containers, on v1 (one hierarchy per
//! controller) and v2 (one unified hierarchy). libcontainer creates and deletes a container's own
//! cgroup; the pod-level parents above it are ours to remove once empty.

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
