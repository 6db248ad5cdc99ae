//! The shim side of exec (`edge-shim --exec PID [--tty] -- CMD...`): runs a command inside a running
//! container the way `runc exec` does, without the sandbox's shim being involved.
//!
//! Two processes, both single-threaded:
//! 1. `--exec` reads the target from `/proc/PID`, joins its cgroups and its ipc, uts, net and pid
//!    namespaces, then spawns stage 2 (this binary again) with the target's environment. Spawning
//!    after `setns(CLONE_NEWPID)` is what puts the child inside the container's pid namespace. It
//!    stays outside as the waiter: forwards SIGTERM/SIGINT/SIGHUP/SIGWINCH and exits with the
//!    command's code (128 + signal when killed).
//! 2. `--exec-stage` joins the mount namespace last (it needs the host's `/proc` until then), takes
//!    the terminal, takes the target's capabilities, uid/gid/groups and cwd, and
//!    execs the command found on the container's PATH.
//!
//! Stage 2 is a fresh exec rather than a bare fork so that everything stays safe Rust: the workspace
//! denies `unsafe`, and a forked child of a Rust process may only make async-signal-safe calls.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{access, AccessFlags, Gid, Pid, Uid};

use crate::spec::DEFAULT_PATH;
use crate::target::{Creds, Target, TargetError};

pub const EXEC_FLAG: &str = "--exec";
pub const TTY_FLAG: &str = "--tty";
pub const STAGE_FLAG: &str = "--exec-stage";

/// Our own failure to get into the container (Docker's convention), as opposed to the command's.
pub const ENTER_FAILED: i32 = 125;
/// Shell conventions, which the kubelet passes on: found but not runnable, and not found.
pub const NOT_EXECUTABLE: i32 = 126;
pub const NOT_FOUND: i32 = 127;

