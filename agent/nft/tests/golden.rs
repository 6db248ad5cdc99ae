//! Byte-for-byte comparison with what `nft` sends for the same ruleset (see data/README.md).
//! No privileges needed: nothing is sent to the kernel.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use edge_nft::sys::NFTA_SET_USERDATA;
use edge_nft::*;

fn capture() -> Vec<(u16, Vec<u8>)> {
    include_str!("data/kube_proxy_like.hex")
        .lines()
        .map(|l| {
            let (ty, hex) = l.split_once(' ').unwrap();
            let bytes = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            (ty.parse().unwrap(), bytes)
        })
        .collect()
}

/// The same statements as data/kube_proxy_like.nft, in the order nft emits them.
fn build() -> Batch {
    let t = Table::new(Family::Inet, "edge-proxy");
    let pre = Chain::base(&t, "nat-prerouting", ChainType::Nat, Hook::Prerouting, priority::DSTNAT);
    let fwd =
        Chain::base(&t, "filter-fwd", ChainType::Filter, Hook::Forward, priority::FILTER).with_policy(Policy::Drop);
    let post = Chain::base(&t, "nat-postrouting", ChainType::Nat, Hook::Postrouting, priority::SRCNAT);
    let svc_a = Chain::new(&t, "svc-a");
    let ep_a = Chain::new(&t, "ep-a");
    let ep_b = Chain::new(&t, "ep-b");
    let rej = Chain::new(&t, "rej");
    let aff = Set::new(&t, "aff", &[KeyType::Ipv4Addr]).dynamic().with_timeout(Duration::from_secs(10800));
    let services = Set::verdict_map(&t, "service-ips", &[KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService]);

    let mut b = Batch::new();
    b.add_table(&t);
    for c in [&pre, &fwd, &post, &svc_a, &ep_a, &ep_b, &rej] {
        b.add_chain(c);
    }
    let aff_ref = b.add_set(&aff);
    let svc_ref = b.add_set(&services);
    let key = Key::new().addr(Ipv4Addr::new(10, 43, 0, 1).into()).proto(proto::TCP).port(443);
    b.add_elements(&services, &[Elem::verdict(key, Verdict::Goto("svc-a".into()))]);
    b.add_rule(&Rule::new(&pre).vmap_daddr_proto_dport(&svc_ref, false));
    b.add_rule(&Rule::new(&fwd).match_ct_state(ct_state::NEW).counter());
    b.add_rule(&Rule::new(&post).match_mark(0x4000, 0, true).ret());
    b.add_rule(&Rule::new(&post).set_mark_xor(0x4000));
    b.add_rule(&Rule::new(&post).masquerade(true));
    b.add_rule(&Rule::new(&svc_a).match_saddr_in(&aff_ref, false).goto("ep-a"));
    let pick = b.add_anonymous_map(
        &t,
        &[KeyType::HostU32],
        vec![
            (Key::new().host_u32(0), Verdict::Goto("ep-a".into())),
            (Key::new().host_u32(1), Verdict::Goto("ep-b".into())),
        ],
    );
    b.add_rule(&Rule::new(&svc_a).numgen_vmap(2, &pick));
    b.add_rule(&Rule::new(&ep_a).update_saddr_in(&aff_ref, false));
    let ep_a_ip: IpAddr = Ipv4Addr::new(10, 42, 0, 5).into();
    b.add_rule(&Rule::new(&ep_a).match_saddr(ep_a_ip).set_mark_or(0x4000));
    b.add_rule(&Rule::new(&ep_a).match_l4proto(proto::TCP).dnat(SocketAddr::new(ep_a_ip, 8080)));
    b.add_rule(&Rule::new(&ep_b).match_l4proto(proto::TCP).dnat(SocketAddr::from(([10, 42, 1, 5], 8080))));
    b.add_rule(&Rule::new(&rej).reject_port_unreachable());
    b.add_rule(&Rule::new(&rej).match_nfproto(Family::Ip).expr(Expr::Reject(Reject::Icmp(3))));
    b
}

/// Splits NFTA_SET_USERDATA off a NEWSET payload: nft adds display hints we do not send
/// (typeof expressions), so only our prefix of it is compared.
fn split_userdata(payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut rest = payload[..4].to_vec();
    let mut udata = Vec::new();
    let mut at = 4;
    while at < payload.len() {
        let len = u16::from_ne_bytes([payload[at], payload[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]);
        let padded = len.div_ceil(4) * 4;
        if kind == NFTA_SET_USERDATA {
            udata = payload[at + 4..at + len].to_vec();
        } else {
            rest.extend_from_slice(&payload[at..at + padded]);
        }
        at += padded;
    }
    (rest, udata)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn kube_proxy_like_ruleset_matches_nft_byte_for_byte() {
    let want = capture();
    let batch = build();
    let got = batch.messages();
    assert_eq!(got.len(), want.len(), "message count");
    for (i, (m, (ty, bytes))) in got.iter().zip(&want).enumerate() {
        assert_eq!(m.msg_type, *ty, "message #{i} {}: type", m.what);
        let ours = m.payload_bytes();
        if m.msg_type & 0xff == u16::from(edge_nft::sys::NFT_MSG_NEWSET) {
            let (ours_rest, ours_udata) = split_userdata(&ours);
            let (nft_rest, nft_udata) = split_userdata(bytes);
            assert_eq!(hex(&ours_rest), hex(&nft_rest), "message #{i} {}", m.what);
            assert!(
                nft_udata.starts_with(&ours_udata),
                "message #{i} {}: userdata {} vs {}",
                m.what,
                hex(&ours_udata),
                hex(&nft_udata)
            );
        } else {
            assert_eq!(hex(&ours), hex(bytes), "message #{i} {}", m.what);
        }
    }
}
