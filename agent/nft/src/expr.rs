//! Rule expressions (`enum nft_*_attributes` in nf_tables.h) and their attribute encoding.
//!
//! Each variant is one kernel expression with its registers spelled out; the convenience of
//! "match ip daddr" lives in [`crate::rule`]. Attribute order follows libnftnl's so that the
//! bytes equal what `nft` sends (the kernel itself does not care about order).

use crate::attr::{Attr, AttrWriter};
use crate::sys::*;

/// A register. `0` is the verdict register; 1–4 are the 16-byte registers; 8–23 the 32-bit
/// ones (`NFT_REG32_00`…), which concatenations fill one field per 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u32);

impl Reg {
    /// `NFT_REG_VERDICT`.
    pub const VERDICT: Reg = Reg(0);
    /// `NFT_REG_1`, which also spans `NFT_REG32_00..03`.
    pub const R1: Reg = Reg(1);
    /// `NFT_REG_2`.
    pub const R2: Reg = Reg(2);

    /// The register holding byte `offset` of a value that starts in `NFT_REG_1`: the first
    /// field stays in `NFT_REG_1` as nft emits it, later fields use `NFT_REG32_00 + offset/4`.
    pub fn concat_field(offset_bytes: u32) -> Reg {
        if offset_bytes == 0 {
            Reg::R1
        } else {
            Reg(8 + offset_bytes / 4)
        }
    }
}

/// A verdict, as used by `immediate` and as verdict-map data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Return,
    Jump(String),
    Goto(String),
}

impl Verdict {
    /// `NFTA_DATA_VERDICT` nest: code, then the chain for jump/goto.
    #[cfg(test)]
    pub(crate) fn data_attr(&self) -> Attr {
        let mut wire = Vec::new();
        let mut w = AttrWriter::new(&mut wire);
        self.write_data(&mut w);
        Attr::from_wire(wire)
    }

    /// Writes the `NFTA_DATA_VERDICT` nest.
    pub(crate) fn write_data(&self, w: &mut AttrWriter<'_>) {
        let (code, chain) = match self {
            Verdict::Accept => (NF_ACCEPT, None),
            Verdict::Drop => (NF_DROP, None),
            Verdict::Continue => (NFT_CONTINUE, None),
            Verdict::Return => (NFT_RETURN, None),
            Verdict::Jump(c) => (NFT_JUMP, Some(c)),
            Verdict::Goto(c) => (NFT_GOTO, Some(c)),
        };
        w.nested(NFTA_DATA_VERDICT, |w| {
            w.be32_signed(NFTA_VERDICT_CODE, code);
            if let Some(c) = chain {
                w.string(NFTA_VERDICT_CHAIN, c);
            }
        });
    }

    /// The chain a jump or goto names.
    pub fn target(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            _ => None,
        }
    }
}

/// `enum nft_cmp_ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
    Lt = 2,
    Lte = 3,
    Gt = 4,
    Gte = 5,
}

/// `enum nft_payload_bases`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadBase {
    LinkLayer = 0,
    Network = 1,
    Transport = 2,
}

/// `enum nft_meta_keys` (the ones a service proxy reads or writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    Len = 0,
    Protocol = 1,
    Mark = 3,
    Iif = 4,
    Oif = 5,
    IifName = 6,
    OifName = 7,
    NfProto = 15,
    L4Proto = 16,
}

/// `enum nft_ct_keys` (subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtKey {
    State = 0,
    Direction = 1,
    Status = 2,
    Mark = 3,
}

/// `enum nft_nat_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatType {
    Snat = 0,
    Dnat = 1,
}

/// `enum nft_dynset_ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynsetOp {
    Add = 0,
    Update = 1,
    Delete = 2,
}

/// `enum nft_reject_types` with its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// `NFT_REJECT_ICMP_UNREACH` with an ICMPv4/v6 code (3 = port unreachable for v4).
    Icmp(u8),
    /// `NFT_REJECT_TCP_RST`.
    TcpRst,
    /// `NFT_REJECT_ICMPX_UNREACH` with an `nft_reject_icmpx_codes` code (1 = port unreachable):
    /// the family-neutral form `inet` tables use.
    Icmpx(u8),
}

/// A set referenced by a rule: by name, and by the batch-local ID when the set is created in
/// the same batch (anonymous sets can only be found that way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRef {
    pub name: String,
    pub id: Option<u32>,
}

