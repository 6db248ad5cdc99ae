//! The transport: an `AF_NETLINK`/`NETLINK_NETFILTER` socket that sends a whole batch in one
//! `sendmsg` and turns the kernel's answers into `Ok` or the failing message; plus dumps for
//! reading the ruleset back.
//!
//! nfnetlink processes a batch synchronously inside `sendmsg`, so by the time `send` returns
//! every answer is already queued on the socket. The batch asks for an ACK on its last message
//! only; errors are reported whatever the flags say.

use std::io;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use nix::sys::socket::{setsockopt, sockopt};

use crate::batch::{Batch, Encoded};
use crate::error::MessageError;
use crate::list::{self, ChainInfo, ElemInfo, RuleInfo, SetInfo, TableInfo};
use crate::message::Message;
use crate::reply::{parse_ack, split};
use crate::set::Set;
use crate::sys::*;
use crate::table::Table;
use crate::Error;

/// Receive buffer asked for: room for the error of every message of a large bad batch.
const RCVBUF: usize = 4 << 20;
/// A dump datagram is at most a page or two; a bigger buffer avoids truncation.
const RECV_CHUNK: usize = 256 << 10;
/// Headroom over the batch size for the socket send buffer (skb overhead).
const SNDBUF_SLACK: usize = 64 << 10;
/// Guard against waiting forever if the kernel never answers.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A netfilter netlink socket, bound in the network namespace of the thread that opened it.
pub struct NftSocket {
    sock: Socket,
    seq: u32,
    sndbuf: usize,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NftSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftSocket").field("seq", &self.seq).finish()
    }
}

