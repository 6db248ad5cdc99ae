//! Controllers that run inside edge-server: level-triggered, a pure plan from the
//! observed state, then writes through the same API code paths as any client.

pub mod cluster_dns;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod event_ttl;
pub mod events;
pub mod gc;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod replicaset;
pub mod scheduler;
pub mod service_lb;
pub mod statefulset;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::api::local::LocalClient;
use crate::api::ApiState;

/// `cluster_dns`: the address of the `kube-dns` Service.
pub fn spawn(state: Arc<ApiState>, cluster_dns: std::net::IpAddr) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(
            namespace::run(LocalClient::new(state.clone(), "namespace-controller"))
                .instrument(tracing::info_span!("namespace-controller")),
        ),
        tokio::spawn(
            gc::run(LocalClient::new(state.clone(), "generic-garbage-collector"))
                .instrument(tracing::info_span!("garbage-collector")),
        ),
        tokio::spawn(
            endpoints::run(LocalClient::new(state.clone(), "endpoint-controller"))
                .instrument(tracing::info_span!("endpoints")),
        ),
        tokio::spawn(
            cluster_dns::run(LocalClient::new(state.clone(), "edge-cluster-dns"), cluster_dns)
                .instrument(tracing::info_span!("cluster-dns")),
        ),
        tokio::spawn(
            service_lb::run(LocalClient::new(state.clone(), "service-lb-controller"))
                .instrument(tracing::info_span!("service-lb")),
        ),
        tokio::spawn(
            node_ipam::run(LocalClient::new(state.clone(), "node-ipam-controller"))
                .instrument(tracing::info_span!("node-ipam")),
        ),
        tokio::spawn(
            event_ttl::run(LocalClient::new(state.clone(), "event-ttl")).instrument(tracing::info_span!("event-ttl")),
        ),
        tokio::spawn(
            replicaset::run(LocalClient::new(state.clone(), "replicaset-controller"))
                .instrument(tracing::info_span!("replicaset-controller")),
        ),
        tokio::spawn(
            deployment::run(LocalClient::new(state.clone(), "deployment-controller"))
                .instrument(tracing::info_span!("deployment-controller")),
        ),
        tokio::spawn(
            statefulset::run(LocalClient::new(state.clone(), "statefulset-controller"))
                .instrument(tracing::info_span!("statefulset-controller")),
        ),
        tokio::spawn(
            scheduler::run(LocalClient::new(state.clone(), "default-scheduler"))
                .instrument(tracing::info_span!("scheduler")),
        ),
        tokio::spawn(
            daemonset::run(LocalClient::new(state.clone(), "daemonset-controller"))
                .instrument(tracing::info_span!("daemonset-controller")),
        ),
        tokio::spawn(
            node_lifecycle::run(LocalClient::new(state.clone(), "node-controller"))
                .instrument(tracing::info_span!("node-lifecycle-controller")),
        ),
    ]
}

/// Calls `reconcile` whenever the store changes (coalescing bursts into one pass at most every
/// `min_gap`) and at least every `resync`, until shutdown. Each pass reads the whole current state,
/// so a missed or coalesced event costs nothing but latency.
pub async fn level_loop<F>(client: &LocalClient, min_gap: Duration, resync: Duration, mut reconcile: F)
where
    F: FnMut(&LocalClient),
{
    let state = client.state().clone();
    let mut events = state.store.subscribe();
    let mut resync_tick = tokio::time::interval(resync);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = resync_tick.tick() => {}
            ev = events.recv() => match ev {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    tokio::time::sleep(min_gap).await;
                    // Drain what arrived meanwhile: one pass covers it all.
                    while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
                }
                Err(RecvError::Closed) => return,
            },
        }
        reconcile(client);
    }
}
