//! The real [`NetLink`] over rtnetlink, plus the namespace switch used to program pods.
//!
//! A netlink socket belongs to the network namespace its creating thread was in at `socket()`
//! time and stays there. So to program another namespace we `setns()` the current thread,
//! open a connection, and switch back at once, with no `.await` in between (a task may move to
//! another thread across an await). The connection task then runs on any runtime thread.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo as LinkInfoNla, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use netlink_packet_route::AddressFamily;
use nix::sched::CloneFlags;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder};

use crate::error::{NetError, Result};
use crate::netlink::{BridgeSpec, LinkInfo, NetLink, VethSpec, VxlanSpec};
use crate::overlay::{Change, Entry, Mac};

pub struct RtNetlink {
    handle: Handle,
    /// The namespace this connection is bound to, when it is not the calling thread's own.
    netns: Option<PathBuf>,
}

impl RtNetlink {
    /// Connects in the calling thread's network namespace. Needs a tokio runtime.
    pub fn new() -> Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| NetError::io("opening netlink socket", e))?;
        tokio::spawn(conn);
        Ok(Self { handle, netns: None })
    }

    /// Connects in the namespace at `path` (`/run/netns/X`, `/proc/PID/ns/net`) without moving
    /// the calling thread for longer than the socket creation.
    pub fn in_netns(path: &Path) -> Result<Self> {
        let (conn, handle, _) = with_netns(path, rtnetlink::new_connection)?
            .map_err(|e| NetError::io(format!("opening netlink socket in {}", path.display()), e))?;
        tokio::spawn(conn);
        Ok(Self { handle, netns: Some(path.to_path_buf()) })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    async fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>> {
        let res = self.handle.link().get().match_index(index).execute().try_next().await;
        absent_as_none(res.map(|m| m.map(link_info)))
    }

    async fn require_link(&self, name: &str) -> Result<LinkInfo> {
        self.link(name).await?.ok_or_else(|| NetError::LinkNotFound(name.to_string()))
    }

    async fn set_up_mtu(&self, index: u32, mtu: Option<u32>) -> Result<()> {
        let mut b = LinkUnspec::new_with_index(index).up();
        if let Some(mtu) = mtu {
            b = b.mtu(mtu);
        }
        Ok(self.handle.link().set(b.build()).execute().await?)
    }

    async fn ensure_address(&self, index: u32, addr: Ipv4Net) -> Result<()> {
        Ok(self.handle.address().add(index, IpAddr::V4(addr.addr()), addr.prefix_len()).replace().execute().await?)
    }

    async fn routes_on(&self, index: u32) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut dump = self.handle.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
        while let Some(r) = dump.try_next().await? {
            if route_table(&r) != u32::from(RouteHeader::RT_TABLE_MAIN) {
                continue;
            }
            let mut oif = None;
            let mut dst = Ipv4Addr::UNSPECIFIED;
            let mut gateway = None;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
                    _ => {}
                }
            }
            // Only gatewayed routes are ours; anything else on the device is left alone.
            if oif != Some(index) {
                continue;
            }
            if let (Some(gateway), Ok(dst)) = (gateway, Ipv4Net::new(dst, r.header.destination_prefix_length)) {
                out.push(Entry::Route { dst, gateway });
            }
        }
        Ok(out)
    }

    async fn neighbours_on(&self, index: u32, family: AddressFamily) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut dump = self.handle.neighbours().get().set_address_family(family).execute();
        while let Some(n) = dump.try_next().await? {
            if n.header.ifindex != index {
                continue;
            }
            let mut ip = None;
            let mut mac = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(d)) => ip = Some(*d),
                    // For AF_BRIDGE (FDB) entries the parser cannot tell the address family
                    // from the header and hands back raw bytes.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                        ip = <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from)
                    }
                    NeighbourAttribute::LinkLayerAddress(l) => mac = mac_of(l),
                    _ => {}
                }
            }
            let (Some(ip), Some(mac)) = (ip, mac) else {
                continue;
            };
            match family {
                AddressFamily::Bridge => out.push(Entry::Fdb { mac, dst: ip }),
                // Resolved-by-ARP entries are the kernel's; only permanent ones are managed.
                _ if n.header.state == NeighbourState::Permanent => out.push(Entry::Neighbour { ip, mac }),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Runs `f` with the calling thread inside the network namespace at `path`, then switches back.
/// `f` must not block on async work: it runs on whatever thread called this.
pub fn with_netns<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T> {
    let ns_err = |source| NetError::Netns { path: path.display().to_string(), source };
    let own = File::open("/proc/thread-self/ns/net").map_err(|e| NetError::io("opening own netns", e))?;
    let target = File::open(path).map_err(|e| NetError::io(format!("opening netns {}", path.display()), e))?;
    nix::sched::setns(&target, CloneFlags::CLONE_NEWNET).map_err(ns_err)?;
    let out = f();
    nix::sched::setns(&own, CloneFlags::CLONE_NEWNET)
        .map_err(|source| NetError::Netns { path: "/proc/thread-self/ns/net (switching back)".into(), source })?;
    Ok(out)
}

fn write_proc_sys(key: &str, value: &str) -> Result<bool> {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    if !path.exists() {
        return Ok(false);
    }
    std::fs::write(&path, value).map_err(|e| NetError::io(format!("writing {}", path.display()), e))?;
    Ok(true)
}

fn route_table(r: &RouteMessage) -> u32 {
    // Tables above 255 only appear in the attribute; the header then says RT_TABLE_UNSPEC.
    r.attributes
        .iter()
        .find_map(|a| if let RouteAttribute::Table(t) = a { Some(*t) } else { None })
        .unwrap_or(u32::from(r.header.table))
}

fn mac_of(bytes: &[u8]) -> Option<Mac> {
    bytes.try_into().ok()
}

fn link_info(m: LinkMessage) -> LinkInfo {
    let mut info = LinkInfo { index: m.header.index, name: String::new(), mtu: 0, mac: None };
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => info.name = n,
            LinkAttribute::Mtu(v) => info.mtu = v,
            LinkAttribute::Address(a) => info.mac = mac_of(&a),
            _ => {}
        }
    }
    info
}

