//! edge-agent: the kubelet of edge. It joins the cluster with a token ([`join`]), registers its Node
//! and keeps the Lease fresh ([`node`]), wires the pod network ([`network`] over edge-net), runs the
//! pods bound to it as real containers ([`pods`]: images from edge-images, sandboxes and containers
//! from edge-runtime's per-pod shim) and serves the kubelet API for logs, exec and port-forward
//! ([`kubelet`] over edge-kubelet-api), and serves Services: the nftables proxy and cluster DNS
//! ([`services`] over edge-proxy and edge-dns). `edge-server` runs the same [`run`] for its own board.

pub mod config;
pub mod egress;
pub mod image_gc;
pub mod join;
pub mod kubelet;
pub mod network;
pub mod node;
pub mod pods;
pub mod services;

use std::sync::Arc;

use anyhow::Context;
use edge_images::{ContentStore, Platform, Puller, RegistriesConfig};
use tokio_util::sync::CancellationToken;

pub use config::AgentConfig;
/// The shim's command line, for binaries that double as `edge-shim`.
pub use edge_runtime::cli as shim;

/// `main` of a binary that is also the pod shim (edge-agent, edge-server): started as `edge-shim`
/// (argv[0]) it is a pod's shim and must stay single-threaded, so that is decided before `run`
/// starts anything; otherwise `run`'s error is printed as anyhow's `main` would.
pub fn main_or_shim(run: impl FnOnce() -> anyhow::Result<()>) -> std::process::ExitCode {
    if shim::invoked_as_shim() {
        return shim::main(std::env::args().collect());
    }
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the agent until `shutdown`; `ready` is called once the node is registered and pods are
/// being watched (systemd's READY=1).
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken, ready: impl FnOnce()) -> anyhow::Result<()> {
    for d in [cfg.data_dir.clone(), cfg.run_dir(), cfg.pods_dir(), cfg.netns_dir(), cfg.images_dir()] {
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let creds = loop {
        match join::join(&cfg).await {
            Ok(c) => break c,
            // The server may still be starting (or rebooting with us): keep trying, as k3s agents do.
            Err(e @ join::JoinError::Connect(..)) => {
                tracing::warn!(error = %e, "joining the cluster; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                }
            }
            Err(e) => return Err(anyhow::Error::new(e).context("joining the cluster")),
        }
    };
    let client = join::client(&cfg.server, &creds).await.context("building the API client")?;
    std::fs::write(cfg.data_dir.join("kubelet.kubeconfig"), join::kubeconfig(&cfg.server, &creds))?;

    let mut facts =
        node::NodeFacts::gather(&cfg.node_name, cfg.node_ip, cfg.kubelet_port, &cfg.data_dir, cfg.node_labels.clone());
    facts.disk_pressure_ratio = cfg.disk_pressure_percent / 100.0;
    node::register(&client, &facts, &[]).await.context("registering the node")?;
    tracing::info!(node = %cfg.node_name, ip = %cfg.node_ip, "node registered");
    tokio::spawn(node::heartbeat(client.clone(), facts.clone(), shutdown.clone()));

    let pod_cidr = network::wait_pod_cidr(&client, &cfg.node_name, &shutdown).await?;
    let net = Arc::new(network::setup(&cfg, pod_cidr).await.context("setting up the pod network")?);
    network::publish(&client, &cfg.node_name, &net).await.context("publishing the VTEP annotations")?;
    tokio::spawn(network::overlay_loop(client.clone(), cfg.node_name.clone(), net.clone(), shutdown.clone()));
    egress::apply(cfg.cluster_cidr).context("programming the egress masquerade")?;
    tracing::info!(%pod_cidr, mtu = net.mtu(), "pod network ready");

    let store = Arc::new(ContentStore::open(cfg.content_dir()).context("opening the content store")?);
    let platform = Platform::host();
    let (imported, failed) = {
        let (store, dir, platform) = (store.clone(), cfg.images_dir(), platform.clone());
        tokio::task::spawn_blocking(move || edge_images::import::import_dir(&store, &dir, &platform)).await?
    };
    for img in &imported {
        tracing::info!(image = %img.name, "imported airgap image");
    }
    for (path, e) in &failed {
        tracing::warn!(path = %path.display(), error = %e, "airgap import failed");
    }
    let registries = RegistriesConfig::load(&cfg.private_registry)
        .with_context(|| format!("reading {}", cfg.private_registry.display()))?;
    tokio::spawn(image_gc::run(
        client.clone(),
        cfg.node_name.clone(),
        store.clone(),
        cfg.data_dir.clone(),
        shutdown.clone(),
    ));
    let puller = Arc::new(Puller::new(store, registries, platform));

    let host_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let services = services::start(
        client.clone(),
        services::ServicesConfig {
            node_name: cfg.node_name.clone(),
            node_ip: cfg.node_ip.into(),
            cluster_cidr: cfg.cluster_cidr.to_string(),
            cluster_domain: cfg.cluster_domain.clone(),
            dns_address: edge_net::ipam::gateway_of(pod_cidr),
            host_resolv_conf: host_resolv_conf.clone(),
        },
        shutdown.clone(),
    )
    .await
    .context("starting the service proxy and cluster DNS")?;
    tracing::info!("service proxy and cluster DNS running");
    let ctx = Arc::new(pods::PodCtx {
        dns: pods::files::DnsSettings {
            cluster_dns: cfg.cluster_dns,
            cluster_domain: cfg.cluster_domain.clone(),
            host_resolv_conf,
        },
        node_ip: cfg.node_ip,
        allocatable_cpu_millis: i64::from(facts.cpus) * 1000,
        allocatable_memory: facts.memory_bytes as i64,
        allocatable_ephemeral_storage: facts.ephemeral_storage_bytes as i64,
        registry: pods::Registry::default(),
        services,
        client: client.clone(),
        puller,
        net,
        cfg: cfg.clone(),
    });
    let kubelet =
        kubelet::start(&cfg, &creds, ctx.clone(), shutdown.clone()).await.context("starting the kubelet API")?;
    tracing::info!(addr = %kubelet, "kubelet API listening");
    ready();
    pods::run(ctx, shutdown).await;
    Ok(())
}

/// Removes everything an agent with this data dir created on the node: its containers and shims,
/// mounts, pod network namespaces, the pods' veths, `cni0`, `flannel.1`, pod cgroups and the data dir.
pub async fn uninstall(data_dir: &std::path::Path) -> anyhow::Result<()> {
    use edge_net::NetLink;
    let run_dir = data_dir.join("run");
    if let Ok(entries) = std::fs::read_dir(&run_dir) {
        for e in entries.flatten() {
            let uid = e.file_name().to_string_lossy().into_owned();
            if let Ok(sb) = edge_runtime::Sandbox::open(&run_dir, &uid) {
                let _ = tokio::task::spawn_blocking(move || sb.destroy()).await;
            }
        }
    }
    let nl = edge_net::RtNetlink::new()?;
    let ipam_dir = edge_net::node::ipam_dir(data_dir);
    let owners: Vec<String> = std::fs::read_dir(&ipam_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|s| s.trim().to_string())
        .collect();
    for owner in owners {
        nl.delete_link(&edge_net::node::host_ifname(&owner)).await?;
    }
    nl.delete_link(edge_net::overlay::VXLAN_NAME).await?;
    nl.delete_link(edge_net::node::BRIDGE_NAME).await?;
    egress::remove()?;
    services::remove()?;
    for m in pods::rootfs::mounts_under(data_dir) {
        if m.starts_with(data_dir.join("netns")) {
            edge_net::netns::remove(&m)?;
        } else {
            pods::rootfs::unmount(&m)?;
        }
    }
    match std::fs::remove_dir_all(data_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    tracing::info!(data_dir = %data_dir.display(), "uninstalled");
    Ok(())
}
