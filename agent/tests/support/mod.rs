//! A real cluster on this one machine for end-to-end tests (root): a "LAN" bridge in a network
//! namespace of its own, one namespace per node joined to it by a veth, the host joined too (for
//! kubectl and the image registry), `edge-server` (with its embedded agent) on node 1 and
//! `edge-agent` on the others, each with its own data dir. Every name carries a per-run prefix and
//! `Drop` removes everything — processes (by pid), containers, mounts, links, namespaces, cgroups —
//! also when a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edge_images::testing::{nginx_image, Pusher, TestRegistry};
use edge_images::Platform;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `debug`, or `release` when `EDGE_E2E_PROFILE=release` (for benchmarks).
pub fn profile() -> &'static str {
    if std::env::var("EDGE_E2E_PROFILE").as_deref() == Ok("release") {
        "release"
    } else {
        "debug"
    }
}

/// Builds the binaries the cluster runs (cargo only builds the tested package's own binaries).
fn built_binaries() -> (PathBuf, PathBuf) {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--locked", "-p", "edge-server", "-p", "edge-agent", "--bins"]);
        if profile() == "release" {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("cargo build").success(), "building edge-server and edge-agent");
    });
    // target/debug/edge-agent → target/<profile>/
    let target = PathBuf::from(env!("CARGO_BIN_EXE_edge-agent")).parent().unwrap().parent().unwrap().to_path_buf();
    let dir = target.join(profile());
    (dir.join("edge-server"), dir.join("edge-agent"))
}

/// edge-server and edge-agent hard-linked into this run's directory without edge-shim beside them,
/// so the cluster runs them as their own shim (the multi-call path a board installation uses).
fn binaries_in(dir: &Path) -> (PathBuf, PathBuf) {
    let (server, agent) = built_binaries();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let (s, a) = (bin.join("edge-server"), bin.join("edge-agent"));
    for (from, to) in [(&server, &s), (&agent, &a)] {
        if !to.exists() {
            std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ())).unwrap();
        }
    }
    (s, a)
}

pub fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

