//! Container images for edge-agent: getting images onto a board and into overlayfs-ready layer
//! directories.
//!
//! - [`reference`]: `nginx:1.7.9` → `docker.io/library/nginx:1.7.9`
//! - [`registries`]: k3s's `registries.yaml` (mirrors, rewrites, auth, TLS) and imagePullSecrets
//! - [`pull`]: [`Puller`] pulls from mirrors then the registry (token/basic auth, manifest lists →
//!   the node's [`Platform`]), and [`PullPolicy`] decides when to
//! - [`store`]: the content store (blobs by digest, image index)
//! - [`snapshots`] / [`unpack`]: layers into per-layer overlay lowerdirs, or flattened
//! - [`import`]: airgap tarballs (OCI layout, docker save) from `<data-dir>/images/`
//! - [`gc`]: image garbage collection down to a disk usage target

pub mod auth;
pub mod compression;
pub mod digest;
pub mod gc;
pub mod http;
pub mod import;
pub mod manifest;
pub mod platform;
pub mod pull;
pub mod reference;
pub mod registries;
pub mod registry;
pub mod snapshots;
pub mod store;
pub mod unpack;

#[cfg(feature = "testing")]
pub mod testing;

pub use digest::Digest;
pub use platform::Platform;
pub use pull::{PullError, PullPolicy, Puller};
pub use reference::Reference;
pub use registries::{DockerConfig, RegistriesConfig};
pub use store::{ContentStore, ImageRecord};
