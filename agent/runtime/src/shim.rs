//! The per-sandbox shim: a single-threaded child subreaper that owns the sandbox's containers.
//!
//! It runs libcontainer (which must not run in a multi-threaded process), copies each container's
//! stdout/stderr pipes into the CRI log file, reaps containers (they are reparented to it because it
//! is a subreaper) and records their exit codes on disk, and escalates SIGTERM to SIGKILL after a
//! grace period itself because libcontainer's kill marks a container stopped at once. One `poll()`
//! loop multiplexes the control socket and the log pipes; see [`crate::protocol`] for the requests.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cgroups;
use crate::cri_log::{LineSplitter, Stream};
use crate::layout::{self, write_atomic};
use crate::protocol::{encode_reply, Request};

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("sandbox directory {0}")]
    Dir(PathBuf, #[source] std::io::Error),
    #[error("binding {0}")]
    Bind(PathBuf, #[source] std::io::Error),
    #[error("becoming a child subreaper")]
    Subreaper(#[source] Errno),
    #[error("poll")]
    Poll(#[source] Errno),
}

/// How long an exit waits for the container's pipes to reach EOF before it is recorded anyway (a
/// process that escaped the pid namespace's teardown could hold them open forever).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Idle poll timeout: exits normally announce themselves through pipe EOF, so this only bounds how
/// late an exit of a process that closed its stdio early is noticed.
const IDLE_TICK: Duration = Duration::from_millis(250);
/// Right after a container's pipes close it is usually exiting; reap it promptly (SIGCHLD would need
/// a handler or a blocked mask that containers would inherit, so we poll briefly instead).
const EXITING_TICK: Duration = Duration::from_millis(2);
const EXITING_WINDOW: Duration = Duration::from_secs(1);

struct LogPipe {
    read: File,
    splitter: LineSplitter,
    log: File,
}

struct Child {
    pid: Pid,
    cgroup: Option<String>,
    pipes: Vec<LogPipe>,
    /// When the last pipe reached EOF.
    pipes_closed_at: Option<Instant>,
    kill_at: Option<Instant>,
    /// Exit code (128+signal for signals) and when it was reaped.
    exited: Option<(i32, Instant)>,
}

struct Shim {
    dir: PathBuf,
    children: BTreeMap<String, Child>,
    cgroup_root: PathBuf,
}

/// Serves the sandbox at `dir` until SHUTDOWN. `dir` must be absolute: libcontainer chdir()s.
pub fn serve(dir: &Path) -> Result<(), ShimError> {
    nix::sys::prctl::set_child_subreaper(true).map_err(ShimError::Subreaper)?;
    let dir = dir.canonicalize().map_err(|e| ShimError::Dir(dir.to_path_buf(), e))?;
    let sock = dir.join(layout::SOCKET);
    // A socket file left by a previous shim of this sandbox would make bind fail.
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| ShimError::Bind(sock.clone(), e))?;
    write_atomic(&dir.join(layout::SHIM_PID), std::process::id().to_string().as_bytes())
        .map_err(|e| ShimError::Dir(dir.clone(), e))?;
    let mut shim = Shim { dir, children: BTreeMap::new(), cgroup_root: cgroups::CGROUP_ROOT.into() };
    loop {
        let (listener_ready, ready_pipes) = shim.wait(&listener)?;
        for (name, idx) in ready_pipes {
            shim.copy_pipe(&name, idx);
        }
        if listener_ready {
            if let Ok((stream, _)) = listener.accept() {
                if shim.handle(stream) {
                    break;
                }
            }
        }
        shim.reap();
        shim.escalate();
        shim.record_exits();
    }
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(shim.dir.join(layout::SHIM_PID));
    Ok(())
}

impl Shim {
    /// Polls the socket and every log pipe; returns what is readable.
    fn wait(&self, listener: &UnixListener) -> Result<(bool, Vec<(String, usize)>), ShimError> {
        let mut keys = Vec::new();
        let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        for (name, c) in &self.children {
            for (i, p) in c.pipes.iter().enumerate() {
                keys.push((name.clone(), i));
                fds.push(PollFd::new(p.read.as_fd(), PollFlags::POLLIN));
            }
        }
        let timeout = self.timeout().as_millis().min(u128::from(u16::MAX)) as u16;
        match poll(&mut fds, PollTimeout::from(timeout)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(ShimError::Poll(e)),
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let listener_ready = ready(&fds[0]);
        let pipes = keys.into_iter().zip(&fds[1..]).filter(|(_, f)| ready(f)).map(|(k, _)| k).collect();
        Ok((listener_ready, pipes))
    }

    fn timeout(&self) -> Duration {
        let now = Instant::now();
        let mut t = IDLE_TICK;
        for c in self.children.values().filter(|c| c.exited.is_none()) {
            if let Some(d) = c.kill_at {
                t = t.min(d.saturating_duration_since(now));
            }
            if c.pipes_closed_at.is_some_and(|at| now.duration_since(at) < EXITING_WINDOW) {
                t = t.min(EXITING_TICK);
            }
        }
        t
    }

    fn copy_pipe(&mut self, name: &str, idx: usize) {
        let Some(child) = self.children.get_mut(name) else { return };
        let Some(pipe) = child.pipes.get_mut(idx) else { return };
        let mut buf = [0u8; 64 * 1024];
        match pipe.read.read(&mut buf) {
            Ok(n) if n > 0 => {
                let out = pipe.splitter.push(Utc::now(), &buf[..n]);
                let _ = pipe.log.write_all(&out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EOF or a broken pipe: this stream is finished.
            _ => {
                let out = pipe.splitter.finish(Utc::now());
                let _ = pipe.log.write_all(&out);
                child.pipes.remove(idx);
                if child.pipes.is_empty() {
                    child.pipes_closed_at = Some(Instant::now());
                }
            }
        }
    }

    /// Handles one connection; true when the shim should exit.
    fn handle(&mut self, stream: UnixStream) -> bool {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        let mut reader = BufReader::new(&stream);
        if reader.read_line(&mut line).is_err() {
            return false;
        }
        let (reply, exit) = match Request::parse(&line) {
            Err(e) => (Err(e.to_string()), false),
            Ok(Request::Ping) => (Ok(std::process::id().to_string()), false),
            Ok(Request::Start { name }) => (self.start(&name), false),
            Ok(Request::Kill { name, grace }) => (self.kill(&name, grace), false),
            Ok(Request::Delete { name }) => (self.delete(&name), false),
            Ok(Request::Shutdown) => {
                let names: Vec<String> = self.children.keys().cloned().collect();
                let mut result = Ok(String::new());
                for n in names {
                    if let Err(e) = self.delete(&n) {
                        result = Err(e);
                    }
                }
                (result, true)
            }
        };
        let _ = (&stream).write_all(encode_reply(&reply).as_bytes());
        exit
    }

    fn state_root(&self) -> PathBuf {
        self.dir.join(layout::STATE_ROOT)
    }

    fn start(&mut self, name: &str) -> Result<String, String> {
        if self.children.contains_key(name) {
            return Err(format!("container {name} is running"));
        }
        let cdir = layout::container_dir(&self.dir, name);
        let spec = Spec::load(cdir.join(layout::CONFIG)).map_err(|e| format!("loading bundle: {e}"))?;
        let cgroup =
            spec.linux().as_ref().and_then(|l| l.cgroups_path().as_ref()).map(|p| p.to_string_lossy().into_owned());
        for f in [layout::EXIT_CODE, layout::OOM_KILLED, layout::PID] {
            let _ = std::fs::remove_file(cdir.join(f));
        }
        self.delete_state(name);

        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(cdir.join(layout::LOG))
            .map_err(|e| format!("opening log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;

        let built = ContainerBuilder::new(name.to_string(), SyscallType::default())
            .with_root_path(self.state_root())
            .map(|b| b.with_stdout(out_w).with_stderr(err_w))
            .and_then(|b| b.validate_id())
            .and_then(|b| b.as_init(&cdir).with_systemd(false).with_detach(true).build());
        let mut container = match built {
            Ok(c) => c,
            Err(e) => {
                self.delete_state(name);
                return Err(format!("creating container: {e}"));
            }
        };
        if let Err(e) = container.start() {
            let _ = container.delete(true);
            self.delete_state(name);
            return Err(format!("starting container: {e}"));
        }
        let Some(pid) = container.pid() else {
            return Err("libcontainer reported no pid".into());
        };
        let _ = write_atomic(&cdir.join(layout::PID), pid.to_string().as_bytes());
        let pipes = vec![
            LogPipe { read: File::from(out_r), splitter: LineSplitter::new(Stream::Stdout), log },
            LogPipe { read: File::from(err_r), splitter: LineSplitter::new(Stream::Stderr), log: log2 },
        ];
        self.children
            .insert(name.to_string(), Child { pid, cgroup, pipes, pipes_closed_at: None, kill_at: None, exited: None });
        Ok(pid.to_string())
    }

    /// Removes libcontainer's state of a stopped container of this name (and its cgroup).
    fn delete_state(&self, name: &str) {
        let state = self.state_root().join(name);
        if state.exists() {
            if let Ok(mut c) = Container::load(state.clone()) {
                let _ = c.delete(true);
            }
            let _ = std::fs::remove_dir_all(&state);
        }
    }

    fn kill(&mut self, name: &str, grace: Duration) -> Result<String, String> {
        let Some(c) = self.children.get_mut(name) else {
            // Already exited and recorded (or never started): nothing to signal.
            return Ok(String::new());
        };
        if c.exited.is_some() {
            return Ok(String::new());
        }
        match kill(c.pid, Signal::SIGTERM) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => return Err(format!("SIGTERM: {e}")),
        }
        let deadline = Instant::now() + grace;
        c.kill_at = Some(c.kill_at.map_or(deadline, |d| d.min(deadline)));
        Ok(String::new())
    }

    fn delete(&mut self, name: &str) -> Result<String, String> {
        if let Some(c) = self.children.get_mut(name) {
            if c.exited.is_none() {
                let _ = kill(c.pid, Signal::SIGKILL);
                let code = match waitpid(c.pid, None) {
                    Ok(status) => exit_code(status).unwrap_or(137),
                    Err(_) => 137,
                };
                c.exited = Some((code, Instant::now()));
            }
            // Drain what is already buffered so the log is complete, then record the exit.
            while self.children.get(name).is_some_and(|c| !c.pipes.is_empty()) {
                self.copy_pipe(name, 0);
            }
            self.record_exit(name);
        }
        let state = self.state_root().join(name);
        if state.exists() {
            let mut c = Container::load(state.clone()).map_err(|e| format!("loading state: {e}"))?;
            c.delete(true).map_err(|e| format!("deleting: {e}"))?;
            let _ = std::fs::remove_dir_all(&state);
        }
        Ok(String::new())
    }

    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => {
                    let (Some(pid), Some(code)) = (status.pid(), exit_code(status)) else { continue };
                    if let Some(c) = self.children.values_mut().find(|c| c.pid == pid) {
                        c.exited = Some((code, Instant::now()));
                    }
                }
            }
        }
    }

    fn escalate(&mut self) {
        let now = Instant::now();
        for c in self.children.values_mut() {
            if c.exited.is_none() && c.kill_at.is_some_and(|d| now >= d) {
                let _ = kill(c.pid, Signal::SIGKILL);
                c.kill_at = None;
            }
        }
    }

    fn record_exits(&mut self) {
        let done: Vec<String> = self
            .children
            .iter()
            .filter(|(_, c)| c.exited.is_some_and(|(_, at)| c.pipes.is_empty() || at.elapsed() >= DRAIN_LIMIT))
            .map(|(n, _)| n.clone())
            .collect();
        for n in done {
            self.record_exit(&n);
        }
    }

    /// Writes `exit-code` (and `oom-killed`) and forgets the child. The log is complete by now, so a
    /// reader that sees `exit-code` sees all output.
    fn record_exit(&mut self, name: &str) {
        let Some(mut c) = self.children.remove(name) else { return };
        let Some((code, _)) = c.exited else {
            self.children.insert(name.to_string(), c);
            return;
        };
        for p in &mut c.pipes {
            let out = p.splitter.finish(Utc::now());
            let _ = p.log.write_all(&out);
        }
        let cdir = layout::container_dir(&self.dir, name);
        let oom = c.cgroup.as_deref().and_then(|cg| cgroups::oom_kills(&self.cgroup_root, cg)).unwrap_or(0);
        if oom > 0 {
            let _ = write_atomic(&cdir.join(layout::OOM_KILLED), oom.to_string().as_bytes());
        }
        if let Err(e) = write_atomic(&cdir.join(layout::EXIT_CODE), code.to_string().as_bytes()) {
            eprintln!("edge-shim: recording exit of {name}: {e}");
        }
    }
}

/// Shell convention, as the kubelet reports it: the code, or 128 + signal number.
fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let p = Pid::from_raw(7);
        let cases = [
            (WaitStatus::Exited(p, 3), Some(3)),
            (WaitStatus::Signaled(p, Signal::SIGKILL, false), Some(137)),
            (WaitStatus::Signaled(p, Signal::SIGTERM, true), Some(143)),
            (WaitStatus::Stopped(p, Signal::SIGSTOP), None),
        ];
        for (s, want) in cases {
            assert_eq!(exit_code(s), want, "{s:?}");
        }
    }
}
