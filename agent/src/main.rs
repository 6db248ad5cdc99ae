//! `edge-agent --server https://HOST:6443 --token T`: joins the cluster and runs this board's pods.
//! `edge-agent uninstall`: removes what the agent created on the node (links, netns, mounts).

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use edge_agent::config::{self, AgentConfig};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "edge-agent", version, about = "edge node agent: runs this board's pods")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file with the same keys as the flags (YAML).
    #[arg(long, env = "EDGE_CONFIG_FILE", default_value = "/etc/edge/config.yaml")]
    config: PathBuf,
    /// API server URL, https://HOST:6443.
    #[arg(long, env = "EDGE_URL")]
    server: Option<String>,
    /// Join token (the server's <data-dir>/token).
    #[arg(long, env = "EDGE_TOKEN")]
    token: Option<String>,
    #[arg(long, env = "EDGE_DATA_DIR", default_value = "/var/lib/edge/agent")]
    data_dir: PathBuf,
    /// Node name (defaults to the hostname).
    #[arg(long, env = "EDGE_NODE_NAME")]
    node_name: Option<String>,
    /// This node's IP (defaults to the source address towards the server).
    #[arg(long, env = "EDGE_NODE_IP")]
    node_ip: Option<IpAddr>,
    /// Uplink interface for the VXLAN overlay.
    #[arg(long, env = "EDGE_FLANNEL_IFACE")]
    flannel_iface: Option<String>,
    #[arg(long, env = "EDGE_PRIVATE_REGISTRY", default_value = "/etc/edge/registries.yaml")]
    private_registry: PathBuf,
    #[arg(long, env = "EDGE_KUBELET_PORT", default_value_t = 10250)]
    kubelet_port: u16,
    /// The cluster's pod network (the server's --cluster-cidr).
    #[arg(long, env = "EDGE_CLUSTER_CIDR", default_value = "10.42.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    #[arg(long, env = "EDGE_CLUSTER_DNS", default_value = "10.43.0.10")]
    cluster_dns: IpAddr,
    #[arg(long, env = "EDGE_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// DiskPressure (and its taint) when the data dir's filesystem has less than this % available.
    #[arg(long, env = "EDGE_DISK_PRESSURE_PERCENT", default_value_t = 10.0)]
    disk_pressure_percent: f64,
    /// Extra node labels, `key=value` (repeatable).
    #[arg(long = "node-label", env = "EDGE_NODE_LABELS", value_delimiter = ',')]
    node_labels: Vec<String>,
    /// The edge-shim executable (defaults to the one next to edge-agent).
    #[arg(long, env = "EDGE_SHIM")]
    shim: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Remove everything the agent created on this node (links, pod network namespaces, mounts).
    Uninstall,
}

fn build(args: &Args) -> Result<AgentConfig> {
    let server = args.server.clone().context("--server (or EDGE_URL) is required")?;
    let token = args.token.clone().context("--token (or EDGE_TOKEN) is required")?;
    let (host, port) =
        config::host_port(&server).with_context(|| format!("--server {server:?}: expected https://HOST:PORT"))?;
    let node_ip = match args.node_ip {
        Some(IpAddr::V4(ip)) => ip,
        Some(IpAddr::V6(_)) => bail!("--node-ip: IPv6 node addresses are not supported yet"),
        None => config::detect_node_ip(&host, port).context("cannot tell this node's IP: pass --node-ip")?,
    };
    let mut node_labels = Vec::new();
    for l in &args.node_labels {
        let (k, v) = l.split_once('=').with_context(|| format!("--node-label {l:?}: expected key=value"))?;
        node_labels.push((k.to_string(), v.to_string()));
    }
    Ok(AgentConfig {
        server,
        token,
        data_dir: args.data_dir.clone(),
        node_name: args.node_name.clone().unwrap_or_else(config::hostname),
        node_ip,
        flannel_iface: args.flannel_iface.clone(),
        private_registry: args.private_registry.clone(),
        kubelet_port: args.kubelet_port,
        shim_binary: args.shim.clone().unwrap_or_else(config::default_shim_binary),
        cluster_cidr: args.cluster_cidr,
        cluster_dns: Some(args.cluster_dns),
        cluster_domain: args.cluster_domain.clone(),
        node_labels,
        disk_pressure_percent: args.disk_pressure_percent,
    })
}

fn main() -> std::process::ExitCode {
    edge_agent::main_or_shim(run)
}

fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args: Args = edge_flags::load(std::env::args().collect(), |a: &Args| &a.config)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        if let Some(Command::Uninstall) = args.command {
            return edge_agent::uninstall(&args.data_dir).await;
        }
        let cfg = build(&args)?;
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        tokio::spawn(async move {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down; containers keep running");
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
            s.cancel();
            // A second signal exits at once.
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            std::process::exit(130);
        });
        edge_agent::run(cfg, shutdown, || {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        })
        .await
    })
}
