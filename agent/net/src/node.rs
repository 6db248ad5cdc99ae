//! The node's pod network: sysctls, the `cni0` bridge, `flannel.1`, pods' veths with host-local
//! IPAM, overlay reconcile and cleanup. Generic over [`NetLink`] so it runs against the kernel or
//! the recording fake.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::error::{NetError, Result};
use crate::ipam::{gateway_of, HostLocalIpam};
use crate::netlink::{BridgeSpec, LinkInfo, NetLink, VethSpec, VxlanSpec};
use crate::overlay::{self, plan, Change, Mac, RemoteNode, VXLAN_NAME, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI};

pub const BRIDGE_NAME: &str = "cni0";
pub const POD_IFNAME: &str = "eth0";

/// Sysctls a bridged, routed pod network needs in the node's netns.
pub const SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    // kube-proxy's rules must see traffic between pods on the same bridge.
    ("net.bridge.bridge-nf-call-iptables", "1"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The agent's data dir; this crate keeps its state under `<data_dir>/net`.
    pub data_dir: PathBuf,
    pub pod_cidr: Ipv4Net,
    pub node_ip: Ipv4Addr,
    /// `--flannel-iface`; when absent the link carrying `node_ip` is the uplink.
    pub uplink: Option<String>,
}

/// What a pod got: its address (with prefix), gateway and the node-side veth name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAttachment {
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub host_ifname: String,
}

pub struct NodeNetwork<N> {
    nl: N,
    cfg: NodeConfig,
    ipam: HostLocalIpam,
    mtu: u32,
    vxlan: LinkInfo,
}

impl<N: NetLink> NodeNetwork<N> {
    /// Brings up (idempotently) everything node-wide: sysctls, `cni0`, `flannel.1`.
    pub async fn setup(nl: N, cfg: NodeConfig) -> Result<Self> {
        let cidr = cfg.pod_cidr.trunc();
        let ipam = HostLocalIpam::new(ipam_dir(&cfg.data_dir), cidr)?;
        let uplink = match &cfg.uplink {
            Some(name) => nl.link(name).await?.ok_or_else(|| NetError::LinkNotFound(name.clone()))?,
            None => nl.link_with_address(cfg.node_ip).await?.ok_or(NetError::NoUplink(cfg.node_ip))?,
        };
        let mtu = uplink.mtu.saturating_sub(VXLAN_OVERHEAD);
        for (key, value) in SYSCTLS {
            if !nl.write_sysctl(key, value)? {
                tracing::warn!(key, "sysctl not present in this netns; skipped");
            }
        }
        let gw = gateway_of(cidr);
        let bridge_addr = Ipv4Net::new(gw, cidr.prefix_len()).map_err(|_| NetError::CidrTooSmall(cidr))?;
        nl.ensure_bridge(&BridgeSpec { name: BRIDGE_NAME.into(), address: bridge_addr, mtu }).await?;
        let vtep_address = Ipv4Net::new(overlay::vtep_ip_of(cidr), 32).map_err(|_| NetError::CidrTooSmall(cidr))?;
        let vxlan = nl
            .ensure_vxlan(&VxlanSpec {
                name: VXLAN_NAME.into(),
                vni: VXLAN_VNI,
                port: VXLAN_PORT,
                local: cfg.node_ip,
                uplink_index: uplink.index,
                mtu,
                vtep_address,
            })
            .await?;
        Ok(Self { nl, cfg, ipam, mtu, vxlan })
    }

    pub fn netlink(&self) -> &N {
        &self.nl
    }

    pub fn ipam(&self) -> &HostLocalIpam {
        &self.ipam
    }

