//! Sets and maps: key/data types (including concatenations), elements, and the NEWSET /
//! NEWSETELEM / DELSETELEM attributes.
//!
//! Byte order matters twice here: the kernel compares keys as raw register bytes, so a key
//! must be laid out exactly as the rule's expressions leave it in the registers (network order
//! for addresses and ports, host order for `numgen` and marks); and every concatenated field
//! occupies a whole number of 32-bit registers, so each field is zero-padded to 4 bytes.

use std::net::IpAddr;
use std::time::Duration;

use crate::attr::{Attr, AttrWriter};
use crate::expr::{SetRef, Verdict};
use crate::sys::*;
use crate::table::Table;
use crate::Error;

/// Byte order recorded in the set's userdata so that `nft list` prints keys readably
/// (libnftnl's `NFTNL_UDATA_SET_KEYBYTEORDER` values: nft's `enum byteorder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteOrder {
    Mixed = 0,
    Host = 1,
    Big = 2,
}

/// One key (or data) field type, named after nft's datatypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `ipv4_addr`
    Ipv4Addr,
    /// `ipv6_addr`
    Ipv6Addr,
    /// `inet_proto` (one byte, e.g. 6 for TCP)
    InetProto,
    /// `inet_service` (a port, network order)
    InetService,
    /// `mark` (host order)
    Mark,
    /// `integer` of 4 bytes in host order: what `numgen` produces.
    HostU32,
}

impl KeyType {
    /// nft's datatype number (`enum datatypes` in nft's datatype.h).
    fn type_id(self) -> u32 {
        match self {
            KeyType::HostU32 => 4,
            KeyType::Ipv4Addr => 7,
            KeyType::Ipv6Addr => 8,
            KeyType::InetProto => 12,
            KeyType::InetService => 13,
            KeyType::Mark => 19,
        }
    }

    /// Length of the value itself, before register padding.
    pub fn byte_len(self) -> u32 {
        match self {
            KeyType::Ipv4Addr | KeyType::Mark | KeyType::HostU32 => 4,
            KeyType::Ipv6Addr => 16,
            KeyType::InetProto => 1,
            KeyType::InetService => 2,
        }
    }

    fn byteorder(self) -> ByteOrder {
        match self {
            KeyType::Mark | KeyType::HostU32 => ByteOrder::Host,
            _ => ByteOrder::Big,
        }
    }
}

/// nft packs a concatenation's datatype as 6 bits per field, first field highest.
const CONCAT_TYPE_BITS: u32 = 6;

fn padded(len: u32) -> u32 {
    len.div_ceil(4) * 4
}

/// What a map maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapData {
    Verdict,
    Value(KeyType),
}

/// A named set or map (`NEWSET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub table: Table,
    pub name: String,
    /// Key fields; more than one makes a concatenation (`a . b . c`).
    pub key: Vec<KeyType>,
    pub data: Option<MapData>,
    /// `flags timeout` with this default timeout.
    pub timeout: Option<Duration>,
    /// `flags dynamic`: the set may be updated from the packet path (dynset).
    pub dynamic: bool,
    pub(crate) anonymous: bool,
    pub(crate) size: Option<u32>,
}

impl Set {
    /// A plain set with the given key.
    pub fn new(table: &Table, name: impl Into<String>, key: &[KeyType]) -> Self {
        Set {
            table: table.clone(),
            name: name.into(),
            key: key.to_vec(),
            data: None,
            timeout: None,
            dynamic: false,
            anonymous: false,
            size: None,
        }
    }

    /// A verdict map (`key : verdict`).
    pub fn verdict_map(table: &Table, name: impl Into<String>, key: &[KeyType]) -> Self {
        Set { data: Some(MapData::Verdict), ..Set::new(table, name, key) }
    }

    /// Elements expire after `timeout` unless refreshed (`flags timeout; timeout Ns`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Allows `update @set { ... }` from rules (`flags dynamic`).
    pub fn dynamic(mut self) -> Self {
        self.dynamic = true;
        self
    }

    /// A reference by name, for sets that already exist in the kernel.
    pub fn reference(&self) -> SetRef {
        SetRef { name: self.name.clone(), id: None }
    }

    /// Key length in bytes, each field padded to a register.
    pub fn key_len(&self) -> u32 {
        match self.key.as_slice() {
            [single] => single.byte_len(),
            fields => fields.iter().map(|f| padded(f.byte_len())).sum(),
        }
    }

    fn key_type(&self) -> u32 {
        self.key.iter().fold(0, |acc, f| (acc << CONCAT_TYPE_BITS) | f.type_id())
    }

    fn key_byteorder(&self) -> ByteOrder {
        match self.key.as_slice() {
            [single] => single.byteorder(),
            _ => ByteOrder::Mixed,
        }
    }