/// Maps "no such device" to `None`: the kernel answers a lookup of a missing link with ENODEV.
fn absent_as_none<T>(res: std::result::Result<Option<T>, rtnetlink::Error>) -> Result<Option<T>> {
    match res {
        Ok(v) => Ok(v),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ENODEV => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == errno)
}

/// flannel's device: `.dev(ifindex)` binds it to the uplink (`.link()` would be IFLA_LINK of the
/// outer message, which the kernel ignores for vxlan); learning off because every remote MAC is
/// programmed from the API, never learned from the wire.
fn vxlan_message(spec: &VxlanSpec) -> LinkMessage {
    LinkVxlan::new(&spec.name, spec.vni)
        .dev(spec.uplink_index)
        .local(spec.local)
        .port(spec.port)
        .learning(false)
        .mtu(spec.mtu)
        .up()
        .build()
}

/// Whether an existing device has the VXLAN parameters `spec` asks for.
fn vxlan_matches(msg: &LinkMessage, spec: &VxlanSpec) -> bool {
    let mut want = [
        InfoVxlan::Id(spec.vni),
        InfoVxlan::Local(spec.local),
        InfoVxlan::Port(spec.port),
        InfoVxlan::Link(spec.uplink_index),
        InfoVxlan::Learning(false),
    ]
    .map(|w| (w, false));
    for a in &msg.attributes {
        let LinkAttribute::LinkInfo(infos) = a else {
            continue;
        };
        for i in infos {
            if let LinkInfoNla::Data(InfoData::Vxlan(v)) = i {
                for (w, seen) in want.iter_mut() {
                    *seen |= v.contains(w);
                }
            }
        }
    }
    want.iter().all(|(_, seen)| *seen)
}

fn route_message(index: u32, dst: Ipv4Net, gateway: Ipv4Addr) -> RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst.network(), dst.prefix_len())
        .gateway(gateway)
        .output_interface(index)
        .onlink()
        .build()
}

impl NetLink for RtNetlink {
    async fn link(&self, name: &str) -> Result<Option<LinkInfo>> {
        let res = self.handle.link().get().match_name(name.to_string()).execute().try_next().await;
        absent_as_none(res.map(|m| m.map(link_info)))
    }

    async fn link_with_address(&self, ip: Ipv4Addr) -> Result<Option<LinkInfo>> {
        let mut dump = self.handle.address().get().execute();
        while let Some(a) = dump.try_next().await? {
            let hit = a.attributes.iter().any(|attr| {
                matches!(attr, AddressAttribute::Address(IpAddr::V4(x)) | AddressAttribute::Local(IpAddr::V4(x)) if *x == ip)
            });
            if hit {
                return self.link_by_index(a.header.index).await;
            }
        }
        Ok(None)
    }

