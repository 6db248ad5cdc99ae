//! `edge-server` configuration: k3s-style flags, each also read from `EDGE_*` environment variables and
//! from `/etc/edge/config.yaml` (same keys as the flags). Precedence: flag, then environment, then file.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(name = "edge-server", version, about = "edge control plane: the Kubernetes API on SQLite")]
pub struct ServerConfig {
    /// Config file with the same keys as the flags (YAML).
    #[arg(long, env = "EDGE_CONFIG_FILE", default_value = "/etc/edge/config.yaml")]
    pub config: PathBuf,
    /// Where the server keeps its database and certificates.
    #[arg(long, env = "EDGE_DATA_DIR", default_value = "/var/lib/edge/server")]
    pub data_dir: PathBuf,
    /// Address the API server listens on.
    #[arg(long, env = "EDGE_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    #[arg(long, env = "EDGE_HTTPS_LISTEN_PORT", default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Where the admin kubeconfig is written.
    #[arg(long, env = "EDGE_WRITE_KUBECONFIG", default_value = "/etc/edge/edge.yaml")]
    pub write_kubeconfig: PathBuf,
    /// Join token for agents; generated and kept in the data dir when not given.
    #[arg(long, env = "EDGE_TOKEN")]
    pub token: Option<String>,
    /// Run only the control plane, not an agent for this board.
    #[arg(long, env = "EDGE_DISABLE_AGENT")]
    pub disable_agent: bool,
    #[arg(long, env = "EDGE_CLUSTER_CIDR", default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    #[arg(long, env = "EDGE_SERVICE_CIDR", default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    #[arg(long, env = "EDGE_CLUSTER_DNS", default_value = "10.43.0.10")]
    pub cluster_dns: IpAddr,
    #[arg(long, env = "EDGE_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// This board's node name (defaults to the hostname).
    #[arg(long, env = "EDGE_NODE_NAME")]
    pub node_name: Option<String>,
    /// This board's IP (defaults to the address of the default route's interface).
    #[arg(long, env = "EDGE_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// Agent flags, for the board this server runs on (see edge-agent --help).
    #[arg(long, env = "EDGE_PRIVATE_REGISTRY", default_value = "/etc/edge/registries.yaml")]
    pub private_registry: PathBuf,
    #[arg(long, env = "EDGE_FLANNEL_IFACE")]
    pub flannel_iface: Option<String>,
    #[arg(long, env = "EDGE_KUBELET_PORT", default_value_t = 10250)]
    pub kubelet_port: u16,
    /// DiskPressure (and its taint) when the agent's filesystem has less than this % available.
    #[arg(long, env = "EDGE_DISK_PRESSURE_PERCENT", default_value_t = 10.0)]
    pub disk_pressure_percent: f64,
    /// Extra labels for this board's Node, `key=value` (repeatable).
    #[arg(long = "node-label", env = "EDGE_NODE_LABELS", value_delimiter = ',')]
    pub node_labels: Vec<String>,
    /// The edge-shim executable (defaults to the one next to edge-server).
    #[arg(long, env = "EDGE_SHIM")]
    pub shim: Option<PathBuf>,
    /// How many changes the watch history keeps before older resourceVersions answer 410 Expired.
    #[arg(long, env = "EDGE_WATCH_HISTORY", default_value_t = 10_000)]
    pub watch_history: usize,
    /// How long a node may go without a heartbeat (Lease renewal) before it is marked Unknown.
    #[arg(long, env = "EDGE_NODE_MONITOR_GRACE_PERIOD", default_value = "40s", value_parser = crate::controllers::node_lifecycle::parse_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    /// tolerationSeconds of the not-ready NoExecute toleration every pod gets by default.
    #[arg(long, env = "EDGE_DEFAULT_NOT_READY_TOLERATION_SECONDS", default_value_t = 30)]
    pub default_not_ready_toleration_seconds: i64,
    /// tolerationSeconds of the unreachable NoExecute toleration every pod gets by default.
    #[arg(long, env = "EDGE_DEFAULT_UNREACHABLE_TOLERATION_SECONDS", default_value_t = 30)]
    pub default_unreachable_toleration_seconds: i64,
}

/// Node heartbeat and eviction settings, taken from the flags once and shared by pod admission
/// (default tolerations) and the node lifecycle controller.
#[derive(Debug, Clone, Copy)]
pub struct NodeSettings {
    pub grace: std::time::Duration,
    pub not_ready_toleration_seconds: i64,
    pub unreachable_toleration_seconds: i64,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            grace: std::time::Duration::from_secs(40),
            not_ready_toleration_seconds: 30,
            unreachable_toleration_seconds: 30,
        }
    }
}

impl ServerConfig {
    pub fn node_settings(&self) -> NodeSettings {
        NodeSettings {
            grace: self.node_monitor_grace_period,
            not_ready_toleration_seconds: self.default_not_ready_toleration_seconds,
            unreachable_toleration_seconds: self.default_unreachable_toleration_seconds,
        }
    }

    /// Parses the process arguments, merging in the config file.
    pub fn load() -> Result<ServerConfig> {
        Self::load_from(std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect())
    }

    pub fn load_from(args: Vec<String>) -> Result<ServerConfig> {
        Ok(edge_flags::load(args, |c: &ServerConfig| &c.config)?)
    }

    pub fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(hostname)
    }
}

pub use edge_agent::config::hostname;

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Vec<String> {
        std::iter::once("edge-server").chain(extra.iter().copied()).map(String::from).collect()
    }

    #[test]
    fn file_values_apply_and_flags_override_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "https-listen-port: 7443\ndisable-agent: true\ntoken: from-file\n").unwrap();
        let f = file.to_str().unwrap();
        let c = ServerConfig::load_from(args(&["--config", f, "--token", "from-flag"])).unwrap();
        assert_eq!(c.https_listen_port, 7443);
        assert!(c.disable_agent);
        assert_eq!(c.token.as_deref(), Some("from-flag"));
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "no-such-flag: 1\n").unwrap();
        let err = ServerConfig::load_from(args(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("no-such-flag"), "{err:#}");
    }
}
