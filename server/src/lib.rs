//! edge-server: the Kubernetes API on SQLite, and the controllers that run beside it.
//!
//! `run` wires the parts: the PKI and kubeconfig, the store, the HTTPS API, and the in-process
//! controllers, all stopped by one cancellation token.

pub mod admission;
pub mod api;
pub mod config;
pub mod controllers;
pub mod ipam;
pub mod pki;
pub mod resources;
pub mod store;
pub mod token;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use config::ServerConfig;
use store::{Key, Store, Write};

/// The namespaces every cluster starts with.
const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Runs the server until `shutdown` is cancelled. `listener` is already bound (tests bind port 0).
pub async fn run(config: ServerConfig, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let node_ip = config.node_ip.unwrap_or_else(default_ip);
    let local = listener.local_addr()?;

    let pki = Arc::new(pki::Pki::ensure(&data_dir, &serving_names(&config), &serving_ips(&config, node_ip))?);
    let server_url = format!("https://127.0.0.1:{}", local.port());
    pki.write_kubeconfig(&config.write_kubeconfig, &server_url)
        .with_context(|| format!("writing kubeconfig {}", config.write_kubeconfig.display()))?;
    // token.full() is what agents join with, the embedded one included.
    let token = ensure_token(&config, &pki.ca_pem)?;
    let (kubelet_cert, kubelet_key) = pki.kubelet_client().context("the kubelet client certificate")?;
    let kubelet = api::kubelet::KubeletClient::new(&pki.ca_pem, &kubelet_cert, &kubelet_key)?;

    let store = Arc::new(
        Store::open(&data_dir, store::Options { history: config.watch_history }).context("opening the store")?,
    );
    bootstrap(&store)?;
    let ipam = ipam::Ipam::new(&config.service_cidr, &config.cluster_cidr, 24, &[config.cluster_dns])
        .map_err(|e| anyhow::anyhow!("--service-cidr/--cluster-cidr: {e}"))?;
    ipam.load(&store);

    let state = Arc::new(api::ApiState {
        store: store.clone(),
        shutdown: shutdown.clone(),
        ready: AtomicBool::new(false),
        nodes: config.node_settings(),
        ipam,
        join: api::join::Joiner::new(pki.clone(), token.clone()),
        kubelet,
    });
    bootstrap_kubernetes_service(&state, node_ip, local.port())?;
    let tls = Arc::new(tls_config(&pki)?);
    let controllers = controllers::spawn(state.clone(), config.cluster_dns);
    if !config.disable_agent {
        let agent = agent_config(&config, node_ip, local, token.full())?;
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = edge_agent::run(agent, shutdown.clone(), || {}).await {
                tracing::error!(error = format!("{e:#}"), "the embedded agent stopped; shutting down");
                shutdown.cancel();
            }
        });
    }
    state.ready.store(true, Ordering::Release);
    tracing::info!(address = %local, kubeconfig = %config.write_kubeconfig.display(), "edge-server ready");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    api::serve(state, listener, tls).await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    for c in controllers {
        let _ = c.await;
    }
    Ok(())
}

/// The agent for this server's own board: it joins over loopback like any other agent and keeps its
/// state under `<data-dir>/agent`; the node carries k3s's control-plane labels.
fn agent_config(
    config: &ServerConfig,
    node_ip: IpAddr,
    api: SocketAddr,
    token: &str,
) -> Result<edge_agent::AgentConfig> {
    let IpAddr::V4(node_ip) = node_ip else {
        bail!("--node-ip {node_ip}: the agent needs an IPv4 node address");
    };
    let mut node_labels = vec![
        ("node-role.kubernetes.io/control-plane".to_string(), "true".to_string()),
        ("node-role.kubernetes.io/master".to_string(), "true".to_string()),
    ];
    for l in &config.node_labels {
        let (k, v) = l.split_once('=').with_context(|| format!("--node-label {l:?}: expected key=value"))?;
        node_labels.push((k.to_string(), v.to_string()));
    }
    Ok(edge_agent::AgentConfig {
        // Loopback unless the API listens on one address only.
        server: match api.ip() {
            ip if ip.is_unspecified() => format!("https://127.0.0.1:{}", api.port()),
            IpAddr::V4(ip) => format!("https://{ip}:{}", api.port()),
            IpAddr::V6(ip) => format!("https://[{ip}]:{}", api.port()),
        },
        token: token.to_string(),
        data_dir: config.data_dir.join("agent"),
        node_name: config.node_name(),
        node_ip,
        flannel_iface: config.flannel_iface.clone(),
        private_registry: config.private_registry.clone(),
        kubelet_port: config.kubelet_port,
        shim_binary: config.shim.clone().unwrap_or_else(edge_agent::config::default_shim_binary),
        cluster_cidr: config.cluster_cidr.parse().with_context(|| format!("--cluster-cidr {}", config.cluster_cidr))?,
        cluster_dns: Some(config.cluster_dns),
        cluster_domain: config.cluster_domain.clone(),
        node_labels,
        disk_pressure_percent: config.disk_pressure_percent,
    })
}

