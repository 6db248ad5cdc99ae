//! Controllers that run inside edge-server against its store (DESIGN.md §5): level-triggered,
//! a pure plan from observed state, then conditional writes.

pub mod namespace;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::store::Store;

pub fn spawn(store: Arc<Store>, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(namespace::run(store, shutdown).instrument(tracing::info_span!("namespace-controller")))]
}
