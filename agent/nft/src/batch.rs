//! A transaction: the list of nf_tables changes the kernel applies all-or-nothing, and its
//! encoding between BATCH_BEGIN and BATCH_END.
//!
//! The batch also owns what only makes sense within one transaction: set IDs (every new set
//! gets one; anonymous sets can only be referred to by it) and the splitting of large element
//! lists into several messages (an attribute nest cannot exceed 64 KiB).

use std::collections::HashMap;

use crate::attr::{Attr, AttrWriter};
use crate::expr::{SetRef, Verdict};
use crate::message::Message;
use crate::rule::Rule;
use crate::set::{elem_list_attrs, Elem, Key, KeyType, MapData, Set};
use crate::sys::*;
use crate::table::{Chain, Table};
use crate::Error;

/// At most this many elements per NEWSETELEM/DELSETELEM message.
pub const MAX_ELEMS_PER_MESSAGE: usize = 256;
/// Budget for one message's element nest, under the 64 KiB limit of a netlink attribute.
const MAX_ELEMS_BYTES: usize = 60 * 1024;
/// `NFT_NAME_MAXLEN` counts the terminating NUL.
const NAME_MAX: usize = 255;
/// The name the kernel turns into `__map0`, `__map1`, … for anonymous maps.
const ANON_MAP_NAME: &str = "__map%d";

/// An ordered list of changes, applied atomically by [`crate::NftSocket::apply`].
#[derive(Debug, Clone)]
pub struct Batch {
    msgs: Vec<Message>,
    next_set_id: u32,
    new_sets: HashMap<(u8, String, String), u32>,
    invalid_err: Option<InvalidKind>,
    /// The number of the next anonymous set when the batch names them itself.
    next_anonymous: Option<u32>,
}

#[derive(Debug, Clone)]
enum InvalidKind {
    Name { what: &'static str, name: String, reason: &'static str },
    Element { set: String, reason: String },
}

/// The wire form of a batch: the bytes for one `sendmsg`, and which sequence number belongs
/// to which message, to name the culprit of an error.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// `(seq, description)` for every message between the delimiters, in order.
    pub messages: Vec<(u32, String)>,
    /// Sequence number of BATCH_BEGIN (the kernel blames it for commit-time failures).
    pub begin_seq: u32,
}

