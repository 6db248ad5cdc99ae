//! Decoding dumps (GETTABLE/GETCHAIN/GETRULE/GETSET/GETSETELEM answers) into plain structs,
//! enough to compare the kernel's state with what was meant (drift checks).

use crate::attr::{find, parse_attrs, RawAttr};
use crate::expr::Verdict;
use crate::sys::*;
use crate::table::Family;
use crate::Error;

/// A table as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub family: Option<Family>,
    pub name: String,
    pub handle: u64,
    /// Number of chains, sets and objects in it.
    pub use_count: u32,
}

/// A chain as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    pub table: String,
    pub name: String,
    pub handle: u64,
    /// `(hook number, priority)` for base chains.
    pub hook: Option<(u32, i32)>,
    pub kind: Option<String>,
    /// `NF_ACCEPT` (1) or `NF_DROP` (0) for base chains.
    pub policy: Option<u32>,
    /// Number of rules and jumps referring to it.
    pub use_count: u32,
}

/// A rule as the kernel reports it: its handle and the kernel names of its expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub exprs: Vec<String>,
}

/// A set as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfo {
    pub table: String,
    pub name: String,
    pub handle: u64,
    pub flags: u32,
    pub key_len: u32,
    pub key_type: u32,
    pub data_type: Option<u32>,
}

/// One element: its key bytes and, for maps, the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElemInfo {
    pub key: Vec<u8>,
    pub verdict: Option<Verdict>,
    pub value: Option<Vec<u8>>,
}

