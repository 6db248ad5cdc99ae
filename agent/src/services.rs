//! Services on this node: watches Services and EndpointSlices in every namespace and feeds their
//! two consumers — the service proxy (edge-proxy: an nftables table programmed over netlink, on a
//! thread of its own because netlink calls block) and the cluster DNS (edge-dns, answering on this
//! node's pod gateway, which the server lists as the `kube-dns` Service's local endpoint).
//!
//! Level-triggered: every change marks the view dirty and, after a short quiet period, the whole
//! desired state is recomputed from the watch caches; the proxy diffs it against what it last
//! applied, so a burst of events costs one small batch. The table stays when the agent stops, so
//! Services keep working across agent restarts (as kube-proxy's rules do); `uninstall` removes it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edge_proxy::{Kernel, Proxier, ProxyConfig, ServicePort};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The nftables table the proxy owns (DESIGN.md §2).
pub const TABLE: &str = "edge-proxy";

/// How long the view must be quiet before it is applied: coalesces a rollout's burst of slice
/// updates into one batch without making a single change wait noticeably.
const QUIET: Duration = Duration::from_millis(100);
/// How often the proxy reads its table back to repair drift (someone ran `nft flush ruleset`).
const DRIFT_CHECK: Duration = Duration::from_secs(30);

pub struct ServicesConfig {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub cluster_cidr: String,
    pub cluster_domain: String,
    /// This node's pod gateway: where its cluster DNS listens.
    pub dns_address: Ipv4Addr,
    /// The node's own resolvers, for names outside the cluster.
    pub host_resolv_conf: String,
}

/// Starts the proxy thread, the DNS server and the watches; returns once both caches have their
/// first full list and the first ruleset is applied, so pods started afterwards find Services.
/// The Service cache is returned for the pods' service environment variables.
pub async fn start(
    client: kube::Client,
    cfg: ServicesConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<Store<Service>> {
    let (svc_reader, svc_writer) = reflector::store::<Service>();
    let (eps_reader, eps_writer) = reflector::store::<EndpointSlice>();
    let (changed_tx, mut changed_rx) = tokio::sync::mpsc::channel::<()>(1);

    let svc_events =
        reflector::reflector(svc_writer, watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .map(|_| ())
            .boxed();
    let eps_events = reflector::reflector(
        eps_writer,
        watcher(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .map(|_| ())
    .boxed();
    let mut events = futures_util::stream::select(svc_events, eps_events);
    let watch_shutdown = shutdown.clone();
    tokio::spawn(
        async move {
            loop {
                tokio::select! {
                    _ = watch_shutdown.cancelled() => return,
                    ev = events.next() => match ev {
                        // A full channel already means "dirty".
                        Some(()) => { let _ = changed_tx.try_send(()); }
                        None => return,
                    },
                }
            }
        }
        .instrument(tracing::info_span!("service-watch")),
    );
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(svc_reader),
        r = async { tokio::try_join!(svc_reader.wait_until_ready(), eps_reader.wait_until_ready()) } => {
            r.context("listing Services and EndpointSlices")?;
        }
    }

    let proxy = ProxyThread::spawn(ProxyConfig {
        table: TABLE.to_string(),
        node_name: cfg.node_name.clone(),
        node_ips: vec![cfg.node_ip],
        cluster_cidr: cfg.cluster_cidr.clone(),
    })?;
    let (services, slices) = snapshot(&svc_reader, &eps_reader);
    let (zone_tx, zone_rx) =
        tokio::sync::watch::channel(Arc::new(edge_dns::Zone::build(&cfg.cluster_domain, &services, &slices)));
    proxy.apply(edge_proxy::service_ports(&services, &slices)).await?;

    let dns = edge_dns::DnsConfig {
        listen: vec![SocketAddr::from((cfg.dns_address, 53))],
        upstreams: edge_dns::upstreams_from_resolv_conf(&cfg.host_resolv_conf),
        ..edge_dns::DnsConfig::default()
    };
    tokio::spawn(serve_dns(dns, zone_rx, shutdown.clone()).instrument(tracing::info_span!("dns")));

    let domain = cfg.cluster_domain.clone();
    let services_cache = svc_reader.clone();
    tokio::spawn(
        async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = changed_rx.recv() => if r.is_none() { return },
                }
                // Let the burst settle; whatever arrives meanwhile is in the caches already.
                tokio::time::sleep(QUIET).await;
                while changed_rx.try_recv().is_ok() {}
                let (services, slices) = snapshot(&svc_reader, &eps_reader);
                zone_tx.send_replace(Arc::new(edge_dns::Zone::build(&domain, &services, &slices)));
                if let Err(e) = proxy.apply(edge_proxy::service_ports(&services, &slices)).await {
                    tracing::warn!(error = %e, "service proxy stopped");
                    return;
                }
            }
        }
        .instrument(tracing::info_span!("services")),
    );
    Ok(services_cache)
}