/// Signals the waiter passes on to the command; SIGCHLD tells it the command ended.
const FORWARDED: [Signal; 4] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGWINCH];

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("opening {0}: {1}")]
    OpenNamespace(PathBuf, #[source] std::io::Error),
    #[error("joining the {0} namespace: {1}")]
    Setns(&'static str, #[source] Errno),
    #[error("joining cgroup {0}: {1}")]
    Cgroup(PathBuf, #[source] std::io::Error),
    #[error("setting up signal forwarding: {0}")]
    Signals(#[source] Errno),
    #[error("starting the exec stage: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("waiting for the command: {0}")]
    Wait(#[source] std::io::Error),
    #[error("exec stage arguments: {0}")]
    Stage(#[source] serde_json::Error),
    #[error("taking the terminal: {0}")]
    Tty(#[source] std::io::Error),
    #[error("capabilities: {0}")]
    Caps(String),
    #[error("{0}: {1}")]
    Creds(&'static str, #[source] Errno),
}

/// `--exec PID [--tty] -- CMD [ARGS...]`, as [`crate::exec::exec_command`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecArgs {
    pub pid: u32,
    pub tty: bool,
    pub command: Vec<String>,
}

impl ExecArgs {
    /// Parses the arguments after the program name; the error is a usage message.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let Some(sep) = args.iter().position(|a| a == "--") else {
            return Err("missing `--` before the command".into());
        };
        let (opts, command) = (&args[..sep], &args[sep + 1..]);
        if command.is_empty() {
            return Err("no command after `--`".into());
        }
        match opts {
            [flag, pid, rest @ ..] if flag == EXEC_FLAG => {
                let pid = pid.parse().map_err(|_| format!("invalid pid {pid:?}"))?;
                let tty = match rest {
                    [] => false,
                    [t] if t == TTY_FLAG => true,
                    other => return Err(format!("unexpected arguments {other:?}")),
                };
                Ok(Self { pid, tty, command: command.to_vec() })
            }
            _ => Err(format!("expected `{EXEC_FLAG} PID [{TTY_FLAG}] -- CMD...`")),
        }
    }

    pub fn to_args(&self) -> Vec<String> {
        let mut out = vec![EXEC_FLAG.to_string(), self.pid.to_string()];
        if self.tty {
            out.push(TTY_FLAG.into());
        }
        out.push("--".into());
        out.extend(self.command.iter().cloned());
        out
    }
}

/// What stage 1 hands stage 2, as one JSON argument.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    /// The container's mount namespace, inherited as this descriptor.
    pub mnt_fd: i32,
    pub tty: bool,
    pub creds: Creds,
    pub cwd: PathBuf,
}

/// Stage 1; returns the exit code for the process.
pub fn run(args: &ExecArgs) -> i32 {
    match enter_and_wait(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edge-shim {EXEC_FLAG}: {e}");
            ENTER_FAILED
        }
    }
}

fn enter_and_wait(args: &ExecArgs) -> Result<i32, EnterError> {
    let target = Target::read(args.pid)?;
    // Every namespace is opened before any is joined: once in the container's pid namespace the
    // host's /proc/PID paths no longer describe what we expect.
    let open = |name: &str| {
        let p = PathBuf::from(format!("/proc/{}/ns/{name}", args.pid));
        File::open(&p).map_err(|e| EnterError::OpenNamespace(p, e))
    };
    let joined = [
        ("ipc", CloneFlags::CLONE_NEWIPC, open("ipc")?),
        ("uts", CloneFlags::CLONE_NEWUTS, open("uts")?),
        ("net", CloneFlags::CLONE_NEWNET, open("net")?),
        ("pid", CloneFlags::CLONE_NEWPID, open("pid")?),
    ];
    let mnt = open("mnt")?;
    // Cgroups first: stage 2 and the command inherit them, so their memory and pids count against
    // the container's limits.
    let me = std::process::id().to_string();
    for f in &target.cgroup_procs {
        std::fs::write(f, &me).map_err(|e| EnterError::Cgroup(f.clone(), e))?;
    }
    for (name, flag, file) in &joined {
        setns(file, *flag).map_err(|e| EnterError::Setns(name, e))?;
    }

    // Blocked before the spawn so no signal (nor the child's exit) is lost; stage 2 unblocks them.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(s);
    }
    mask.thread_block().map_err(EnterError::Signals)?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(EnterError::Signals)?;

    fcntl(mnt.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| EnterError::Setns("mnt", e))?;
    let stage = Stage { mnt_fd: mnt.as_raw_fd(), tty: args.tty, creds: target.creds, cwd: target.cwd };
    let json = serde_json::to_string(&stage).map_err(EnterError::Stage)?;
    let exe = std::env::current_exe().map_err(EnterError::Spawn)?;
    let mut child = Command::new(exe)
        .arg0(crate::cli::ARGV0)
        .arg(STAGE_FLAG)
        .arg(json)
        .arg("--")
        .args(&args.command)
        .env_clear()
        .envs(target.env)
        .spawn()
        .map_err(EnterError::Spawn)?;
    drop(mnt);
    let child_pid = Pid::from_raw(child.id() as i32);

    loop {
        match signals.read_signal() {
            Ok(Some(info)) => {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else { continue };
                if sig == Signal::SIGCHLD {
                    if let Some(status) = child.try_wait().map_err(EnterError::Wait)? {
                        return Ok(exit_code(status));
                    }
                } else {
                    let _ = kill(child_pid, sig);
                }
            }
            Ok(None) | Err(Errno::EINTR) => {}
            Err(e) => return Err(EnterError::Wait(e.into())),
        }
    }
}

/// The code, or 128 + signal number as shells and the kubelet report it.
pub fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(ENTER_FAILED)
}

/// Stage 2; returns only when the command could not be started, with the exit code to use.
pub fn stage(json: &str, command: &[String]) -> i32 {
    let Some(cmd) = command.first() else {
        eprintln!("edge-shim {STAGE_FLAG}: no command");
        return ENTER_FAILED;
    };
    let prepared = serde_json::from_str::<Stage>(json).map_err(EnterError::Stage).and_then(|s| prepare(&s));
    if let Err(e) = prepared {
        eprintln!("edge-shim {EXEC_FLAG}: {e}");
        return ENTER_FAILED;
    }
    let path_var = std::env::var_os("PATH");
    let program = match look_path(cmd, path_var.as_deref().unwrap_or(OsStr::new(DEFAULT_PATH))) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("exec: {cmd:?}: {e}");
            return e.exit_code();
        }
    };
    let err = Command::new(&program).arg0(cmd).args(&command[1..]).exec();
    let failure = ExecFailure::from(err);
    eprintln!("exec: {cmd:?}: {failure}");
    failure.exit_code()
}