fn check_name(what: &'static str, name: &str) -> Option<InvalidKind> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > NAME_MAX {
        "longer than 255 bytes"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else {
        return None;
    };
    Some(InvalidKind::Name { what, name: name.to_owned(), reason })
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    pub fn new() -> Self {
        // nft numbers set IDs from 1; keep to it so batches compare equal to nft's.
        Batch { msgs: Vec::new(), next_set_id: 1, new_sets: HashMap::new(), invalid_err: None, next_anonymous: None }
    }

    /// Number of messages (delimiters excluded).
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// The messages, for inspection and for tests that compare against `nft`.
    pub fn messages(&self) -> &[Message] {
        &self.msgs
    }

    fn note(&mut self, problem: Option<InvalidKind>) {
        if self.invalid_err.is_none() {
            self.invalid_err = problem;
        }
    }

    fn push(&mut self, m: Message) -> &mut Self {
        self.msgs.push(m);
        self
    }

    /// Queues one nf_tables message about an object of `table`.
    fn queue(&mut self, msg_type: u8, table: &Table, flags: u16, attrs: Vec<Attr>, what: String) -> &mut Self {
        self.push(Message::nft(msg_type, table.family as u8, flags, attrs, what))
    }

    /// `add table` (no error if it exists).
    pub fn add_table(&mut self, t: &Table) -> &mut Self {
        self.note(check_name("table", &t.name));
        let what = describe("NEWTABLE", t, "");
        self.queue(NFT_MSG_NEWTABLE, t, NLM_F_CREATE, t.new_attrs(), what)
    }

    /// `delete table` with everything in it. Fails the batch if the table does not exist;
    /// precede it with [`Batch::add_table`] to delete "if present".
    pub fn delete_table(&mut self, t: &Table) -> &mut Self {
        self.note(check_name("table", &t.name));
        let what = describe("DELTABLE", t, "");
        self.queue(NFT_MSG_DELTABLE, t, 0, t.del_attrs(), what)
    }

    /// `add chain` (base chains with their hook; re-adding an existing chain is a no-op).
    pub fn add_chain(&mut self, c: &Chain) -> &mut Self {
        self.note(check_name("chain", &c.name));
        let what = describe("NEWCHAIN", &c.table, &c.name);
        self.queue(NFT_MSG_NEWCHAIN, &c.table, NLM_F_CREATE, c.new_attrs(), what)
    }

    /// `flush chain`: removes all its rules.
    pub fn flush_chain(&mut self, c: &Chain) -> &mut Self {
        self.note(check_name("chain", &c.name));
        let what = describe("DELRULE (flush)", &c.table, &c.name);
        self.queue(NFT_MSG_DELRULE, &c.table, 0, c.flush_attrs(), what)
    }

    /// `delete chain`: the chain must be empty and unreferenced by then (flush it and remove
    /// jumps to it earlier in the same batch).
    pub fn delete_chain(&mut self, c: &Chain) -> &mut Self {
        self.note(check_name("chain", &c.name));
        let what = describe("DELCHAIN", &c.table, &c.name);
        self.queue(NFT_MSG_DELCHAIN, &c.table, 0, c.del_attrs(), what)
    }

    /// Appends a rule to its chain.
    pub fn add_rule(&mut self, r: &Rule) -> &mut Self {
        self.note(check_name("chain", &r.chain));
        let what = describe("NEWRULE", &r.table, &r.chain);
        self.queue(NFT_MSG_NEWRULE, &r.table, NLM_F_CREATE | NLM_F_APPEND, r.new_attrs(), what)
    }

    /// Deletes one rule by the handle the kernel gave it (see [`crate::NftSocket::list_rules`]).
    pub fn delete_rule(&mut self, c: &Chain, handle: u64) -> &mut Self {
        let mut attrs = c.flush_attrs();
        attrs.push(Attr::be64(NFTA_RULE_HANDLE, handle));
        let what = format!("DELRULE {} {} {} handle {handle}", c.table.family.as_str(), c.table.name, c.name);
        self.queue(NFT_MSG_DELRULE, &c.table, 0, attrs, what)
    }

    fn alloc_set_id(&mut self) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        id
    }

    /// `add set`/`add map`. The returned reference carries the set ID so that rules in the
    /// same batch find the set before it is committed.
    pub fn add_set(&mut self, s: &Set) -> SetRef {
        self.note(check_name("set", &s.name));
        let id = self.alloc_set_id();
        if !s.anonymous {
            self.new_sets.insert((s.table.family as u8, s.table.name.clone(), s.name.clone()), id);
        }
        let what = describe("NEWSET", &s.table, &s.name);
        self.queue(NFT_MSG_NEWSET, &s.table, NLM_F_CREATE, s.new_attrs(id), what);
        SetRef { name: s.name.clone(), id: Some(id) }
    }

    /// `delete set`.
    pub fn delete_set(&mut self, s: &Set) -> &mut Self {
        self.note(check_name("set", &s.name));
        let what = describe("DELSET", &s.table, &s.name);
        self.queue(NFT_MSG_DELSET, &s.table, 0, s.del_attrs(), what)
    }

    fn id_of(&self, s: &Set) -> Option<u32> {
        self.new_sets.get(&(s.table.family as u8, s.table.name.clone(), s.name.clone())).copied()
    }

    fn elements(&mut self, kind: u8, s: &Set, set_id: Option<u32>, elems: &[Elem]) {
        for e in elems {
            if let Err(Error::InvalidElement { set, reason }) = s.check(e) {
                self.note(Some(InvalidKind::Element { set, reason }));
            }
        }
        let (verb, flags, with_data) =
            if kind == NFT_MSG_NEWSETELEM { ("NEWSETELEM", NLM_F_CREATE, true) } else { ("DELSETELEM", 0, false) };
        // Chunks bounded by count and by encoded size, whichever comes first.
        let mut start = 0;
        let mut scratch = Vec::new();
        while start < elems.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < elems.len() && end - start < MAX_ELEMS_PER_MESSAGE {
                scratch.clear();
                elems[end].write(&mut AttrWriter::new(&mut scratch), 1, with_data);
                let len = scratch.len();
                if end > start && bytes + len > MAX_ELEMS_BYTES {
                    break;
                }
                bytes += len;
                end += 1;
            }
            let chunk = &elems[start..end];
            let what = format!(
                "{verb} {} {} {} ({} elements from #{start})",
                s.table.family.as_str(),
                s.table.name,
                s.name,
                chunk.len()
            );
            let attrs = elem_list_attrs(s, set_id, chunk, with_data);
            self.push(Message::nft(kind, s.table.family as u8, flags, attrs, what));
            start = end;
        }
    }

    /// `add element`: elements must fit the set's key (and data) layout. Re-adding an
    /// element unchanged is a no-op; giving an existing key other data is refused (EEXIST or
    /// EBUSY), so a changed verdict is a [`Batch::delete_elements`] then an add in one batch.
    pub fn add_elements(&mut self, s: &Set, elems: &[Elem]) -> &mut Self {
        let id = self.id_of(s);
        self.elements(NFT_MSG_NEWSETELEM, s, id, elems);
        self
    }

    /// `delete element`: only the keys matter.
    pub fn delete_elements(&mut self, s: &Set, elems: &[Elem]) -> &mut Self {
        let id = self.id_of(s);
        self.elements(NFT_MSG_DELSETELEM, s, id, elems);
        self
    }

    /// `flush set`: removes every element.
    pub fn flush_set(&mut self, s: &Set) -> &mut Self {
        let what = describe("DELSETELEM (flush)", &s.table, &s.name);
        let attrs = elem_list_attrs(s, None, &[], false);
        self.queue(NFT_MSG_DELSETELEM, &s.table, 0, attrs, what)
    }

    /// An anonymous constant verdict map (`vmap { k : verdict, … }` written inline in a rule):
    /// created here, to be referenced by the returned [`SetRef`] in a rule of this batch. The
    /// kernel ties its lifetime to that rule.
    pub fn add_anonymous_map(&mut self, table: &Table, key: &[KeyType], elems: Vec<(Key, Verdict)>) -> SetRef {
        let name = match self.next_anonymous {
            Some(n) => {
                self.next_anonymous = Some(n.wrapping_add(1));
                format!("__map{n}")
            }
            None => ANON_MAP_NAME.to_owned(),
        };
        let mut set = Set::verdict_map(table, name, key);
        set.anonymous = true;
        set.size = Some(elems.len() as u32);
        debug_assert_eq!(set.data, Some(MapData::Verdict));
        let r = self.add_set(&set);
        let elems: Vec<Elem> = elems.into_iter().map(|(k, v)| Elem::verdict(k, v)).collect();
        self.elements(NFT_MSG_NEWSETELEM, &set, r.id, &elems);
        r
    }

    /// Names the anonymous maps added from now on `__map<first>`, `__map<first+1>`, …
    /// instead of sending nft's `__map%d` template. The kernel fills a template by scanning
    /// every set of the table, so a batch with thousands of anonymous maps spends most of
    /// its time there. The caller must know the names are free in the table (a table
    /// created in this batch, or numbers past those of earlier batches; see
    /// [`Batch::next_anonymous_number`]).
    pub fn number_anonymous_sets_from(&mut self, first: u32) -> &mut Self {
        self.next_anonymous = Some(first);
        self
    }

    /// The number the next anonymous map would get, if the batch numbers them.
    pub fn next_anonymous_number(&self) -> Option<u32> {
        self.next_anonymous
    }

    /// Encodes the batch: BATCH_BEGIN, the messages with sequence numbers from `first_seq`,
    /// BATCH_END. Only the last message asks for an ACK: errors are reported regardless, and
    /// per-message ACKs for thousands of messages would overflow the receive buffer.
    pub fn encode(&self, first_seq: u32) -> Result<Encoded, Error> {
        if let Some(problem) = &self.invalid_err {
            return Err(match problem.clone() {
                InvalidKind::Name { what, name, reason } => Error::InvalidName { what, name, reason },
                InvalidKind::Element { set, reason } => Error::InvalidElement { set, reason },
            });
        }
        let size: usize = self.msgs.iter().map(Message::wire_len).sum::<usize>() + 2 * 20;
        let mut bytes = Vec::with_capacity(size);
        let mut seq = first_seq;
        let begin_seq = seq;
        Message::batch_delimiter(NFNL_MSG_BATCH_BEGIN).emit(seq, 0, &mut bytes);
        let mut messages = Vec::with_capacity(self.msgs.len());
        for (i, m) in self.msgs.iter().enumerate() {
            seq = seq.wrapping_add(1);
            let ack = if i + 1 == self.msgs.len() { NLM_F_ACK } else { 0 };
            m.emit(seq, ack, &mut bytes);
            messages.push((seq, m.what.clone()));
        }
        seq = seq.wrapping_add(1);
        Message::batch_delimiter(NFNL_MSG_BATCH_END).emit(seq, 0, &mut bytes);
        Ok(Encoded { bytes, messages, begin_seq })
    }
}