fn must(cmd: &str) {
    let out = sh(cmd);
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

pub struct NodeProc {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl NodeProc {
    /// The agent's data dir (the server's embedded agent keeps it under the server's data dir).
    pub fn agent_dir(&self, server: bool) -> PathBuf {
        if server {
            self.dir.join("server/agent")
        } else {
            self.dir.join("agent")
        }
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

pub struct Cluster {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub lan_ns: String,
    pub host_if: String,
    pub host_ip: Ipv4Addr,
    pub nodes: Vec<NodeProc>,
    pub registry: Option<TestRegistry>,
    pub token: String,
    subnet: u8,
}

impl Cluster {
    /// None (with a SKIPPED line) when not root: CI runs as root, so this never skips there.
    pub fn start(nodes: usize) -> Option<Cluster> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: end-to-end cluster tests need root");
            return None;
        }
        built_binaries();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("e{}{}", std::process::id() % 100_000, n);
        let subnet = free_subnet((std::process::id() as usize * 7 + n * 13) % 200 + 20);
        let dir = tempfile::Builder::new().prefix(&format!("edge-{prefix}-")).tempdir().unwrap();
        let host_ip = Ipv4Addr::new(10, 213, subnet, 254);
        let mut c = Cluster {
            lan_ns: format!("{prefix}-lan"),
            host_if: format!("{prefix}h"),
            prefix: prefix.clone(),
            dir,
            host_ip,
            nodes: Vec::new(),
            registry: None,
            token: String::new(),
            subnet,
        };
        must(&format!("ip netns add {}", c.lan_ns));
        let lan = format!("ip -n {}", c.lan_ns);
        must(&format!("{lan} link add br0 type bridge && {lan} link set br0 up && {lan} link set lo up"));
        must(&format!("ip link add {} type veth peer name host netns {}", c.host_if, c.lan_ns));
        must(&format!("ip addr add {host_ip}/24 dev {} && ip link set {} up", c.host_if, c.host_if));
        must(&format!("{lan} link set host master br0 && {lan} link set host up"));
        for i in 1..=nodes {
            let name = format!("{prefix}-n{i}");
            let netns = name.clone();
            let ip = Ipv4Addr::new(10, 213, subnet, i as u8);
            must(&format!("ip netns add {netns}"));
            must(&format!("ip -n {netns} link set lo up"));
            must(&format!("{lan} link add n{i} type veth peer name eth0 netns {netns}"));
            must(&format!("{lan} link set n{i} master br0 && {lan} link set n{i} up"));
            must(&format!("ip -n {netns} addr add {ip}/24 dev eth0 && ip -n {netns} link set eth0 up"));
            must(&format!("ip -n {netns} route add default via {host_ip}"));
            let dir = c.dir.path().join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            c.nodes.push(NodeProc { name, netns, ip, dir, child: None });
        }

        let registry = TestRegistry::start_on(c.dir.path(), None, host_ip).expect("docker-registry");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let pusher = Pusher::new(&registry.url());
            pusher.push_image("library/nginx", Some("1.7.9"), &nginx_image(Platform::host())).await.unwrap();
            pusher.push_image("library/busybox", Some("latest"), &nginx_image(Platform::host())).await.unwrap();
        });
        std::fs::write(
            c.registries_yaml(),
            format!("mirrors:\n  docker.io:\n    endpoint:\n      - \"{}\"\n", registry.url()),
        )
        .unwrap();
        c.registry = Some(registry);

        let (server_bin, _) = binaries_in(c.dir.path());
        c.start_server(&server_bin);
        c.token = std::fs::read_to_string(c.nodes[0].dir.join("server/token")).unwrap().trim().to_string();
        for i in 1..c.nodes.len() {
            c.start_agent(i);
        }
        for i in 0..c.nodes.len() {
            c.wait_node_ready(i);
        }
        Some(c)
    }

    pub fn registries_yaml(&self) -> PathBuf {
        self.dir.path().join("registries.yaml")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn server_url(&self) -> String {
        format!("https://{}:6443", self.nodes[0].ip)
    }

    fn spawn_in(&self, netns: &str, bin: &Path, args: &[String], log: &Path) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .arg("--")
            .arg(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn in netns")
    }

    fn start_server(&mut self, bin: &Path) {
        let n = &self.nodes[0];
        let args: Vec<String> = vec![
            "--bind-address".into(),
            n.ip.to_string(),
            "--https-listen-port".into(),
            "6443".into(),
            "--data-dir".into(),
            n.dir.join("server").display().to_string(),
            "--write-kubeconfig".into(),
            self.dir.path().join("server-kubeconfig").display().to_string(),
            "--config".into(),
            self.dir.path().join("none.yaml").display().to_string(),
            "--node-name".into(),
            n.name.clone(),
            "--node-ip".into(),
            n.ip.to_string(),
            "--private-registry".into(),
            self.registries_yaml().display().to_string(),
            // Test machines share big disks that are often more than 90 % full: the nodes must not
            // taint themselves for it (the threshold logic has its own unit test).
            "--disk-pressure-percent".into(),
            "0".into(),
        ];
        let child = self.spawn_in(&n.netns, bin, &args, &n.log_path());
        self.nodes[0].child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let _ = std::fs::remove_file(self.dir.path().join("server-kubeconfig"));
        let _ = std::fs::remove_file(self.kubeconfig());
        while !(self.host_kubeconfig() && self.kubectl(&["get", "--raw", "/readyz"]).status.success()) {
            assert!(Instant::now() < deadline, "edge-server did not become ready:\n{}", self.log(0));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server writes a kubeconfig for use on its own machine (127.0.0.1); the host reaches it
    /// at the node's address instead.
    fn host_kubeconfig(&self) -> bool {
        let Ok(text) = std::fs::read_to_string(self.dir.path().join("server-kubeconfig")) else { return false };
        let fixed: String = text
            .lines()
            .map(|l| match l.trim_start().strip_prefix("server: ") {
                Some(_) => format!("    server: {}", self.server_url()),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(self.kubeconfig(), fixed + "\n").is_ok()
    }

    pub fn start_agent(&mut self, i: usize) {
        let (_, agent_bin) = binaries_in(self.dir.path());
        let n = &self.nodes[i];
        let args: Vec<String> = vec![
            "--server".into(),
            self.server_url(),
            "--token".into(),
            self.token.clone(),
            "--data-dir".into(),
            n.agent_dir(false).display().to_string(),
            "--node-name".into(),
            n.name.clone(),
            "--node-ip".into(),
            n.ip.to_string(),
            "--private-registry".into(),
            self.registries_yaml().display().to_string(),
            "--disk-pressure-percent".into(),
            "0".into(),
        ];
        let child = self.spawn_in(&n.netns, &agent_bin, &args, &n.log_path());
        self.nodes[i].child = Some(child);
    }

    /// Stops node i's process with SIGTERM (containers keep running, as under systemd).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self, i: usize) {
        self.stop(i);
        if i == 0 {
            let (server_bin, _) = binaries_in(self.dir.path());
            self.start_server(&server_bin);
        } else {
            self.start_agent(i);
        }
    }

    pub fn wait_node_ready(&self, i: usize) {
        let name = self.nodes[i].name.clone();
        self.eventually(Duration::from_secs(60), &format!("node {name} Ready"), || {
            let out =
                self.kubectl(&["get", "node", &name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"]);
            String::from_utf8_lossy(&out.stdout).trim() == "True"
        });
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].log_path()).unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        (0..self.nodes.len()).map(|i| format!("==== {} ====\n{}", self.nodes[i].name, tail(&self.log(i), 80))).collect()
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .env("KUBECACHEDIR", self.dir.path().join("kube-cache"))
            .output()
            .expect("kubectl")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn apply(&self, yaml: &str) -> String {
        let path = self.dir.path().join(format!("m{}.yaml", NEXT.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&path, yaml).unwrap();
        self.ok(&["apply", "-f", path.to_str().unwrap()])
    }

    pub fn eventually(&self, timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits for a jsonpath of an object to equal `want`; returns it.
    pub fn wait_for(&self, args: &[&str], jsonpath: &str, want: &str, timeout: Duration) {
        let mut last = String::new();
        let jp = format!("jsonpath={jsonpath}");
        let mut all: Vec<&str> = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", &jp]);
        self.eventually(timeout, &format!("{args:?} {jsonpath} == {want} (last: {last:?})"), || {
            let out = self.kubectl(&all);
            last = String::from_utf8_lossy(&out.stdout).trim().to_string();
            last == want
        });
    }

    /// Runs a shell command inside node i's network namespace.
    pub fn in_node(&self, i: usize, cmd: &str) -> Output {
        sh(&format!("ip netns exec {} sh -c '{}'", self.nodes[i].netns, cmd.replace('\'', "'\\''")))
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A 10.213.N.0/24 no interface on the host uses yet.
fn free_subnet(start: usize) -> u8 {
    for k in 0..200 {
        let n = ((start + k) % 200 + 20) as u8;
        let out = sh(&format!("ip -4 -o addr show to 10.213.{n}.0/24"));
        if out.stdout.is_empty() {
            return n;
        }
    }
    panic!("no free 10.213.N.0/24 test subnet");
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in (0..self.nodes.len()).rev() {
            self.stop(i);
        }
        let (_, agent_bin) = binaries_in(self.dir.path());
        for (i, n) in self.nodes.iter().enumerate() {
            // Containers outlive the agent by design: uninstall removes them and everything else.
            let dir = n.agent_dir(i == 0);
            let _ = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", n.netns))
                .arg("--")
                .arg(&agent_bin)
                .arg("--data-dir")
                .arg(&dir)
                .arg("uninstall")
                .status();
            // Pod cgroup parents are named for the node.
            let _ = sh(&format!(
                "for d in /sys/fs/cgroup/*/edge/{0} /sys/fs/cgroup/edge/{0}; do [ -d \"$d\" ] && find \"$d\" -depth -type d -exec rmdir {{}} \\; ; done; true",
                n.name
            ));
            let _ = sh(&format!("ip netns del {}", n.netns));
        }
        let _ = sh(&format!("ip link del {}", self.host_if));
        let _ = sh(&format!("ip netns del {}", self.lan_ns));
        self.registry.take();
    }
}