    async fn ensure_bridge(&self, spec: &BridgeSpec) -> Result<LinkInfo> {
        if self.link(&spec.name).await?.is_none() {
            let msg = LinkBridge::new(&spec.name).mtu(spec.mtu).up().build();
            match self.handle.link().add(msg).execute().await {
                Err(e) if !is_errno(&e, libc::EEXIST) => return Err(e.into()),
                _ => {}
            }
        }
        let link = self.require_link(&spec.name).await?;
        self.set_up_mtu(link.index, Some(spec.mtu)).await?;
        self.ensure_address(link.index, spec.address).await?;
        Ok(link)
    }

    async fn add_veth_into_netns(&self, spec: &VethSpec) -> Result<()> {
        let target =
            File::open(&spec.netns).map_err(|e| NetError::io(format!("opening netns {}", spec.netns.display()), e))?;
        let msg = LinkVeth::new(&spec.host_ifname, &spec.peer_tmp_ifname).mtu(spec.mtu).build();
        self.handle.link().add(msg).execute().await?;
        let peer = self.require_link(&spec.peer_tmp_ifname).await?;
        let mv = LinkUnspec::new_with_index(peer.index).setns_by_fd(target.as_raw_fd()).build();
        self.handle.link().set(mv).execute().await?;

        let bridge = self.require_link(&spec.bridge).await?;
        let host = self.require_link(&spec.host_ifname).await?;
        let join = LinkUnspec::new_with_index(host.index).controller(bridge.index).mtu(spec.mtu).up().build();
        self.handle.link().set(join).execute().await?;
        // Hairpin lets a pod reach itself through a Service VIP that load-balances back to it.
        self.handle.link().set_port(LinkBridgePort::new(host.index).hairpin(true).build()).execute().await?;

        let pod = RtNetlink::in_netns(&spec.netns)?;
        let peer = pod.require_link(&spec.peer_tmp_ifname).await?;
        // The kernel renames before it applies flags, so one message renames and brings it up.
        let cfg = LinkUnspec::new_with_index(peer.index).name(spec.container_ifname.clone()).mtu(spec.mtu).up().build();
        pod.handle.link().set(cfg).execute().await?;
        pod.ensure_address(peer.index, spec.address).await?;
        if let Some(lo) = pod.link("lo").await? {
            pod.set_up_mtu(lo.index, None).await?;
        }
        let default = RouteMessageBuilder::<Ipv4Addr>::new().gateway(spec.gateway).output_interface(peer.index).build();
        pod.handle.route().add(default).replace().execute().await?;
        Ok(())
    }