fn need_str(attrs: &[RawAttr<'_>], kind: u16, what: &str) -> Result<String, Error> {
    find(attrs, kind)
        .and_then(|a| a.as_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::Decode(format!("{what} without attribute {kind}")))
}

fn be32(attrs: &[RawAttr<'_>], kind: u16) -> Option<u32> {
    find(attrs, kind).and_then(|a| a.as_be32())
}

fn be64(attrs: &[RawAttr<'_>], kind: u16) -> u64 {
    find(attrs, kind).and_then(|a| a.as_be64()).unwrap_or(0)
}

pub(crate) fn table(family: u8, payload: &[u8]) -> Result<TableInfo, Error> {
    let a = parse_attrs(payload)?;
    Ok(TableInfo {
        family: Family::from_u8(family),
        name: need_str(&a, NFTA_TABLE_NAME, "table")?,
        handle: be64(&a, NFTA_TABLE_HANDLE),
        use_count: be32(&a, NFTA_TABLE_USE).unwrap_or(0),
    })
}

pub(crate) fn chain(_family: u8, payload: &[u8]) -> Result<ChainInfo, Error> {
    let a = parse_attrs(payload)?;
    let hook = match find(&a, NFTA_CHAIN_HOOK) {
        Some(h) => {
            let h = h.nested()?;
            match (be32(&h, NFTA_HOOK_HOOKNUM), be32(&h, NFTA_HOOK_PRIORITY)) {
                (Some(n), Some(p)) => Some((n, p as i32)),
                _ => None,
            }
        }
        None => None,
    };
    Ok(ChainInfo {
        table: need_str(&a, NFTA_CHAIN_TABLE, "chain")?,
        name: need_str(&a, NFTA_CHAIN_NAME, "chain")?,
        handle: be64(&a, NFTA_CHAIN_HANDLE),
        hook,
        kind: find(&a, NFTA_CHAIN_TYPE).and_then(|t| t.as_str()).map(str::to_owned),
        policy: be32(&a, NFTA_CHAIN_POLICY),
        use_count: be32(&a, NFTA_CHAIN_USE).unwrap_or(0),
    })
}

pub(crate) fn rule(_family: u8, payload: &[u8]) -> Result<RuleInfo, Error> {
    let a = parse_attrs(payload)?;
    let mut exprs = Vec::new();
    if let Some(list) = find(&a, NFTA_RULE_EXPRESSIONS) {
        for e in list.nested()? {
            let inner = e.nested()?;
            exprs.push(need_str(&inner, NFTA_EXPR_NAME, "expression")?);
        }
    }
    Ok(RuleInfo {
        table: need_str(&a, NFTA_RULE_TABLE, "rule")?,
        chain: need_str(&a, NFTA_RULE_CHAIN, "rule")?,
        handle: be64(&a, NFTA_RULE_HANDLE),
        exprs,
    })
}

pub(crate) fn set(_family: u8, payload: &[u8]) -> Result<SetInfo, Error> {
    let a = parse_attrs(payload)?;
    Ok(SetInfo {
        table: need_str(&a, NFTA_SET_TABLE, "set")?,
        name: need_str(&a, NFTA_SET_NAME, "set")?,
        handle: be64(&a, NFTA_SET_HANDLE),
        flags: be32(&a, NFTA_SET_FLAGS).unwrap_or(0),
        key_len: be32(&a, NFTA_SET_KEY_LEN).unwrap_or(0),
        key_type: be32(&a, NFTA_SET_KEY_TYPE).unwrap_or(0),
        data_type: be32(&a, NFTA_SET_DATA_TYPE),
    })
}

fn verdict(v: &[RawAttr<'_>]) -> Result<Verdict, Error> {
    let code = be32(v, NFTA_VERDICT_CODE).ok_or_else(|| Error::Decode("verdict without code".into()))? as i32;
    let chain = || need_str(v, NFTA_VERDICT_CHAIN, "jump verdict");
    Ok(match code {
        NF_ACCEPT => Verdict::Accept,
        NF_DROP => Verdict::Drop,
        NFT_CONTINUE => Verdict::Continue,
        NFT_RETURN => Verdict::Return,
        NFT_JUMP => Verdict::Jump(chain()?),
        NFT_GOTO => Verdict::Goto(chain()?),
        other => return Err(Error::Decode(format!("verdict code {other}"))),
    })
}

pub(crate) fn elements(payload: &[u8]) -> Result<Vec<ElemInfo>, Error> {
    let a = parse_attrs(payload)?;
    let Some(list) = find(&a, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in list.nested()? {
        let e = e.nested()?;
        let key = match find(&e, NFTA_SET_ELEM_KEY) {
            Some(k) => find(&k.nested()?, NFTA_DATA_VALUE).map(|v| v.value.to_vec()).unwrap_or_default(),
            None => Vec::new(),
        };
        let (mut v, mut value) = (None, None);
        if let Some(d) = find(&e, NFTA_SET_ELEM_DATA) {
            let d = d.nested()?;
            if let Some(vd) = find(&d, NFTA_DATA_VERDICT) {
                v = Some(verdict(&vd.nested()?)?);
            }
            value = find(&d, NFTA_DATA_VALUE).map(|x| x.value.to_vec());
        }
        out.push(ElemInfo { key, verdict: v, value });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::batch::Batch;
    use crate::set::{Elem, Key, KeyType, Set as NftSet};
    use crate::table::{Chain, ChainType, Hook, Table};
    use std::net::Ipv4Addr;

    // The kernel's dumps use the same attributes as requests, so our own encoder provides
    // test input for the decoder.
    fn payload(b: &Batch, i: usize) -> Vec<u8> {
        b.messages()[i].payload_bytes()[4..].to_vec()
    }

    #[test]
    fn decodes_chains_rules_sets_and_elements() {
        let t = Table::new(Family::Inet, "edge-proxy");
        let base = Chain::base(&t, "nat-prerouting", ChainType::Nat, Hook::Prerouting, -100);
        let set =
            NftSet::verdict_map(&t, "service-ips", &[KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService]);
        let elem = Elem::verdict(
            Key::new().addr(Ipv4Addr::new(10, 43, 0, 1).into()).proto(6).port(443),
            Verdict::Goto("svc-a".into()),
        );
        let mut b = Batch::new();
        b.add_chain(&base);
        b.add_rule(&crate::Rule::new(&base).counter().accept());
        b.add_set(&set);
        b.add_elements(&set, std::slice::from_ref(&elem));

        let c = chain(1, &payload(&b, 0)).unwrap();
        assert_eq!(
            (c.name.as_str(), c.hook, c.kind.as_deref(), c.policy),
            ("nat-prerouting", Some((0, -100)), Some("nat"), Some(1))
        );
        let r = rule(1, &payload(&b, 1)).unwrap();
        assert_eq!(r.exprs, vec!["counter", "immediate"]);
        let s = super::set(1, &payload(&b, 2)).unwrap();
        assert_eq!((s.key_len, s.key_type, s.flags, s.data_type), (12, 0x730d, NFT_SET_MAP, Some(NFT_DATA_VERDICT)));
        let e = elements(&payload(&b, 3)).unwrap();
        assert_eq!(
            e,
            vec![ElemInfo { key: elem.key.clone(), verdict: Some(Verdict::Goto("svc-a".into())), value: None }]
        );
    }

    #[test]
    fn missing_names_are_reported() {
        assert!(matches!(chain(1, &[]), Err(Error::Decode(_))));
        assert!(matches!(rule(1, &[]), Err(Error::Decode(_))));
    }
}
