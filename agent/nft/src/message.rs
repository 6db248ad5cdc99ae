//! One nf_tables netlink message: `nlmsghdr`, `nfgenmsg`, then attributes. Also the batch
//! delimiters, which are nfnetlink messages of their own.

use crate::attr::Attr;
use crate::sys::*;

/// Length of `struct nfgenmsg`.
pub const NFGENMSG_LEN: usize = 4;
/// Length of `struct nlmsghdr`.
const NLMSGHDR_LEN: usize = 16;

/// An nf_tables request before it gets a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Full netlink message type (`NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`, or a batch type).
    pub msg_type: u16,
    /// `NLM_F_*` flags besides `NLM_F_REQUEST`.
    pub flags: u16,
    /// `nfgenmsg.nfgen_family`.
    pub family: u8,
    /// `nfgenmsg.res_id`, host order (only batch delimiters set it).
    pub res_id: u16,
    pub attrs: Vec<Attr>,
    /// Human description used in errors, e.g. `NEWCHAIN inet edge-proxy svc-a`.
    pub what: String,
}

impl Message {
    /// An nf_tables message of type `NFT_MSG_*`.
    pub fn nft(kind: u8, family: u8, flags: u16, attrs: Vec<Attr>, what: String) -> Self {
        Message { msg_type: (NFNL_SUBSYS_NFTABLES << 8) | u16::from(kind), flags, family, res_id: 0, attrs, what }
    }

    /// `NFNL_MSG_BATCH_BEGIN` or `_END` addressed to the nf_tables subsystem.
    pub fn batch_delimiter(kind: u16) -> Self {
        let what = if kind == NFNL_MSG_BATCH_BEGIN { "BATCH_BEGIN" } else { "BATCH_END" };
        Message {
            msg_type: kind,
            flags: 0,
            family: 0,
            res_id: NFNL_SUBSYS_NFTABLES,
            attrs: Vec::new(),
            what: what.into(),
        }
    }

    /// nfgenmsg + attributes: everything after the netlink header.
    pub fn payload_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload_len());
        self.write_payload(&mut out);
        out
    }

    /// Bytes of the whole netlink message, header included.
    pub fn wire_len(&self) -> usize {
        NLMSGHDR_LEN + self.payload_len()
    }

    fn payload_len(&self) -> usize {
        NFGENMSG_LEN + self.attrs.iter().map(Attr::wire_len).sum::<usize>()
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.family, NFNETLINK_V0]);
        out.extend_from_slice(&self.res_id.to_be_bytes());
        for a in &self.attrs {
            a.emit_into(out);
        }
    }

    /// Appends the complete netlink message with the given sequence number and extra flags.
    /// Written directly rather than through `NetlinkMessage`, which measures the attribute
    /// tree several times over; the layout is `struct nlmsghdr` with port id 0 (the kernel).
    pub fn emit(&self, seq: u32, extra_flags: u16, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.msg_type.to_ne_bytes());
        out.extend_from_slice(&(NLM_F_REQUEST | self.flags | extra_flags).to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        self.write_payload(out);
        let len = (out.len() - start) as u32;
        out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::attr::tests::hex;

    #[test]
    fn batch_begin_is_addressed_to_nftables() {
        // nft --debug=mnl: type 16, extra header "00 00 00 0a" (res_id = 10, big-endian).
        let mut out = Vec::new();
        Message::batch_delimiter(NFNL_MSG_BATCH_BEGIN).emit(7, 0, &mut out);
        assert_eq!(hex(&out), "140000001000010007000000000000000000000a");
    }

    #[test]
    fn header_carries_length_type_flags_and_seq() {
        let m = Message::nft(NFT_MSG_NEWTABLE, 1, NLM_F_CREATE, vec![Attr::string(1, "t")], "x".into());
        let mut out = Vec::new();
        m.emit(0x01020304, NLM_F_ACK, &mut out);
        assert_eq!(out.len(), 16 + 4 + 8);
        assert_eq!(u32::from_ne_bytes(out[0..4].try_into().unwrap()), 28);
        assert_eq!(u16::from_ne_bytes(out[4..6].try_into().unwrap()), 0x0a00);
        assert_eq!(u16::from_ne_bytes(out[6..8].try_into().unwrap()), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes(out[8..12].try_into().unwrap()), 0x01020304);
        assert_eq!(&out[16..20], &[1, 0, 0, 0]);
        assert_eq!(out[20..].to_vec(), m.payload_bytes()[4..].to_vec());
    }
}
