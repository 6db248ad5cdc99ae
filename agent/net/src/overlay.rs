//! The VXLAN overlay model (flannel's `vxlan` backend) and its pure reconcile planner.
//!
//! For every remote node flannel keeps exactly three kernel entries on `flannel.1`:
//! a route to the node's pod CIDR via its VTEP address (onlink), a permanent neighbour
//! VTEP address → VTEP MAC, and an FDB entry VTEP MAC → node IP. The VTEP address is the
//! network address (`.0`) of the node's pod CIDR, as flannel does. [`plan`] compares what
//! should exist with what the kernel shows and yields the changes; it is idempotent, and a full
//! resync repairs drift.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub const VXLAN_NAME: &str = "flannel.1";
pub const VXLAN_VNI: u32 = 1;
pub const VXLAN_PORT: u16 = 8472;
/// Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers.
pub const VXLAN_OVERHEAD: u32 = 50;

/// Flannel's node annotations: what a node publishes so that others can reach its pods.
pub const ANNOTATION_BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
pub const ANNOTATION_BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
pub const ANNOTATION_PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";

pub type Mac = [u8; 6];

/// A node other than this one, as learned from its Node object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RemoteNode {
    pub pod_cidr: Ipv4Net,
    /// The node's address on the LAN: the outer destination of its VXLAN packets.
    pub node_ip: Ipv4Addr,
    pub vtep_mac: Mac,
}

impl RemoteNode {
    pub fn vtep_ip(&self) -> Ipv4Addr {
        vtep_ip_of(self.pod_cidr)
    }

    /// The three entries flannel keeps for this node.
    pub fn entries(&self) -> [Entry; 3] {
        let vtep = self.vtep_ip();
        [
            Entry::Neighbour { ip: vtep, mac: self.vtep_mac },
            Entry::Fdb { mac: self.vtep_mac, dst: self.node_ip },
            Entry::Route { dst: self.pod_cidr.trunc(), gateway: vtep },
        ]
    }
}

/// The VTEP address of a node: the network address of its pod CIDR (flannel's choice).
pub fn vtep_ip_of(cidr: Ipv4Net) -> Ipv4Addr {
    cidr.network()
}

/// One kernel entry on `flannel.1` that this module owns.
///
/// Ordering puts neighbours and FDB entries before routes, so a sorted list of additions installs
/// the layer-2 path before traffic is routed onto it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entry {
    Neighbour { ip: Ipv4Addr, mac: Mac },
    Fdb { mac: Mac, dst: Ipv4Addr },
    Route { dst: Ipv4Net, gateway: Ipv4Addr },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add(Entry),
    Del(Entry),
}

/// Changes that turn `observed` into the entries `desired` calls for.
///
/// Deletions come first: a node whose MAC changed must lose its old neighbour/FDB entry before
/// the new one is added, since the kernel keys neighbours by IP and FDB entries by MAC.
pub fn plan(desired: &[RemoteNode], observed: &[Entry]) -> Vec<Change> {
    let want: BTreeSet<Entry> = desired.iter().flat_map(|n| n.entries()).collect();
    let have: BTreeSet<Entry> = observed.iter().copied().collect();
    let dels = have.difference(&want).map(|e| Change::Del(*e));
    let adds = want.difference(&have).map(|e| Change::Add(*e));
    dels.chain(adds).collect()
}

/// Formats a MAC the way flannel's `backend-data` annotation and `ip` print it.
pub fn format_mac(mac: &Mac) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Flannel's `backend-data` annotation value: `{"VNI":1,"VtepMAC":"aa:bb:..."}`.
pub fn backend_data(vni: u32, mac: &Mac) -> String {
    serde_json::json!({ "VNI": vni, "VtepMAC": format_mac(mac) }).to_string()
}

