//! The kernel side behind a narrow trait, so that planning and syncing are testable with a
//! recording fake: apply a batch, and read back what drift detection compares.

use std::collections::{BTreeMap, BTreeSet};

use edge_nft::{sys::NFT_SET_ANONYMOUS, Batch, NftSocket, Table, Verdict};

use crate::error::ProxyError;

/// A set's elements as `(key bytes, verdict)`, sorted by key.
pub type Elements = Vec<(Vec<u8>, Option<Verdict>)>;

/// A table as drift detection sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableState {
    /// Chain name → its rules, each as the kernel's expression names in order.
    pub chains: BTreeMap<String, Vec<Vec<String>>>,
    /// Named (not anonymous) sets and maps.
    pub sets: BTreeSet<String>,
    /// Set or map name → its elements.
    pub elements: BTreeMap<String, Elements>,
}

/// Where batches go and where the table is read back from.
pub trait Netfilter {
    /// Applies the batch atomically.
    fn apply(&mut self, batch: &Batch) -> Result<(), edge_nft::Error>;
    /// Reads `table` (`None` if it does not exist), with the elements of the sets named in
    /// `with_elements`.
    fn read(&mut self, table: &Table, with_elements: &[String]) -> Result<Option<TableState>, edge_nft::Error>;
}

/// The real kernel: an nf_tables netlink socket in the network namespace it was opened in.
#[derive(Debug)]
pub struct Kernel(pub NftSocket);

impl Kernel {
    /// Opens the socket in the calling thread's network namespace.
    pub fn new() -> Result<Self, ProxyError> {
        Ok(Kernel(NftSocket::new()?))
    }
}

impl Netfilter for Kernel {
    fn apply(&mut self, batch: &Batch) -> Result<(), edge_nft::Error> {
        self.0.apply(batch)
    }

    fn read(&mut self, table: &Table, with_elements: &[String]) -> Result<Option<TableState>, edge_nft::Error> {
        let sock = &mut self.0;
        if !sock.list_tables()?.iter().any(|t| t.name == table.name && t.family == Some(table.family)) {
            return Ok(None);
        }
        let mut state = TableState::default();
        for c in sock.list_chains(table)? {
            state.chains.insert(c.name, Vec::new());
        }
        for r in sock.list_rules(table)? {
            state.chains.entry(r.chain).or_default().push(r.exprs);
        }
        for s in sock.list_sets(table)? {
            if s.flags & NFT_SET_ANONYMOUS == 0 {
                state.sets.insert(s.name);
            }
        }
        for name in with_elements.iter().filter(|n| state.sets.contains(*n)) {
            let mut elems: Elements =
                sock.list_elements_named(table, name)?.into_iter().map(|e| (e.key, e.verdict)).collect();
            elems.sort_by(|a, b| a.0.cmp(&b.0));
            state.elements.insert(name.clone(), elems);
        }
        Ok(Some(state))
    }
}
