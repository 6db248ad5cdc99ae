//! Chain and set names. They follow kube-proxy's nftables mode exactly for IPv4
//! (`service-ULMVA6XW-ns1/svc1/tcp/p80`, `endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80`):
//! a hash keeps names unique and visually distinct, the rest keeps them readable. IPv6 objects
//! live in the same `inet` table, so their prefixes carry a `6` (`service6-…`) where upstream
//! uses a separate `ip6` table.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::model::ServicePort;
use crate::plan::Fam;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The kernel allows 255 bytes; upstream keeps 16 for the longest prefix.
const BASE_MAX: usize = 240;

/// The first 8 base32 characters of the name's SHA-256 (40 bits = 5 bytes).
fn hash8(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let bits = digest[..5].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    (0..8).map(|i| char::from(BASE32[((bits >> (35 - 5 * i)) & 31) as usize])).collect()
}

fn hash_and_truncate(name: &str) -> String {
    let mut s = format!("{}-{name}", hash8(name));
    if s.len() > BASE_MAX {
        let mut cut = BASE_MAX - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

fn service_base(sp: &ServicePort) -> String {
    hash_and_truncate(&format!("{}/{}/{}/{}", sp.namespace, sp.name, sp.protocol.as_str(), sp.port_name))
}

/// Chain and set names are only allowed `[A-Za-z0-9_./-]`: an IPv6 address's colons become dots.
fn endpoint_base(sp: &ServicePort, ip: IpAddr, port: u16) -> String {
    let ip = ip.to_string().replace(':', ".");
    hash_and_truncate(&format!("{}/{}/{}/{}__{ip}/{port}", sp.namespace, sp.name, sp.protocol.as_str(), sp.port_name))
}

fn prefix(kind: &str, fam: Fam) -> String {
    match fam {
        Fam::V4 => format!("{kind}-"),
        Fam::V6 => format!("{kind}6-"),
    }
}

/// The per-service chains of one service port in one IP family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceNames {
    /// Endpoints for "Cluster" traffic policy.
    pub cluster: String,
    /// Endpoints for "Local" traffic policy.
    pub local: String,
    /// NodePort, LoadBalancer and externalIP traffic.
    pub external: String,
}

impl ServiceNames {
    pub fn new(sp: &ServicePort, fam: Fam) -> Self {
        let base = service_base(sp);
        ServiceNames {
            cluster: prefix("service", fam) + &base,
            local: prefix("local", fam) + &base,
            external: prefix("external", fam) + &base,
        }
    }
}

/// `(endpoint chain, affinity set)` of one endpoint.
pub(crate) fn endpoint_names(sp: &ServicePort, fam: Fam, ip: IpAddr, port: u16) -> (String, String) {
    let base = endpoint_base(sp, ip, port);
    (prefix("endpoint", fam) + &base, prefix("affinity", fam) + &base)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sp(ns: &str, name: &str, port_name: &str) -> ServicePort {
        ServicePort {
            namespace: ns.into(),
            name: name.into(),
            port_name: port_name.into(),
            port: 80,
            ..ServicePort::default()
        }
    }

    #[test]
    fn ipv4_names_equal_kube_proxys() {
        // Expected values from kubernetes pkg/proxy/nftables/proxier_test.go.
        let s = sp("ns1", "svc1", "p80");
        let n = ServiceNames::new(&s, Fam::V4);
        assert_eq!(n.cluster, "service-ULMVA6XW-ns1/svc1/tcp/p80");
        assert_eq!(n.local, "local-ULMVA6XW-ns1/svc1/tcp/p80");
        assert_eq!(n.external, "external-ULMVA6XW-ns1/svc1/tcp/p80");
        let (chain, set) = endpoint_names(&s, Fam::V4, "10.180.0.1".parse().unwrap(), 80);
        assert_eq!(chain, "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80");
        assert_eq!(set, "affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80");
    }

    #[test]
    fn ipv6_names_are_distinct_and_valid() {
        let s = sp("ns1", "svc1", "p80");
        assert_eq!(ServiceNames::new(&s, Fam::V6).cluster, "service6-ULMVA6XW-ns1/svc1/tcp/p80");
        let (chain, _) = endpoint_names(&s, Fam::V6, "fd00::1".parse().unwrap(), 80);
        assert!(chain.starts_with("endpoint6-") && chain.ends_with("__fd00..1/80"), "{chain}");
    }

    #[test]
    fn names_stay_within_the_kernels_limit() {
        let long = "a".repeat(63);
        let s = sp(&long, &long, &"p".repeat(15));
        let (chain, _) = endpoint_names(&s, Fam::V6, "fd00:1:2:3:4:5:6:7".parse().unwrap(), 65535);
        assert!(chain.len() <= 255, "{}", chain.len());
        let n = ServiceNames::new(&s, Fam::V4);
        assert!(!n.external.ends_with("..."), "service names are never truncated");
        // SHA-256("") starts e3 b0 c4 42 98 -> base32 "4OYMIQUY".
        assert_eq!(hash8(""), "4OYMIQUY");
    }
}
