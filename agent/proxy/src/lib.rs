//! The Service proxy: Services and EndpointSlices programmed into one nftables table over
//! netlink, in the shape of kube-proxy's nftables mode.
//!
//! [`service_ports`] reduces the API objects to [`ServicePort`]s; a [`Proxier`] turns them
//! into a plan (plain data: chains, rules, map elements) and sends it through a
//! [`Netfilter`] — the [`Kernel`], or a fake in tests — as one atomic batch: the whole table
//! on the first sync, only what changed afterwards. [`render_nft`] prints the same ruleset
//! as an `nft -f` script.
//!
//! Modules: `model` the input types; `convert` the API objects; `endpoints` which endpoints
//! serve which traffic policy; `names` chain and set names; `plan` the ruleset as data;
//! `stmt` one rule in netlink and text form; `transaction` full and incremental batches;
//! `render` the nft script; `netfilter` the kernel trait; `proxier` the sync loop's state.

mod cidr;
mod convert;
mod endpoints;
mod error;
mod model;
mod names;
mod netfilter;
mod plan;
mod proxier;
mod render;
mod stmt;
mod transaction;

pub use convert::service_ports;
pub use error::ProxyError;
pub use model::{Endpoint, Protocol, ServicePort};
pub use netfilter::{Elements, Kernel, Netfilter, TableState};
pub use proxier::{remove_table, render_nft, Proxier, ProxyConfig, SyncStats};
