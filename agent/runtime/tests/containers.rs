#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
//! Real containers on the real kernel (root): see `common` for the environment and its cleanup.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{cgroup_exists, ns_inode, records, Env, SHIM};
use edge_runtime::{cgroups, ContainerSpec, ContainerStatus, Resources, Sandbox};

#[test]
fn exit_code_and_cri_logs() {
    let Some(env) = Env::new() else { return };
    let sb = env.sandbox("p1");
    let spec = env.spec("p1", "app", "echo hello; echo oops >&2; echo -n tail; exit 3");
    sb.start_container(&spec).unwrap();
    let st = sb.wait("app", Duration::from_secs(10)).unwrap();
    assert!(matches!(st, ContainerStatus::Exited { code: 3, oom_killed: false, .. }), "{st:?}");
    let mut got = records(&sb.log_path("app"));
    got.sort();
    let want = [("stderr", "F", "oops"), ("stdout", "F", "hello"), ("stdout", "F", "tail")];
    let want: Vec<(String, String, String)> =
        want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(got, want);

    // Removing deletes libcontainer's cgroup and the bundle.
    assert!(cgroup_exists(&spec.cgroup_path()));
    sb.remove("app").unwrap();
    assert!(!cgroup_exists(&spec.cgroup_path()));
    assert!(matches!(sb.status("app"), Err(edge_runtime::SandboxError::NotFound(_))));
    sb.destroy().unwrap();
    // The pod-level parent is the caller's to remove once empty.
    let pod_cgroup = spec.cgroup_parent.clone();
    assert!(cgroup_exists(&pod_cgroup));
    cgroups::remove_if_empty(Path::new(cgroups::CGROUP_ROOT), &pod_cgroup).unwrap();
    assert!(!cgroup_exists(&pod_cgroup));
}

#[test]
fn kill_escalates_to_sigkill_after_grace() {
    let Some(env) = Env::new() else { return };
    let sb = env.sandbox("p2");
    let pid = sb.start_container(&env.spec("p2", "sleeper", "sleep 1000")).unwrap();
    assert_eq!(sb.status("sleeper").unwrap(), ContainerStatus::Running { pid });
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let t = Instant::now();
    // PID 1 of a pid namespace ignores SIGTERM without a handler: only SIGKILL ends it.
    let st = sb.kill("sleeper", Duration::from_secs(1)).unwrap();
    let took = t.elapsed();
    assert!(matches!(st, ContainerStatus::Exited { code: 137, .. }), "{st:?}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(2500), "{took:?}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    sb.destroy().unwrap();
}

#[test]
fn containers_share_the_sandbox_network_namespace() {
    let Some(env) = Env::new() else { return };
    let sb = env.sandbox("p3");
    let a = sb.start_container(&env.spec("p3", "a", "sleep 1000")).unwrap();
    let mut b_spec = env.spec("p3", "b", "hostname; sleep 1000");
    b_spec.hostname = Some("web-0".into());
    let b = sb.start_container(&b_spec).unwrap();
    let sandbox_net = ns_inode(env.netns().to_str().unwrap());
    assert_eq!(ns_inode(&format!("/proc/{a}/ns/net")), sandbox_net);
    assert_eq!(ns_inode(&format!("/proc/{b}/ns/net")), sandbox_net);
    assert_ne!(ns_inode("/proc/self/ns/net"), sandbox_net);
    // Own pid, mount and uts namespaces per container.
    for ns in ["pid", "mnt", "uts"] {
        assert_ne!(ns_inode(&format!("/proc/{a}/ns/{ns}")), ns_inode(&format!("/proc/{b}/ns/{ns}")), "{ns}");
    }
    let until = Instant::now() + Duration::from_secs(5);
    while records(&sb.log_path("b")).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(records(&sb.log_path("b"))[0].2, "web-0");
    sb.destroy().unwrap();
    assert!(!Path::new(&format!("/proc/{a}")).exists() && !Path::new(&format!("/proc/{b}")).exists());
}

#[test]
fn memory_hog_is_oom_killed() {
    let Some(env) = Env::new() else { return };
    let sb = env.sandbox("p4");
    let mut spec = env.spec("p4", "hog", "x=a; while true; do x=$x$x; done");
    spec.resources = Resources { memory_limit_bytes: Some(20 << 20), ..Default::default() };
    sb.start_container(&spec).unwrap();
    let st = sb.wait("hog", Duration::from_secs(60)).unwrap();
    assert!(matches!(st, ContainerStatus::Exited { code: 137, oom_killed: true, .. }), "{st:?}");
    sb.destroy().unwrap();
}

/// Not a test of its own: run by `shim_outlives_its_launcher` in a separate process, which exits
/// right after starting the containers.
#[test]
#[ignore]
fn reattach_helper() {
    let Ok(spec) = std::env::var("EDGE_RT_HELPER") else { return };
    let v: Vec<String> = serde_json::from_str(&spec).unwrap();
    let (run_dir, netns, rootfs, cgroup) = (&v[0], &v[1], &v[2], &v[3]);
    let sb = Sandbox::create(Path::new(run_dir), "p5", Path::new(netns), Path::new(SHIM)).unwrap();
    for (name, script) in [("long", "sleep 1000"), ("later", "sleep 1; exit 5")] {
        let spec = ContainerSpec {
            name: name.into(),
            rootfs: rootfs.into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            cgroup_parent: cgroup.clone(),
            ..Default::default()
        };
        sb.start_container(&spec).unwrap();
    }
}

#[test]
fn shim_outlives_its_launcher() {
    let Some(env) = Env::new() else { return };
    let args = serde_json::to_string(&[
        env.run_dir().to_string_lossy().into_owned(),
        env.netns().to_string_lossy().into_owned(),
        env.rootfs().to_string_lossy().into_owned(),
        format!("{}/node-a/podp5", env.cgroup_top),
    ])
    .unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "reattach_helper", "--include-ignored", "--nocapture"])
        .env("EDGE_RT_HELPER", args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // The launcher is gone; re-attach from the directory alone.
    let sb = Sandbox::open(&env.run_dir(), "p5").unwrap();
    let shim = sb.shim_pid().unwrap();
    let ppid = std::fs::read_to_string(format!("/proc/{shim}/stat")).unwrap();
    let ppid: u32 = ppid.rsplit(") ").next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    assert_ne!(ppid, std::process::id(), "the shim must not be our child");
    let ContainerStatus::Running { pid } = sb.status("long").unwrap() else { panic!("long not running") };
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let st = sb.wait("later", Duration::from_secs(10)).unwrap();
    assert!(matches!(st, ContainerStatus::Exited { code: 5, .. }), "{st:?}");
    let st = sb.kill("long", Duration::ZERO).unwrap();
    assert!(matches!(st, ContainerStatus::Exited { code: 137, .. }), "{st:?}");
    sb.destroy().unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    while Path::new(&format!("/proc/{shim}/exe")).exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!Path::new(&format!("/proc/{shim}/exe")).exists(), "shim still running");
}
