//! Cluster DNS, built into each edge-agent (what CoreDNS's `kubernetes`, `forward` and `cache` plugins do for k3s).
//!
//! - [`Zone`]: an immutable snapshot of Service, endpoint and pod records, rebuilt by the agent on changes.
//! - [`answer`]: the pure lookup of one query in a zone.
//! - [`serve`] / [`Server`]: UDP and TCP listeners that answer from the current zone and forward other names to
//!   the node's upstream resolvers through a TTL-respecting LRU cache.
//!
//! Records follow the Kubernetes DNS specification (kubernetes/dns docs/specification.md).

mod addr_names;
mod answer;
#[cfg(test)]
mod answer_tests;
mod cache;
mod forward;
mod resolv_conf;
mod server;
mod zone;

pub use answer::{answer, Outcome, EDNS_PAYLOAD};
pub use cache::{MAX_NEGATIVE_TTL, MAX_TTL};
pub use forward::ForwardError;
pub use hickory_proto;
pub use resolv_conf::upstreams_from_resolv_conf;
pub use server::{serve, DnsConfig, DnsError, Server};
pub use zone::{Zone, CLUSTER_TTL, SCHEMA_VERSION};