    /// Pod MTU: uplink MTU minus the VXLAN overhead.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    pub fn vtep_mac(&self) -> Option<Mac> {
        self.vxlan.mac
    }

    /// What this node must publish for the others to build their entries towards it
    /// (flannel's annotation names).
    pub fn annotations(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (overlay::ANNOTATION_BACKEND_TYPE, "vxlan".to_string()),
            (overlay::ANNOTATION_PUBLIC_IP, self.cfg.node_ip.to_string()),
        ];
        if let Some(mac) = self.vxlan.mac {
            out.push((overlay::ANNOTATION_BACKEND_DATA, overlay::backend_data(VXLAN_VNI, &mac)));
        }
        out
    }

    /// Wires a pod: allocates its address and plugs a veth into its netns. `owner` is a stable
    /// pod key (e.g. the pod UID); a retry after a partial failure starts clean.
    pub async fn add_pod(&self, owner: &str, netns: &Path) -> Result<PodAttachment> {
        let ip = self.ipam.allocate(owner)?;
        let cidr = self.ipam.cidr();
        let address = Ipv4Net::new(ip, cidr.prefix_len()).map_err(|_| NetError::CidrTooSmall(cidr))?;
        let host_ifname = host_ifname(owner);
        let spec = VethSpec {
            host_ifname: host_ifname.clone(),
            peer_tmp_ifname: peer_tmp_ifname(owner),
            bridge: BRIDGE_NAME.into(),
            netns: netns.to_path_buf(),
            container_ifname: POD_IFNAME.into(),
            address,
            gateway: self.ipam.gateway(),
            mtu: self.mtu,
        };
        // A veth left by an earlier failed attempt would make creation fail with EEXIST.
        self.nl.delete_link(&host_ifname).await?;
        self.nl.delete_link(&spec.peer_tmp_ifname).await?;
        if let Err(e) = self.nl.add_veth_into_netns(&spec).await {
            let _ = self.nl.delete_link(&host_ifname).await;
            let _ = self.nl.delete_link(&spec.peer_tmp_ifname).await;
            self.ipam.release(owner)?;
            return Err(e);
        }
        Ok(PodAttachment { address, gateway: spec.gateway, host_ifname })
    }

    /// Unplugs a pod and frees its address; removing an unknown pod is not an error.
    pub async fn remove_pod(&self, owner: &str) -> Result<()> {
        // Deleting the node end removes the pair, also when the pod netns is still around.
        self.nl.delete_link(&host_ifname(owner)).await?;
        self.ipam.release(owner)?;
        Ok(())
    }

    /// Full resync of the overlay towards `remotes` (every node but this one); returns what it
    /// changed. Running it again with the same input changes nothing.
    pub async fn reconcile(&self, remotes: &[RemoteNode]) -> Result<Vec<Change>> {
        let own = self.ipam.cidr();
        // Our own CIDR is reached through cni0; an entry for it on flannel.1 would blackhole it.
        let remotes: Vec<RemoteNode> = remotes.iter().filter(|r| r.pod_cidr.trunc() != own).copied().collect();
        let observed = self.nl.overlay_entries(self.vxlan.index).await?;
        let changes = plan(&remotes, &observed);
        for c in &changes {
            self.nl.apply(self.vxlan.index, c).await?;
        }
        Ok(changes)
    }

    /// Removes everything this crate created on the node: pods' veths, `flannel.1` (its routes,
    /// neighbours and FDB entries go with it), `cni0` and the IPAM state.
    pub async fn cleanup(&self) -> Result<()> {
        for (_, owner) in self.ipam.allocations()? {
            self.nl.delete_link(&host_ifname(&owner)).await?;
        }
        self.nl.delete_link(VXLAN_NAME).await?;
        self.nl.delete_link(BRIDGE_NAME).await?;
        let dir = net_dir(&self.cfg.data_dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetError::io(format!("removing {}", dir.display()), e)),
        }
    }
}

pub fn net_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("net")
}

pub fn ipam_dir(data_dir: &Path) -> PathBuf {
    net_dir(data_dir).join("ipam")
}

/// Node-side veth name: stable per owner so removal needs no state; IFNAMSIZ allows 15 bytes.
pub fn host_ifname(owner: &str) -> String {
    format!("veth{:08x}", fnv1a(owner))
}

