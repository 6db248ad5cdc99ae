#![allow(clippy::unwrap_used)] // a benchmark: a panic is the failure report
//! Container create+start+wait of `/bin/true`: edge-runtime (shim + libcontainer) beside `runc run`
//! and `crun run` on the same bundle, when those are installed (apt install runc crun). Run with
//! `cargo test -p edge-runtime --test bench -- --ignored --nocapture` (root).
//!
//! crun refuses this kind of hybrid cgroup host, so it runs under `unshare -m` with
//! /sys/fs/cgroup/unified unmounted in that private mount namespace; the cost of that wrapper
//! (`unshare` + `sh` + `umount`, measured alone) is printed and subtracted.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use edge_runtime::ContainerStatus;

const RUNS: usize = 30;

fn summary(label: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let p50 = v[v.len() / 2];
    let p95 = v[(v.len() * 95 / 100).min(v.len() - 1)];
    println!("{label:<44} p50 {:>7.2} ms   p95 {:>7.2} ms", ms(p50), ms(p95));
    p50
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn time_cmd(args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    let took = t.elapsed();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    took
}

#[test]
#[ignore]
fn create_start_wait_true() {
    let Some(env) = Env::new() else { return };
    let sb = env.sandbox("bench");
    let mut spec = env.spec("bench", "t", "");
    spec.args = vec!["/bin/true".into()];

    let mut ours = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        sb.start_container(&spec).unwrap();
        let st = sb.wait("t", Duration::from_secs(10)).unwrap();
        ours.push(t.elapsed());
        assert!(matches!(st, ContainerStatus::Exited { code: 0, .. }), "{st:?}");
        sb.remove("t").unwrap();
    }
    println!("\ncontainer create+start+wait of /bin/true, {RUNS} runs each");
    let ours = summary("edge-runtime (shim request, libcontainer)", ours);

    // The same bundle for the other runtimes: a copy of the config edge-runtime writes.
    let bundle = env.tmp.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let oci = spec.to_oci(&env.netns()).unwrap();
    oci.save(bundle.join("config.json")).unwrap();
    let b = bundle.to_str().unwrap();

    if have("runc") {
        let root = env.tmp.join("runc-root");
        let root = root.to_str().unwrap();
        let v: Vec<Duration> = (0..RUNS)
            .map(|i| time_cmd(&["runc", "--root", root, "run", "-b", b, &format!("edge-bench-{i}")]))
            .collect();
        let p = summary("runc run", v);
        println!("{:<44} {:.2}x", "edge-runtime / runc", ms(ours) / ms(p));
    } else {
        println!("runc: SKIPPED (not installed; apt install runc)");
    }

    if have("crun") {
        let root = env.tmp.join("crun-root");
        let root = root.to_str().unwrap();
        let wrap = |inner: &str| format!("umount /sys/fs/cgroup/unified 2>/dev/null; exec {inner}");
        let overhead: Vec<Duration> =
            (0..RUNS).map(|_| time_cmd(&["unshare", "-m", "sh", "-c", &wrap("true")])).collect();
        let overhead = summary("  (unshare -m + umount wrapper alone)", overhead);
        let v: Vec<Duration> = (0..RUNS)
            .map(|i| {
                let inner = format!("crun --root {root} run -b {b} edge-bench-{i}");
                time_cmd(&["unshare", "-m", "sh", "-c", &wrap(&inner)])
            })
            .collect();
        let p = summary("crun run (with wrapper)", v);
        let net = p.saturating_sub(overhead);
        println!("{:<44} p50 {:>7.2} ms", "crun run (wrapper subtracted)", ms(net));
        println!("{:<44} {:.2}x (target < 1.5x)", "edge-runtime / crun", ms(ours) / ms(net));
    } else {
        println!("crun: SKIPPED (not installed; apt install crun)");
    }
    sb.destroy().unwrap();
    assert!(Path::new(&env.tmp).exists());
}