pub async fn bind(config: &ServerConfig) -> Result<TcpListener> {
    let addr = SocketAddr::new(config.bind_address, config.https_listen_port);
    TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))
}

fn serving_names(config: &ServerConfig) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        config::hostname(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", config.cluster_domain),
    ];
    names.extend(config.node_name.clone());
    names
}

fn serving_ips(config: &ServerConfig, node_ip: IpAddr) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::from([127, 0, 0, 1]), node_ip];
    if !config.bind_address.is_unspecified() {
        ips.push(config.bind_address);
    }
    if let Some(ip) = first_service_ip(&config.service_cidr) {
        ips.push(ip);
    }
    ips
}

/// The first address of the service CIDR: where the `kubernetes` Service lives.
pub fn first_service_ip(cidr: &str) -> Option<IpAddr> {
    let (base, _) = cidr.split_once('/')?;
    match base.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(IpAddr::V4((u32::from(v4) + 1).into())),
        IpAddr::V6(v6) => Some(IpAddr::V6((u128::from(v6) + 1).into())),
    }
}

/// The address the kernel would use to reach the outside: the default route's source. Connecting
/// a UDP socket sends nothing.
fn default_ip() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// The join token (`K10<ca-hash>::server:<secret>`) for the CA in `ca_pem`, kept in
/// `<data-dir>/token`: `--token` when given (a full token or a bare secret), else the stored secret,
/// else a new one. `full()` is what agents are given.
pub fn ensure_token(config: &ServerConfig, ca_pem: &str) -> Result<token::JoinToken> {
    Ok(token::ensure(&config.data_dir, config.token.as_deref(), ca_pem)?)
}

fn bootstrap(store: &Store) -> Result<()> {
    for ns in DEFAULT_NAMESPACES {
        let key = Key::new("namespaces", "", *ns);
        if store.get(&key).is_some() {
            continue;
        }
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "uid": uuid::Uuid::new_v4().to_string(),
                         "creationTimestamp": api::handlers::now_rfc3339(),
                         "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        store.write::<store::StoreError, _>(&key, false, |cur| {
            Ok(if cur.is_some() { Write::Keep } else { Write::Put(obj) })
        })?;
    }
    Ok(())
}

/// The `kubernetes` Service in `default` on the first service IP, and its Endpoints pointing at
/// this server, as every in-cluster client expects.
fn bootstrap_kubernetes_service(state: &Arc<api::ApiState>, node_ip: IpAddr, port: u16) -> Result<()> {
    let client = api::local::LocalClient::new(state.clone(), "edge-server");
    let services = resources::must("", "v1", "services");
    let wanted_ip = state.ipam.first_service_ip().to_string();
    match client.get(services, Some("default"), "kubernetes") {
        Ok(_) => {}
        Err(e) if e.code == 404 => {
            let svc = json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": wanted_ip, "sessionAffinity": "None",
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
            });
            client
                .create(services, Some("default"), svc)
                .map_err(|e| anyhow::anyhow!("creating the kubernetes Service: {}", e.message))?;
        }
        Err(e) => bail!("reading the kubernetes Service: {}", e.message),
    }
    // The endpoints follow wherever this server listens now.
    let endpoints = resources::must("", "v1", "endpoints");
    let ep = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": node_ip.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    client
        .update(endpoints, Some("default"), ep)
        .map_err(|e| anyhow::anyhow!("writing the kubernetes Endpoints: {}", e.message))?;
    // And its EndpointSlice, which is what proxies read.
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {controllers::endpoints::SERVICE_NAME_LABEL: "kubernetes",
                                controllers::endpoints::MANAGED_BY_LABEL: "edge-server"}},
        "addressType": if node_ip.is_ipv6() { "IPv6" } else { "IPv4" },
        "endpoints": [{"addresses": [node_ip.to_string()], "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    controllers::endpoints::sync_slices(&client, "default", "kubernetes", &[slice], "edge-server")
        .map_err(|e| anyhow::anyhow!("writing the kubernetes EndpointSlice: {e}"))?;
    Ok(())
}

fn tls_config(pki: &pki::Pki) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pki.serving_cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("serving certificate")?;
    let key = PrivateKeyDer::from_pem_slice(pki.serving_key_pem.as_bytes()).context("serving key")?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(ca.context("CA certificate")?)?;
    }
    // Client certificates are optional at the TLS layer: health endpoints are public, and the API
    // answers 401 itself to requests without an identity.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
