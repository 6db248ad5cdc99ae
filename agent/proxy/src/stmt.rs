//! One rule of the ruleset, named for what it does. Each statement renders two ways that
//! must agree: the netlink expressions sent with edge-nft, and the `nft` text that
//! [`crate::render_nft`] prints (kube-proxy's wording).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use edge_nft::{ct_state, Batch, Chain, Key, KeyType, Rule, SetRef, Verdict};

use crate::cidr::Cidr;
use crate::model::Protocol;
use crate::plan::Fam;

/// The packet mark bit that asks `masquerading` to SNAT (kube-proxy's default 0x4000).
pub(crate) const MASQ_MARK: u32 = 0x4000;
pub(crate) const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";

/// A rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stmt {
    /// `ct state new jump C`
    JumpIfNew(String),
    /// `jump C`
    Jump(String),
    /// `goto C`
    Goto(String),
    /// `meta mark set meta mark or 0x4000`
    SetMasqMark,
    /// `meta mark and 0x4000 == 0 return`
    ReturnIfUnmarked,
    /// `meta mark set meta mark xor 0x4000`
    ClearMasqMark,
    /// `masquerade fully-random`
    Masquerade,
    /// `reject with icmpx port-unreachable`
    Reject,
    /// `ip daddr . meta l4proto . th dport vmap @M`
    DispatchIps { fam: Fam, map: String },
    /// `ip daddr @S meta l4proto . th dport vmap @M`, or with `node_ips: None`
    /// `fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @M`.
    DispatchNodePorts { fam: Fam, map: String, node_ips: Option<String> },
    /// `ip daddr A tcp dport P ip saddr != CIDR jump mark-for-masquerade`
    MasqOffCluster { daddr: IpAddr, proto: Protocol, port: u16, cluster: Cidr },
    /// `ip saddr CIDR goto C`
    GotoIfFromCluster { cluster: Cidr, chain: String },
    /// `fib saddr type local jump mark-for-masquerade`
    MasqIfLocalSource,
    /// `fib saddr type local goto C`
    GotoIfLocalSource(String),
    /// `ip saddr @S goto C`
    AffinityGoto { fam: Fam, set: String, chain: String },
    /// `numgen random mod N vmap { 0 : goto C0, … }`
    Numgen(Vec<String>),
    /// `ip saddr A jump mark-for-masquerade`
    MasqIfSource(IpAddr),
    /// `update @S { ip saddr }`
    AffinityUpdate { fam: Fam, set: String },
    /// `meta l4proto tcp dnat ip to A:P`
    Dnat { proto: Protocol, to: SocketAddr },
}

/// Sets created earlier in the same batch, which rules must name by their batch ID.
#[derive(Debug, Default)]
pub(crate) struct SetRefs(HashMap<String, SetRef>);

impl SetRefs {
    pub fn insert(&mut self, r: SetRef) {
        self.0.insert(r.name.clone(), r);
    }

    pub fn get(&self, name: &str) -> SetRef {
        self.0.get(name).cloned().unwrap_or_else(|| SetRef { name: name.to_owned(), id: None })
    }
}

fn loopback(fam: Fam) -> (IpAddr, u8) {
    match fam {
        Fam::V4 => (Ipv4Addr::new(127, 0, 0, 0).into(), 8),
        Fam::V6 => (Ipv6Addr::LOCALHOST.into(), 128),
    }
}

