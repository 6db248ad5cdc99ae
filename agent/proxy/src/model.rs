//! The proxy's input: one [`ServicePort`] per (Service, port), with its endpoints, already
//! reduced from the API objects to what the ruleset needs.

use std::net::IpAddr;

/// The transport protocol of a service port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The IP protocol number (`meta l4proto`).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => edge_nft::proto::TCP,
            Protocol::Udp => edge_nft::proto::UDP,
            Protocol::Sctp => edge_nft::proto::SCTP,
        }
    }

    /// Lower-case name, as nft and kube-proxy's chain names spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// Parses the API's spelling (`TCP`, `UDP`, `SCTP`); absent means TCP.
    pub fn from_api(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// One backend address of a service port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
}

/// One (Service, port) — kube-proxy's ServicePortName granularity. Hashable so that the
/// proxier can remember what it planned for each value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    pub port_name: String,
    pub protocol: Protocol,
    /// Empty for headless and ExternalName services (those get no rules).
    pub cluster_ips: Vec<IpAddr>,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// `Some(t)` for sessionAffinity ClientIP (default 10800 s).
    pub affinity_timeout_seconds: Option<u32>,
    /// externalTrafficPolicy: Local.
    pub external_policy_local: bool,
    /// internalTrafficPolicy: Local.
    pub internal_policy_local: bool,
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/name:port`, upstream's ServicePortName string (for logs).
    pub fn name_string(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.port_name)
    }
}