/// How a message is named in error reports: `VERB family table [object]`.
fn describe(verb: &str, table: &Table, object: &str) -> String {
    if object.is_empty() {
        format!("{verb} {} {}", table.family.as_str(), table.name)
    } else {
        format!("{verb} {} {} {object}", table.family.as_str(), table.name)
    }
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

    fn svc_map() -> Set {
        Set::verdict_map(&t(), "service-ips", &[KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService])
    }

    fn elems(n: u32) -> Vec<Elem> {
        (0..n)
            .map(|i| {
                let ip = Ipv4Addr::from(0x0a2b_0000 + i);
                Elem::verdict(Key::new().addr(ip.into()).proto(6).port(80), Verdict::Goto(format!("svc-{i:08}")))
            })
            .collect()
    }

    #[test]
    fn large_element_lists_are_split() {
        let cases = [(0, 0), (1, 1), (256, 1), (257, 2), (1000, 4)];
        for (n, msgs) in cases {
            let mut b = Batch::new();
            b.add_elements(&svc_map(), &elems(n));
            assert_eq!(b.len(), msgs, "{n} elements");
            for m in b.messages() {
                assert!(m.payload_bytes().len() < 64 * 1024);
            }
        }
    }

    #[test]
    fn new_sets_get_ids_that_later_messages_use() {
        let mut b = Batch::new();
        let r1 = b.add_set(&svc_map());
        let anon = b.add_anonymous_map(&t(), &[KeyType::HostU32], vec![(Key::new().host_u32(0), Verdict::Accept)]);
        assert_eq!((r1.id, anon.id), (Some(1), Some(2)));
        assert_eq!(anon.name, "__map%d");
        b.add_elements(&svc_map(), &elems(1));
        // NEWSET, NEWSET(anon), NEWSETELEM(anon), NEWSETELEM(service-ips with SET_ID 1)
        let last = b.messages().last().unwrap();
        assert!(last.attrs.contains(&Attr::be32(NFTA_SET_ELEM_LIST_SET_ID, 1)));
        // A set that is not created in this batch is referred to by name only.
        let mut b2 = Batch::new();
        b2.add_elements(&svc_map(), &elems(1));
        assert!(!b2.messages()[0].attrs.iter().any(|a| *a == Attr::be32(NFTA_SET_ELEM_LIST_SET_ID, 1)));
    }

    #[test]
    fn encode_numbers_messages_and_acks_only_the_last() {
        let mut b = Batch::new();
        b.add_table(&t()).add_chain(&Chain::new(&t(), "a")).add_chain(&Chain::new(&t(), "b"));
        let e = b.encode(100).unwrap();
        assert_eq!(e.begin_seq, 100);
        let seqs: Vec<u32> = e.messages.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![101, 102, 103]);
        assert_eq!(e.messages[1].1, "NEWCHAIN inet edge-proxy a");
        // Walk the wire: 5 netlink messages, ACK flag only on the last nf_tables one.
        let mut at = 0;
        let mut flags = Vec::new();
        while at < e.bytes.len() {
            let len = u32::from_ne_bytes(e.bytes[at..at + 4].try_into().unwrap()) as usize;
            flags.push(u16::from_ne_bytes(e.bytes[at + 6..at + 8].try_into().unwrap()) & NLM_F_ACK);
            at += len;
        }
        assert_eq!(flags, vec![0, 0, 0, NLM_F_ACK, 0]);
    }

    #[test]
    fn anonymous_maps_are_numbered_by_the_batch_when_asked() {
        let arms = || vec![(Key::new().host_u32(0), Verdict::Goto("a".into()))];
        let names = |b: &Batch| -> Vec<String> {
            b.messages().iter().filter(|m| m.what.starts_with("NEWSET ")).map(|m| m.what.clone()).collect()
        };
        let mut b = Batch::new();
        b.add_anonymous_map(&t(), &[KeyType::HostU32], arms());
        assert_eq!(names(&b), vec!["NEWSET inet edge-proxy __map%d"]);
        assert_eq!(b.next_anonymous_number(), None);
        let mut b = Batch::new();
        b.number_anonymous_sets_from(5);
        let first = b.add_anonymous_map(&t(), &[KeyType::HostU32], arms());
        b.add_anonymous_map(&t(), &[KeyType::HostU32], arms());
        assert_eq!(names(&b), vec!["NEWSET inet edge-proxy __map5", "NEWSET inet edge-proxy __map6"]);
        assert_eq!((first.name.as_str(), first.id), ("__map5", Some(1)));
        assert_eq!(b.next_anonymous_number(), Some(7));
        // The elements name the set as it was created.
        assert!(b.messages().iter().any(|m| m.what.starts_with("NEWSETELEM inet edge-proxy __map6")));
    }

    #[test]
    fn invalid_input_fails_before_the_kernel_sees_it() {
        let mut b = Batch::new();
        b.add_table(&Table::new(Family::Inet, "x".repeat(300)));
        assert!(matches!(b.encode(1), Err(Error::InvalidName { what: "table", .. })));
        let mut b = Batch::new();
        b.add_chain(&Chain::new(&t(), "a\0b"));
        assert!(matches!(b.encode(1), Err(Error::InvalidName { what: "chain", .. })));
        let mut b = Batch::new();
        b.add_elements(&svc_map(), &[Elem::key(Key::new().port(1))]);
        assert!(matches!(b.encode(1), Err(Error::InvalidElement { .. })));
    }
}
