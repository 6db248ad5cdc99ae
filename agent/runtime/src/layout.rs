//! Paths inside a sandbox directory, shared by the shim and the agent side so both agree on them.

use std::path::{Path, PathBuf};

pub const SOCKET: &str = "shim.sock";
pub const SHIM_PID: &str = "shim.pid";
pub const SHIM_LOG: &str = "shim.log";
pub const SANDBOX_META: &str = "sandbox.json";
/// libcontainer's state root; a subdirectory because libcontainer creates `<root>/<id>` itself and
/// would collide with the bundle directory `<sandbox>/<name>`.
pub const STATE_ROOT: &str = ".state";
pub const CONFIG: &str = "config.json";
pub const LOG: &str = "container.log";
pub const PID: &str = "pid";
pub const EXIT_CODE: &str = "exit-code";
pub const OOM_KILLED: &str = "oom-killed";

pub fn sandbox_dir(run_dir: &Path, pod_uid: &str) -> PathBuf {
    run_dir.join(pod_uid)
}

pub fn container_dir(sandbox: &Path, name: &str) -> PathBuf {
    sandbox.join(name)
}

/// Container names become path components and libcontainer ids, so only DNS labels are accepted
/// (what Kubernetes allows for container names anyway).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Writes via a temporary file and rename so a reader never sees a half-written file (the agent may
/// read `exit-code` at any moment).
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases = [
            ("app", true),
            ("a-1", true),
            ("", false),
            ("-a", false),
            ("a-", false),
            ("App", false),
            ("a/b", false),
            ("..", false),
            (".state", false),
            (&"a".repeat(64), false),
        ];
        for (name, want) in cases {
            assert_eq!(valid_name(name), want, "{name:?}");
        }
    }
}
