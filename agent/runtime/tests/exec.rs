#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
//! `edge-shim --exec` into real containers (root): see `common` for the environment and its cleanup.

mod common;

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Env, SHIM};
use edge_runtime::exec::{exec_command, pty};
use edge_runtime::Sandbox;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn exec(pid: u32, args: &[&str]) -> Output {
    exec_command(Path::new(SHIM), pid, &strings(args), false).stdin(Stdio::null()).output().unwrap()
}

/// A sandbox with one long-running container: env FOO=bar, hostname web-0, cwd /tmp.
fn running(env: &Env, pod: &str, uid: u32) -> (Sandbox, u32) {
    let sb = env.sandbox(pod);
    let mut spec = env.spec(pod, "app", "sleep 1000");
    spec.env = vec![("FOO".into(), "bar baz".into())];
    spec.hostname = Some("web-0".into());
    spec.cwd = "/tmp".into();
    spec.uid = uid;
    spec.gid = uid;
    let pid = sb.start_container(&spec).unwrap();
    (sb, pid)
}

#[test]
fn exec_runs_inside_the_container() {
    let Some(env) = Env::new() else { return };
    let noexec = env.rootfs().join("bin/noexec");
    std::fs::write(&noexec, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (sb, pid) = running(&env, "e1", 0);

    // (command, exit code, stdout, stderr contains)
    let cases: [(&[&str], i32, &str, &str); 9] = [
        (&["echo", "hi"], 0, "hi\n", ""),
        (&["sh", "-c", "exit 3"], 3, "", ""),
        (&["sh", "-c", "echo \"$FOO\""], 0, "bar baz\n", ""),
        (&["hostname"], 0, "web-0\n", ""),
        (&["sh", "-c", "pwd"], 0, "/tmp\n", ""),
        (&["no-such-cmd"], 127, "", "exec: \"no-such-cmd\": executable file not found in $PATH"),
        (&["/bin/missing"], 127, "", "exec: \"/bin/missing\": no such file or directory"),
        (&["noexec"], 126, "", "exec: \"noexec\": permission denied"),
        (&["sh", "-c", "kill -9 $$"], 137, "", ""),
    ];
    for (args, code, stdout, stderr) in cases {
        let out = exec(pid, args);
        let (got_out, got_err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{args:?}: stderr {got_err}");
        assert_eq!(got_out, stdout, "{args:?}");
        assert!(got_err.contains(stderr), "{args:?}: stderr {got_err:?}");
    }

    // Same pid namespace: pid 1 is the container's command (busybox sh execs a lone last command).
    let out = exec(pid, &["cat", "/proc/1/cmdline"]);
    assert_eq!(out.stdout, b"sleep\x001000\x00");
    assert_eq!(out.stdout, std::fs::read(format!("/proc/{pid}/cmdline")).unwrap());
    // No standard signal blocked or ignored is passed on to the command (bits 0-30 are signals 1-31; 32 and 33 are glibc's own).
    let out = exec(pid, &["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]);
    let masks: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| u64::from_str_radix(l.split('\t').nth(1).unwrap(), 16).unwrap())
        .collect();
    assert_eq!(masks.len(), 2);
    assert!(masks.iter().all(|m| m & 0x7fff_ffff == 0), "{masks:x?}");

    // Same cgroups, in every hierarchy, as the container's process.
    let out = exec(pid, &["cat", "/proc/self/cgroup"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap());
    // Same namespaces and no more capabilities than the container has.
    let out = exec(pid, &["sh", "-c", "ls -l /proc/self/ns/ | grep -o '[a-z]*:\\[.*'; grep Cap /proc/self/status"]);
    let mut want = String::new();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts"] {
        if let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")) {
            want.push_str(&format!("{}\n", link.display()));
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let caps: Vec<&str> = status.lines().filter(|l| l.starts_with("Cap")).collect();
    let got = String::from_utf8_lossy(&out.stdout);
    assert_eq!(got, format!("{want}{}\n", caps.join("\n")));
    sb.destroy().unwrap();
}

#[test]
fn exec_takes_the_container_user() {
    let Some(env) = Env::new() else { return };
    let (sb, pid) = running(&env, "e2", 1000);
    let out = exec(pid, &["sh", "-c", "id -u; id -g; id -G; grep -E '^(Cap|NoNewPrivs)' /proc/self/status"]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let want: Vec<&str> = status.lines().filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs")).collect();
    assert!(want.contains(&"NoNewPrivs:\t1"));
    // A non-root process keeps capabilities only through the ambient set: it must be copied too.
    assert!(!want.contains(&"CapAmb:\t0000000000000000"), "the container has ambient capabilities: {want:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("1000\n1000\n1000\n{}\n", want.join("\n")));
    sb.destroy().unwrap();
}

/// The pid of `parent`'s only child, once it runs `comm`.
fn child_running(parent: &Child, comm: &str) -> u32 {
    // Generous: the two cores are shared with builds.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", parent.id())).unwrap_or_default();
        if let Some(c) = children.split_whitespace().next() {
            if std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == comm) {
                return c.parse().unwrap();
            }
        }
        assert!(Instant::now() < until, "no {comm} child: children {children:?}, waiter {:?}", parent.id());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn exec_forwards_signals_and_dies_with_its_waiter() {
    let Some(env) = Env::new() else { return };
    let (sb, pid) = running(&env, "e3", 0);
    let args = strings(&["sleep", "100"]);

    let mut waiter = exec_command(Path::new(SHIM), pid, &args, false).stdin(Stdio::null()).spawn().unwrap();
    child_running(&waiter, "sleep");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(waiter.id() as i32), nix::sys::signal::SIGTERM).unwrap();
    assert_eq!(waiter.wait().unwrap().code(), Some(143), "SIGTERM reached sleep");

    // A waiter killed outright takes the command with it.
    let mut waiter = exec_command(Path::new(SHIM), pid, &args, false).stdin(Stdio::null()).spawn().unwrap();
    let sleep = child_running(&waiter, "sleep");
    waiter.kill().unwrap();
    waiter.wait().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{sleep}")).exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!Path::new(&format!("/proc/{sleep}")).exists(), "command outlived its waiter");
    sb.destroy().unwrap();
}

#[test]
fn exec_with_a_pty() {
    let Some(env) = Env::new() else { return };
    let (sb, pid) = running(&env, "e4", 0);
    let (master, slave) = pty::open().unwrap();
    pty::resize(master.as_fd(), 100, 30).unwrap();
    // Opening /dev/tty only works for a process with a controlling terminal.
    let script = "[ -t 0 ] && [ -t 1 ] && echo isatty; stty size; tty; : >/dev/tty && echo has-ctty";
    let mut cmd = exec_command(Path::new(SHIM), pid, &strings(&["sh", "-c", script]), true);
    cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave);
    let mut child = cmd.spawn().unwrap();
    // Our copies of the slave must go, or the master never reads EOF.
    drop(cmd);
    let code = child.wait().unwrap().code();
    let mut out = Vec::new();
    let _ = std::fs::File::from(master).read_to_end(&mut out); // ends with EIO once the slave is closed
    let out = String::from_utf8_lossy(&out).replace("\r\n", "\n");
    eprintln!("pty output: {out:?}");
    assert!(out.starts_with("isatty\n30 100\n"), "{out:?}");
    // The pty lives in the host's devpts, which the container cannot see: no name inside.
    assert!(out.contains("not a tty"), "{out:?}");
    assert!(out.ends_with("has-ctty\n"), "{out:?}");
    assert_eq!(code, Some(0));
    sb.destroy().unwrap();
}
