//! Tables and chains: the containers rules live in, and their NEWTABLE/NEWCHAIN attributes.

use crate::attr::Attr;
use crate::sys::*;

/// Address family of a table (`NFPROTO_*`), also the nfgenmsg family of every message about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Inet = 1,
    Ip = 2,
    Arp = 3,
    Netdev = 5,
    Bridge = 7,
    Ip6 = 10,
}

impl Family {
    /// The name nft prints (`nft list table inet x`).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Arp => "arp",
            Family::Netdev => "netdev",
            Family::Bridge => "bridge",
            Family::Ip6 => "ip6",
        }
    }

    pub(crate) fn from_u8(v: u8) -> Option<Family> {
        Some(match v {
            1 => Family::Inet,
            2 => Family::Ip,
            3 => Family::Arp,
            5 => Family::Netdev,
            7 => Family::Bridge,
            10 => Family::Ip6,
            _ => return None,
        })
    }
}

/// A table: a family and a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Table {
    pub family: Family,
    pub name: String,
}

impl Table {
    pub fn new(family: Family, name: impl Into<String>) -> Self {
        Table { family, name: name.into() }
    }

    pub(crate) fn new_attrs(&self) -> Vec<Attr> {
        vec![Attr::string(NFTA_TABLE_NAME, &self.name), Attr::be32(NFTA_TABLE_FLAGS, 0)]
    }

    pub(crate) fn del_attrs(&self) -> Vec<Attr> {
        vec![Attr::string(NFTA_TABLE_NAME, &self.name)]
    }
}

/// Netfilter hook of a base chain (`enum nf_inet_hooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prerouting = 0,
    Input = 1,
    Forward = 2,
    Output = 3,
    Postrouting = 4,
}

/// Chain type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

impl ChainType {
    fn as_str(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

/// Well-known hook priorities under nft's names.
pub mod priority {
    pub const RAW: i32 = -300;
    pub const MANGLE: i32 = -150;
    pub const DSTNAT: i32 = -100;
    pub const FILTER: i32 = 0;
    pub const SECURITY: i32 = 50;
    pub const SRCNAT: i32 = 100;
}

/// Default verdict of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Accept,
    Drop,
}

/// What makes a chain a base chain: attached to a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    pub kind: ChainType,
    pub hook: Hook,
    pub priority: i32,
    pub policy: Policy,
}

/// A chain; regular unless `base` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub table: Table,
    pub name: String,
    pub base: Option<BaseChain>,
}

impl Chain {
    /// A regular chain, reached only by jump/goto.
    pub fn new(table: &Table, name: impl Into<String>) -> Self {
        Chain { table: table.clone(), name: name.into(), base: None }
    }

    /// A base chain attached to `hook` at `priority`.
    pub fn base(table: &Table, name: impl Into<String>, kind: ChainType, hook: Hook, priority: i32) -> Self {
        Chain {
            table: table.clone(),
            name: name.into(),
            base: Some(BaseChain { kind, hook, priority, policy: Policy::Accept }),
        }
    }

    /// Sets the policy of a base chain (regular chains have none; ignored there).
    pub fn with_policy(mut self, policy: Policy) -> Self {
        if let Some(b) = &mut self.base {
            b.policy = policy;
        }
        self
    }

    pub(crate) fn new_attrs(&self) -> Vec<Attr> {
        let mut v = vec![Attr::string(NFTA_CHAIN_TABLE, &self.table.name), Attr::string(NFTA_CHAIN_NAME, &self.name)];
        if let Some(b) = &self.base {
            let policy = match b.policy {
                Policy::Accept => NF_ACCEPT,
                Policy::Drop => NF_DROP,
            };
            v.push(Attr::string(NFTA_CHAIN_TYPE, b.kind.as_str()));
            v.push(Attr::be32_signed(NFTA_CHAIN_POLICY, policy));
            v.push(Attr::nested(
                NFTA_CHAIN_HOOK,
                vec![Attr::be32(NFTA_HOOK_HOOKNUM, b.hook as u32), Attr::be32_signed(NFTA_HOOK_PRIORITY, b.priority)],
            ));
        }
        v
    }

    pub(crate) fn del_attrs(&self) -> Vec<Attr> {
        vec![Attr::string(NFTA_CHAIN_TABLE, &self.table.name), Attr::string(NFTA_CHAIN_NAME, &self.name)]
    }

    /// DELRULE without a handle: removes every rule of the chain.
    pub(crate) fn flush_attrs(&self) -> Vec<Attr> {
        vec![Attr::string(NFTA_RULE_TABLE, &self.table.name), Attr::string(NFTA_RULE_CHAIN, &self.name)]
    }
}