impl NftSocket {
    /// Opens and binds the socket. Needs `CAP_NET_ADMIN` in the network namespace for
    /// changes; dumps work without.
    pub fn new() -> Result<Self, Error> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(Error::io("socket(NETLINK_NETFILTER)"))?;
        sock.bind_auto().map_err(Error::io("bind"))?;
        // Extended acks name the bad attribute; capped acks keep errors small.
        sock.set_ext_ack(true).map_err(Error::io("NETLINK_EXT_ACK"))?;
        sock.set_cap_ack(true).map_err(Error::io("NETLINK_CAP_ACK"))?;
        if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
            // Without CAP_NET_ADMIN the forced variant is refused; the capped one still helps.
            setsockopt(&sock, sockopt::RcvBuf, &RCVBUF)
                .map_err(|e| Error::Io { context: "SO_RCVBUF", source: io::Error::from(e) })?;
        }
        // TimeValLike takes i64 on every target (time_t is 32 bits on armv7).
        let tv = <nix::sys::time::TimeVal as nix::sys::time::TimeValLike>::seconds(REPLY_TIMEOUT.as_secs() as i64);
        setsockopt(&sock, sockopt::ReceiveTimeout, &tv)
            .map_err(|e| Error::Io { context: "SO_RCVTIMEO", source: io::Error::from(e) })?;
        // Sequence numbers only need to differ from recent ones on this socket; starting from
        // the clock makes replies to an earlier process's socket unmistakable in traces.
        let seq =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1);
        Ok(NftSocket { sock, seq, sndbuf: 0, buf: Vec::with_capacity(RECV_CHUNK) })
    }

    fn next_seqs(&mut self, n: usize) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(n as u32 + 2);
        first
    }

    /// A batch must fit the send buffer in one piece, or the kernel answers EMSGSIZE.
    fn ensure_sndbuf(&mut self, len: usize) -> Result<(), Error> {
        let want = len + SNDBUF_SLACK;
        if want <= self.sndbuf {
            return Ok(());
        }
        if setsockopt(&self.sock, sockopt::SndBufForce, &want).is_err() {
            setsockopt(&self.sock, sockopt::SndBuf, &want)
                .map_err(|e| Error::Io { context: "SO_SNDBUF", source: io::Error::from(e) })?;
        }
        self.sndbuf = want;
        Ok(())
    }

    fn recv(&mut self, flags: libc::c_int) -> io::Result<usize> {
        self.buf.clear();
        loop {
            match self.sock.recv(&mut self.buf, flags) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Sends the batch and waits for the kernel's verdict on it. On `Err`, nothing of the
    /// batch was applied.
    pub fn apply(&mut self, batch: &Batch) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let first = self.next_seqs(batch.len());
        let enc = batch.encode(first)?;
        self.ensure_sndbuf(enc.bytes.len())?;
        let sent = self.sock.send(&enc.bytes, 0).map_err(Error::io("sendmsg of the batch"))?;
        if sent != enc.bytes.len() {
            return Err(Error::Decode(format!("short send: {sent} of {} bytes", enc.bytes.len())));
        }
        self.collect_verdict(&enc)
    }

    fn collect_verdict(&mut self, enc: &Encoded) -> Result<(), Error> {
        let last_seq = enc.messages.last().map(|(s, _)| *s).unwrap_or(enc.begin_seq);
        let mut errors: Vec<MessageError> = Vec::new();
        let mut commit_errno = None;
        let mut acked = false;
        // Block until the final ACK or a first error, then drain what else is queued.
        while !acked {
            let draining = !errors.is_empty() || commit_errno.is_some();
            let flags = if draining { libc::MSG_DONTWAIT } else { 0 };
            match self.recv(flags) {
                Ok(_) => {}
                Err(e) if draining && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Error::Io { context: "waiting for the batch's acknowledgement", source: e }),
            }
            for r in split(&self.buf)? {
                if r.msg_type != NLMSG_ERROR {
                    continue;
                }
                let ack = parse_ack(&r)?;
                if ack.errno == 0 {
                    acked |= ack.seq == last_seq;
                    continue;
                }
                match enc.messages.iter().position(|(s, _)| *s == ack.seq) {
                    Some(index) => errors.push(MessageError {
                        index,
                        seq: ack.seq,
                        what: enc.messages[index].1.clone(),
                        errno: ack.errno,
                        detail: ack.message,
                    }),
                    None => commit_errno = Some(ack.errno),
                }
            }
        }
        if let Some(first) = errors.first().cloned() {
            return Err(Error::Rejected { first, others: errors.len() - 1 });
        }
        if let Some(errno) = commit_errno {
            return Err(Error::CommitFailed { errno });
        }
        Ok(())
    }

    /// Sends one dump request and collects the attribute payloads of every answer.
    fn dump(
        &mut self,
        what: &'static str,
        kind: u8,
        family: u8,
        attrs: Vec<crate::attr::Attr>,
    ) -> Result<Vec<(u8, Vec<u8>)>, Error> {
        let seq = self.next_seqs(0);
        let mut req = Vec::new();
        Message::nft(kind, family, NLM_F_DUMP, attrs, what.into()).emit(seq, 0, &mut req);
        self.sock.send(&req, 0).map_err(Error::io("sendmsg of a dump request"))?;
        let mut out = Vec::new();
        loop {
            self.recv(0).map_err(Error::io("reading a dump"))?;
            for r in split(&self.buf)? {
                if r.seq != seq {
                    continue;
                }
                match r.msg_type {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let ack = parse_ack(&r)?;
                        if ack.errno != 0 {
                            return Err(Error::DumpFailed { what, errno: ack.errno });
                        }
                    }
                    _ if r.payload.len() >= 4 => out.push((r.payload[0], r.payload[4..].to_vec())),
                    _ => return Err(Error::Decode(format!("{what}: short message"))),
                }
            }
        }
    }

    /// All tables of every family.
    pub fn list_tables(&mut self) -> Result<Vec<TableInfo>, Error> {
        let raw = self.dump("tables", NFT_MSG_GETTABLE, 0, vec![])?;
        raw.iter().map(|(f, a)| list::table(*f, a)).collect()
    }

    /// The chains of one table.
    pub fn list_chains(&mut self, table: &Table) -> Result<Vec<ChainInfo>, Error> {
        let raw = self.dump("chains", NFT_MSG_GETCHAIN, table.family as u8, vec![])?;
        let all: Result<Vec<ChainInfo>, Error> = raw.iter().map(|(f, a)| list::chain(*f, a)).collect();
        Ok(all?.into_iter().filter(|c| c.table == table.name).collect())
    }

    /// The rules of one table, in chain order.
    pub fn list_rules(&mut self, table: &Table) -> Result<Vec<RuleInfo>, Error> {
        let attrs = vec![crate::attr::Attr::string(NFTA_RULE_TABLE, &table.name)];
        let raw = self.dump("rules", NFT_MSG_GETRULE, table.family as u8, attrs)?;
        let all: Result<Vec<RuleInfo>, Error> = raw.iter().map(|(f, a)| list::rule(*f, a)).collect();
        Ok(all?.into_iter().filter(|r| r.table == table.name).collect())
    }

    /// The named and anonymous sets of one table.
    pub fn list_sets(&mut self, table: &Table) -> Result<Vec<SetInfo>, Error> {
        let attrs = vec![crate::attr::Attr::string(NFTA_SET_TABLE, &table.name)];
        let raw = self.dump("sets", NFT_MSG_GETSET, table.family as u8, attrs)?;
        let all: Result<Vec<SetInfo>, Error> = raw.iter().map(|(f, a)| list::set(*f, a)).collect();
        Ok(all?.into_iter().filter(|s| s.table == table.name).collect())
    }

    /// The elements of one set or map.
    pub fn list_elements(&mut self, set: &Set) -> Result<Vec<ElemInfo>, Error> {
        self.list_elements_named(&set.table, &set.name)
    }

    /// The elements of a set known by name (e.g. an anonymous `__map0` from [`Self::list_sets`]).
    pub fn list_elements_named(&mut self, table: &Table, set: &str) -> Result<Vec<ElemInfo>, Error> {
        let attrs = vec![
            crate::attr::Attr::string(NFTA_SET_ELEM_LIST_TABLE, &table.name),
            crate::attr::Attr::string(NFTA_SET_ELEM_LIST_SET, set),
        ];
        let raw = self.dump("set elements", NFT_MSG_GETSETELEM, table.family as u8, attrs)?;
        let mut out = Vec::new();
        for (_, a) in &raw {
            out.extend(list::elements(a)?);
        }
        Ok(out)
    }
}
