//! Egress masquerade, as flannel sets it up: traffic from pods to anything outside the cluster CIDR
//! leaves with the node's address; pod-to-pod traffic (also across nodes) keeps the pod's source
//! address. One nftables table of its own, replaced atomically over netlink (edge-nft).

use edge_nft::{priority, Batch, Chain, ChainType, Family, Hook, NftSocket, Rule, Table};
use ipnet::Ipv4Net;

pub const TABLE: &str = "edge-egress";

/// The batch that (re)creates the table: add (so the delete cannot fail), delete, add anew.
pub fn batch(cluster_cidr: Ipv4Net) -> Batch {
    let t = Table::new(Family::Ip, TABLE);
    let post = Chain::base(&t, "postrouting", ChainType::Nat, Hook::Postrouting, priority::SRCNAT);
    let (net, len) = (cluster_cidr.network(), cluster_cidr.prefix_len());
    let mut b = Batch::new();
    b.add_table(&t).delete_table(&t).add_table(&t).add_chain(&post);
    b.add_rule(
        &Rule::new(&post).match_saddr_prefix(net, len, true).match_daddr_prefix(net, len, false).masquerade(true),
    );
    b
}

pub fn apply(cluster_cidr: Ipv4Net) -> Result<(), edge_nft::Error> {
    NftSocket::new()?.apply(&batch(cluster_cidr))
}

/// Removes the table (uninstall); a missing table is fine.
pub fn remove() -> Result<(), edge_nft::Error> {
    let t = Table::new(Family::Ip, TABLE);
    let mut b = Batch::new();
    b.add_table(&t).delete_table(&t);
    NftSocket::new()?.apply(&b)
}
