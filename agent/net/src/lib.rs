//! Node side of the pod network, the way flannel's VXLAN backend and CNI's bridge +
//! host-local plugins build it, programmed over rtnetlink (never by running `ip`):
//!
//! - [`ipam`]: host-local address allocation from the node's pod CIDR, persisted on disk;
//! - [`overlay`]: the flannel VXLAN model and the pure reconcile [`overlay::plan`];
//! - [`netlink`]: the narrow kernel trait, with [`rtnl::RtNetlink`] (real) and
//!   [`fake::RecordingNetLink`] (recording fake for tests);
//! - [`node`]: [`node::NodeNetwork`], which ties them together for one node;
//! - [`netns`]: pod network namespaces bound to files, which `add_pod` plugs into.

pub mod error;
pub mod fake;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod node;
pub mod overlay;
pub mod rtnl;

pub use error::{NetError, Result};
pub use ipam::HostLocalIpam;
pub use netlink::NetLink;
pub use node::{NodeConfig, NodeNetwork, PodAttachment};
pub use overlay::{Change, Entry, RemoteNode};
pub use rtnl::RtNetlink;