fn peer_tmp_ifname(owner: &str) -> String {
    format!("vpod{:08x}", fnv1a(owner))
}

/// FNV-1a: stable across Rust versions, unlike `DefaultHasher`, so names survive upgrades.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fake::{Call, RecordingNetLink};
    use crate::overlay::Entry;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn cfg(dir: &Path) -> NodeConfig {
        NodeConfig {
            data_dir: dir.to_path_buf(),
            pod_cidr: "10.42.1.0/24".parse().unwrap(),
            node_ip: "192.168.77.1".parse().unwrap(),
            uplink: None,
        }
    }

    fn remote(cidr: &str, ip: &str, last: u8) -> RemoteNode {
        RemoteNode { pod_cidr: cidr.parse().unwrap(), node_ip: ip.parse().unwrap(), vtep_mac: [2, 0, 0, 0, 0, last] }
    }

    #[test]
    fn setup_programs_sysctls_bridge_and_vxlan() {
        let d = tempfile::tempdir().unwrap();
        let fake = RecordingNetLink::with_uplink("eth0", "192.168.77.1".parse().unwrap(), 1500);
        let node = block_on(NodeNetwork::setup(fake, cfg(d.path()))).unwrap();
        assert_eq!(node.mtu(), 1450);
        let calls = node.netlink().take_calls();
        assert_eq!(
            calls,
            vec![
                Call::Sysctl("net.ipv4.ip_forward".into(), "1".into()),
                Call::Sysctl("net.bridge.bridge-nf-call-iptables".into(), "1".into()),
                Call::EnsureBridge(BridgeSpec {
                    name: "cni0".into(),
                    address: "10.42.1.1/24".parse().unwrap(),
                    mtu: 1450
                }),
                Call::EnsureVxlan(VxlanSpec {
                    name: "flannel.1".into(),
                    vni: 1,
                    port: 8472,
                    local: "192.168.77.1".parse().unwrap(),
                    uplink_index: 1,
                    mtu: 1450,
                    vtep_address: "10.42.1.0/32".parse().unwrap(),
                }),
            ]
        );
        let ann = node.annotations();
        assert!(ann.contains(&("flannel.alpha.coreos.com/public-ip", "192.168.77.1".to_string())));
        assert!(ann.iter().any(|(k, v)| *k == "flannel.alpha.coreos.com/backend-data" && v.contains("\"VNI\":1")));
    }

    #[test]
    fn setup_uplink_selection() {
        // (configured iface, uplink mtu, expected result: Ok(pod mtu) or Err)
        let cases: &[(Option<&str>, u32, Option<u32>)] = &[
            (None, 1500, Some(1450)),
            (None, 9000, Some(8950)),
            (Some("eth0"), 1400, Some(1350)),
            (Some("wlan0"), 1500, None),
        ];
        for (iface, mtu, want) in cases {
            let d = tempfile::tempdir().unwrap();
            let fake = RecordingNetLink::with_uplink("eth0", "192.168.77.1".parse().unwrap(), *mtu);
            let mut c = cfg(d.path());
            c.uplink = iface.map(String::from);
            let got = block_on(NodeNetwork::setup(fake, c)).map(|n| n.mtu()).ok();
            assert_eq!(got, *want, "{iface:?} {mtu}");
        }
        let d = tempfile::tempdir().unwrap();
        let fake = RecordingNetLink::with_uplink("eth0", "192.168.1.9".parse().unwrap(), 1500);
        assert!(matches!(block_on(NodeNetwork::setup(fake, cfg(d.path()))), Err(NetError::NoUplink(_))));
    }

    #[test]
    fn pods_get_distinct_addresses_and_veths() {
        let d = tempfile::tempdir().unwrap();
        let fake = RecordingNetLink::with_uplink("eth0", "192.168.77.1".parse().unwrap(), 1500);
        let node = block_on(NodeNetwork::setup(fake, cfg(d.path()))).unwrap();
        node.netlink().take_calls();
        let a = block_on(node.add_pod("uid-a", Path::new("/run/netns/a"))).unwrap();
        let b = block_on(node.add_pod("uid-b", Path::new("/proc/42/ns/net"))).unwrap();
        assert_eq!(a.address, "10.42.1.2/24".parse().unwrap());
        assert_eq!(b.address, "10.42.1.3/24".parse().unwrap());
        assert_eq!(a.gateway, "10.42.1.1".parse::<Ipv4Addr>().unwrap());
        assert_ne!(a.host_ifname, b.host_ifname);
        assert!(a.host_ifname.len() <= 15);
        let calls = node.netlink().take_calls();
        let veths: Vec<&VethSpec> =
            calls.iter().filter_map(|c| if let Call::AddVeth(s) = c { Some(s) } else { None }).collect();
        assert_eq!(veths.len(), 2);
        assert_eq!(veths[1].netns, PathBuf::from("/proc/42/ns/net"));
        assert_eq!(veths[1].container_ifname, "eth0");
        assert_eq!(veths[1].mtu, 1450);
        assert_eq!(veths[1].bridge, "cni0");

        block_on(node.remove_pod("uid-a")).unwrap();
        assert_eq!(node.netlink().take_calls(), vec![Call::DeleteLink(a.host_ifname.clone())]);
        assert_eq!(node.ipam().lookup("uid-a").unwrap(), None);
        // Removing again is harmless.
        block_on(node.remove_pod("uid-a")).unwrap();
    }

    #[test]
    fn reconcile_repairs_drift_and_skips_own_cidr() {
        let d = tempfile::tempdir().unwrap();
        let fake = RecordingNetLink::with_uplink("eth0", "192.168.77.1".parse().unwrap(), 1500);
        let node = block_on(NodeNetwork::setup(fake, cfg(d.path()))).unwrap();
        let own = remote("10.42.1.0/24", "192.168.77.1", 1);
        let n2 = remote("10.42.2.0/24", "192.168.77.2", 2);
        let n3 = remote("10.42.3.0/24", "192.168.77.3", 3);

        assert_eq!(block_on(node.reconcile(&[own, n2, n3])).unwrap().len(), 6);
        assert_eq!(block_on(node.reconcile(&[own, n2, n3])).unwrap(), vec![]);

        let route2 = n2.entries()[2];
        node.netlink().state().entries.remove(&route2);
        assert_eq!(block_on(node.reconcile(&[n2, n3])).unwrap(), vec![Change::Add(route2)]);

        let gone = block_on(node.reconcile(&[n2])).unwrap();
        assert_eq!(gone, n3.entries().iter().map(|e| Change::Del(*e)).collect::<Vec<_>>());
        let left: Vec<Entry> = node.netlink().state().entries.iter().copied().collect();
        let mut want = n2.entries().to_vec();
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn cleanup_removes_everything_created() {
        let d = tempfile::tempdir().unwrap();
        let fake = RecordingNetLink::with_uplink("eth0", "192.168.77.1".parse().unwrap(), 1500);
        let node = block_on(NodeNetwork::setup(fake, cfg(d.path()))).unwrap();
        let a = block_on(node.add_pod("uid-a", Path::new("/run/netns/a"))).unwrap();
        block_on(node.reconcile(&[remote("10.42.2.0/24", "192.168.77.2", 2)])).unwrap();
        assert!(ipam_dir(d.path()).exists());
        assert_eq!(node.netlink().state().links.len(), 4);
        block_on(node.cleanup()).unwrap();
        let s = node.netlink().state();
        assert_eq!(s.links.keys().cloned().collect::<Vec<_>>(), vec!["eth0".to_string()]);
        assert!(s.entries.is_empty());
        assert!(s.calls.contains(&Call::DeleteLink(a.host_ifname.clone())));
        assert!(!net_dir(d.path()).exists());
    }
}