/// Reads a remote node from the annotations flannel publishes plus the node's `spec.podCIDR`.
pub fn remote_from_annotations(pod_cidr: Ipv4Net, public_ip: &str, backend_data: &str) -> Option<RemoteNode> {
    let v: serde_json::Value = serde_json::from_str(backend_data).ok()?;
    let mac = parse_mac(v.get("VtepMAC")?.as_str()?)?;
    Some(RemoteNode { pod_cidr, node_ip: public_ip.parse().ok()?, vtep_mac: mac })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn node(cidr: &str, ip: &str, last: u8) -> RemoteNode {
        RemoteNode { pod_cidr: cidr.parse().unwrap(), node_ip: ip.parse().unwrap(), vtep_mac: [0x0a, 0, 0, 0, 0, last] }
    }

    #[test]
    fn entries_follow_flannel() {
        let n = node("10.42.2.0/24", "192.168.77.2", 2);
        let vtep: Ipv4Addr = "10.42.2.0".parse().unwrap();
        assert_eq!(
            n.entries(),
            [
                Entry::Neighbour { ip: vtep, mac: n.vtep_mac },
                Entry::Fdb { mac: n.vtep_mac, dst: n.node_ip },
                Entry::Route { dst: n.pod_cidr, gateway: vtep },
            ]
        );
    }

    #[test]
    fn plan_table() {
        let a = node("10.42.2.0/24", "192.168.77.2", 2);
        let b = node("10.42.3.0/24", "192.168.77.3", 3);
        let b_new_mac = RemoteNode { vtep_mac: [0x0a, 0, 0, 0, 0, 0x33], ..b };
        let b_moved = RemoteNode { node_ip: "192.168.77.33".parse().unwrap(), ..b };
        let [an, af, ar] = a.entries();
        let [bn, bf, br] = b.entries();
        let [bn2, bf2, _] = b_new_mac.entries();
        let [_, bf3, _] = b_moved.entries();
        let stranger = Entry::Route { dst: "10.42.9.0/24".parse().unwrap(), gateway: "10.42.9.0".parse().unwrap() };
        use Change::{Add, Del};
        // (name, desired nodes, observed entries, expected changes)
        type Case = (&'static str, Vec<RemoteNode>, Vec<Entry>, Vec<Change>);
        let cases: Vec<Case> = vec![
            ("nothing to do", vec![], vec![], vec![]),
            ("fresh node", vec![a], vec![], vec![Add(an), Add(af), Add(ar)]),
            ("converged is idempotent", vec![a, b], vec![ar, bf, an, br, af, bn], vec![]),
            ("deleted route comes back", vec![a, b], vec![an, af, bn, bf, br], vec![Add(ar)]),
            ("removed node's entries go", vec![a], vec![an, af, ar, bn, bf, br], vec![Del(bn), Del(bf), Del(br)]),
            ("unknown entry on flannel.1 goes", vec![], vec![stranger], vec![Del(stranger)]),
            (
                "mac change replaces neighbour and fdb",
                vec![b_new_mac],
                vec![bn, bf, br],
                vec![Del(bn), Del(bf), Add(bn2), Add(bf2)],
            ),
            ("node ip change replaces fdb only", vec![b_moved], vec![bn, bf, br], vec![Del(bf), Add(bf3)]),
            ("duplicate desired nodes collapse", vec![a, a], vec![], vec![Add(an), Add(af), Add(ar)]),
        ];
        for (name, desired, observed, want) in cases {
            assert_eq!(plan(&desired, &observed), want, "{name}");
        }
    }

    #[test]
    fn plan_then_apply_converges() {
        // Applying a plan to the observed set and planning again must yield nothing.
        let desired = vec![node("10.42.2.0/24", "192.168.77.2", 2), node("10.42.4.0/24", "192.168.77.4", 4)];
        let mut observed: Vec<Entry> = node("10.42.3.0/24", "192.168.77.3", 3).entries().to_vec();
        observed.push(desired[0].entries()[2]);
        for c in plan(&desired, &observed) {
            match c {
                Change::Add(e) => observed.push(e),
                Change::Del(e) => observed.retain(|x| *x != e),
            }
        }
        assert_eq!(plan(&desired, &observed), vec![]);
        assert_eq!(observed.len(), 6);
    }

    #[test]
    fn annotations_round_trip() {
        let mac = [0xde, 0xad, 0xbe, 0xef, 0x00, 0x01];
        let data = backend_data(VXLAN_VNI, &mac);
        assert_eq!(data, r#"{"VNI":1,"VtepMAC":"de:ad:be:ef:00:01"}"#);
        let n = remote_from_annotations("10.42.5.0/24".parse().unwrap(), "192.168.1.5", &data).unwrap();
        assert_eq!(n.vtep_mac, mac);
        assert_eq!(n.vtep_ip(), "10.42.5.0".parse::<Ipv4Addr>().unwrap());
        for bad in ["", "de:ad:be:ef:00", "de:ad:be:ef:00:01:02", "zz:ad:be:ef:00:01", "dea:d:be:ef:00:01"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert!(remote_from_annotations("10.42.5.0/24".parse().unwrap(), "nope", &data).is_none());
    }
}
