//! Watch: a chunked stream of newline-delimited WatchEvents, only events newer than the requested
//! resourceVersion, selector transitions reported as upstream does (an object leaving the selection
//! is DELETED, one entering it ADDED), bookmarks on request, and 410 Expired as an ERROR event.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::handlers::{Ctx, Selectors};
use super::status::{ApiError, ApiResult};
use super::{table, Body};
use crate::resources::Resource;
use crate::store::{Event, EventType, Store};

const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// Upstream closes watches after a random 30–60 minutes so that load spreads over servers; one
/// server has no such need, but clients expect watches to end now and then.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Watcher {
    store: Arc<Store>,
    res: &'static Resource,
    namespace: Option<String>,
    selectors: Selectors,
    as_table: Option<Option<String>>,
    bookmarks: bool,
    tx: mpsc::Sender<Bytes>,
}

pub fn serve(ctx: &Ctx, as_table: bool) -> ApiResult<Response<Body>> {
    let selectors = Selectors::parse(ctx)?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let watcher = Watcher {
        store: ctx.state.store.clone(),
        res: ctx.res,
        namespace: ctx.namespace.clone(),
        selectors,
        as_table: as_table.then(|| ctx.query.include_object.clone()),
        bookmarks: ctx.query.allow_watch_bookmarks,
        tx,
    };
    let from = match ctx.query.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(rv) => {
            Some(rv.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?)
        }
    };
    let initial_events_end = ctx.query.send_initial_events;
    let timeout = ctx.query.timeout_seconds.map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT);
    let shutdown = ctx.state.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = watcher.run(from, initial_events_end) => {}
            _ = tokio::time::sleep(timeout) => {}
            _ = shutdown.cancelled() => {}
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

impl Watcher {
    fn in_scope(&self, ns: &str) -> bool {
        self.namespace.as_deref().is_none_or(|want| want == ns)
    }

    /// Serialises one event; false when the client has gone.
    async fn send(&self, kind: &str, object: Value) -> bool {
        let object = match &self.as_table {
            Some(include) if kind != "BOOKMARK" && kind != "ERROR" => {
                let rv = object["metadata"]["resourceVersion"].clone();
                table::build(
                    self.res,
                    std::slice::from_ref(&object),
                    json!({"resourceVersion": rv}),
                    include.as_deref(),
                )
            }
            _ => object,
        };
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.tx.send(Bytes::from(line)).await.is_ok()
    }

    fn present(&self, bytes: &[u8]) -> Value {
        let stored: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        if self.res.version == self.res.storage_version {
            stored
        } else {
            crate::admission::convert::from_storage(self.res.group, self.res.kind, stored, self.res.version)
        }
    }

    async fn bookmark(&self, rv: i64, initial_events_end: bool) -> bool {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.send("BOOKMARK", json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": meta}))
            .await
    }

    /// The watch event for a store event under this watch's selectors, if any.
    fn translate(&self, ev: &Event) -> Option<(&'static str, Value)> {
        if ev.key.resource != self.res.store_key() || !self.in_scope(&ev.key.namespace) {
            return None;
        }
        let obj = self.present(&ev.object);
        if self.selectors.is_empty() {
            return Some((ev.kind.as_str(), obj));
        }
        let now = self.selectors.matches(&obj);
        let before = ev.prev.as_ref().is_some_and(|p| self.selectors.matches(&self.present(p)));
        match ev.kind {
            EventType::Added => now.then_some(("ADDED", obj)),
            EventType::Deleted => before.then_some(("DELETED", obj)),
            EventType::Modified => match (before, now) {
                (true, true) => Some(("MODIFIED", obj)),
                (false, true) => Some(("ADDED", obj)),
                (true, false) => Some(("DELETED", obj)),
                (false, false) => None,
            },
        }
    }

    async fn run(self, from: Option<i64>, initial_events_end: bool) {
        let resource = self.res.store_key();
        let (mut last, mut rx) = match from {
            None => {
                // Start from the current state: synthetic ADDED events for every object.
                let (items, rev, rx) = self.store.snapshot_and_watch(&resource, self.namespace.as_deref());
                for (_, stored) in items {
                    let obj = self.present(&stored.json);
                    if self.selectors.matches(&obj) && !self.send("ADDED", obj).await {
                        return;
                    }
                }
                if initial_events_end && !self.bookmark(rev, true).await {
                    return;
                }
                (rev, rx)
            }
            Some(rv) => match self.store.watch(&resource, rv) {
                Ok((replay, rx)) => {
                    let mut last = rv;
                    for ev in replay {
                        last = ev.rv;
                        if let Some((kind, obj)) = self.translate(&ev) {
                            if !self.send(kind, obj).await {
                                return;
                            }
                        }
                    }
                    (last, rx)
                }
                Err(e) => {
                    let status = ApiError::from(e).to_status();
                    self.send("ERROR", status).await;
                    return;
                }
            },
        };
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last {
                            continue;
                        }
                        last = ev.rv;
                        if let Some((kind, obj)) = self.translate(&ev) {
                            if !self.send(kind, obj).await {
                                return;
                            }
                        }
                    }
                    // A watcher that cannot keep up is closed; its client resumes from its last
                    // resourceVersion, which the history still holds.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(skipped = n, resource = %resource, "watcher lagged, closing");
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick() => {
                    if self.bookmarks && !self.bookmark(last, false).await {
                        return;
                    }
                    if self.tx.is_closed() {
                        return;
                    }
                }
            }
        }
    }
}
