//! Reading what the kernel sends back: splitting a receive buffer into netlink messages and
//! decoding `NLMSG_ERROR` (error or ACK, with extended-ack text).

use crate::attr::{find, parse_attrs};
use crate::sys::*;
use crate::Error;

const NLMSGHDR_LEN: usize = 16;

/// One netlink message from a receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    /// Everything after the netlink header.
    pub payload: &'a [u8],
}

/// Splits a datagram into its netlink messages.
pub fn split(buf: &[u8]) -> Result<Vec<Reply<'_>>, Error> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSGHDR_LEN <= buf.len() {
        let h = &buf[at..];
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < NLMSGHDR_LEN || at + len > buf.len() {
            return Err(Error::Decode(format!("netlink message length {len} at offset {at} of {}", buf.len())));
        }
        out.push(Reply {
            msg_type: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            payload: &h[NLMSGHDR_LEN..len],
        });
        at += len.div_ceil(4) * 4;
    }
    Ok(out)
}

/// A decoded `struct nlmsgerr`: `errno == 0` is an ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Positive errno, 0 for success.
    pub errno: i32,
    /// Sequence number of the request this answers.
    pub seq: u32,
    /// `NLMSGERR_ATTR_MSG`.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`: byte offset of the offending attribute in the request.
    pub bad_attr_offset: Option<u32>,
}

/// Decodes the payload of an `NLMSG_ERROR` message.
pub fn parse_ack(r: &Reply<'_>) -> Result<Ack, Error> {
    let p = r.payload;
    if p.len() < 4 + NLMSGHDR_LEN {
        return Err(Error::Decode(format!("nlmsgerr of {} bytes", p.len())));
    }
    let code = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
    let orig = &p[4..];
    let orig_len = u32::from_ne_bytes([orig[0], orig[1], orig[2], orig[3]]) as usize;
    let seq = u32::from_ne_bytes([orig[8], orig[9], orig[10], orig[11]]);
    let mut ack = Ack { errno: code.saturating_neg(), seq, message: None, bad_attr_offset: None };
    if r.flags & NLM_F_ACK_TLVS != 0 {
        // The request is echoed whole unless the kernel capped it to its header.
        let echoed = if r.flags & NLM_F_CAPPED != 0 { NLMSGHDR_LEN } else { orig_len };
        let tlvs = orig.get(echoed.div_ceil(4) * 4..).unwrap_or(&[]);
        let attrs = parse_attrs(tlvs)?;
        ack.message = find(&attrs, NLMSGERR_ATTR_MSG).and_then(|a| a.as_str()).map(str::to_owned);
        ack.bad_attr_offset = find(&attrs, NLMSGERR_ATTR_OFFS)
            .and_then(|a| a.value.get(..4))
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    }
    Ok(ack)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn nlmsg(msg_type: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&msg_type.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn nlmsgerr(code: i32, orig_seq: u32, tlvs: &[u8]) -> Vec<u8> {
        let mut p = code.to_ne_bytes().to_vec();
        p.extend(nlmsg(0x0a06, 1, orig_seq, &[]));
        p.extend_from_slice(tlvs);
        p
    }

    #[test]
    fn acks_errors_and_extended_acks() {
        // "No such file or directory" for seq 42, with an ext-ack message and offset.
        let mut tlvs = Vec::new();
        crate::attr::Attr::string(NLMSGERR_ATTR_MSG, "chain not found").emit_into(&mut tlvs);
        crate::attr::Attr::bytes(NLMSGERR_ATTR_OFFS, 36u32.to_ne_bytes()).emit_into(&mut tlvs);
        let mut buf = nlmsg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 42, &nlmsgerr(-2, 42, &tlvs));
        buf.extend(nlmsg(NLMSG_ERROR, NLM_F_CAPPED, 43, &nlmsgerr(0, 43, &[])));
        let replies = split(&buf).unwrap();
        assert_eq!(replies.len(), 2);
        let err = parse_ack(&replies[0]).unwrap();
        assert_eq!(err, Ack { errno: 2, seq: 42, message: Some("chain not found".into()), bad_attr_offset: Some(36) });
        let ok = parse_ack(&replies[1]).unwrap();
        assert_eq!((ok.errno, ok.seq, ok.message), (0, 43, None));
    }

    #[test]
    fn truncated_replies_are_errors() {
        let mut buf = nlmsg(NLMSG_ERROR, 0, 1, &nlmsgerr(0, 1, &[]));
        buf.truncate(buf.len() - 4);
        assert!(split(&buf).is_err());
        let short = nlmsg(NLMSG_ERROR, 0, 1, &[0, 0, 0, 0]);
        assert!(parse_ack(&split(&short).unwrap()[0]).is_err());
    }
}
