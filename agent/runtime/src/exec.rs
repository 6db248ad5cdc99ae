//! The agent side of exec (`kubectl exec`, exec probes): the `edge-shim --exec` command line for a
//! running container, and [`pty`] for interactive sessions. The shim side is [`crate::enter`].
//!
//! The command exits with the container command's exit code (128 + signal when it was killed),
//! 126 when it is not executable, 127 when it is not found (then stderr says
//! `exec: "CMD": <reason>`), and 125 when edge-shim could not enter the container.

pub mod pty;

use std::path::Path;
use std::process::Command;

use crate::enter::ExecArgs;

/// `edge-shim --exec <container-pid> [--tty] -- <args...>`; the caller sets stdio and spawns it
/// (usually through `tokio::process::Command::from`). With `tty`, give it a [`pty::open`] slave as
/// stdin, stdout and stderr, and close the caller's copy of the slave once spawned so the master
/// reads EOF when the command ends.
pub fn exec_command(shim_binary: &Path, container_pid: u32, args: &[String], tty: bool) -> Command {
    let mut cmd = Command::new(shim_binary);
    // The shim may be edge-agent itself (multi-call), which looks at argv[0].
    std::os::unix::process::CommandExt::arg0(&mut cmd, crate::cli::ARGV0);
    cmd.args(ExecArgs { pid: container_pid, tty, command: args.to_vec() }.to_args());
    cmd
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let cases: [(&[&str], bool, &[&str]); 3] = [
            (&["echo", "hi"], false, &["--exec", "42", "--", "echo", "hi"]),
            (&["sh"], true, &["--exec", "42", "--tty", "--", "sh"]),
            (&["ls", "--", "-l"], false, &["--exec", "42", "--", "ls", "--", "-l"]),
        ];
        for (args, tty, want) in cases {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let cmd = exec_command(Path::new("/usr/bin/edge-shim"), 42, &args, tty);
            assert_eq!(cmd.get_program(), "/usr/bin/edge-shim");
            let got: Vec<&str> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
            assert_eq!(got, want);
        }
    }
}
