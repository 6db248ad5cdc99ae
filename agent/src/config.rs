//! What one agent needs to know: where the server is, who it is, where its state lives. Built from
//! `edge-agent`'s flags (see `main.rs`) or by `edge-server` for its own board.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `https://HOST:PORT` of the API server.
    pub server: String,
    /// Join token: k3s's full `K10<ca-hash>::server:<secret>` (the CA is then verified) or the bare secret.
    pub token: String,
    pub data_dir: PathBuf,
    pub node_name: String,
    /// The address other nodes and the server reach this node at.
    pub node_ip: Ipv4Addr,
    /// `--flannel-iface`: the uplink for the VXLAN overlay.
    pub flannel_iface: Option<String>,
    /// k3s's `registries.yaml`.
    pub private_registry: PathBuf,
    /// Port of the kubelet API.
    pub kubelet_port: u16,
    /// The `edge-shim` executable.
    pub shim_binary: PathBuf,
    /// The whole pod network (all nodes' pod CIDRs): traffic leaving it is masqueraded.
    pub cluster_cidr: ipnet::Ipv4Net,
    pub cluster_dns: Option<IpAddr>,
    pub cluster_domain: String,
    /// DiskPressure when the data dir's filesystem has less than this percentage available
    /// (the kubelet's `nodefs.available<10%`).
    pub disk_pressure_percent: f64,
    /// Extra node labels (`--node-label k=v`); the server's own node adds control-plane labels.
    pub node_labels: Vec<(String, String)>,
}

impl AgentConfig {
    pub fn run_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }
    pub fn pods_dir(&self) -> PathBuf {
        self.data_dir.join("pods")
    }
    pub fn netns_dir(&self) -> PathBuf {
        self.data_dir.join("netns")
    }
    pub fn images_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }
    pub fn content_dir(&self) -> PathBuf {
        self.data_dir.join("content")
    }
    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir.join("pki")
    }
    /// Parent of every pod cgroup; named for the node so agents sharing a machine never collide.
    pub fn cgroup_parent(&self) -> String {
        format!("/edge/{}", self.node_name)
    }
}

/// `edge-shim` next to the running executable when there is one, else this executable itself, which
/// becomes the shim when started under that name (see [`edge_runtime::cli`]).
pub fn default_shim_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(edge_runtime::cli::ARGV0));
    exe.parent().map(|d| d.join(edge_runtime::cli::ARGV0)).filter(|p| p.exists()).unwrap_or(exe)
}

/// The source address this machine uses to reach `server_host` (no packet is sent: a UDP connect
/// only picks the route), which is the address the server and the other nodes can reach us at.
pub fn detect_node_ip(server_host: &str, port: u16) -> Option<Ipv4Addr> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect((server_host, port)).ok()?;
    match sock.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Host and port of an `https://host:port` URL.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, port) = v6.split_once("]:")?;
        return Some((host.to_string(), port.parse().ok()?));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((authority.to_string(), 443)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        let cases = [
            ("https://10.0.0.1:6443", Some(("10.0.0.1", 6443))),
            ("https://server:6443/", Some(("server", 6443))),
            ("https://server", Some(("server", 443))),
            ("https://[fd00::1]:6443", Some(("fd00::1", 6443))),
            ("http://server:6443", None),
            ("https://server:x", None),
        ];
        for (url, want) in cases {
            assert_eq!(host_port(url), want.map(|(h, p)| (h.to_string(), p)), "{url}");
        }
    }
}