impl Stmt {
    /// The netlink rule; a `numgen` rule first adds its anonymous map to `b`.
    pub fn to_rule(&self, chain: &Chain, b: &mut Batch, refs: &SetRefs) -> Rule {
        let r = Rule::new(chain);
        match self {
            Stmt::JumpIfNew(c) => r.match_ct_state(ct_state::NEW).jump(c.clone()),
            Stmt::Jump(c) => r.jump(c.clone()),
            Stmt::Goto(c) => r.goto(c.clone()),
            Stmt::SetMasqMark => r.set_mark_or(MASQ_MARK),
            Stmt::ReturnIfUnmarked => r.match_mark(MASQ_MARK, 0, true).ret(),
            Stmt::ClearMasqMark => r.set_mark_xor(MASQ_MARK),
            Stmt::Masquerade => r.masquerade(true),
            Stmt::Reject => r.reject_port_unreachable(),
            Stmt::DispatchIps { fam, map } => r.vmap_daddr_proto_dport(&refs.get(map), fam.is_v6()),
            Stmt::DispatchNodePorts { fam, map, node_ips: Some(set) } => {
                r.match_daddr_in(&refs.get(set), fam.is_v6()).vmap_proto_dport(&refs.get(map))
            }
            Stmt::DispatchNodePorts { fam, map, node_ips: None } => {
                let (lo, len) = loopback(*fam);
                r.match_fib_local(false).match_daddr_net(lo, len, false).vmap_proto_dport(&refs.get(map))
            }
            Stmt::MasqOffCluster { daddr, proto, port, cluster } => r
                .match_daddr(*daddr)
                .match_l4proto(proto.number())
                .match_dport(*port)
                .match_saddr_net(cluster.net, cluster.len, false)
                .jump(MARK_MASQ_CHAIN),
            Stmt::GotoIfFromCluster { cluster, chain } => {
                r.match_saddr_net(cluster.net, cluster.len, true).goto(chain.clone())
            }
            Stmt::MasqIfLocalSource => r.match_fib_local(true).jump(MARK_MASQ_CHAIN),
            Stmt::GotoIfLocalSource(c) => r.match_fib_local(true).goto(c.clone()),
            Stmt::AffinityGoto { fam, set, chain } => r.match_saddr_in(&refs.get(set), fam.is_v6()).goto(chain.clone()),
            Stmt::Numgen(chains) => {
                let arms = chains
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (Key::new().host_u32(i as u32), Verdict::Goto(c.clone())))
                    .collect();
                let pick = b.add_anonymous_map(&chain.table, &[KeyType::HostU32], arms);
                r.numgen_vmap(chains.len() as u32, &pick)
            }
            Stmt::MasqIfSource(ip) => r.match_saddr(*ip).jump(MARK_MASQ_CHAIN),
            Stmt::AffinityUpdate { fam, set } => r.update_saddr_in(&refs.get(set), fam.is_v6()),
            Stmt::Dnat { proto, to } => r.match_l4proto(proto.number()).dnat(*to),
        }
    }

    /// The kernel's expression names, for comparing with a dump (drift checks).
    pub fn expr_names(&self, chain: &Chain) -> Vec<&'static str> {
        let mut scratch = Batch::new();
        self.to_rule(chain, &mut scratch, &SetRefs::default()).exprs.iter().map(|e| e.name()).collect()
    }

    /// The rule in nft syntax.
    pub fn to_text(&self) -> String {
        match self {
            Stmt::JumpIfNew(c) => format!("ct state new jump {c}"),
            Stmt::Jump(c) => format!("jump {c}"),
            Stmt::Goto(c) => format!("goto {c}"),
            Stmt::SetMasqMark => format!("meta mark set meta mark or {MASQ_MARK:#x}"),
            Stmt::ReturnIfUnmarked => format!("meta mark and {MASQ_MARK:#x} == 0 return"),
            Stmt::ClearMasqMark => format!("meta mark set meta mark xor {MASQ_MARK:#x}"),
            Stmt::Masquerade => "masquerade fully-random".into(),
            Stmt::Reject => "reject with icmpx type port-unreachable".into(),
            Stmt::DispatchIps { fam, map } => format!("{} daddr . meta l4proto . th dport vmap @{map}", fam.ip()),
            Stmt::DispatchNodePorts { fam, map, node_ips: Some(set) } => {
                format!("{} daddr @{set} meta l4proto . th dport vmap @{map}", fam.ip())
            }
            Stmt::DispatchNodePorts { fam, map, node_ips: None } => {
                let (lo, len) = loopback(*fam);
                format!("fib daddr type local {} daddr != {lo}/{len} meta l4proto . th dport vmap @{map}", fam.ip())
            }
            Stmt::MasqOffCluster { daddr, proto, port, cluster } => format!(
                "{} daddr {daddr} {} dport {port} {} saddr != {cluster} jump {MARK_MASQ_CHAIN}",
                Fam::of(daddr).ip(),
                proto.as_str(),
                Fam::of(&cluster.net).ip()
            ),
            Stmt::GotoIfFromCluster { cluster, chain } => {
                format!("{} saddr {cluster} goto {chain}", Fam::of(&cluster.net).ip())
            }
            Stmt::MasqIfLocalSource => format!("fib saddr type local jump {MARK_MASQ_CHAIN}"),
            Stmt::GotoIfLocalSource(c) => format!("fib saddr type local goto {c}"),
            Stmt::AffinityGoto { fam, set, chain } => format!("{} saddr @{set} goto {chain}", fam.ip()),
            Stmt::Numgen(chains) => {
                let arms: Vec<String> = chains.iter().enumerate().map(|(i, c)| format!("{i} : goto {c}")).collect();
                format!("numgen random mod {} vmap {{ {} }}", chains.len(), arms.join(", "))
            }
            Stmt::MasqIfSource(ip) => format!("{} saddr {ip} jump {MARK_MASQ_CHAIN}", Fam::of(ip).ip()),
            Stmt::AffinityUpdate { fam, set } => format!("update @{set} {{ {} saddr }}", fam.ip()),
            Stmt::Dnat { proto, to } => {
                format!("meta l4proto {} dnat {} to {to}", proto.as_str(), Fam::of(&to.ip()).ip())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use edge_nft::{Family, Table};

    fn chain() -> Chain {
        Chain::new(&Table::new(Family::Inet, "t"), "c")
    }

    #[test]
    fn text_and_expressions_agree_on_shape() {
        let cluster = Cidr::parse("10.42.0.0/16").unwrap();
        // (statement, nft text, kernel expressions)
        let cases: Vec<(Stmt, &str, Vec<&str>)> = vec![
            (
                Stmt::MasqOffCluster { daddr: "10.43.0.10".parse().unwrap(), proto: Protocol::Udp, port: 53, cluster },
                "ip daddr 10.43.0.10 udp dport 53 ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
                vec![
                    "meta",
                    "cmp",
                    "payload",
                    "cmp",
                    "meta",
                    "cmp",
                    "payload",
                    "cmp",
                    "meta",
                    "cmp",
                    "payload",
                    "cmp",
                    "immediate",
                ],
            ),
            (
                Stmt::Numgen(vec!["a".into(), "b".into()]),
                "numgen random mod 2 vmap { 0 : goto a, 1 : goto b }",
                vec!["numgen", "lookup"],
            ),
            (
                Stmt::Dnat { proto: Protocol::Tcp, to: "[fd00::5]:8080".parse().unwrap() },
                "meta l4proto tcp dnat ip6 to [fd00::5]:8080",
                vec!["meta", "cmp", "immediate", "immediate", "nat"],
            ),
            (
                Stmt::DispatchNodePorts { fam: Fam::V6, map: "m".into(), node_ips: None },
                "fib daddr type local ip6 daddr != ::1/128 meta l4proto . th dport vmap @m",
                vec!["fib", "cmp", "meta", "cmp", "payload", "cmp", "meta", "payload", "lookup"],
            ),
            (Stmt::GotoIfLocalSource("x".into()), "fib saddr type local goto x", vec!["fib", "cmp", "immediate"]),
            (Stmt::JumpIfNew("x".into()), "ct state new jump x", vec!["ct", "bitwise", "cmp", "immediate"]),
            (
                Stmt::AffinityUpdate { fam: Fam::V4, set: "s".into() },
                "update @s { ip saddr }",
                vec!["meta", "cmp", "payload", "dynset"],
            ),
        ];
        for (stmt, text, exprs) in cases {
            assert_eq!(stmt.to_text(), text);
            assert_eq!(stmt.expr_names(&chain()), exprs, "{text}");
        }
    }

    #[test]
    fn numgen_adds_its_anonymous_map_to_the_batch() {
        let mut b = Batch::new();
        let r = Stmt::Numgen(vec!["a".into()]).to_rule(&chain(), &mut b, &SetRefs::default());
        // NEWSET (anonymous) + NEWSETELEM, referenced by the rule through the set ID.
        assert_eq!(b.len(), 2);
        assert!(matches!(&r.exprs[1], edge_nft::Expr::Lookup { set, .. } if set.id == Some(1)));
    }
}
