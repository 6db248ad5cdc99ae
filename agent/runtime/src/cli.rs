//! The `edge-shim` command line: `edge-shim <sandbox-dir>` starts the sandbox's shim detached (a new
//! session, reparented away from the caller) and exits once it answers on its socket, printing its
//! pid; `edge-shim --serve <dir>` is the shim itself (see [`crate::shim`]); `edge-shim --exec PID
//! [--tty] -- CMD...` runs a command inside a running container and exits with its code (see
//! [`crate::enter`]; `--exec-stage` is its second stage). Single-threaded on purpose: libcontainer
//! and setns(2) require it.
//!
//! It is a library so that `edge-agent` and `edge-server` can be the shim too (one binary to install
//! on a board, k3s-style): they call [`main`] before starting any thread when [`invoked_as_shim`],
//! and every place that starts a shim process sets `argv[0]` to [`ARGV0`].

/// The program name shim processes run under, whichever binary holds the code.
pub const ARGV0: &str = "edge-shim";

/// Whether this process was started as `edge-shim` (by name or through `argv[0]`).
pub fn invoked_as_shim() -> bool {
    std::env::args_os().next().and_then(|a| std::path::Path::new(&a).file_name().map(|n| n == ARGV0)).unwrap_or(false)
}

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::enter::{self, ExecArgs, EXEC_FLAG, STAGE_FLAG};
use crate::layout;
use crate::protocol::Request;
use crate::sandbox::request;

fn usage() -> ExitCode {
    eprintln!(
        "usage: edge-shim <sandbox-dir> | edge-shim --serve <sandbox-dir> | edge-shim --exec <pid> [--tty] -- <cmd>..."
    );
    ExitCode::from(2)
}

/// The shim's command line (`args[0]` is the program name).
pub fn main(args: Vec<String>) -> ExitCode {
    match args.as_slice() {
        [_, flag, dir] if flag == "--serve" => serve(Path::new(dir)),
        [_, flag, ..] if flag == EXEC_FLAG => match ExecArgs::parse(&args[1..]) {
            Ok(a) => exit_with(enter::run(&a)),
            Err(e) => {
                eprintln!("edge-shim: {e}");
                usage()
            }
        },
        [_, flag, json, sep, command @ ..] if flag == STAGE_FLAG && sep == "--" => {
            exit_with(enter::stage(json, command))
        }
        [_, dir] if !dir.starts_with('-') => launch(Path::new(dir)),
        _ => usage(),
    }
}

fn exit_with(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

#[cfg(not(target_pointer_width = "64"))]
fn serve(_dir: &Path) -> ExitCode {
    eprintln!("edge-shim: this build cannot run containers: youki's libcontainer needs a 64-bit target (use a 64-bit OS on the board)");
    ExitCode::FAILURE
}

#[cfg(target_pointer_width = "64")]
fn serve(dir: &Path) -> ExitCode {
    // Detach from the caller's session so its terminal or process-group signals never reach us.
    let _ = nix::unistd::setsid();
    match crate::shim::serve(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-shim: {e}: {}", source_chain(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(target_pointer_width = "64")]
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

fn launch(dir: &Path) -> ExitCode {
    let log_path = dir.join(layout::SHIM_LOG);
    let log = match OpenOptions::new().create(true).append(true).open(&log_path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("edge-shim: {}: {e}", log_path.display());
            return ExitCode::FAILURE;
        }
    };
    let (out, err) = match (log.try_clone(), log.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return ExitCode::FAILURE,
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(ARGV0));
    let spawned =
        Command::new(exe).arg0(ARGV0).arg("--serve").arg(dir).stdin(Stdio::null()).stdout(out).stderr(err).spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edge-shim: spawning: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The shim may only be used once it answers; report its death instead of waiting in vain.
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("edge-shim: shim exited early ({status}); see {}", log_path.display());
            return ExitCode::FAILURE;
        }
        if let Ok(pid) = request(dir, &Request::Ping) {
            println!("{pid}");
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("edge-shim: shim did not answer within 10 s; see {}", log_path.display());
    ExitCode::FAILURE
}
