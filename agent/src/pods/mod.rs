//! Running the pods bound to this node. A watch on `spec.nodeName=<node>` feeds one worker task per
//! pod UID ([`worker`]); each worker is level-triggered: whatever woke it, it compares the pod's
//! spec with what runs and fixes the difference, then writes the status if it changed. Sandboxes
//! found on disk with no pod (deleted while the agent was down) are torn down.

pub mod container;
pub mod files;
pub mod probes;
pub mod rootfs;
pub mod state;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use edge_images::Puller;
use edge_net::{NodeNetwork, RtNetlink};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use files::DnsSettings;

/// Everything the pod workers share.
pub struct PodCtx {
    pub cfg: AgentConfig,
    pub client: kube::Client,
    pub puller: Arc<Puller>,
    pub net: Arc<NodeNetwork<RtNetlink>>,
    pub dns: DnsSettings,
    /// Every Service, from the service proxy's watch: containers get their environment variables.
    pub services: kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Service>,
    pub node_ip: Ipv4Addr,
    pub allocatable_cpu_millis: i64,
    pub allocatable_memory: i64,
    pub allocatable_ephemeral_storage: i64,
    /// Pods by namespace/name, for the kubelet API.
    pub registry: Registry,
}

/// What the kubelet API needs to find a pod's containers.
#[derive(Debug, Clone)]
pub struct PodEntry {
    pub uid: String,
    pub sandbox_dir: PathBuf,
    pub pod_ip: Option<String>,
    pub containers: Vec<String>,
}

#[derive(Clone, Default)]
pub struct Registry(Arc<RwLock<HashMap<(String, String), PodEntry>>>);

impl Registry {
    pub fn get(&self, namespace: &str, name: &str) -> Option<PodEntry> {
        self.0.read().ok()?.get(&(namespace.to_string(), name.to_string())).cloned()
    }
    pub fn set(&self, namespace: &str, name: &str, entry: PodEntry) {
        if let Ok(mut m) = self.0.write() {
            m.insert((namespace.to_string(), name.to_string()), entry);
        }
    }
    pub fn remove_uid(&self, uid: &str) {
        if let Ok(mut m) = self.0.write() {
            m.retain(|_, e| e.uid != uid);
        }
    }
}

struct Worker {
    tx: watch::Sender<Option<Arc<Pod>>>,
    handle: tokio::task::JoinHandle<()>,
}

/// Watches this node's pods and keeps one worker per pod until `shutdown`.
pub async fn run(ctx: Arc<PodCtx>, shutdown: CancellationToken) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.cfg.node_name));
    let mut stream = watcher(api, cfg).boxed();
    let mut pods: HashMap<String, Arc<Pod>> = HashMap::new();
    let mut init_buffer: Option<HashMap<String, Arc<Pod>>> = None;
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut synced = false;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            ev = stream.next() => match ev {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pod watch");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Some(Ok(ev)) => match ev {
                    watcher::Event::Init => init_buffer = Some(HashMap::new()),
                    watcher::Event::InitApply(p) => {
                        if let (Some(buf), Some(uid)) = (init_buffer.as_mut(), p.metadata.uid.clone()) {
                            buf.insert(uid, Arc::new(p));
                        }
                    }
                    watcher::Event::InitDone => {
                        pods = init_buffer.take().unwrap_or_default();
                        if !synced {
                            synced = true;
                            adopt_orphans(&ctx, &pods, &mut workers);
                        }
                    }
                    watcher::Event::Apply(p) => {
                        if let Some(uid) = p.metadata.uid.clone() {
                            pods.insert(uid, Arc::new(p));
                        }
                    }
                    watcher::Event::Delete(p) => {
                        if let Some(uid) = &p.metadata.uid {
                            pods.remove(uid);
                        }
                    }
                },
            },
        }
        if !synced {
            continue;
        }
        // Level-triggered: every pass tells every worker the pod as it is now (or that it is gone).
        for (uid, pod) in &pods {
            let w = workers.entry(uid.clone()).or_insert_with(|| spawn_worker(&ctx, uid, Some(pod.clone()), &shutdown));
            w.tx.send_if_modified(|cur| {
                let changed = cur.as_ref().map(|c| c.metadata.resource_version.clone())
                    != Some(pod.metadata.resource_version.clone());
                if changed {
                    *cur = Some(pod.clone());
                }
                changed
            });
        }
        for (uid, w) in &workers {
            if !pods.contains_key(uid) {
                w.tx.send_if_modified(|cur| cur.take().is_some());
            }
        }
        workers.retain(|_, w| !w.handle.is_finished());
    }
    for (_, w) in workers {
        w.handle.abort();
    }
}

fn spawn_worker(ctx: &Arc<PodCtx>, uid: &str, pod: Option<Arc<Pod>>, shutdown: &CancellationToken) -> Worker {
    let (tx, rx) = watch::channel(pod);
    let span = tracing::info_span!("pod", uid = %uid);
    let handle = tokio::spawn(tracing::Instrument::instrument(
        worker::run(ctx.clone(), uid.to_string(), rx, shutdown.clone()),
        span,
    ));
    Worker { tx, handle }
}

/// Pods whose state is on disk but which the API no longer has: deleted while we were down.
fn adopt_orphans(ctx: &Arc<PodCtx>, pods: &HashMap<String, Arc<Pod>>, workers: &mut HashMap<String, Worker>) {
    let Ok(entries) = std::fs::read_dir(ctx.cfg.pods_dir()) else { return };
    for e in entries.flatten() {
        let uid = e.file_name().to_string_lossy().into_owned();
        if !pods.contains_key(&uid) && !workers.contains_key(&uid) {
            tracing::info!(%uid, "cleaning up a pod deleted while the agent was down");
            let w = spawn_worker(ctx, &uid, None, &CancellationToken::new());
            workers.insert(uid, w);
        }
    }
}

/// Lists this node's pods once (used at shutdown and by tests).
pub async fn list(client: &kube::Client, node: &str) -> kube::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::all(client.clone());
    Ok(api.list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await?.items)
}
