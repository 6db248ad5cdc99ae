//! The rule builder: nft's statements (`ip daddr X`, `meta l4proto tcp`, `dnat ip to A:P`, …)
//! expanded into the expressions nft itself would send, so that `nft list` shows the rule as
//! if it had been written in nft syntax.

use std::net::{IpAddr, SocketAddr};

use crate::attr::Attr;
use crate::expr::{CmpOp, CtKey, DynsetOp, Expr, MetaKey, NatType, PayloadBase, Reg, Reject, SetRef, Verdict};
use crate::sys::*;
use crate::table::{Chain, Family, Table};

/// `ct state` bits (`NF_CT_STATE_*` from nf_conntrack_common.h).
pub mod ct_state {
    pub const INVALID: u32 = 1;
    pub const ESTABLISHED: u32 = 1 << 1;
    pub const RELATED: u32 = 1 << 2;
    pub const NEW: u32 = 1 << 3;
    pub const UNTRACKED: u32 = 1 << 6;
}

/// Well-known L4 protocol numbers for `meta l4proto`.
pub mod proto {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const SCTP: u8 = 132;
}

/// A rule under construction, appended to its chain when added to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub table: Table,
    pub chain: String,
    pub exprs: Vec<Expr>,
}

fn nfproto_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => Family::Ip as u8,
        IpAddr::V6(_) => Family::Ip6 as u8,
    }
}

fn addr_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Where `ip saddr`/`ip daddr` sit in the network header, and their length.
fn addr_field(v6: bool, source: bool) -> (u32, u32) {
    match (v6, source) {
        (false, true) => (12, 4),
        (false, false) => (16, 4),
        (true, true) => (8, 16),
        (true, false) => (24, 16),
    }
}

impl Rule {
    /// An empty rule for `chain`.
    pub fn new(chain: &Chain) -> Self {
        Rule { table: chain.table.clone(), chain: chain.name.clone(), exprs: Vec::new() }
    }

    /// Appends a raw expression.
    pub fn expr(mut self, e: Expr) -> Self {
        self.exprs.push(e);
        self
    }

    fn push(&mut self, e: Expr) {
        self.exprs.push(e);
    }