fn prepare(s: &Stage) -> Result<(), EnterError> {
    // Stage 1 blocked the signals it forwards and std keeps the mask across spawn; an exec keeps it
    // too, and the command must get SIGTERM and friends.
    SigSet::empty().thread_set_mask().map_err(EnterError::Signals)?;
    // Reopened through /proc so the inherited descriptor can be closed with a safe call and the
    // command does not inherit it.
    let self_fd = PathBuf::from(format!("/proc/self/fd/{}", s.mnt_fd));
    let mnt = File::open(&self_fd).map_err(|e| EnterError::OpenNamespace(self_fd, e))?;
    let _ = nix::unistd::close(s.mnt_fd);
    // Also resets root and cwd to the container's root.
    setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(|e| EnterError::Setns("mnt", e))?;
    drop(mnt);

    if s.tty {
        nix::unistd::setsid().map_err(|e| EnterError::Tty(e.into()))?;
        rustix::process::ioctl_tiocsctty(std::io::stdin()).map_err(|e| EnterError::Tty(e.into()))?;
    }
    let c = &s.creds;
    limit_capabilities(c)?;
    let groups: Vec<Gid> = c.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(|e| EnterError::Creds("setgroups", e))?;
    nix::unistd::setgid(Gid::from_raw(c.gid)).map_err(|e| EnterError::Creds("setgid", e))?;
    // Kept across setuid so a non-root target's capabilities can be copied below.
    nix::sys::prctl::set_keepcaps(true).map_err(|e| EnterError::Creds("keepcaps", e))?;
    nix::unistd::setuid(Uid::from_raw(c.uid)).map_err(|e| EnterError::Creds("setuid", e))?;
    copy_capabilities(c)?;
    // A cwd the target's user cannot enter (or that is gone) is not worth failing the exec over.
    if nix::unistd::chdir(&s.cwd).is_err() {
        nix::unistd::chdir("/").map_err(|e| EnterError::Creds("chdir /", e))?;
    }
    if c.no_new_privs {
        nix::sys::prctl::set_no_new_privs().map_err(|e| EnterError::Creds("no_new_privs", e))?;
    }
    // Set after setuid, which clears it: the command must not outlive a killed waiter.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| EnterError::Creds("pdeathsig", e))?;
    Ok(())
}

fn capability_set(mask: u64) -> caps::CapsHashSet {
    caps::runtime::thread_all_supported()
        .into_iter()
        .filter(|cap| cap.index() < 64 && mask & cap.bitmask() != 0)
        .collect()
}

/// Before setuid, while we still may: the bounding set (what a root command can get at exec) and
/// the inheritable set become the target's.
fn limit_capabilities(c: &Creds) -> Result<(), EnterError> {
    use caps::CapSet;
    let keep = capability_set(c.cap_bounding);
    for cap in caps::runtime::thread_all_supported().difference(&keep) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| EnterError::Caps(format!("dropping {cap}: {e}")))?;
    }
    caps::set(None, CapSet::Inheritable, &capability_set(c.cap_inheritable))
        .map_err(|e| EnterError::Caps(format!("inheritable: {e}")))
}

/// After setuid: effective, permitted and ambient become the target's (the ambient set is what a
/// non-root command keeps across exec), so the command has exactly the container's capabilities.
fn copy_capabilities(c: &Creds) -> Result<(), EnterError> {
    use caps::CapSet;
    // Effective first: it must stay within permitted at every step.
    for (set, mask, name) in [
        (CapSet::Effective, c.cap_effective, "effective"),
        (CapSet::Permitted, c.cap_permitted, "permitted"),
        (CapSet::Ambient, c.cap_ambient, "ambient"),
    ] {
        caps::set(None, set, &capability_set(mask)).map_err(|e| EnterError::Caps(format!("{name}: {e}")))?;
    }
    Ok(())
}

/// Why the command could not be started; printed after `exec: "CMD": `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecFailure {
    NotInPath,
    Os(Errno),
    Other(String),
}

impl ExecFailure {
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecFailure::NotInPath | ExecFailure::Os(Errno::ENOENT) => NOT_FOUND,
            _ => NOT_EXECUTABLE,
        }
    }
}

impl std::fmt::Display for ExecFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecFailure::NotInPath => f.write_str("executable file not found in $PATH"),
            // strerror text in lower case, as runc prints it.
            ExecFailure::Os(e) => {
                let desc = e.desc();
                let mut chars = desc.chars();
                match chars.next() {
                    Some(first) => write!(f, "{}{}", first.to_lowercase(), chars.as_str()),
                    None => Ok(()),
                }
            }
            ExecFailure::Other(s) => f.write_str(s),
        }
    }
}

impl From<std::io::Error> for ExecFailure {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(n) => ExecFailure::Os(Errno::from_raw(n)),
            None => ExecFailure::Other(e.to_string()),
        }
    }
}

