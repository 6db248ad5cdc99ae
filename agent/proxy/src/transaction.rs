//! Turning plans into edge-nft batches: the full replacement of the table, and the
//! difference between two plans ordered so that nothing is deleted while still referenced
//! and nothing is referenced before it exists.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use edge_nft::{Batch, Chain, Elem, Key, KeyType, Set, Table, Verdict};

use crate::plan::{
    nodeport_ips_set, AffinitySet, ChainPlan, ElemKey, Fam, MapElem, MapId, Plan, ServicePlan, StaticPlan, Target,
};
use crate::stmt::SetRefs;

fn addr_type(fam: Fam) -> KeyType {
    match fam {
        Fam::V4 => KeyType::Ipv4Addr,
        Fam::V6 => KeyType::Ipv6Addr,
    }
}

pub(crate) fn map_set(table: &Table, id: MapId) -> Set {
    let key: Vec<KeyType> = if id.keyed_by_address() {
        vec![addr_type(id.fam), KeyType::InetProto, KeyType::InetService]
    } else {
        vec![KeyType::InetProto, KeyType::InetService]
    };
    Set::verdict_map(table, id.name(), &key)
}

pub(crate) fn nodeport_set(table: &Table, fam: Fam) -> Set {
    Set::new(table, nodeport_ips_set(fam), &[addr_type(fam)])
}

pub(crate) fn affinity_set(table: &Table, a: &AffinitySet) -> Set {
    Set::new(table, a.name.clone(), &[addr_type(a.fam)])
        .dynamic()
        .with_timeout(Duration::from_secs(u64::from(a.timeout_seconds)))
}

pub(crate) fn chain(table: &Table, c: &ChainPlan) -> Chain {
    match c.base {
        Some(b) => Chain::base(table, c.name.clone(), b.kind, b.hook, b.priority),
        None => Chain::new(table, c.name.clone()),
    }
}

pub(crate) fn elem_key(k: &ElemKey) -> Key {
    match k {
        ElemKey::Addr { ip, proto, port } => Key::new().addr(*ip).proto(proto.number()).port(*port),
        ElemKey::Port { proto, port } => Key::new().proto(proto.number()).port(*port),
    }
}

pub(crate) fn verdict(t: &Target) -> Verdict {
    match t {
        Target::Goto(c) => Verdict::Goto(c.clone()),
        Target::Drop => Verdict::Drop,
    }
}

/// A batch under construction that remembers the sets it created.
struct Builder<'a> {
    table: &'a Table,
    batch: Batch,
    refs: SetRefs,
}

impl<'a> Builder<'a> {
    /// Anonymous maps (numgen's inline vmaps) are named `__map<N>` from `first_anonymous`
    /// on, rather than left to the kernel to number, which it does by scanning every set of
    /// the table for each new one (quadratic in a full sync). Numbers only grow between full
    /// syncs, so a delta's are free: lower ones may still be in use, higher ones were never
    /// given out since the table was created.
    fn new(table: &'a Table, first_anonymous: u32) -> Self {
        let mut batch = Batch::new();
        batch.number_anonymous_sets_from(first_anonymous);
        Builder { table, batch, refs: SetRefs::default() }
    }

    fn add_set(&mut self, s: &Set) {
        let r = self.batch.add_set(s);
        self.refs.insert(r);
    }

    fn add_rules(&mut self, c: &ChainPlan) {
        let ch = chain(self.table, c);
        for stmt in &c.rules {
            let rule = stmt.to_rule(&ch, &mut self.batch, &self.refs);
            self.batch.add_rule(&rule);
        }
    }

    /// One message run per map, whatever order the elements come in.
    fn elements<'e>(&mut self, elems: impl IntoIterator<Item = &'e MapElem>, add: bool) {
        let mut by_map: BTreeMap<MapId, Vec<Elem>> = BTreeMap::new();
        for e in elems {
            by_map.entry(e.map).or_default().push(Elem::verdict(elem_key(&e.key), verdict(&e.target)));
        }
        for (id, list) in by_map {
            let set = map_set(self.table, id);
            if add {
                self.batch.add_elements(&set, &list);
            } else {
                self.batch.delete_elements(&set, &list);
            }
        }
    }
}

