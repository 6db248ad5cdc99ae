//! The agent's handle on one pod sandbox: starts its shim, writes bundles, sends requests and reads
//! container status from the sandbox directory. Blocking calls (the agent runs them on a blocking
//! thread); every piece of state lives on disk so a restarted agent re-attaches with [`Sandbox::open`].

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::layout::{self, write_atomic};
use crate::protocol::{parse_reply, Request};
use crate::spec::{ContainerSpec, SpecError};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid pod uid {0:?}")]
    PodUid(String),
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("starting the shim {0}: {1}")]
    ShimLaunch(PathBuf, String),
    #[error("talking to the shim: {0}")]
    ShimIo(#[source] std::io::Error),
    #[error("shim: {0}")]
    Shim(String),
    #[error("sandbox metadata: {0}")]
    Meta(#[source] serde_json::Error),
    #[error("container spec")]
    Spec(#[from] SpecError),
    #[error("writing config.json: {0}")]
    Bundle(String),
    #[error("container {0} not found")]
    NotFound(String),
}

/// One request to the shim of the sandbox at `dir`.
pub fn request(dir: &Path, req: &Request) -> Result<String, SandboxError> {
    let mut s = UnixStream::connect(dir.join(layout::SOCKET)).map_err(SandboxError::ShimIo)?;
    // A start runs libcontainer's whole create path in the shim.
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(SandboxError::ShimIo)?;
    s.write_all(req.encode().as_bytes()).map_err(SandboxError::ShimIo)?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).map_err(SandboxError::ShimIo)?;
    parse_reply(&line).map_err(SandboxError::Shim)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Bundle written, not (yet) running.
    Created,
    Running {
        pid: u32,
    },
    Exited {
        code: i32,
        oom_killed: bool,
        finished_at: Option<SystemTime>,
    },
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Meta {
    pod_uid: String,
    netns: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    dir: PathBuf,
    netns: PathBuf,
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |e| SandboxError::Io(p.to_path_buf(), e)
}

impl Sandbox {
    /// Makes `<run_dir>/<pod_uid>` and starts its shim (`shim_binary`, the `edge-shim` executable),
    /// which detaches so it outlives the caller. The pod's network namespace must already exist.
    pub fn create(run_dir: &Path, pod_uid: &str, netns: &Path, shim_binary: &Path) -> Result<Self, SandboxError> {
        // The uid becomes a path component.
        if pod_uid.is_empty() || !pod_uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(SandboxError::PodUid(pod_uid.to_string()));
        }
        let dir = layout::sandbox_dir(run_dir, pod_uid);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let dir = dir.canonicalize().map_err(io(&dir))?;
        let meta = Meta { pod_uid: pod_uid.to_string(), netns: netns.to_path_buf() };
        let meta_path = dir.join(layout::SANDBOX_META);
        write_atomic(&meta_path, &serde_json::to_vec(&meta).map_err(SandboxError::Meta)?).map_err(io(&meta_path))?;
        let out = std::os::unix::process::CommandExt::arg0(&mut Command::new(shim_binary), crate::cli::ARGV0)
            .arg(&dir)
            .output()
            .map_err(|e| SandboxError::ShimLaunch(shim_binary.to_path_buf(), e.to_string()))?;
        if !out.status.success() {
            return Err(SandboxError::ShimLaunch(
                shim_binary.to_path_buf(),
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(Self { dir, netns: netns.to_path_buf() })
    }

    /// Re-attaches to an existing sandbox (after an agent restart).
    pub fn open(run_dir: &Path, pod_uid: &str) -> Result<Self, SandboxError> {
        let dir = layout::sandbox_dir(run_dir, pod_uid);
        let meta_path = dir.join(layout::SANDBOX_META);
        let bytes = std::fs::read(&meta_path).map_err(io(&meta_path))?;
        let meta: Meta = serde_json::from_slice(&bytes).map_err(SandboxError::Meta)?;
        Ok(Self { dir, netns: meta.netns })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        layout::container_dir(&self.dir, name).join(layout::LOG)
    }

    /// The shim's pid, if it answers.
    pub fn shim_pid(&self) -> Result<u32, SandboxError> {
        let p = self.request(&Request::Ping)?;
        p.parse().map_err(|_| SandboxError::Shim(format!("bad PING reply {p:?}")))
    }

    fn request(&self, req: &Request) -> Result<String, SandboxError> {
        request(&self.dir, req)
    }

    /// Writes the bundle and starts the container; returns its pid (in the host pid namespace).
    pub fn start_container(&self, spec: &ContainerSpec) -> Result<u32, SandboxError> {
        let oci = spec.to_oci(&self.netns)?;
        let cdir = layout::container_dir(&self.dir, &spec.name);
        std::fs::create_dir_all(&cdir).map_err(io(&cdir))?;
        oci.save(cdir.join(layout::CONFIG)).map_err(|e| SandboxError::Bundle(e.to_string()))?;
        let pid = self.request(&Request::Start { name: spec.name.clone() })?;
        pid.parse().map_err(|_| SandboxError::Shim(format!("bad START reply {pid:?}")))
    }

    /// SIGTERM, then SIGKILL after `grace` (done by the shim); waits until the exit is recorded.
    pub fn kill(&self, name: &str, grace: Duration) -> Result<ContainerStatus, SandboxError> {
        self.request(&Request::Kill { name: name.to_string(), grace })?;
        self.wait(name, grace + Duration::from_secs(5))
    }

    /// Waits until the container's exit is recorded or `timeout` passes (then returns its status).
    pub fn wait(&self, name: &str, timeout: Duration) -> Result<ContainerStatus, SandboxError> {
        let until = Instant::now() + timeout;
        loop {
            let st = self.status(name)?;
            if matches!(st, ContainerStatus::Exited { .. }) || Instant::now() >= until {
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Read from the sandbox directory only, so it works while the shim is busy and after restarts.
    pub fn status(&self, name: &str) -> Result<ContainerStatus, SandboxError> {
        let cdir = layout::container_dir(&self.dir, name);
        let exit_path = cdir.join(layout::EXIT_CODE);
        match std::fs::read_to_string(&exit_path) {
            Ok(s) => {
                let code = s.trim().parse().map_err(|_| {
                    SandboxError::Io(exit_path.clone(), std::io::Error::other(format!("bad exit code {s:?}")))
                })?;
                let finished_at = std::fs::metadata(&exit_path).and_then(|m| m.modified()).ok();
                let oom_killed = cdir.join(layout::OOM_KILLED).exists();
                return Ok(ContainerStatus::Exited { code, oom_killed, finished_at });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SandboxError::Io(exit_path, e)),
        }
        if let Ok(s) = std::fs::read_to_string(cdir.join(layout::PID)) {
            if let Ok(pid) = s.trim().parse::<u32>() {
                return Ok(ContainerStatus::Running { pid });
            }
        }
        if cdir.join(layout::CONFIG).exists() {
            return Ok(ContainerStatus::Created);
        }
        Err(SandboxError::NotFound(name.to_string()))
    }

    /// Kills (without grace) and deletes the container: libcontainer state, cgroup, bundle, log.
    pub fn remove(&self, name: &str) -> Result<(), SandboxError> {
        self.request(&Request::Delete { name: name.to_string() })?;
        let cdir = layout::container_dir(&self.dir, name);
        match std::fs::remove_dir_all(&cdir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SandboxError::Io(cdir, e)),
            _ => Ok(()),
        }
    }

    /// Deletes every container, stops the shim and removes the sandbox directory. Pod-level cgroup
    /// parents are the caller's (see [`crate::cgroups::remove_if_empty`]).
    pub fn destroy(self) -> Result<(), SandboxError> {
        match self.request(&Request::Shutdown) {
            // A shim that is already gone has nothing left to delete.
            Ok(_) | Err(SandboxError::ShimIo(_)) => {}
            Err(e) => return Err(e),
        }
        // The shim removes its socket last; wait for it so no file appears after we removed the dir.
        let until = Instant::now() + Duration::from_secs(5);
        while self.dir.join(layout::SOCKET).exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::remove_dir_all(&self.dir).map_err(io(&self.dir))
    }
}