    pub(crate) fn flags(&self) -> u32 {
        let mut f = 0;
        if self.anonymous {
            f |= NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
        }
        if self.data.is_some() {
            f |= NFT_SET_MAP;
        }
        if self.timeout.is_some() {
            f |= NFT_SET_TIMEOUT;
        }
        if self.dynamic {
            f |= NFT_SET_EVAL;
        }
        f
    }

    /// NEWSET attributes in libnftnl's order.
    pub(crate) fn new_attrs(&self, id: u32) -> Vec<Attr> {
        let mut v = vec![
            Attr::string(NFTA_SET_TABLE, &self.table.name),
            Attr::string(NFTA_SET_NAME, &self.name),
            Attr::be32(NFTA_SET_FLAGS, self.flags()),
            Attr::be32(NFTA_SET_KEY_TYPE, self.key_type()),
            Attr::be32(NFTA_SET_KEY_LEN, self.key_len()),
        ];
        match self.data {
            Some(MapData::Verdict) => {
                v.push(Attr::be32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT));
                v.push(Attr::be32(NFTA_SET_DATA_LEN, 0));
            }
            Some(MapData::Value(t)) => {
                v.push(Attr::be32(NFTA_SET_DATA_TYPE, t.type_id()));
                v.push(Attr::be32(NFTA_SET_DATA_LEN, t.byte_len()));
            }
            None => {}
        }
        v.push(Attr::be32(NFTA_SET_ID, id));
        if let Some(t) = self.timeout {
            v.push(Attr::be64(NFTA_SET_TIMEOUT, t.as_millis() as u64));
        }
        if let Some(size) = self.size {
            v.push(Attr::nested(NFTA_SET_DESC, vec![Attr::be32(NFTA_SET_DESC_SIZE, size)]));
        }
        v.push(Attr::bytes(NFTA_SET_USERDATA, self.userdata()));
        v
    }

    /// libnftnl's udata TLVs (u8 type, u8 length, value in host order): the byte orders nft
    /// needs to print keys and data. Nothing in the kernel reads them.
    fn userdata(&self) -> Vec<u8> {
        let mut u = Vec::new();
        let mut put = |kind: u8, v: u32| {
            u.push(kind);
            u.push(4);
            u.extend_from_slice(&v.to_ne_bytes());
        };
        put(0, self.key_byteorder() as u32);
        match self.data {
            Some(MapData::Verdict) => put(1, 0),
            Some(MapData::Value(t)) => put(1, t.byteorder() as u32),
            None => {}
        }
        u
    }

    pub(crate) fn del_attrs(&self) -> Vec<Attr> {
        vec![Attr::string(NFTA_SET_TABLE, &self.table.name), Attr::string(NFTA_SET_NAME, &self.name)]
    }

    /// Checks that an element fits this set before it reaches the kernel (which would only
    /// say EINVAL).
    pub(crate) fn check(&self, e: &Elem) -> Result<(), Error> {
        let bad = |reason: String| Error::InvalidElement { set: self.name.clone(), reason };
        if e.key.len() as u32 != self.key_len() {
            return Err(bad(format!("key is {} bytes, the set's key is {}", e.key.len(), self.key_len())));
        }
        match (&self.data, &e.data) {
            (None, None) | (Some(MapData::Verdict), Some(ElemData::Verdict(_))) => {}
            (Some(MapData::Value(t)), Some(ElemData::Value(v))) if v.len() as u32 == t.byte_len() => {}
            (None, Some(_)) => return Err(bad("a set element cannot carry data".into())),
            _ => return Err(bad("element data does not match the map's data type".into())),
        }
        if e.timeout.is_some() && self.timeout.is_none() {
            return Err(bad("element timeout on a set without flags timeout".into()));
        }
        Ok(())
    }
}

/// Builds a (possibly concatenated) key, padding each field to 4 bytes like the registers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new() -> Self {
        Key(Vec::new())
    }

    fn field(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        let pad = (4 - bytes.len() % 4) % 4;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    /// An address in network order (4 or 16 bytes).
    pub fn addr(self, ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => self.field(&a.octets()),
            IpAddr::V6(a) => self.field(&a.octets()),
        }
    }

    /// An L4 protocol number (`meta l4proto`).
    pub fn proto(self, proto: u8) -> Self {
        self.field(&[proto])
    }

    /// A port in network order (`th dport`).
    pub fn port(self, port: u16) -> Self {
        self.field(&port.to_be_bytes())
    }

    /// A host-order 32-bit integer: `numgen` results and marks.
    pub fn host_u32(self, v: u32) -> Self {
        self.field(&v.to_ne_bytes())
    }

    /// The key bytes. A single field that is shorter than 4 bytes is sent unpadded, as a
    /// one-field set's key length is the field's own length.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Data of a map element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElemData {
    Verdict(Verdict),
    Value(Vec<u8>),
}