/// Replaces the whole table in one transaction: add + delete clears whatever is there
/// (a crashed agent's leftovers included), then everything is created afresh.
///
/// The order is chosen for the kernel's sake. Binding an anonymous set (each numgen rule's
/// map) walks the whole transaction queued so far, so the rules holding one go as early as
/// their references allow: per service, its sets and chains and then the rules of its
/// numgen chains; every other rule follows once all of those are bound. A chain's rules
/// stay together and in order.
pub(crate) fn full(table: &Table, statics: &StaticPlan, plan: &Plan) -> Batch {
    // The table is created afresh: every number is free.
    let mut b = Builder::new(table, 0);
    b.batch.add_table(table).delete_table(table).add_table(table);
    for c in &statics.chains {
        b.batch.add_chain(&chain(table, c));
    }
    for id in MapId::all() {
        b.add_set(&map_set(table, id));
    }
    for (fam, ips) in &statics.nodeport_ips {
        let set = nodeport_set(table, *fam);
        b.add_set(&set);
        let elems: Vec<Elem> = ips.iter().map(|ip| Elem::key(Key::new().addr(*ip))).collect();
        b.batch.add_elements(&set, &elems);
    }
    for p in plan.services.values() {
        for a in &p.sets {
            b.add_set(&affinity_set(table, a));
        }
        for c in &p.chains {
            b.batch.add_chain(&chain(table, c));
        }
        for c in p.chains.iter().filter(|c| c.binds_anonymous_set()) {
            b.add_rules(c);
        }
    }
    let service_chains = plan.services.values().flat_map(|p| &p.chains);
    for c in service_chains.filter(|c| !c.binds_anonymous_set()).chain(&statics.chains) {
        b.add_rules(c);
    }
    b.elements(plan.services.values().flat_map(|p| &p.elements), true);
    b.batch
}

/// The changes from `old` to `new`, or `None` when they cannot be made in place (an
/// affinity set whose timeout changed: sets cannot be altered) and a full sync is needed.
/// Unchanged services contribute nothing; the second value counts the changed ones.
pub(crate) fn delta(table: &Table, old: &Plan, new: &Plan, next_anonymous: u32) -> Option<(Batch, usize)> {
    let empty = ServicePlan::default();
    let changed = changed_services(old, new, &empty);
    let mut b = Builder::new(table, next_anonymous);
    for (o, n) in &changed {
        for set in &n.sets {
            match o.sets.iter().find(|s| s.name == set.name) {
                None => b.add_set(&affinity_set(table, set)),
                Some(prev) if prev != set => return None,
                Some(_) => {}
            }
        }
    }
    let old_chain = |o: &'_ ServicePlan, name: &str| o.chains.iter().find(|c| c.name == name).cloned();
    for (o, n) in &changed {
        for c in n.chains.iter().filter(|c| old_chain(o, &c.name).is_none()) {
            b.batch.add_chain(&chain(table, c));
        }
    }
    // Elements first out, so that the chains they point at can go later in this batch, and
    // so that a key moving between services is free again before it is re-added.
    let gone: Vec<&MapElem> =
        changed.iter().flat_map(|(o, n)| o.elements.iter().filter(|e| !n.elements.contains(e))).collect();
    b.elements(gone, false);
    for (o, n) in &changed {
        for c in &n.chains {
            match old_chain(o, &c.name) {
                Some(prev) if prev.rules == c.rules => continue,
                Some(_) => {
                    b.batch.flush_chain(&chain(table, c));
                }
                None => {}
            }
            b.add_rules(c);
        }
    }
    let added: Vec<&MapElem> =
        changed.iter().flat_map(|(o, n)| n.elements.iter().filter(|e| !o.elements.contains(e))).collect();
    b.elements(added, true);
    // Chains that go: emptied first (their jumps and numgen maps go with the rules), then
    // deleted once nothing in the batch refers to them any more.
    let stale: Vec<&ChainPlan> = changed
        .iter()
        .flat_map(|(o, n)| {
            let keep: HashSet<&str> = n.chains.iter().map(|c| c.name.as_str()).collect();
            o.chains.iter().filter(move |c| !keep.contains(c.name.as_str()))
        })
        .collect();
    for c in &stale {
        b.batch.flush_chain(&chain(table, c));
    }
    for c in &stale {
        b.batch.delete_chain(&chain(table, c));
    }
    for (o, n) in &changed {
        for set in o.sets.iter().filter(|s| !n.sets.iter().any(|x| x.name == s.name)) {
            b.batch.delete_set(&affinity_set(table, set));
        }
    }
    Some((b.batch, changed.len()))
}

/// `(old, new)` plans of the services that differ (`empty` standing in for a missing one),
/// in key order: one walk over both sorted maps. Plans reused from the cache are the very
/// same allocation and need no deep comparison.
fn changed_services<'a>(
    old: &'a Plan,
    new: &'a Plan,
    empty: &'a ServicePlan,
) -> Vec<(&'a ServicePlan, &'a ServicePlan)> {
    let mut changed = Vec::new();
    let (mut o, mut n) = (old.services.iter().peekable(), new.services.iter().peekable());
    loop {
        let (take_old, take_new) = match (o.peek(), n.peek()) {
            (None, None) => break,
            (Some(_), None) => (true, false),
            (None, Some(_)) => (false, true),
            (Some((ok, _)), Some((nk, _))) => match ok.cmp(nk) {
                Ordering::Less => (true, false),
                Ordering::Greater => (false, true),
                Ordering::Equal => (true, true),
            },
        };
        let op = if take_old { o.next().map(|(_, p)| &**p) } else { None };
        let np = if take_new { n.next().map(|(_, p)| &**p) } else { None };
        let (op, np) = (op.unwrap_or(empty), np.unwrap_or(empty));
        if !std::ptr::eq(op, np) && op != np {
            changed.push((op, np));
        }
    }
    changed
}
