//! The pod subresources only a kubelet can answer — log, exec, attach and portforward — proxied to
//! the kubelet of the pod's node, as upstream's API server does: the location (container, node
//! address, kubelet path) is worked out here, the kubelet is called over HTTPS with the server's
//! own client certificate, and the answer is streamed or, for upgrades, spliced through.

mod client;
mod location;
mod proxy;

pub use client::{KubeletClient, KubeletClientError, KubeletError};
pub use location::{Stream, DEFAULT_KUBELET_PORT};
pub use proxy::serve;