/// One kernel expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Payload {
        dreg: Reg,
        base: PayloadBase,
        offset: u32,
        len: u32,
    },
    Meta {
        key: MetaKey,
        dreg: Reg,
    },
    MetaSet {
        key: MetaKey,
        sreg: Reg,
    },
    Ct {
        key: CtKey,
        dreg: Reg,
    },
    Cmp {
        sreg: Reg,
        op: CmpOp,
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor`. `explicit_op` adds `NFTA_BITWISE_OP = BOOL`, which nft
    /// sends for meta mark arithmetic but not for ct state tests; the kernel defaults to it.
    Bitwise {
        sreg: Reg,
        dreg: Reg,
        mask: Vec<u8>,
        xor: Vec<u8>,
        explicit_op: bool,
    },
    Immediate {
        dreg: Reg,
        data: Vec<u8>,
    },
    Verdict(Verdict),
    Lookup {
        set: SetRef,
        sreg: Reg,
        dreg: Option<Reg>,
        invert: bool,
    },
    Dynset {
        set: SetRef,
        op: DynsetOp,
        sreg_key: Reg,
        timeout_ms: Option<u64>,
    },
    Numgen {
        dreg: Reg,
        modulus: u32,
        random: bool,
        offset: u32,
    },
    Nat {
        kind: NatType,
        family: u8,
        addr: Option<Reg>,
        proto: Option<Reg>,
        flags: u32,
    },
    Masquerade {
        flags: u32,
    },
    Reject(Reject),
    Counter,
    /// A routing lookup: `flags` pick the address (`NFTA_FIB_F_SADDR`/`_DADDR`), `result`
    /// what is loaded (`NFT_FIB_RESULT_ADDRTYPE` for `fib ... type`).
    Fib {
        dreg: Reg,
        result: u32,
        flags: u32,
    },
}

impl Expr {
    /// The kernel's name for the expression (`NFTA_EXPR_NAME`).
    pub fn name(&self) -> &'static str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
            Expr::Ct { .. } => "ct",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Immediate { .. } | Expr::Verdict(_) => "immediate",
            Expr::Lookup { .. } => "lookup",
            Expr::Dynset { .. } => "dynset",
            Expr::Numgen { .. } => "numgen",
            Expr::Nat { .. } => "nat",
            Expr::Masquerade { .. } => "masq",
            Expr::Reject(_) => "reject",
            Expr::Counter => "counter",
            Expr::Fib { .. } => "fib",
        }
    }

    /// The `NFTA_LIST_ELEM` nest that carries this expression inside `NFTA_RULE_EXPRESSIONS`.
    pub fn to_attr(&self) -> Attr {
        let mut wire = Vec::new();
        self.write(&mut AttrWriter::new(&mut wire));
        Attr::from_wire(wire)
    }

    /// Writes the `NFTA_LIST_ELEM` nest.
    pub(crate) fn write(&self, w: &mut AttrWriter<'_>) {
        w.nested(NFTA_LIST_ELEM, |w| {
            w.string(NFTA_EXPR_NAME, self.name());
            w.nested(NFTA_EXPR_DATA, |w| self.write_data(w));
        });
    }

    fn write_data(&self, w: &mut AttrWriter<'_>) {
        let value = |w: &mut AttrWriter<'_>, kind, bytes: &[u8]| w.nested(kind, |w| w.bytes(NFTA_DATA_VALUE, bytes));
        match self {
            Expr::Payload { dreg, base, offset, len } => {
                w.be32(NFTA_PAYLOAD_DREG, dreg.0);
                w.be32(NFTA_PAYLOAD_BASE, *base as u32);
                w.be32(NFTA_PAYLOAD_OFFSET, *offset);
                w.be32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Meta { key, dreg } => {
                w.be32(NFTA_META_KEY, *key as u32);
                w.be32(NFTA_META_DREG, dreg.0);
            }
            Expr::MetaSet { key, sreg } => {
                w.be32(NFTA_META_KEY, *key as u32);
                w.be32(NFTA_META_SREG, sreg.0);
            }
            Expr::Ct { key, dreg } => {
                w.be32(NFTA_CT_KEY, *key as u32);
                w.be32(NFTA_CT_DREG, dreg.0);
            }
            Expr::Cmp { sreg, op, data } => {
                w.be32(NFTA_CMP_SREG, sreg.0);
                w.be32(NFTA_CMP_OP, *op as u32);
                value(w, NFTA_CMP_DATA, data);
            }
            Expr::Bitwise { sreg, dreg, mask, xor, explicit_op } => {
                w.be32(NFTA_BITWISE_SREG, sreg.0);
                w.be32(NFTA_BITWISE_DREG, dreg.0);
                if *explicit_op {
                    w.be32(NFTA_BITWISE_OP, 0);
                }
                w.be32(NFTA_BITWISE_LEN, mask.len() as u32);
                value(w, NFTA_BITWISE_MASK, mask);
                value(w, NFTA_BITWISE_XOR, xor);
            }
            Expr::Immediate { dreg, data } => {
                w.be32(NFTA_IMMEDIATE_DREG, dreg.0);
                value(w, NFTA_IMMEDIATE_DATA, data);
            }
            Expr::Verdict(v) => {
                w.be32(NFTA_IMMEDIATE_DREG, Reg::VERDICT.0);
                w.nested(NFTA_IMMEDIATE_DATA, |w| v.write_data(w));
            }
            Expr::Lookup { set, sreg, dreg, invert } => {
                w.be32(NFTA_LOOKUP_SREG, sreg.0);
                if let Some(d) = dreg {
                    w.be32(NFTA_LOOKUP_DREG, d.0);
                }
                w.string(NFTA_LOOKUP_SET, &set.name);
                if let Some(id) = set.id {
                    w.be32(NFTA_LOOKUP_SET_ID, id);
                }
                if *invert {
                    w.be32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
                }
            }
            Expr::Dynset { set, op, sreg_key, timeout_ms } => {
                w.be32(NFTA_DYNSET_SREG_KEY, sreg_key.0);
                w.be32(NFTA_DYNSET_OP, *op as u32);
                if let Some(t) = timeout_ms {
                    w.be64(NFTA_DYNSET_TIMEOUT, *t);
                }
                w.string(NFTA_DYNSET_SET_NAME, &set.name);
                if let Some(id) = set.id {
                    w.be32(NFTA_DYNSET_SET_ID, id);
                }
            }
            Expr::Numgen { dreg, modulus, random, offset } => {
                w.be32(NFTA_NG_DREG, dreg.0);
                w.be32(NFTA_NG_MODULUS, *modulus);
                w.be32(NFTA_NG_TYPE, u32::from(*random));
                w.be32(NFTA_NG_OFFSET, *offset);
            }
            Expr::Nat { kind, family, addr, proto, flags } => {
                w.be32(NFTA_NAT_TYPE, *kind as u32);
                w.be32(NFTA_NAT_FAMILY, u32::from(*family));
                if let Some(r) = addr {
                    w.be32(NFTA_NAT_REG_ADDR_MIN, r.0);
                }
                if let Some(r) = proto {
                    w.be32(NFTA_NAT_REG_PROTO_MIN, r.0);
                }
                if *flags != 0 {
                    w.be32(NFTA_NAT_FLAGS, *flags);
                }
            }
            Expr::Masquerade { flags } => {
                if *flags != 0 {
                    w.be32(NFTA_MASQ_FLAGS, *flags);
                }
            }
            Expr::Reject(r) => {
                let (kind, code) = match r {
                    Reject::Icmp(c) => (0, *c),
                    Reject::TcpRst => (1, 0),
                    Reject::Icmpx(c) => (2, *c),
                };
                w.be32(NFTA_REJECT_TYPE, kind);
                w.u8(NFTA_REJECT_ICMP_CODE, code);
            }
            Expr::Counter => {}
            // libnftnl's order: flags, result, dreg.
            Expr::Fib { dreg, result, flags } => {
                w.be32(NFTA_FIB_FLAGS, *flags);
                w.be32(NFTA_FIB_RESULT, *result);
                w.be32(NFTA_FIB_DREG, dreg.0);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::attr::tests::hex;

    fn enc(e: &Expr) -> String {
        let mut out = Vec::new();
        e.to_attr().emit_into(&mut out);
        hex(&out)
    }

    #[test]
    fn concatenation_fields_use_nfts_registers() {
        // `ip daddr . meta l4proto . th dport`: 4 + 4 (padded) + 4 (padded) bytes -> 1, 9, 10.
        let regs: Vec<u32> = [0, 4, 8].iter().map(|o| Reg::concat_field(*o).0).collect();
        assert_eq!(regs, vec![1, 9, 10]);
        // An IPv6 address fills four 32-bit registers, so the next field starts at 12.
        assert_eq!(Reg::concat_field(16).0, 12);
    }

    #[test]
    fn verdicts_carry_kernel_codes_and_chain_names() {
        let cases: Vec<(Verdict, &str)> = vec![
            (Verdict::Accept, "0c0002800800010000000001"),
            (Verdict::Drop, "0c0002800800010000000000"),
            (Verdict::Return, "0c00028008000100fffffffb"),
            (Verdict::Goto("ep-a".into()), "1800028008000100fffffffc0900020065702d6100000000"),
            (Verdict::Jump("ep-a".into()), "1800028008000100fffffffd0900020065702d6100000000"),
        ];
        for (v, want) in cases {
            let mut out = Vec::new();
            v.data_attr().emit_into(&mut out);
            assert_eq!(hex(&out), want, "{v:?}");
        }
        assert_eq!(Verdict::Jump("x".into()).target(), Some("x"));
        assert_eq!(Verdict::Accept.target(), None);
    }

    #[test]
    fn fib_is_encoded_as_nft_sends_it() {
        // `nft --debug=mnl` for `fib saddr type local`: flags 1, result 3 (addrtype), dreg 1.
        let e = Expr::Fib { dreg: Reg::R1, result: NFT_FIB_RESULT_ADDRTYPE, flags: NFTA_FIB_F_SADDR };
        assert_eq!(
            enc(&e),
            "2800018008000100666962001c0002800800030000000001080002000000000308000100000000\
             01"
        );
    }

    #[test]
    fn optional_attributes_are_left_out() {
        let plain =
            Expr::Lookup { set: SetRef { name: "s".into(), id: None }, sreg: Reg::R1, dreg: None, invert: false };
        let full = Expr::Lookup {
            set: SetRef { name: "s".into(), id: Some(3) },
            sreg: Reg::R1,
            dreg: Some(Reg::VERDICT),
            invert: true,
        };
        // dreg (8) + set id (8) + flags (8) bytes more.
        assert_eq!(enc(&full).len() - enc(&plain).len(), 2 * 24);
        assert_eq!(enc(&Expr::Masquerade { flags: 0 }).len() + 16, enc(&Expr::Masquerade { flags: 0x10 }).len());
    }
}
