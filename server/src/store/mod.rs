//! The object store: every API object, one global revision counter (the resourceVersion), and the
//! watch history that fans changes out to watchers.
//!
//! Durable kinds live in SQLite (WAL, one transaction per write) and are mirrored in memory, so reads
//! never touch the disk. Ephemeral kinds (Leases, Events) live only in memory: an idle cluster's
//! heartbeats would otherwise be most of what an SD card is asked to write. Revisions handed out to
//! ephemeral writes are reserved in blocks in SQLite, so that revisions stay monotonic across restarts
//! at the cost of one small write per block.

mod sqlite;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

pub use sqlite::SqliteError;

/// How many revisions are reserved at once for ephemeral writes.
const EPHEMERAL_RESERVATION: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object already exists")]
    AlreadyExists,
    #[error("object not found")]
    NotFound,
    #[error("the object has been modified; please apply your changes to the latest version and try again")]
    Conflict,
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: i64, oldest: i64 },
    #[error(transparent)]
    Sqlite(#[from] SqliteError),
    #[error("encoding object: {0}")]
    Encode(#[from] serde_json::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// "pods", "apps/deployments": the same for every version of a resource.
    pub resource: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(resource: impl Into<String>, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Key { resource: resource.into(), namespace: namespace.into(), name: name.into() }
    }
}

/// One stored object: its revision and its JSON with metadata.resourceVersion already set.
#[derive(Debug, Clone)]
pub struct Stored {
    pub rv: i64,
    pub json: Bytes,
}

impl Stored {
    pub fn value(&self) -> Value {
        // The store only ever holds JSON it serialised itself.
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct Event {
    pub kind: EventType,
    pub rv: i64,
    pub key: Key,
    /// The object after the change; for deletes, the last state with the delete's revision.
    pub object: Bytes,
    /// The object before the change (for selector transitions in watches).
    pub prev: Option<Bytes>,
}

pub struct Options {
    /// How many events the watch history keeps; older revisions answer 410 Expired.
    pub history: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { history: 10_000 }
    }
}

pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Event>>,
    history_cap: usize,
}

struct Inner {
    db: sqlite::Db,
    rev: i64,
    /// Highest revision recorded on disk: revisions up to here may have been handed out.
    reserved: i64,
    objects: BTreeMap<Key, Stored>,
    history: VecDeque<Arc<Event>>,
    /// Revisions at or below this are no longer in `history`.
    compacted: i64,
}

/// A write, decided by the caller from the current object under the store's lock.
pub enum Write {
    Put(Value),
    Delete,
    /// Nothing changed: no revision is spent and nothing is written.
    Keep,
}

/// Live store events, in revision order.
pub type EventReceiver = broadcast::Receiver<Arc<Event>>;

/// The outcome of a write.
#[derive(Debug, Clone)]
pub enum Written {
    Put { stored: Stored, created: bool },
    Deleted(Stored),
    Unchanged(Stored),
}

impl Store {
    pub fn open(dir: &Path, opts: Options) -> Result<Store, StoreError> {
        let (db, rows, reserved) = sqlite::Db::open(&dir.join("state.db"))?;
        let mut objects = BTreeMap::new();
        let mut rev = reserved;
        for (key, rv, json) in rows {
            rev = rev.max(rv);
            objects.insert(key, Stored { rv, json: Bytes::from(json) });
        }
        let (events, _) = broadcast::channel(8192);
        tracing::info!(objects = objects.len(), revision = rev, "store opened");
        Ok(Store {
            inner: Mutex::new(Inner {
                db,
                rev,
                reserved: rev,
                objects,
                history: VecDeque::new(),
                // No history survives a restart: a watch from before it must relist.
                compacted: rev,
            }),
            events,
            history_cap: opts.history.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map and the database apart (the
        // database commits before the map changes), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn revision(&self) -> i64 {
        self.lock().rev
    }

    pub fn get(&self, key: &Key) -> Option<Stored> {
        self.lock().objects.get(key).cloned()
    }

    /// All objects of a resource (optionally in one namespace) with names after `after`, in key
    /// order, and the revision they were read at.
    pub fn list(&self, resource: &str, namespace: Option<&str>, after: Option<&Key>) -> (Vec<(Key, Stored)>, i64) {
        let inner = self.lock();
        let start = Key::new(resource, namespace.unwrap_or(""), "");
        let items = inner
            .objects
            .range(start..)
            .skip_while(|(k, _)| after.is_some_and(|a| *k <= a))
            .take_while(|(k, _)| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (items, inner.rev)
    }

    /// Reads the current object, lets `decide` choose the write, and commits it, all under one lock:
    /// the apiserver's GuaranteedUpdate. `decide` sets everything but metadata.resourceVersion.
    pub fn write<E, F>(&self, key: &Key, ephemeral: bool, decide: F) -> Result<Written, E>
    where
        E: From<StoreError>,
        F: FnOnce(Option<&Stored>) -> Result<Write, E>,
    {
        let mut inner = self.lock();
        let current = inner.objects.get(key).cloned();
        let write = decide(current.as_ref())?;
        let rev = inner.rev + 1;
        let (event, written) = match write {
            Write::Keep => {
                return current.map(Written::Unchanged).ok_or_else(|| StoreError::NotFound.into());
            }
            Write::Put(mut obj) => {
                set_resource_version(&mut obj, rev);
                let json = Bytes::from(serde_json::to_vec(&obj).map_err(StoreError::from)?);
                if ephemeral {
                    inner.reserve(rev)?;
                } else {
                    inner.db.put(key, rev, &json).map_err(StoreError::from)?;
                }
                let stored = Stored { rv: rev, json: json.clone() };
                inner.objects.insert(key.clone(), stored.clone());
                let kind = if current.is_some() { EventType::Modified } else { EventType::Added };
                let prev = current.as_ref().map(|c| c.json.clone());
                (
                    Event { kind, rv: rev, key: key.clone(), object: json, prev },
                    Written::Put { stored, created: current.is_none() },
                )
            }
            Write::Delete => {
                let Some(current) = current else {
                    return Err(StoreError::NotFound.into());
                };
                let mut last: Value = serde_json::from_slice(&current.json).map_err(StoreError::from)?;
                set_resource_version(&mut last, rev);
                let json = Bytes::from(serde_json::to_vec(&last).map_err(StoreError::from)?);
                if ephemeral {
                    inner.reserve(rev)?;
                } else {
                    inner.db.delete(key, rev).map_err(StoreError::from)?;
                }
                inner.objects.remove(key);
                let stored = Stored { rv: rev, json: json.clone() };
                (
                    Event {
                        kind: EventType::Deleted,
                        rv: rev,
                        key: key.clone(),
                        object: json,
                        prev: Some(current.json),
                    },
                    Written::Deleted(stored),
                )
            }
        };
        inner.rev = rev;
        let event = Arc::new(event);
        inner.history.push_back(event.clone());
        while inner.history.len() > self.history_cap {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        // Sent under the lock so that watchers see events in revision order.
        let _ = self.events.send(event);
        Ok(written)
    }

    /// Starts a watch of `resource` after revision `from`: the history events newer than `from`, then a
    /// receiver for live events (events at or below the last replayed revision must be skipped).
    pub fn watch(&self, resource: &str, from: i64) -> Result<(Vec<Arc<Event>>, EventReceiver), StoreError> {
        let inner = self.lock();
        if from < inner.compacted {
            return Err(StoreError::Expired { requested: from, oldest: inner.compacted });
        }
        let replay = inner.history.iter().filter(|e| e.rv > from && e.key.resource == resource).cloned().collect();
        Ok((replay, self.events.subscribe()))
    }

    /// A snapshot of a resource plus a live receiver, for watches that start with the current state.
    pub fn snapshot_and_watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
    ) -> (Vec<(Key, Stored)>, i64, broadcast::Receiver<Arc<Event>>) {
        let inner = self.lock();
        let start = Key::new(resource, namespace.unwrap_or(""), "");
        let items = inner
            .objects
            .range(start..)
            .take_while(|(k, _)| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (items, inner.rev, self.events.subscribe())
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Bytes the database files take on disk (for the write-wear benchmark and metrics).
    pub fn db_path(&self) -> std::path::PathBuf {
        self.lock().db.path().to_path_buf()
    }
}

impl Inner {
    fn reserve(&mut self, rev: i64) -> Result<(), StoreError> {
        if rev > self.reserved {
            let upto = rev + EPHEMERAL_RESERVATION;
            self.db.reserve(upto)?;
            self.reserved = upto;
        }
        Ok(())
    }
}

fn set_resource_version(obj: &mut Value, rev: i64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
}

#[cfg(test)]
mod tests;