    /// In tables that see more than one network protocol, nft guards every `ip`/`ip6`
    /// header access with `meta nfproto`; doing the same keeps rules readable by nft and
    /// stops an IPv4 offset from being applied to an IPv6 header.
    fn guard_nfproto(&mut self, v6: bool) {
        if matches!(self.table.family, Family::Inet | Family::Bridge | Family::Netdev) {
            let p = if v6 { Family::Ip6 } else { Family::Ip } as u8;
            self.push(Expr::Meta { key: MetaKey::NfProto, dreg: Reg::R1 });
            self.push(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: vec![p] });
        }
    }

    fn load_addr(&mut self, v6: bool, source: bool, dreg: Reg) {
        let (offset, len) = addr_field(v6, source);
        self.push(Expr::Payload { dreg, base: PayloadBase::Network, offset, len });
    }

    /// `meta nfproto ipv4|ipv6`.
    pub fn match_nfproto(mut self, family: Family) -> Self {
        self.push(Expr::Meta { key: MetaKey::NfProto, dreg: Reg::R1 });
        self.push(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: vec![family as u8] });
        self
    }

    /// `ip daddr A` / `ip6 daddr A`.
    pub fn match_daddr(self, ip: IpAddr) -> Self {
        self.match_addr(ip, false)
    }

    /// `ip saddr A` / `ip6 saddr A`.
    pub fn match_saddr(self, ip: IpAddr) -> Self {
        self.match_addr(ip, true)
    }

    fn match_addr(mut self, ip: IpAddr, source: bool) -> Self {
        let v6 = ip.is_ipv6();
        self.guard_nfproto(v6);
        self.load_addr(v6, source, Reg::R1);
        self.push(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: addr_bytes(&ip) });
        self
    }

    /// `ip saddr N/P` (`equal`) or `ip saddr != N/P`: a prefix match, loaded, masked, compared —
    /// what nft emits for a CIDR.
    pub fn match_saddr_prefix(self, net: std::net::Ipv4Addr, prefix_len: u8, equal: bool) -> Self {
        self.match_prefix(net, prefix_len, equal, true)
    }

    /// `ip daddr N/P` or `ip daddr != N/P`.
    pub fn match_daddr_prefix(self, net: std::net::Ipv4Addr, prefix_len: u8, equal: bool) -> Self {
        self.match_prefix(net, prefix_len, equal, false)
    }

    fn match_prefix(mut self, net: std::net::Ipv4Addr, prefix_len: u8, equal: bool, source: bool) -> Self {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0);
        self.guard_nfproto(false);
        self.load_addr(false, source, Reg::R1);
        if prefix_len < 32 {
            self.push(Expr::Bitwise {
                sreg: Reg::R1,
                dreg: Reg::R1,
                mask: mask.to_be_bytes().to_vec(),
                xor: vec![0; 4],
                explicit_op: false,
            });
        }
        let op = if equal { CmpOp::Eq } else { CmpOp::Neq };
        self.push(Expr::Cmp { sreg: Reg::R1, op, data: (u32::from(net) & mask).to_be_bytes().to_vec() });
        self
    }

    /// `ip saddr N/P` or `ip saddr != N/P` for either family, as nft emits it: only the bytes
    /// the prefix covers are loaded, and a bitwise mask is added only when the prefix ends
    /// inside a byte.
    pub fn match_saddr_net(self, net: IpAddr, prefix_len: u8, equal: bool) -> Self {
        self.match_net(net, prefix_len, equal, true)
    }

    /// `ip daddr N/P` or `ip daddr != N/P` for either family (see [`Rule::match_saddr_net`]).
    pub fn match_daddr_net(self, net: IpAddr, prefix_len: u8, equal: bool) -> Self {
        self.match_net(net, prefix_len, equal, false)
    }

    fn match_net(mut self, net: IpAddr, prefix_len: u8, equal: bool, source: bool) -> Self {
        let v6 = net.is_ipv6();
        let bytes = addr_bytes(&net);
        let bits = usize::from(prefix_len).min(bytes.len() * 8);
        let len = bits.div_ceil(8);
        let (offset, _) = addr_field(v6, source);
        self.guard_nfproto(v6);
        self.push(Expr::Payload { dreg: Reg::R1, base: PayloadBase::Network, offset, len: len as u32 });
        let mask: Vec<u8> =
            (0..len).map(|i| if (i + 1) * 8 <= bits { 0xff } else { 0xffu8 << (8 - bits % 8) }).collect();
        if bits % 8 != 0 {
            self.push(Expr::Bitwise {
                sreg: Reg::R1,
                dreg: Reg::R1,
                mask: mask.clone(),
                xor: vec![0; len],
                explicit_op: false,
            });
        }
        let data = bytes[..len].iter().zip(&mask).map(|(b, m)| b & m).collect();
        let op = if equal { CmpOp::Eq } else { CmpOp::Neq };
        self.push(Expr::Cmp { sreg: Reg::R1, op, data });
        self
    }

    /// `fib saddr type local` (`source`) or `fib daddr type local`: the address is one of
    /// this host's.
    pub fn match_fib_local(mut self, source: bool) -> Self {
        let flags = if source { NFTA_FIB_F_SADDR } else { NFTA_FIB_F_DADDR };
        self.push(Expr::Fib { dreg: Reg::R1, result: NFT_FIB_RESULT_ADDRTYPE, flags });
        self.push(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: RTN_LOCAL.to_ne_bytes().to_vec() });
        self
    }

    /// `ip daddr @set` (membership test of the destination address).
    pub fn match_daddr_in(mut self, set: &SetRef, v6: bool) -> Self {
        self.guard_nfproto(v6);
        self.load_addr(v6, false, Reg::R1);
        self.push(Expr::Lookup { set: set.clone(), sreg: Reg::R1, dreg: None, invert: false });
        self
    }

    /// `meta l4proto . th dport vmap @map`: kube-proxy's NodePort dispatch.
    pub fn vmap_proto_dport(mut self, map: &SetRef) -> Self {
        self.push(Expr::Meta { key: MetaKey::L4Proto, dreg: Reg::concat_field(0) });
        self.push(Expr::Payload { dreg: Reg::concat_field(4), base: PayloadBase::Transport, offset: 2, len: 2 });
        self.push(Expr::Lookup { set: map.clone(), sreg: Reg::R1, dreg: Some(Reg::VERDICT), invert: false });
        self
    }

    /// `meta l4proto P`.
    pub fn match_l4proto(mut self, proto: u8) -> Self {
        self.push(Expr::Meta { key: MetaKey::L4Proto, dreg: Reg::R1 });
        self.push(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: vec![proto] });
        self
    }

    /// `th dport P` (any transport protocol with ports at the usual offset).
    pub fn match_dport(mut self, port: u16) -> Self {
        self.push(Expr::Payload { dreg: Reg::R1, base: PayloadBase::Transport, offset: 2, len: 2 });
        self.push(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: port.to_be_bytes().to_vec() });
        self
    }

    /// `ct state S` for any of the given `ct_state` bits.
    pub fn match_ct_state(mut self, bits: u32) -> Self {
        self.push(Expr::Ct { key: CtKey::State, dreg: Reg::R1 });
        self.push(Expr::Bitwise {
            sreg: Reg::R1,
            dreg: Reg::R1,
            mask: bits.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
            explicit_op: false,
        });
        self.push(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Neq, data: vec![0; 4] });
        self
    }

    /// `meta mark & MASK == VALUE` (or `!=` when `equal` is false).
    pub fn match_mark(mut self, mask: u32, value: u32, equal: bool) -> Self {
        self.push(Expr::Meta { key: MetaKey::Mark, dreg: Reg::R1 });
        self.push(Expr::Bitwise {
            sreg: Reg::R1,
            dreg: Reg::R1,
            mask: mask.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
            explicit_op: true,
        });
        let op = if equal { CmpOp::Eq } else { CmpOp::Neq };
        self.push(Expr::Cmp { sreg: Reg::R1, op, data: value.to_ne_bytes().to_vec() });
        self
    }

    fn mark_arith(mut self, mask: u32, xor: u32) -> Self {
        self.push(Expr::Meta { key: MetaKey::Mark, dreg: Reg::R1 });
        self.push(Expr::Bitwise {
            sreg: Reg::R1,
            dreg: Reg::R1,
            mask: mask.to_ne_bytes().to_vec(),
            xor: xor.to_ne_bytes().to_vec(),
            explicit_op: true,
        });
        self.push(Expr::MetaSet { key: MetaKey::Mark, sreg: Reg::R1 });
        self
    }

    /// `meta mark set meta mark | BITS`.
    pub fn set_mark_or(self, bits: u32) -> Self {
        self.mark_arith(!bits, bits)
    }

    /// `meta mark set meta mark ^ BITS`.
    pub fn set_mark_xor(self, bits: u32) -> Self {
        self.mark_arith(u32::MAX, bits)
    }

    /// `ip saddr @set` (membership test of the source address).
    pub fn match_saddr_in(mut self, set: &SetRef, v6: bool) -> Self {
        self.guard_nfproto(v6);
        self.load_addr(v6, true, Reg::R1);
        self.push(Expr::Lookup { set: set.clone(), sreg: Reg::R1, dreg: None, invert: false });
        self
    }

    /// `update @set { ip saddr }`: adds or refreshes the source address in a dynamic set
    /// (the set's own timeout applies).
    pub fn update_saddr_in(mut self, set: &SetRef, v6: bool) -> Self {
        self.guard_nfproto(v6);
        self.load_addr(v6, true, Reg::R1);
        self.push(Expr::Dynset { set: set.clone(), op: DynsetOp::Update, sreg_key: Reg::R1, timeout_ms: None });
        self
    }

    /// `ip daddr . meta l4proto . th dport vmap @map`: the service dispatch of kube-proxy's
    /// nftables mode.
    pub fn vmap_daddr_proto_dport(mut self, map: &SetRef, v6: bool) -> Self {
        self.guard_nfproto(v6);
        let (_, addr_len) = addr_field(v6, false);
        self.load_addr(v6, false, Reg::concat_field(0));
        self.push(Expr::Meta { key: MetaKey::L4Proto, dreg: Reg::concat_field(addr_len) });
        self.push(Expr::Payload {
            dreg: Reg::concat_field(addr_len + 4),
            base: PayloadBase::Transport,
            offset: 2,
            len: 2,
        });
        self.push(Expr::Lookup { set: map.clone(), sreg: Reg::R1, dreg: Some(Reg::VERDICT), invert: false });
        self
    }

    /// `numgen random mod N vmap @map`: picks one of N verdicts uniformly; the map's keys are
    /// host-order integers 0..N.
    pub fn numgen_vmap(mut self, modulus: u32, map: &SetRef) -> Self {
        self.push(Expr::Numgen { dreg: Reg::R1, modulus, random: true, offset: 0 });
        self.push(Expr::Lookup { set: map.clone(), sreg: Reg::R1, dreg: Some(Reg::VERDICT), invert: false });
        self
    }

    /// `counter`.
    pub fn counter(mut self) -> Self {
        self.push(Expr::Counter);
        self
    }

    /// `dnat ip to A:P`. The kernel refuses a port without a transport protocol, so the rule
    /// must match `meta l4proto` first.
    pub fn dnat(mut self, to: SocketAddr) -> Self {
        let ip = to.ip();
        self.push(Expr::Immediate { dreg: Reg::R1, data: addr_bytes(&ip) });
        self.push(Expr::Immediate { dreg: Reg::R2, data: to.port().to_be_bytes().to_vec() });
        self.push(Expr::Nat {
            kind: NatType::Dnat,
            family: nfproto_of(&ip),
            addr: Some(Reg::R1),
            proto: Some(Reg::R2),
            flags: NF_NAT_RANGE_PROTO_SPECIFIED,
        });
        self
    }

    /// `masquerade`, with `fully-random` port allocation when asked.
    pub fn masquerade(mut self, fully_random: bool) -> Self {
        let flags = if fully_random { NF_NAT_RANGE_PROTO_RANDOM_FULLY } else { 0 };
        self.push(Expr::Masquerade { flags });
        self
    }

    /// Rejects with "port unreachable" in the table's family: ICMPX in inet-like tables,
    /// ICMP code 3 in `ip`, ICMPv6 code 4 in `ip6`.
    pub fn reject_port_unreachable(mut self) -> Self {
        let r = match self.table.family {
            Family::Ip => Reject::Icmp(3),
            Family::Ip6 => Reject::Icmp(4),
            _ => Reject::Icmpx(1),
        };
        self.push(Expr::Reject(r));
        self
    }

    /// Ends the rule with a verdict.
    pub fn verdict(mut self, v: Verdict) -> Self {
        self.push(Expr::Verdict(v));
        self
    }

    pub fn accept(self) -> Self {
        self.verdict(Verdict::Accept)
    }

    pub fn drop(self) -> Self {
        self.verdict(Verdict::Drop)
    }

    /// `return`.
    pub fn ret(self) -> Self {
        self.verdict(Verdict::Return)
    }

    pub fn jump(self, chain: impl Into<String>) -> Self {
        self.verdict(Verdict::Jump(chain.into()))
    }

    pub fn goto(self, chain: impl Into<String>) -> Self {
        self.verdict(Verdict::Goto(chain.into()))
    }

    pub(crate) fn new_attrs(&self) -> Vec<Attr> {
        vec![
            Attr::string(NFTA_RULE_TABLE, &self.table.name),
            Attr::string(NFTA_RULE_CHAIN, &self.chain),
            Attr::nested_with(NFTA_RULE_EXPRESSIONS, |w| {
                for e in &self.exprs {
                    e.write(w);
                }
            }),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn chain(family: Family) -> Chain {
        Chain::new(&Table::new(family, "t"), "c")
    }

    #[test]
    fn address_matches_are_guarded_only_where_the_family_is_mixed() {
        let v4: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        let cases = [(Family::Inet, 4), (Family::Ip, 2), (Family::Bridge, 4)];
        for (family, n) in cases {
            let r = Rule::new(&chain(family)).match_daddr(v4);
            assert_eq!(r.exprs.len(), n, "{family:?}");
        }
        let r = Rule::new(&chain(Family::Inet)).match_saddr(Ipv6Addr::LOCALHOST.into());
        assert_eq!(r.exprs[1], Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: vec![10] });
        assert_eq!(r.exprs[2], Expr::Payload { dreg: Reg::R1, base: PayloadBase::Network, offset: 8, len: 16 });
    }

    #[test]
    fn ipv6_concatenation_moves_later_fields() {
        let map = SetRef { name: "m".into(), id: None };
        let r = Rule::new(&chain(Family::Ip6)).vmap_daddr_proto_dport(&map, true);
        // daddr fills NFT_REG_1 (16 bytes); l4proto lands in NFT_REG32_04 = 12, dport in 13.
        assert_eq!(r.exprs[1], Expr::Meta { key: MetaKey::L4Proto, dreg: Reg(12) });
        assert!(matches!(r.exprs[2], Expr::Payload { dreg: Reg(13), .. }));
    }

    #[test]
    fn reject_follows_the_family() {
        let code = |f| Rule::new(&chain(f)).reject_port_unreachable().exprs[0].clone();
        assert_eq!(code(Family::Inet), Expr::Reject(Reject::Icmpx(1)));
        assert_eq!(code(Family::Ip), Expr::Reject(Reject::Icmp(3)));
        assert_eq!(code(Family::Ip6), Expr::Reject(Reject::Icmp(4)));
    }

    #[test]
    fn network_prefixes_load_only_the_covered_bytes() {
        // What `nft --debug=netlink` shows for the same matches in an inet table.
        let v4: IpAddr = Ipv4Addr::new(127, 0, 0, 0).into();
        let r = Rule::new(&chain(Family::Inet)).match_daddr_net(v4, 8, false);
        assert_eq!(r.exprs[2], Expr::Payload { dreg: Reg::R1, base: PayloadBase::Network, offset: 16, len: 1 });
        assert_eq!(r.exprs[3], Expr::Cmp { sreg: Reg::R1, op: CmpOp::Neq, data: vec![0x7f] });
        let v6: IpAddr = "fd00:42::".parse().unwrap();
        let r = Rule::new(&chain(Family::Inet)).match_saddr_net(v6, 56, false);
        assert_eq!(r.exprs[1], Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: vec![10] });
        assert_eq!(r.exprs[2], Expr::Payload { dreg: Reg::R1, base: PayloadBase::Network, offset: 8, len: 7 });
        assert_eq!(r.exprs[3], Expr::Cmp { sreg: Reg::R1, op: CmpOp::Neq, data: vec![0xfd, 0, 0, 0x42, 0, 0, 0] });
        let r = Rule::new(&chain(Family::Ip6)).match_daddr_net(Ipv6Addr::LOCALHOST.into(), 128, true);
        assert_eq!(r.exprs.len(), 2);
        // A prefix ending inside a byte is masked: 10.42.16.0/20 -> 3 bytes & ff.ff.f0.
        let r = Rule::new(&chain(Family::Ip)).match_saddr_net(Ipv4Addr::new(10, 42, 31, 0).into(), 20, true);
        let Expr::Bitwise { mask, .. } = &r.exprs[1] else { panic!("{:?}", r.exprs) };
        assert_eq!(mask, &vec![0xff, 0xff, 0xf0]);
        assert_eq!(r.exprs[2], Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: vec![10, 42, 16] });
    }

    #[test]
    fn fib_and_nodeport_dispatch_use_nfts_registers() {
        let r = Rule::new(&chain(Family::Inet)).match_fib_local(false);
        assert_eq!(r.exprs[0], Expr::Fib { dreg: Reg::R1, result: NFT_FIB_RESULT_ADDRTYPE, flags: NFTA_FIB_F_DADDR });
        assert_eq!(r.exprs[1], Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: 2u32.to_ne_bytes().to_vec() });
        let map = SetRef { name: "m".into(), id: None };
        let r = Rule::new(&chain(Family::Inet)).vmap_proto_dport(&map);
        // [ meta load l4proto => reg 1 ] [ payload load 2b @ transport header + 2 => reg 9 ]
        assert_eq!(r.exprs[0], Expr::Meta { key: MetaKey::L4Proto, dreg: Reg(1) });
        assert!(matches!(r.exprs[1], Expr::Payload { dreg: Reg(9), offset: 2, len: 2, .. }));
        let r = Rule::new(&chain(Family::Inet)).match_daddr_in(&map, false);
        assert_eq!(r.exprs[2], Expr::Payload { dreg: Reg::R1, base: PayloadBase::Network, offset: 16, len: 4 });
    }

    #[test]
    fn mark_or_keeps_other_bits() {
        let r = Rule::new(&chain(Family::Ip)).set_mark_or(0x4000);
        let Expr::Bitwise { mask, xor, .. } = &r.exprs[1] else { panic!("{:?}", r.exprs) };
        assert_eq!(u32::from_ne_bytes(mask[..].try_into().unwrap()), !0x4000);
        assert_eq!(u32::from_ne_bytes(xor[..].try_into().unwrap()), 0x4000);
    }
}
