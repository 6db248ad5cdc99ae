//! The narrow kernel interface the node network needs, so planners can be tested against a
//! recording fake ([`crate::fake::RecordingNetLink`]) and run for real over rtnetlink
//! ([`crate::rtnl::RtNetlink`]).
//!
//! Every call acts on the network namespace the implementation was opened in (the node's), except
//! [`NetLink::add_veth_into_netns`], which also programs the pod's namespace.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

use crate::error::Result;
use crate::overlay::{Change, Entry, Mac};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    pub mac: Option<Mac>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    /// Gateway address with the pod CIDR's prefix length (e.g. 10.42.1.1/24).
    pub address: Ipv4Net,
    pub mtu: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    /// Name of the end that stays on the node and joins the bridge.
    pub host_ifname: String,
    /// Temporary name of the pod end while it still lives on the node.
    pub peer_tmp_ifname: String,
    pub bridge: String,
    /// The pod's network namespace: `/run/netns/NAME` or `/proc/PID/ns/net`.
    pub netns: PathBuf,
    /// Name of the pod end inside the pod (`eth0`).
    pub container_ifname: String,
    /// Pod address with the pod CIDR's prefix length.
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    /// Outer source address: the node IP.
    pub local: Ipv4Addr,
    /// The uplink carrying the node IP (`.dev(ifindex)` of the VXLAN device).
    pub uplink_index: u32,
    pub mtu: u32,
    /// This node's VTEP address as a /32 (flannel puts the pod CIDR's `.0` on flannel.1).
    pub vtep_address: Ipv4Net,
}

pub trait NetLink {
    fn link(&self, name: &str) -> impl Future<Output = Result<Option<LinkInfo>>>;
    /// The link carrying `ip`: the uplink, when no interface is configured.
    fn link_with_address(&self, ip: Ipv4Addr) -> impl Future<Output = Result<Option<LinkInfo>>>;
    /// Creates the bridge if missing; sets its address, MTU and up state either way.
    fn ensure_bridge(&self, spec: &BridgeSpec) -> impl Future<Output = Result<LinkInfo>>;
    /// Creates a veth pair, moves one end into the pod netns and configures both ends: pod side
    /// renamed, addressed, up, default route via the gateway, `lo` up; node side in the bridge
    /// with hairpin on.
    fn add_veth_into_netns(&self, spec: &VethSpec) -> impl Future<Output = Result<()>>;
    /// Deletes a link by name; `Ok(false)` when it did not exist.
    fn delete_link(&self, name: &str) -> impl Future<Output = Result<bool>>;
    fn ensure_vxlan(&self, spec: &VxlanSpec) -> impl Future<Output = Result<LinkInfo>>;
    /// The routes, permanent neighbours and FDB entries on the VXLAN device.
    fn overlay_entries(&self, vxlan_index: u32) -> impl Future<Output = Result<Vec<Entry>>>;
    fn apply(&self, vxlan_index: u32, change: &Change) -> impl Future<Output = Result<()>>;
    /// Writes `/proc/sys/<key with dots as slashes>` in the node's netns. Missing keys (e.g.
    /// bridge-nf-call-iptables without br_netfilter) are skipped, returning `Ok(false)`.
    fn write_sysctl(&self, key: &str, value: &str) -> Result<bool>;
}
