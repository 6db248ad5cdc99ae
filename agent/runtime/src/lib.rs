//! edge-runtime: runs a pod's containers with youki's libcontainer.
//!
//! libcontainer clones without exec, chdir()s and makes its caller non-dumpable, so it never runs inside
//! the (multi-threaded, tokio) agent. Instead every pod sandbox gets one single-threaded `edge-shim`
//! process ([`shim`]) that is a child subreaper: it creates and starts containers, copies their output
//! into CRI-format log files, reaps them and records exit codes on disk. The agent side ([`Sandbox`])
//! writes OCI bundles, talks to the shim over a unix socket ([`protocol`]) and reads status from the
//! sandbox directory, so a restarted agent re-attaches with [`Sandbox::open`].
//!
//! Sandbox directory layout (`<run-dir>/<pod-uid>/`):
//! - `sandbox.json` — pod uid and network namespace path (for re-attaching)
//! - `shim.sock`, `shim.pid`, `shim.log` — the shim's socket, pid and its own diagnostics
//! - `.state/` — libcontainer's state root
//! - `<container>/config.json` — the OCI bundle; `container.log` — CRI log; `pid`; `exit-code`;
//!   `oom-killed` (present when the memory cgroup OOM-killed something in the container)
//!
//! Exec into a running container bypasses the shim: [`exec::exec_command`] runs `edge-shim --exec`
//! on the container's pid ([`enter`] is that side).

pub mod cgroups;
pub mod cli;
pub mod cri_log;
pub mod enter;
pub mod exec;
pub mod layout;
pub mod protocol;
pub mod sandbox;
#[cfg(target_pointer_width = "64")]
pub mod shim;
pub mod spec;
pub mod target;

pub use sandbox::{ContainerStatus, Sandbox, SandboxError};
pub use spec::{BindMount, ContainerSpec, Resources};