    async fn delete_link(&self, name: &str) -> Result<bool> {
        let Some(link) = self.link(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(link.index).execute().await {
            Ok(()) => Ok(true),
            // Gone in between, e.g. its peer's namespace was destroyed.
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn ensure_vxlan(&self, spec: &VxlanSpec) -> Result<LinkInfo> {
        let existing = self.handle.link().get().match_name(spec.name.clone()).execute().try_next().await;
        if let Some(msg) = absent_as_none(existing)? {
            // Like flannel: a device left with other parameters (node IP or uplink changed) is
            // replaced, since VNI, local address and port cannot be changed in place.
            if !vxlan_matches(&msg, spec) {
                tracing::info!(name = %spec.name, "replacing incompatible vxlan device");
                self.handle.link().del(msg.header.index).execute().await?;
            }
        }
        if self.link(&spec.name).await?.is_none() {
            match self.handle.link().add(vxlan_message(spec)).execute().await {
                Err(e) if !is_errno(&e, libc::EEXIST) => return Err(e.into()),
                _ => {}
            }
        }
        let link = self.require_link(&spec.name).await?;
        self.set_up_mtu(link.index, Some(spec.mtu)).await?;
        self.ensure_address(link.index, spec.vtep_address).await?;
        self.require_link(&spec.name).await
    }

    async fn overlay_entries(&self, vxlan_index: u32) -> Result<Vec<Entry>> {
        let mut out = self.neighbours_on(vxlan_index, AddressFamily::Inet).await?;
        out.extend(self.neighbours_on(vxlan_index, AddressFamily::Bridge).await?);
        out.extend(self.routes_on(vxlan_index).await?);
        Ok(out)
    }

    async fn apply(&self, idx: u32, change: &Change) -> Result<()> {
        let nb = self.handle.neighbours();
        match *change {
            Change::Add(Entry::Neighbour { ip, mac }) => {
                nb.add(idx, IpAddr::V4(ip))
                    .link_layer_address(&mac)
                    .state(NeighbourState::Permanent)
                    .replace()
                    .execute()
                    .await?
            }
            Change::Add(Entry::Fdb { mac, dst }) => {
                nb.add_bridge(idx, &mac)
                    .destination(IpAddr::V4(dst))
                    .flags(NeighbourFlags::Own)
                    .replace()
                    .execute()
                    .await?
            }
            Change::Add(Entry::Route { dst, gateway }) => {
                self.handle.route().add(route_message(idx, dst, gateway)).replace().execute().await?
            }
            Change::Del(Entry::Neighbour { ip, .. }) => {
                let mut m = NeighbourMessage::default();
                m.header.family = AddressFamily::Inet;
                m.header.ifindex = idx;
                m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
                nb.del(m).execute().await?
            }
            Change::Del(Entry::Fdb { mac, dst }) => {
                let mut m = NeighbourMessage::default();
                m.header.family = AddressFamily::Bridge;
                m.header.ifindex = idx;
                m.header.flags = NeighbourFlags::Own;
                m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
                m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
                nb.del(m).execute().await?
            }
            Change::Del(Entry::Route { dst, gateway }) => {
                self.handle.route().del(route_message(idx, dst, gateway)).execute().await?
            }
        }
        Ok(())
    }

    fn write_sysctl(&self, key: &str, value: &str) -> Result<bool> {
        match &self.netns {
            Some(path) => with_netns(path, || write_proc_sys(key, value))?,
            None => write_proc_sys(key, value),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netlink_packet_route::route::RouteFlags;

    fn spec() -> VxlanSpec {
        VxlanSpec {
            name: "flannel.1".into(),
            vni: 1,
            port: 8472,
            local: "192.168.77.1".parse().unwrap(),
            uplink_index: 2,
            mtu: 1450,
            vtep_address: "10.42.1.0/32".parse().unwrap(),
        }
    }

    #[test]
    fn vxlan_compatibility_table() {
        let existing = vxlan_message(&spec());
        let cases: Vec<(&str, VxlanSpec, bool)> = vec![
            ("same", spec(), true),
            ("mtu differs only", VxlanSpec { mtu: 1400, ..spec() }, true),
            ("node ip changed", VxlanSpec { local: "192.168.77.9".parse().unwrap(), ..spec() }, false),
            ("uplink changed", VxlanSpec { uplink_index: 3, ..spec() }, false),
            ("vni changed", VxlanSpec { vni: 2, ..spec() }, false),
            ("port changed", VxlanSpec { port: 4789, ..spec() }, false),
        ];
        for (name, want_spec, want) in cases {
            assert_eq!(vxlan_matches(&existing, &want_spec), want, "{name}");
        }
        // A device that is not vxlan at all never matches.
        assert!(!vxlan_matches(&LinkBridge::new("flannel.1").build(), &spec()));
    }

    #[test]
    fn overlay_route_is_onlink_via_vtep_on_flannel() {
        let m = route_message(7, "10.42.2.0/24".parse().unwrap(), "10.42.2.0".parse().unwrap());
        assert_eq!(m.header.destination_prefix_length, 24);
        assert!(m.header.flags.contains(RouteFlags::Onlink));
        assert_eq!(route_table(&m), u32::from(RouteHeader::RT_TABLE_MAIN));
        for want in [
            RouteAttribute::Destination(RouteAddress::Inet("10.42.2.0".parse().unwrap())),
            RouteAttribute::Gateway(RouteAddress::Inet("10.42.2.0".parse().unwrap())),
            RouteAttribute::Oif(7),
        ] {
            assert!(m.attributes.contains(&want), "missing {want:?} in {:?}", m.attributes);
        }
    }

    #[test]
    fn link_info_reads_name_mtu_mac() {
        let m = LinkUnspec::new_with_index(5).name("cni0").mtu(1450).address(vec![2, 0, 0, 0, 0, 9]).build();
        assert_eq!(link_info(m), LinkInfo { index: 5, name: "cni0".into(), mtu: 1450, mac: Some([2, 0, 0, 0, 0, 9]) });
        let m = LinkUnspec::new_with_index(1).name("lo").address(vec![0; 3]).build();
        assert_eq!(link_info(m).mac, None);
    }
}
