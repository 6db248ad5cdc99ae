//! The netlink attribute tree every nf_tables message is made of, and its encoding (the
//! layout of `netlink-packet-core`'s `Nla`, written in one pass). Typed modules build `Attr`
//! trees; only this module knows about lengths, alignment and the nested flag.

use netlink_packet_core::{NLA_ALIGNTO, NLA_F_NESTED, NLA_HEADER_SIZE, NLA_TYPE_MASK};

/// One attribute: a type and either raw bytes or nested attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    kind: u16,
    value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Bytes(Vec<u8>),
    Nested(Vec<Attr>),
}

impl Attr {
    /// Raw bytes, copied as given.
    pub fn bytes(kind: u16, value: impl Into<Vec<u8>>) -> Self {
        Attr { kind, value: Value::Bytes(value.into()) }
    }

    /// A NUL-terminated string, as the kernel's `NLA_STRING`/`NLA_NUL_STRING` policies read them.
    pub fn string(kind: u16, s: &str) -> Self {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        Attr::bytes(kind, v)
    }

    /// nf_tables sends every integer attribute in network byte order.
    pub fn be32(kind: u16, v: u32) -> Self {
        Attr::bytes(kind, v.to_be_bytes().to_vec())
    }

    /// A signed value in network byte order (verdict codes, hook priorities).
    pub fn be32_signed(kind: u16, v: i32) -> Self {
        Attr::bytes(kind, v.to_be_bytes().to_vec())
    }

    /// A 64-bit value in network byte order (handles, timeouts).
    pub fn be64(kind: u16, v: u64) -> Self {
        Attr::bytes(kind, v.to_be_bytes().to_vec())
    }

    /// A single byte (the reject ICMP code).
    pub fn u8(kind: u16, v: u8) -> Self {
        Attr::bytes(kind, vec![v])
    }

    /// Attributes nested inside this one; flagged `NLA_F_NESTED` like libmnl does.
    pub fn nested(kind: u16, children: Vec<Attr>) -> Self {
        Attr { kind, value: Value::Nested(children) }
    }

    /// Bytes this attribute takes on the wire, padding included.
    pub fn wire_len(&self) -> usize {
        let value = match &self.value {
            Value::Bytes(b) => b.len(),
            Value::Nested(children) => children.iter().map(Attr::wire_len).sum(),
        };
        align(NLA_HEADER_SIZE + value)
    }

    /// Appends the encoded attribute to `out` in one pass: the header's length is patched
    /// in once the value is written, so nested trees cost linear time whatever their depth
    /// (measuring every level again before writing it made deep rules exponential).
    pub fn emit_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; NLA_HEADER_SIZE]);
        let kind = match &self.value {
            Value::Bytes(b) => {
                out.extend_from_slice(b);
                self.kind
            }
            Value::Nested(children) => {
                for child in children {
                    child.emit_into(out);
                }
                self.kind | NLA_F_NESTED
            }
        };
        // The length excludes the trailing padding of the value itself (libmnl's nla_len);
        // a nest's length includes its children's padding. Values past 64 KiB cannot be
        // expressed: callers split element lists well below that.
        let len = (out.len() - start) as u16;
        out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        out[start + 2..start + 4].copy_from_slice(&kind.to_ne_bytes());
        out.resize(start + align(out.len() - start), 0);
    }
}

fn align(len: usize) -> usize {
    len.div_ceil(NLA_ALIGNTO) * NLA_ALIGNTO
}

/// A parsed attribute borrowed from a kernel reply: its type (flags stripped) and value.
#[derive(Debug, Clone, Copy)]
pub struct RawAttr<'a> {
    pub kind: u16,
    pub value: &'a [u8],
}