fn snapshot(svc: &Store<Service>, eps: &Store<EndpointSlice>) -> (Vec<Service>, Vec<EndpointSlice>) {
    (
        svc.state().iter().map(|s| Service::clone(s)).collect(),
        eps.state().iter().map(|s| EndpointSlice::clone(s)).collect(),
    )
}

/// Serves cluster DNS until shutdown, retrying a failed bind (the gateway address may briefly be
/// missing while `cni0` is rebuilt).
async fn serve_dns(
    cfg: edge_dns::DnsConfig,
    zone: tokio::sync::watch::Receiver<Arc<edge_dns::Zone>>,
    shutdown: CancellationToken,
) {
    loop {
        match edge_dns::serve(cfg.clone(), zone.clone(), shutdown.clone()).await {
            Ok(()) => return,
            Err(e) => tracing::error!(error = %e, listen = ?cfg.listen, "cluster DNS is not serving; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// The proxy on a thread of its own: netlink round trips block, and one owner of the table keeps
/// the last-applied state that deltas are computed against.
struct ProxyThread {
    tx: mpsc::Sender<(Vec<ServicePort>, tokio::sync::oneshot::Sender<()>)>,
}

impl ProxyThread {
    fn spawn(cfg: ProxyConfig) -> anyhow::Result<ProxyThread> {
        let kernel = Kernel::new().context("opening the nftables netlink socket")?;
        let (tx, rx) = mpsc::channel::<(Vec<ServicePort>, tokio::sync::oneshot::Sender<()>)>();
        std::thread::Builder::new().name("service-proxy".into()).spawn(move || {
            let span = tracing::info_span!("service-proxy");
            let _enter = span.enter();
            let mut proxier = Proxier::new(cfg, kernel);
            let mut desired: Vec<ServicePort> = Vec::new();
            loop {
                let done = match rx.recv_timeout(DRIFT_CHECK) {
                    Ok((next, done)) => {
                        desired = next;
                        Some(done)
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        match proxier.drifted() {
                            Ok(false) => continue,
                            Ok(true) => tracing::warn!("the service proxy's table changed behind its back; resyncing"),
                            Err(e) => tracing::warn!(error = %e, "reading the service proxy's table back"),
                        }
                        proxier.force_full_sync();
                        None
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                };
                match proxier.sync(&desired) {
                    Ok(stats) => tracing::debug!(
                        full = stats.full,
                        messages = stats.messages,
                        services = stats.services,
                        "service rules synced"
                    ),
                    // The next change or drift check retries with a full sync.
                    Err(e) => tracing::error!(error = %e, "programming service rules"),
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        })?;
        Ok(ProxyThread { tx })
    }

    async fn apply(&self, desired: Vec<ServicePort>) -> anyhow::Result<()> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        self.tx.send((desired, done_tx)).map_err(|_| anyhow::anyhow!("the service proxy thread ended"))?;
        done_rx.await.map_err(|_| anyhow::anyhow!("the service proxy thread ended"))
    }
}

/// Removes the proxy's table (uninstall); a missing table is fine.
pub fn remove() -> anyhow::Result<()> {
    edge_proxy::remove_table(TABLE).context("removing the service proxy table")
}
