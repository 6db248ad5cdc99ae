//! One pod's worker: brings what runs on the node in line with the pod spec, one level-triggered
//! pass at a time (sandbox → volumes → init containers → containers → probes → status), and tears
//! everything down when the pod is deleted.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use edge_images::manifest::ContainerConfig;
use edge_images::{DockerConfig, PullPolicy, Reference};
use edge_projection::PodContext;
use edge_runtime::{BindMount, ContainerSpec, ContainerStatus, Sandbox};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::container::{capabilities, command_line, merge_env, resources, user};
use super::probes::{self, Kind, Tracker};
use super::state::{ContainerState, PodState, Run, Termination};
use super::volumes::{self, Fetched};
use super::{files, rootfs, status, PodCtx, PodEntry};

const TICK: Duration = Duration::from_secs(1);
const VOLUME_RESYNC: Duration = Duration::from_secs(5);
const IMAGE_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// The kubelet's default containerLogMaxSize.
const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// Why a container could not start: becomes its Waiting reason and message.
struct StartError {
    reason: &'static str,
    message: String,
}

fn start_err(reason: &'static str, message: impl ToString) -> StartError {
    StartError { reason, message: message.to_string() }
}

struct Image {
    reference: String,
    image_id: String,
    layers: Vec<PathBuf>,
    config: ContainerConfig,
}

pub struct PodWorker {
    ctx: Arc<PodCtx>,
    uid: String,
    pod_dir: PathBuf,
    netns: PathBuf,
    sandbox: Option<Sandbox>,
    st: PodState,
    probes: HashMap<(String, &'static str), Tracker>,
    last_volume_sync: Option<Instant>,
    volume_error: Option<String>,
    volumes: BTreeMap<String, PathBuf>,
    fetched: Fetched,
    images: HashMap<String, Arc<Image>>,
    image_backoff: HashMap<String, (Instant, Duration)>,
}

pub async fn run(
    ctx: Arc<PodCtx>,
    uid: String,
    mut rx: watch::Receiver<Option<Arc<Pod>>>,
    shutdown: CancellationToken,
) {
    let mut w = PodWorker::new(ctx, &uid);
    loop {
        let pod = rx.borrow_and_update().clone();
        let next = match &pod {
            Some(p) if p.metadata.deletion_timestamp.is_none() => w.sync(p).await,
            _ => match w.terminate(pod.as_deref()).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "tearing the pod down; will retry");
                    Duration::from_secs(2)
                }
            },
        };
        tokio::select! {
            // Containers keep running when the agent stops (systemd KillMode=process); a restarted
            // agent re-adopts them.
            _ = shutdown.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(next) => {}
        }
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Startup => "startup",
        Kind::Liveness => "liveness",
        Kind::Readiness => "readiness",
    }
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

impl PodWorker {
    fn new(ctx: Arc<PodCtx>, uid: &str) -> Self {
        let pod_dir = ctx.cfg.pods_dir().join(uid);
        let netns = ctx.cfg.netns_dir().join(uid);
        let st = PodState::load(&pod_dir).unwrap_or_default();
        // A sandbox whose shim still answers is re-adopted with its running containers.
        let sandbox = Sandbox::open(&ctx.cfg.run_dir(), uid).ok().filter(|s| s.shim_pid().is_ok());
        let mut st = st;
        if sandbox.is_none() && st.sandbox_ready {
            // The shim is gone (reboot, crash): what ran in it is gone too; rebuild from scratch,
            // counting the lost runs as restarts.
            st.sandbox_ready = false;
            for cs in st.containers.values_mut().chain(st.init_containers.values_mut()) {
                if let Run::Running { started_at } = cs.run {
                    cs.last = Some(Termination {
                        exit_code: 137,
                        reason: "Unknown".into(),
                        started_at: Some(started_at),
                        finished_at: Utc::now(),
                        message: Some("the container's sandbox was lost".into()),
                    });
                    cs.run = Run::Waiting { reason: "ContainerCreating".into(), message: None };
                    cs.pending_restart = true;
                }
            }
        }
        PodWorker {
            ctx,
            uid: uid.to_string(),
            pod_dir,
            netns,
            sandbox,
            st,
            probes: HashMap::new(),
            last_volume_sync: None,
            volume_error: None,
            volumes: BTreeMap::new(),
            fetched: Fetched::default(),
            images: HashMap::new(),
            image_backoff: HashMap::new(),
        }
    }