impl<'a> RawAttr<'a> {
    /// The value as a string without its NUL terminator.
    pub fn as_str(&self) -> Option<&'a str> {
        let end = self.value.iter().position(|&b| b == 0).unwrap_or(self.value.len());
        std::str::from_utf8(&self.value[..end]).ok()
    }

    /// A network-order u32.
    pub fn as_be32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.value.get(..4)?.try_into().ok()?))
    }

    /// A network-order u64.
    pub fn as_be64(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.value.get(..8)?.try_into().ok()?))
    }

    /// The attributes nested in this one.
    pub fn nested(&self) -> Result<Vec<RawAttr<'a>>, crate::Error> {
        parse_attrs(self.value)
    }
}

/// Splits a run of attributes, rejecting truncated ones. `NlaBuffer` would check the same,
/// but its values borrow the buffer object rather than the bytes, so the walk is done here.
pub fn parse_attrs(buf: &[u8]) -> Result<Vec<RawAttr<'_>>, crate::Error> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let h = buf
            .get(at..at + NLA_HEADER_SIZE)
            .ok_or_else(|| crate::Error::Decode(format!("attribute header cut at offset {at}")))?;
        let len = usize::from(u16::from_ne_bytes([h[0], h[1]]));
        let kind = u16::from_ne_bytes([h[2], h[3]]) & NLA_TYPE_MASK;
        let value = buf
            .get(at + NLA_HEADER_SIZE..at + len.max(NLA_HEADER_SIZE))
            .filter(|_| len >= NLA_HEADER_SIZE)
            .ok_or_else(|| {
                crate::Error::Decode(format!("attribute {kind} of length {len} at offset {at} overruns {}", buf.len()))
            })?;
        out.push(RawAttr { kind, value });
        at += len.div_ceil(NLA_ALIGNTO) * NLA_ALIGNTO;
    }
    Ok(out)
}

/// The first attribute of a given type.
pub fn find<'a>(attrs: &[RawAttr<'a>], kind: u16) -> Option<RawAttr<'a>> {
    attrs.iter().find(|a| a.kind == kind).copied()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn encodes_padding_nesting_and_lengths_like_libmnl() {
        // Vectors taken from `nft --debug=mnl`: "meta\0" is a 9-byte attribute padded to 12;
        // a nest carries the 0x8000 flag and its length covers the children with padding.
        let cases: Vec<(Attr, &str)> = vec![
            (Attr::string(1, "meta"), "090001006d65746100000000"),
            (Attr::be32(2, 0x10), "0800020000000010"),
            (Attr::u8(1, 6), "0500010006000000"),
            (Attr::bytes(1, vec![0x1f, 0x90]), "060001001f900000"),
            (Attr::be64(11, 10_800_000), "0c000b000000000000a4cb80"),
            (Attr::nested(2, vec![Attr::be32(2, 0xf), Attr::be32(1, 1)]), "14000280080002000000000f0800010000000001"),
            (Attr::nested(2, vec![]), "04000280"),
        ];
        for (attr, want) in cases {
            let mut out = Vec::new();
            attr.emit_into(&mut out);
            assert_eq!(hex(&out), want, "{attr:?}");
            assert_eq!(out.len(), attr.wire_len());
        }
    }

    #[test]
    fn parses_back_what_it_encodes() {
        let attr = Attr::nested(3, vec![Attr::string(1, "edge"), Attr::be32(2, 7)]);
        let mut out = Vec::new();
        attr.emit_into(&mut out);
        let top = parse_attrs(&out).unwrap();
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].kind, 3);
        let inner = top[0].nested().unwrap();
        assert_eq!(find(&inner, 1).unwrap().as_str(), Some("edge"));
        assert_eq!(find(&inner, 2).unwrap().as_be32(), Some(7));
        assert!(find(&inner, 9).is_none());
    }

    #[test]
    fn truncated_attribute_is_an_error() {
        // Claims 12 bytes, carries 6.
        assert!(parse_attrs(&[12, 0, 1, 0, 1, 2]).is_err());
    }

    pub(crate) fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
