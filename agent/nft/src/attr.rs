//! The netlink attribute tree every nf_tables message is made of, and its encoding (the
//! layout of `netlink-packet-core`'s `Nla`). Typed modules build `Attr` trees; only this
//! module knows about lengths, alignment and the nested flag.

use netlink_packet_core::{NLA_ALIGNTO, NLA_F_NESTED, NLA_HEADER_SIZE, NLA_TYPE_MASK};

/// One attribute: a type and either raw bytes or nested attributes.
///
/// It is kept in wire form (header, value, padding), encoded when built: a nest absorbs its
/// children's bytes and frees them at once. A large batch is then a few buffers per message
/// rather than a tree of tiny allocations per expression, which cost more to build, walk and
/// free than the kernel takes to parse them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    wire: Vec<u8>,
}

impl Attr {
    /// The header for a value of `value_len` bytes, with room for the padded value.
    fn with_header(kind: u16, value_len: usize) -> Vec<u8> {
        let mut wire = Vec::with_capacity(align(NLA_HEADER_SIZE + value_len));
        // Values past 64 KiB cannot be expressed: callers split element lists well below that.
        wire.extend_from_slice(&((NLA_HEADER_SIZE + value_len) as u16).to_ne_bytes());
        wire.extend_from_slice(&kind.to_ne_bytes());
        wire
    }

    /// Raw bytes, copied as given.
    pub fn bytes(kind: u16, value: impl AsRef<[u8]>) -> Self {
        let value = value.as_ref();
        let mut wire = Attr::with_header(kind, value.len());
        wire.extend_from_slice(value);
        // The length field counts the value without its padding (libmnl's nla_len).
        wire.resize(align(wire.len()), 0);
        Attr { wire }
    }

    /// A NUL-terminated string, as the kernel's `NLA_STRING`/`NLA_NUL_STRING` policies read them.
    pub fn string(kind: u16, s: &str) -> Self {
        let mut wire = Attr::with_header(kind, s.len() + 1);
        wire.extend_from_slice(s.as_bytes());
        wire.push(0);
        wire.resize(align(wire.len()), 0);
        Attr { wire }
    }

    /// nf_tables sends every integer attribute in network byte order.
    pub fn be32(kind: u16, v: u32) -> Self {
        Attr::bytes(kind, v.to_be_bytes())
    }

    /// A signed value in network byte order (verdict codes, hook priorities).
    pub fn be32_signed(kind: u16, v: i32) -> Self {
        Attr::bytes(kind, v.to_be_bytes())
    }

    /// A 64-bit value in network byte order (handles, timeouts).
    pub fn be64(kind: u16, v: u64) -> Self {
        Attr::bytes(kind, v.to_be_bytes())
    }

    /// A single byte (the reject ICMP code).
    pub fn u8(kind: u16, v: u8) -> Self {
        Attr::bytes(kind, [v])
    }

    /// Attributes nested inside this one; flagged `NLA_F_NESTED` like libmnl does. A nest's
    /// length covers its children with their padding.
    pub fn nested(kind: u16, children: Vec<Attr>) -> Self {
        let value_len = children.iter().map(|c| c.wire.len()).sum();
        let mut wire = Attr::with_header(kind | NLA_F_NESTED, value_len);
        for c in &children {
            wire.extend_from_slice(&c.wire);
        }
        Attr { wire }
    }

    /// Bytes this attribute takes on the wire, padding included.
    pub fn wire_len(&self) -> usize {
        self.wire.len()
    }

    /// Appends the encoded attribute to `out`.
    pub fn emit_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.wire);
    }
}

/// Writes attributes straight into a nest's buffer: what rules and element lists are built
/// with, as they are most of a large batch (no allocation per leaf or per level).
pub struct AttrWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl AttrWriter<'_> {
    fn put(&mut self, kind: u16, value: &[u8]) {
        let len = (NLA_HEADER_SIZE + value.len()) as u16;
        self.out.extend_from_slice(&len.to_ne_bytes());
        self.out.extend_from_slice(&kind.to_ne_bytes());
        self.out.extend_from_slice(value);
        self.out.resize(align(self.out.len()), 0);
    }

    /// As [`Attr::bytes`].
    pub fn bytes(&mut self, kind: u16, value: &[u8]) {
        self.put(kind, value);
    }

    /// As [`Attr::string`].
    pub fn string(&mut self, kind: u16, s: &str) {
        let len = (NLA_HEADER_SIZE + s.len() + 1) as u16;
        self.out.extend_from_slice(&len.to_ne_bytes());
        self.out.extend_from_slice(&kind.to_ne_bytes());
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(0);
        self.out.resize(align(self.out.len()), 0);
    }

    /// As [`Attr::be32`].
    pub fn be32(&mut self, kind: u16, v: u32) {
        self.put(kind, &v.to_be_bytes());
    }

    /// As [`Attr::be32_signed`].
    pub fn be32_signed(&mut self, kind: u16, v: i32) {
        self.put(kind, &v.to_be_bytes());
    }

    /// As [`Attr::be64`].
    pub fn be64(&mut self, kind: u16, v: u64) {
        self.put(kind, &v.to_be_bytes());
    }

    /// As [`Attr::u8`].
    pub fn u8(&mut self, kind: u16, v: u8) {
        self.put(kind, &[v]);
    }

    /// A nest whose children `f` writes; its length is patched in afterwards.
    pub fn nested(&mut self, kind: u16, f: impl FnOnce(&mut AttrWriter<'_>)) {
        let start = self.out.len();
        self.out.extend_from_slice(&[0; NLA_HEADER_SIZE]);
        f(&mut AttrWriter { out: self.out });
        let len = (self.out.len() - start) as u16;
        self.out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.out[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }
}

impl<'a> AttrWriter<'a> {
    /// Appends attributes to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        AttrWriter { out }
    }

    /// Appends an attribute built elsewhere.
    pub fn attr(&mut self, a: &Attr) {
        self.out.extend_from_slice(&a.wire);
    }
}

impl Attr {
    /// An attribute already encoded by an [`AttrWriter`] (exactly one, header included).
    pub(crate) fn from_wire(wire: Vec<u8>) -> Self {
        Attr { wire }
    }

    /// A nest written in place by `f` (see [`AttrWriter`]).
    pub fn nested_with(kind: u16, f: impl FnOnce(&mut AttrWriter<'_>)) -> Self {
        // Room for a typical rule's expressions without regrowing.
        let mut wire = Vec::with_capacity(512);
        AttrWriter { out: &mut wire }.nested(kind, f);
        Attr { wire }
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
    fn the_writer_encodes_like_the_tree() {
        let tree = Attr::nested(
            1,
            vec![
                Attr::string(1, "meta"),
                Attr::nested(2, vec![Attr::be32(1, 7), Attr::nested(3, vec![Attr::bytes(1, [1, 2, 3])])]),
                Attr::be64(3, 9),
                Attr::u8(4, 1),
                Attr::be32_signed(5, -3),
                Attr::nested(6, vec![]),
            ],
        );
        let written = Attr::nested_with(1, |w| {
            w.string(1, "meta");
            w.nested(2, |w| {
                w.be32(1, 7);
                w.nested(3, |w| w.bytes(1, &[1, 2, 3]));
            });
            w.be64(3, 9);
            w.u8(4, 1);
            w.be32_signed(5, -3);
            w.nested(6, |_| {});
        });
        assert_eq!(written, tree);
        assert_eq!(written.wire_len(), 4 + 12 + (4 + 8 + 4 + 8) + 12 + 8 + 8 + 4);
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