/// Finds `cmd` the way execvp does, but on a PATH given explicitly (the container's, not ours). A
/// name with a slash is used as is. A match that is not executable is remembered so the error says
/// "permission denied" (126) instead of "not found" (127), as a shell would.
pub fn look_path(cmd: &str, path_var: &OsStr) -> Result<PathBuf, ExecFailure> {
    if cmd.is_empty() {
        return Err(ExecFailure::Os(Errno::ENOENT));
    }
    if cmd.contains('/') {
        return Ok(PathBuf::from(cmd));
    }
    let mut denied = None;
    for dir in std::env::split_paths(path_var) {
        // An empty PATH entry means the current directory.
        let candidate = if dir.as_os_str().is_empty() { Path::new(".").join(cmd) } else { dir.join(cmd) };
        if !candidate.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        match access(&candidate, AccessFlags::X_OK) {
            Ok(()) => return Ok(candidate),
            Err(e) => denied = denied.or(Some(e)),
        }
    }
    Err(denied.map_or(ExecFailure::NotInPath, ExecFailure::Os))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exec_args() {
        let ok = |pid, tty, cmd: &[&str]| Ok(ExecArgs { pid, tty, command: strings(cmd) });
        let cases: Vec<(Vec<String>, Result<ExecArgs, ()>)> = vec![
            (strings(&["--exec", "42", "--", "echo", "hi"]), ok(42, false, &["echo", "hi"])),
            (strings(&["--exec", "7", "--tty", "--", "sh"]), ok(7, true, &["sh"])),
            // Everything after `--` is the command's, flags included.
            (strings(&["--exec", "7", "--", "ls", "--", "--tty"]), ok(7, false, &["ls", "--", "--tty"])),
            (strings(&["--exec", "7", "--"]), Err(())),
            (strings(&["--exec", "x", "--", "ls"]), Err(())),
            (strings(&["--exec", "7", "ls"]), Err(())),
            (strings(&["--exec", "7", "--verbose", "--", "ls"]), Err(())),
            (strings(&["--serve", "7", "--", "ls"]), Err(())),
        ];
        for (args, want) in cases {
            let got = ExecArgs::parse(&args);
            assert_eq!(got.clone().map_err(|_| ()), want, "{args:?}: {got:?}");
            if let Ok(parsed) = got {
                assert_eq!(parsed.to_args(), args, "round trip");
            }
        }
    }

    #[test]
    fn exit_codes() {
        let cases = [
            (ExitStatus::from_raw(0), 0),
            (ExitStatus::from_raw(3 << 8), 3),
            (ExitStatus::from_raw(9), 137),
            (ExitStatus::from_raw(15), 143),
        ];
        for (status, want) in cases {
            assert_eq!(exit_code(status), want, "{status:?}");
        }
        let failures = [
            (ExecFailure::NotInPath, NOT_FOUND, "executable file not found in $PATH"),
            (ExecFailure::Os(Errno::ENOENT), NOT_FOUND, "no such file or directory"),
            (ExecFailure::Os(Errno::EACCES), NOT_EXECUTABLE, "permission denied"),
            (ExecFailure::Os(Errno::ENOEXEC), NOT_EXECUTABLE, "exec format error"),
        ];
        for (f, code, text) in failures {
            assert_eq!((f.exit_code(), f.to_string().as_str()), (code, text), "{f:?}");
        }
    }

    #[test]
    fn path_lookup() {
        let t = std::env::temp_dir().join(format!("edge-rt-lookpath-{}", std::process::id()));
        let (a, b) = (t.join("a"), t.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(b.join("isdir")).unwrap();
        let file = |p: PathBuf, mode| {
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        file(a.join("plain"), 0o644);
        file(b.join("plain"), 0o755);
        file(a.join("noexec"), 0o644);
        file(b.join("tool"), 0o755);
        let path = std::env::join_paths([&a, &b]).unwrap();
        let cases: Vec<(&str, Result<PathBuf, ExecFailure>)> = vec![
            ("tool", Ok(b.join("tool"))),
            // The first executable match wins, past a non-executable one earlier in PATH.
            ("plain", Ok(b.join("plain"))),
            ("noexec", Err(ExecFailure::Os(Errno::EACCES))),
            ("isdir", Err(ExecFailure::NotInPath)),
            ("missing", Err(ExecFailure::NotInPath)),
            ("/abs/missing", Ok(PathBuf::from("/abs/missing"))),
            ("./rel", Ok(PathBuf::from("./rel"))),
            ("", Err(ExecFailure::Os(Errno::ENOENT))),
        ];
        for (cmd, want) in cases {
            assert_eq!(look_path(cmd, &path), want, "{cmd:?}");
        }
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn stage_round_trip() {
        let s = Stage {
            mnt_fd: 5,
            tty: true,
            creds: Creds { uid: 1000, gid: 1000, groups: vec![4, 27], ..Default::default() },
            cwd: "/srv/app".into(),
        };
        let back: Stage = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