/// A set or map element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub key: Vec<u8>,
    pub data: Option<ElemData>,
    pub timeout: Option<Duration>,
}

impl Elem {
    /// A set element.
    pub fn key(key: Key) -> Self {
        Elem { key: key.into_bytes(), data: None, timeout: None }
    }

    /// A verdict map element (`key : verdict`).
    pub fn verdict(key: Key, verdict: Verdict) -> Self {
        Elem { key: key.into_bytes(), data: Some(ElemData::Verdict(verdict)), timeout: None }
    }

    /// Writes the `NFTA_LIST_ELEM`-style nest; libnftnl numbers elements 1, 2, … as the nest type.
    pub(crate) fn write(&self, w: &mut AttrWriter<'_>, index: u16, with_data: bool) {
        w.nested(index, |w| {
            w.nested(NFTA_SET_ELEM_KEY, |w| w.bytes(NFTA_DATA_VALUE, &self.key));
            if let Some(t) = self.timeout {
                w.be64(NFTA_SET_ELEM_TIMEOUT, t.as_millis() as u64);
            }
            if with_data {
                match &self.data {
                    Some(ElemData::Verdict(vd)) => w.nested(NFTA_SET_ELEM_DATA, |w| vd.write_data(w)),
                    Some(ElemData::Value(b)) => w.nested(NFTA_SET_ELEM_DATA, |w| w.bytes(NFTA_DATA_VALUE, b)),
                    None => {}
                }
            }
        });
    }
}

/// NEWSETELEM/DELSETELEM attributes for one chunk of elements.
pub(crate) fn elem_list_attrs(set: &Set, set_id: Option<u32>, elems: &[Elem], with_data: bool) -> Vec<Attr> {
    let mut v =
        vec![Attr::string(NFTA_SET_ELEM_LIST_TABLE, &set.table.name), Attr::string(NFTA_SET_ELEM_LIST_SET, &set.name)];
    if let Some(id) = set_id {
        v.push(Attr::be32(NFTA_SET_ELEM_LIST_SET_ID, id));
    }
    if !elems.is_empty() {
        v.push(Attr::nested_with(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
            for (i, e) in elems.iter().enumerate() {
                e.write(w, (i + 1) as u16, with_data);
            }
        }));
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::table::Family;
    use std::net::Ipv4Addr;

    fn t() -> Table {
        Table::new(Family::Inet, "edge-proxy")
    }

    #[test]
    fn key_types_lengths_and_flags() {
        let svc = Set::verdict_map(&t(), "service-ips", &[KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService]);
        // DESIGN: the daddr . l4proto . dport key is padded to 12 bytes; nft's type 0x730d.
        assert_eq!(svc.key_len(), 12);
        assert_eq!(svc.key_type(), 0x730d);
        assert_eq!(svc.flags(), NFT_SET_MAP);
        let aff = Set::new(&t(), "aff", &[KeyType::Ipv4Addr]).with_timeout(Duration::from_secs(10800)).dynamic();
        assert_eq!((aff.key_len(), aff.key_type(), aff.flags()), (4, 7, 0x30));
        let v6 = Set::new(&t(), "v6", &[KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService]);
        assert_eq!(v6.key_len(), 24);
        let proto = Set::new(&t(), "p", &[KeyType::InetService]);
        assert_eq!(proto.key_len(), 2);
    }

    #[test]
    fn keys_are_laid_out_as_registers() {
        let k = Key::new().addr(Ipv4Addr::new(10, 43, 0, 1).into()).proto(6).port(443).into_bytes();
        assert_eq!(k, vec![10, 43, 0, 1, 6, 0, 0, 0, 0x01, 0xbb, 0, 0]);
        // numgen yields host-order integers (DESIGN facts), so map keys are host-order.
        assert_eq!(Key::new().host_u32(1).into_bytes(), 1u32.to_ne_bytes().to_vec());
    }

    #[test]
    fn elements_are_checked_against_the_set() {
        let svc = Set::verdict_map(&t(), "s", &[KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService]);
        let good =
            Elem::verdict(Key::new().addr(Ipv4Addr::LOCALHOST.into()).proto(6).port(80), Verdict::Goto("x".into()));
        let short = Elem::verdict(Key::new().addr(Ipv4Addr::LOCALHOST.into()), Verdict::Accept);
        let no_data = Elem::key(Key::new().addr(Ipv4Addr::LOCALHOST.into()).proto(6).port(80));
        let mut timed = good.clone();
        timed.timeout = Some(Duration::from_secs(1));
        assert!(svc.check(&good).is_ok());
        for bad in [short, no_data, timed] {
            assert!(matches!(svc.check(&bad), Err(Error::InvalidElement { .. })), "{bad:?}");
        }
    }
}
