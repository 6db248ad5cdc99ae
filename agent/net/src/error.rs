//! The crate's error type: one enum for kernel, filesystem and IPAM failures.

use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("entering network namespace {path}: {source}")]
    Netns {
        path: String,
        #[source]
        source: nix::Error,
    },
    #[error("link {0} not found")]
    LinkNotFound(String),
    #[error("pod CIDR {0} has no free address")]
    PoolExhausted(ipnet::Ipv4Net),
    #[error("pod CIDR {0} is too small for a gateway and pods")]
    CidrTooSmall(ipnet::Ipv4Net),
    #[error("no link on this node carries address {0}")]
    NoUplink(Ipv4Addr),
}

impl NetError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        NetError::Io { context: context.into(), source }
    }
}

pub type Result<T> = std::result::Result<T, NetError>;