    fn projection_ctx<'a>(&self, pod: &'a Pod) -> PodContext<'a> {
        PodContext {
            pod,
            host_ip: Some(self.ctx.node_ip.to_string()),
            pod_ips: self.st.pod_ip.clone().into_iter().collect(),
            node_allocatable_cpu_millis: self.ctx.allocatable_cpu_millis,
            node_allocatable_memory: self.ctx.allocatable_memory,
            node_allocatable_ephemeral_storage: self.ctx.allocatable_ephemeral_storage,
        }
    }

    /// One pass; returns when to look again.
    async fn sync(&mut self, pod: &Pod) -> Duration {
        let terminal_before = matches!(status::phase(pod, &self.st), "Succeeded" | "Failed") && self.st.sandbox_ready;
        if self.st.start_time.is_none() {
            self.st.start_time = Some(Utc::now());
        }
        if !terminal_before {
            if let Err(e) = self.ensure_sandbox(pod).await {
                tracing::warn!(error = %e, "creating the pod sandbox");
                self.write_status(pod).await;
                return Duration::from_secs(2);
            }
            self.sync_volumes(pod).await;
        }
        self.observe(pod);
        if !self.st.init_done {
            self.step_init(pod).await;
        }
        if self.st.init_done {
            let containers = pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
            for c in &containers {
                self.step_container(pod, c, false).await;
            }
        } else {
            for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                let cs = self.st.containers.entry(c.name.clone()).or_default();
                if matches!(&cs.run, Run::Waiting { .. }) && cs.last.is_none() {
                    cs.run = Run::Waiting { reason: "PodInitializing".into(), message: None };
                }
            }
        }
        self.rotate_logs(pod);
        let next_probe = self.run_probes(pod).await;
        self.register(pod);
        self.write_status(pod).await;
        if let Err(e) = self.st.save(&self.pod_dir) {
            tracing::warn!(error = %e, "saving pod state");
        }
        next_probe.map_or(TICK, |d| d.min(TICK))
    }

    /// Keeps each container's log under [`LOG_MAX_BYTES`] by copy-and-truncate: the shim keeps
    /// appending to the same (O_APPEND) file, so nothing has to be reopened; the older part is kept in
    /// `rotated.log`. Lines written between the copy and the truncate are lost, a trade-off the
    /// copytruncate mode of logrotate makes too.
    fn rotate_logs(&self, pod: &Pod) {
        let Some(sb) = &self.sandbox else { return };
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            let log = sb.log_path(&c.name);
            if std::fs::metadata(&log).is_ok_and(|m| m.len() > LOG_MAX_BYTES) {
                let rotated = log.with_file_name("rotated.log");
                if std::fs::copy(&log, &rotated).is_ok() {
                    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&log) {
                        let _ = f.set_len(0);
                    }
                }
            }
        }
    }

    fn register(&self, pod: &Pod) {
        let Some(sb) = &self.sandbox else { return };
        let entry = PodEntry {
            uid: self.uid.clone(),
            sandbox_dir: sb.dir().to_path_buf(),
            pod_ip: self.st.pod_ip.clone(),
            containers: pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
                .map(|c| c.name.clone())
                .collect(),
        };
        self.ctx.registry.set(
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default(),
            entry,
        );
    }

    async fn ensure_sandbox(&mut self, pod: &Pod) -> anyhow::Result<()> {
        if self.st.sandbox_ready && self.sandbox.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.pod_dir)?;
        let netns = if host_network(pod) {
            // The agent's own network namespace, by a path that stays valid while we run.
            PathBuf::from(format!("/proc/{}/ns/net", std::process::id()))
        } else {
            std::fs::create_dir_all(self.ctx.cfg.netns_dir())?;
            edge_net::netns::create(&self.netns)?;
            let att = self.ctx.net.add_pod(&self.uid, &self.netns).await?;
            self.st.pod_ip = Some(att.address.addr().to_string());
            self.netns.clone()
        };
        if host_network(pod) {
            self.st.pod_ip = Some(self.ctx.node_ip.to_string());
        }
        let domain = self.ctx.dns.cluster_domain.clone();
        std::fs::write(self.pod_dir.join("hosts"), files::hosts_file(pod, self.st.pod_ip.as_deref(), &domain))?;
        std::fs::write(self.pod_dir.join("resolv.conf"), files::resolv_conf(pod, &self.ctx.dns))?;
        std::fs::write(self.pod_dir.join("hostname"), format!("{}\n", files::hostname(pod)))?;
        let (run_dir, uid, shim) = (self.ctx.cfg.run_dir(), self.uid.clone(), self.ctx.cfg.shim_binary.clone());
        std::fs::create_dir_all(&run_dir)?;
        let sandbox = tokio::task::spawn_blocking(move || {
            // A sandbox dir left by a dead shim is reused: create() starts a fresh shim on it.
            Sandbox::create(&run_dir, &uid, &netns, &shim)
        })
        .await??;
        self.sandbox = Some(sandbox);
        self.st.sandbox_ready = true;
        tracing::info!(ip = ?self.st.pod_ip, "pod sandbox ready");
        Ok(())
    }

    async fn sync_volumes(&mut self, pod: &Pod) {
        if self.last_volume_sync.is_some_and(|t| t.elapsed() < VOLUME_RESYNC) {
            return;
        }
        self.last_volume_sync = Some(Instant::now());
        match volumes::fetch(&self.ctx.client, pod).await {
            Ok(f) => self.fetched = f,
            Err(e) => {
                tracing::warn!(error = %e, "fetching configmaps/secrets");
                return;
            }
        }
        let pctx = self.projection_ctx(pod);
        match volumes::prepare(&self.pod_dir, &pctx, &self.fetched) {
            Ok(v) => {
                self.volumes = v;
                self.volume_error = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "preparing volumes");
                self.volume_error = Some(e.to_string());
            }
        }
    }

    /// Notices containers that exited and decides restarts (with back-off).
    fn observe(&mut self, pod: &Pod) {
        let Some(sb) = self.sandbox.clone() else { return };
        let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
        let key = pod_key(pod);
        let names: Vec<(String, bool)> = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .map(|c| (c.name.clone(), true))
                    .chain(s.containers.iter().map(|c| (c.name.clone(), false)))
            })
            .collect();
        for (name, init) in names {
            let map = if init { &mut self.st.init_containers } else { &mut self.st.containers };
            let Some(cs) = map.get_mut(&name) else { continue };
            let Run::Running { started_at } = cs.run else { continue };
            let (code, oom, finished) = match sb.status(&name) {
                Ok(ContainerStatus::Exited { code, oom_killed, finished_at }) => {
                    (code, oom_killed, finished_at.map(DateTime::<Utc>::from).unwrap_or_else(Utc::now))
                }
                Ok(_) => continue,
                // The container vanished from the sandbox: count it as killed.
                Err(_) => (137, false, Utc::now()),
            };
            let reason = if oom {
                "OOMKilled"
            } else if code == 0 {
                "Completed"
            } else {
                "Error"
            };
            let t = Termination {
                exit_code: code,
                reason: reason.into(),
                started_at: Some(started_at),
                finished_at: finished,
                message: None,
            };
            tracing::info!(container = %name, exit_code = code, reason, "container exited");
            self.probes.retain(|(c, _), _| *c != name);
            cs.ready = false;
            cs.started = false;
            let restart = if init {
                code != 0 && policy != "Never"
            } else {
                policy == "Always" || (policy == "OnFailure" && code != 0)
            };
            if !restart {
                cs.run = Run::Terminated(t);
                continue;
            }
            let ran = (finished - started_at).to_std().ok();
            if ran.is_some_and(|d| d >= super::state::BACKOFF_RESET_AFTER) {
                cs.backoff = None;
            }
            cs.pending_restart = true;
            cs.last = Some(t);
            match cs.backoff {
                // The first crash restarts at once; later ones wait (kubelet's doBackOff).
                None => {
                    cs.backoff_until = None;
                    cs.run = Run::Waiting { reason: "ContainerCreating".into(), message: None };
                }
                Some(b) => {
                    let until = finished + chrono::Duration::from_std(b).unwrap_or_default();
                    cs.backoff_until = Some(until);
                    cs.run = Run::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(format!(
                            "back-off {}s restarting failed container={name} pod={key}",
                            b.as_secs()
                        )),
                    };
                }
            }
        }
    }

    async fn step_init(&mut self, pod: &Pod) {
        let inits = pod.spec.as_ref().and_then(|s| s.init_containers.clone()).unwrap_or_default();
        for c in &inits {
            let cs = self.st.init_containers.entry(c.name.clone()).or_default();
            match &cs.run {
                Run::Terminated(t) if t.exit_code == 0 => continue,
                Run::Terminated(_) | Run::Running { .. } => return,
                Run::Waiting { .. } => {
                    self.step_container(pod, c, true).await;
                    return;
                }
            }
        }
        self.st.init_done = true;
    }

    async fn step_container(&mut self, pod: &Pod, c: &Container, init: bool) {
        let cs = self.map(init).entry(c.name.clone()).or_default().clone();
        if !matches!(cs.run, Run::Waiting { .. }) {
            return;
        }
        if cs.backoff_until.is_some_and(|u| Utc::now() < u) {
            return;
        }
        if let Some(e) = &self.volume_error {
            let msg = e.clone();
            self.map(init).entry(c.name.clone()).or_default().run =
                Run::Waiting { reason: "ContainerCreating".into(), message: Some(msg) };
            return;
        }
        let result = self.start(pod, c, cs.pending_restart).await;
        let cs = self.map(init).entry(c.name.clone()).or_default();
        match result {
            Ok((image_id, started_at)) => {
                if cs.pending_restart {
                    cs.restart_count += 1;
                    cs.backoff = Some(cs.next_backoff(None));
                }
                cs.pending_restart = false;
                cs.backoff_until = None;
                cs.image_id = Some(image_id);
                cs.run = Run::Running { started_at };
                // Without probes a running container is started and ready at once.
                cs.started = c.startup_probe.is_none();
                cs.ready = c.readiness_probe.is_none() && cs.started;
                tracing::info!(container = %c.name, restarts = cs.restart_count, "container started");
            }
            Err(e) => {
                tracing::warn!(container = %c.name, reason = e.reason, error = %e.message, "starting container");
                cs.run = Run::Waiting { reason: e.reason.into(), message: Some(e.message) };
            }
        }
    }

    fn map(&mut self, init: bool) -> &mut BTreeMap<String, ContainerState> {
        if init {
            &mut self.st.init_containers
        } else {
            &mut self.st.containers
        }
    }

    async fn image(&mut self, pod: &Pod, c: &Container) -> Result<Arc<Image>, StartError> {
        let image = c.image.clone().unwrap_or_default();
        let reference = Reference::parse(&image).map_err(|e| start_err("InvalidImageName", e))?;
        let policy = PullPolicy::from_spec(c.image_pull_policy.as_deref(), &reference);
        if policy != PullPolicy::Always {
            if let Some(img) = self.images.get(&image) {
                return Ok(img.clone());
            }
        }
        if let Some((until, _)) = self.image_backoff.get(&image) {
            if Instant::now() < *until {
                return Err(start_err("ImagePullBackOff", format!("Back-off pulling image \"{image}\"")));
            }
        }
        let secrets: Vec<DockerConfig> = pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
            .filter_map(|r| self.fetched.secret_by_name(&r.name))
            .filter_map(|s| s.data.as_ref()?.get(".dockerconfigjson").and_then(|b| DockerConfig::parse(&b.0).ok()))
            .collect();
        let rec = match self.ctx.puller.ensure(&image, policy, &secrets).await {
            Ok(r) => r,
            Err(e) => {
                let step = self
                    .image_backoff
                    .get(&image)
                    .map_or(Duration::from_secs(10), |(_, d)| (*d * 2).min(IMAGE_BACKOFF_MAX));
                self.image_backoff.insert(image.clone(), (Instant::now() + step, step));
                let reason = if matches!(e, edge_images::PullError::NeverPull(_)) {
                    "ErrImageNeverPull"
                } else {
                    "ErrImagePull"
                };
                return Err(start_err(reason, format!("failed to pull image \"{image}\": {e}")));
            }
        };
        self.image_backoff.remove(&image);
        let layers = self.ctx.puller.prepare(&rec).await.map_err(|e| start_err("ErrImagePull", e))?;
        let config = self.ctx.puller.store().image_config(&rec).map_err(|e| start_err("ErrImagePull", e))?.config;
        let img = Arc::new(Image { reference: rec.name.clone(), image_id: rec.repo_digest(), layers, config });
        self.images.insert(image, img.clone());
        Ok(img)
    }

    /// Pulls, prepares and starts one container; returns its imageID and start time.
    async fn start(&mut self, pod: &Pod, c: &Container, restart: bool) -> Result<(String, DateTime<Utc>), StartError> {
        let sandbox = self.sandbox.clone().ok_or_else(|| start_err("ContainerCreating", "no sandbox yet"))?;
        let img = self.image(pod, c).await?;
        let pctx = self.projection_ctx(pod);
        let services = self.ctx.services.state();
        let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let service_env =
            edge_projection::service_env::service_env(services.iter().map(|s| s.as_ref()), namespace, links);
        let env = edge_projection::env::resolve(&pctx, c, &self.fetched, &service_env)
            .map_err(|e| start_err("CreateContainerConfigError", e))?;
        let env = merge_env(&img.config, env);
        let args = command_line(c, &img.config, &env).map_err(|e| start_err("CreateContainerConfigError", e))?;
        let cdir = self.pod_dir.join("containers").join(&c.name);
        let rootfs =
            rootfs::mount_overlay(&cdir, &img.layers, restart).map_err(|e| start_err("CreateContainerError", e))?;
        let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
        let sc = c.security_context.as_ref();
        let (uid, gid) = user(sc, psc, img.config.user.as_deref(), &rootfs)
            .map_err(|e| start_err("CreateContainerConfigError", e))?;
        let mounts = self.mounts(c).map_err(|e| start_err("CreateContainerConfigError", e))?;
        let spec = ContainerSpec {
            name: c.name.clone(),
            rootfs,
            args,
            env,
            cwd: c.working_dir.clone().or_else(|| img.config.working_dir.clone()).unwrap_or_default(),
            uid,
            gid,
            cgroup_parent: format!("{}/pod{}", self.ctx.cfg.cgroup_parent(), self.uid),
            resources: resources(c),
            mounts,
            hostname: Some(files::hostname(pod)),
            readonly_rootfs: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
            capabilities: Some(capabilities(sc)),
        };
        if restart {
            // `kubectl logs --previous` reads the last run's log.
            let log = sandbox.log_path(&c.name);
            let _ = std::fs::rename(&log, previous_log(&log));
        }
        tracing::debug!(container = %c.name, image = %img.reference, "starting container");
        let started_at = Utc::now();
        tokio::task::spawn_blocking(move || sandbox.start_container(&spec))
            .await
            .map_err(|e| start_err("RunContainerError", e))?
            .map_err(|e| start_err("RunContainerError", error_chain(&e)))?;
        Ok((img.image_id.clone(), started_at))
    }

    fn mounts(&self, c: &Container) -> Result<Vec<BindMount>, String> {
        let mut out = Vec::new();
        let taken = |dest: &str| c.volume_mounts.iter().flatten().any(|m| m.mount_path == dest);
        for (file, dest) in
            [("hosts", "/etc/hosts"), ("resolv.conf", "/etc/resolv.conf"), ("hostname", "/etc/hostname")]
        {
            if !taken(dest) {
                out.push(BindMount { source: self.pod_dir.join(file), destination: dest.into(), readonly: false });
            }
        }
        for m in c.volume_mounts.iter().flatten() {
            let base = self.volumes.get(&m.name).ok_or_else(|| format!("volume {:?} is not ready", m.name))?;
            let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    if Path::new(sub).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                        return Err(format!("subPath {sub:?} must be a relative path without '..'"));
                    }
                    let p = base.join(sub);
                    if !p.exists() {
                        std::fs::create_dir_all(&p).map_err(|e| format!("subPath {sub}: {e}"))?;
                    }
                    // Resolve symlinks (projected files are `..data` links) so the bind gets the file.
                    p.canonicalize().map_err(|e| format!("subPath {sub}: {e}"))?
                }
                None => base.clone(),
            };
            out.push(BindMount {
                source,
                destination: m.mount_path.clone().into(),
                readonly: m.read_only.unwrap_or(false),
            });
        }
        Ok(out)
    }

    /// Runs the probes that are due; returns how long until the next one.
    async fn run_probes(&mut self, pod: &Pod) -> Option<Duration> {
        let sandbox = self.sandbox.clone()?;
        let pod_ip = self.st.pod_ip.clone().unwrap_or_default();
        let containers = pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
        let grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
        let mut next: Option<Instant> = None;
        for c in &containers {
            let Some(cs) = self.st.containers.get(&c.name) else { continue };
            let Run::Running { .. } = cs.run else { continue };
            let Ok(ContainerStatus::Running { pid }) = sandbox.status(&c.name) else { continue };
            let target =
                probes::Target { pod_ip: pod_ip.clone(), container_pid: pid, shim: self.ctx.cfg.shim_binary.clone() };
            let started = cs.started;
            let kinds: &[Kind] = if started { &[Kind::Liveness, Kind::Readiness] } else { &[Kind::Startup] };
            for &kind in kinds {
                let Some(probe) = probes::probe_of(c, kind) else { continue };
                let key = (c.name.clone(), kind_name(kind));
                let now = Instant::now();
                let tracker = self.probes.entry(key.clone()).or_insert_with(|| Tracker::new(kind, probe, now));
                if tracker.next_at > now {
                    next = Some(next.map_or(tracker.next_at, |n| n.min(tracker.next_at)));
                    continue;
                }
                let ok = probes::check(probe, c, &target).await;
                let verdict = {
                    let t = self.probes.get_mut(&key).map(|t| {
                        let v = t.record(probe, ok, Instant::now());
                        (v, t.next_at)
                    });
                    let (v, at) = t.unwrap_or((None, Instant::now() + TICK));
                    next = Some(next.map_or(at, |n| n.min(at)));
                    v
                };
                let cs = self.st.containers.entry(c.name.clone()).or_default();
                match (kind, verdict) {
                    (Kind::Startup, Some(true)) => {
                        cs.started = true;
                        cs.ready = c.readiness_probe.is_none();
                    }
                    (Kind::Readiness, Some(v)) => cs.ready = v,
                    (Kind::Liveness, Some(false)) | (Kind::Startup, Some(false)) => {
                        tracing::info!(container = %c.name, probe = kind_name(kind), "probe failed; restarting the container");
                        let g = probe.termination_grace_period_seconds.unwrap_or(grace).max(0) as u64;
                        let (sb, name) = (sandbox.clone(), c.name.clone());
                        let _ = tokio::task::spawn_blocking(move || sb.kill(&name, Duration::from_secs(g))).await;
                        self.probes.retain(|(n, _), _| *n != c.name);
                        break;
                    }
                    _ => {}
                }
            }
        }
        // Exits caused by a liveness kill are picked up on the next pass.
        next.map(|n| n.saturating_duration_since(Instant::now()))
    }

    async fn write_status(&mut self, pod: &Pod) {
        let desired = status::pod_status(pod, &self.st, &self.ctx.node_ip.to_string(), Utc::now());
        if status::unchanged(pod, &desired) {
            return;
        }
        let api: Api<Pod> =
            Api::namespaced(self.ctx.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
        let name = pod.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({"metadata": {"uid": self.uid}, "status": desired});
        if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch)).await {
            tracing::warn!(error = %e, "writing pod status");
        }
    }

    /// Stops the containers (preStop hooks, SIGTERM, SIGKILL after the grace period), removes
    /// everything the pod had on the node, then lets the API forget the pod.
    async fn terminate(&mut self, pod: Option<&Pod>) -> anyhow::Result<()> {
        let grace = pod
            .and_then(|p| p.metadata.deletion_grace_period_seconds)
            .or_else(|| pod.and_then(|p| p.spec.as_ref()?.termination_grace_period_seconds))
            .unwrap_or(0)
            .max(0) as u64;
        if self.sandbox.is_none() {
            self.sandbox = Sandbox::open(&self.ctx.cfg.run_dir(), &self.uid).ok();
        }
        if let Some(sb) = self.sandbox.clone() {
            let containers: Vec<Container> =
                pod.and_then(|p| p.spec.as_ref()).map(|s| s.containers.clone()).unwrap_or_default();
            let mut kills = Vec::new();
            for c in &containers {
                let Ok(ContainerStatus::Running { pid }) = sb.status(&c.name) else { continue };
                let hook = c
                    .lifecycle
                    .as_ref()
                    .and_then(|l| l.pre_stop.as_ref())
                    .and_then(|h| h.exec.as_ref())
                    .and_then(|e| e.command.clone());
                let (sb, name, shim) = (sb.clone(), c.name.clone(), self.ctx.cfg.shim_binary.clone());
                kills.push(tokio::spawn(async move {
                    let started = Instant::now();
                    if let Some(cmd) = hook {
                        let mut p =
                            tokio::process::Command::from(edge_runtime::exec::exec_command(&shim, pid, &cmd, false));
                        p.kill_on_drop(true)
                            .stdin(std::process::Stdio::null())
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null());
                        let _ = tokio::time::timeout(Duration::from_secs(grace), p.status()).await;
                    }
                    let left = Duration::from_secs(grace).saturating_sub(started.elapsed());
                    let _ = tokio::task::spawn_blocking(move || sb.kill(&name, left)).await;
                }));
            }
            for k in kills {
                let _ = k.await;
            }
            let sb2 = sb.clone();
            match tokio::task::spawn_blocking(move || sb2.destroy()).await? {
                Ok(()) => {}
                Err(edge_runtime::SandboxError::Io(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.sandbox = None;
        }
        for m in rootfs::mounts_under(&self.pod_dir) {
            rootfs::unmount(&m)?;
        }
        let host_net = pod.is_some_and(host_network);
        if !host_net {
            self.ctx.net.remove_pod(&self.uid).await?;
            edge_net::netns::remove(&self.netns)?;
        }
        let cg = format!("{}/pod{}", self.ctx.cfg.cgroup_parent(), self.uid);
        remove_cgroup_tree(&cg).await;
        match std::fs::remove_dir_all(&self.pod_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        self.ctx.registry.remove_uid(&self.uid);
        if let Some(pod) = pod {
            let api: Api<Pod> =
                Api::namespaced(self.ctx.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
                ..Default::default()
            };
            match api.delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!("pod torn down");
        Ok(())
    }
}

/// Removes the pod's cgroup and whatever container cgroups are left below it, in every hierarchy.
/// The kernel refuses (EBUSY) while the last killed processes are still exiting, so retry briefly.
async fn remove_cgroup_tree(cgroup_path: &str) {
    let root = Path::new(edge_runtime::cgroups::CGROUP_ROOT);
    for attempt in 0..20 {
        let mut left = false;
        for dir in edge_runtime::cgroups::dirs(root, cgroup_path) {
            let mut all: Vec<PathBuf> = walk_dirs(&dir);
            all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for d in all {
                if std::fs::remove_dir(&d).is_err() && d.exists() {
                    left = true;
                }
            }
        }
        if !left {
            return;
        }
        if attempt == 19 {
            tracing::warn!(cgroup = cgroup_path, "pod cgroup could not be removed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk_dirs(&e.path()));
            }
        }
    }
    out
}

pub fn previous_log(log: &Path) -> PathBuf {
    log.with_file_name("previous.log")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
