//! Which endpoints serve which traffic: upstream's `CategorizeEndpoints` (pkg/proxy/topology.go)
//! without topology hints. Ready endpoints are used; when a policy has none, its serving and
//! terminating endpoints are used instead, so that connections drain during a rollout.

use crate::model::Endpoint;

/// The endpoints one service port uses on this node.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Categorized<'a> {
    /// For "Cluster" traffic policy.
    pub cluster: Vec<&'a Endpoint>,
    /// For "Local" traffic policy: endpoints on this node.
    pub local: Vec<&'a Endpoint>,
    /// Union of both, in input order: the endpoints that get a chain.
    pub all: Vec<&'a Endpoint>,
    /// Whether any usable endpoint exists anywhere in the cluster.
    pub has_any: bool,
}

fn is_local(ep: &Endpoint, node: &str) -> bool {
    ep.node_name.as_deref() == Some(node)
}

fn serving_terminating(ep: &Endpoint) -> bool {
    ep.serving && ep.terminating
}

/// Splits `endpoints` by the policies the service port uses.
pub(crate) fn categorize<'a>(
    endpoints: &[&'a Endpoint],
    uses_cluster: bool,
    uses_local: bool,
    node: &str,
) -> Categorized<'a> {
    let mut out = Categorized::default();
    if uses_cluster {
        out.cluster = endpoints.iter().copied().filter(|e| e.ready).collect();
        if out.cluster.is_empty() {
            out.cluster = endpoints.iter().copied().filter(|e| serving_terminating(e)).collect();
        }
        out.has_any = !out.cluster.is_empty();
    }
    if !uses_local {
        out.all = out.cluster.clone();
        return out;
    }
    out.has_any |= endpoints.iter().any(|e| e.ready || serving_terminating(e));
    out.local = endpoints.iter().copied().filter(|e| is_local(e, node) && e.ready).collect();
    if out.local.is_empty() {
        out.local = endpoints.iter().copied().filter(|e| is_local(e, node) && serving_terminating(e)).collect();
    }
    out.all = endpoints
        .iter()
        .copied()
        .filter(|e| out.cluster.iter().chain(&out.local).any(|c| std::ptr::eq(*c, *e)))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// `(last octet, ready, serving, terminating, local)`
    fn ep(n: u8, ready: bool, serving: bool, terminating: bool, local: bool) -> Endpoint {
        Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 42, 0, n)),
            port: 80,
            ready,
            serving,
            terminating,
            node_name: Some(if local { "me" } else { "other" }.into()),
        }
    }

    fn octets(v: &[&Endpoint]) -> Vec<u8> {
        v.iter()
            .map(|e| match e.ip {
                IpAddr::V4(a) => a.octets()[3],
                IpAddr::V6(_) => 0,
            })
            .collect()
    }

    #[test]
    fn categorizes_like_upstream() {
        let ready_remote = ep(1, true, true, false, false);
        let ready_local = ep(2, true, true, false, true);
        let term_remote = ep(3, false, true, true, false);
        let term_local = ep(4, false, true, true, true);
        let dead = ep(5, false, false, true, true);
        // (endpoints, uses_cluster, uses_local, cluster, local, all, has_any)
        type Case<'a> = (Vec<&'a Endpoint>, bool, bool, Vec<u8>, Vec<u8>, Vec<u8>, bool);
        let cases: Vec<Case> = vec![
            (vec![&ready_remote, &ready_local, &term_local], true, false, vec![1, 2], vec![], vec![1, 2], true),
            // Terminating fallback only when nothing is ready.
            (vec![&term_remote, &term_local, &dead], true, false, vec![3, 4], vec![], vec![3, 4], true),
            (vec![&dead], true, false, vec![], vec![], vec![], false),
            // Local policy: local ready ones; the cluster set stays for short-circuiting.
            (vec![&ready_remote, &ready_local], true, true, vec![1, 2], vec![2], vec![1, 2], true),
            // Local only, no local endpoints, but some elsewhere: has_any without any chain.
            (vec![&ready_remote], false, true, vec![], vec![], vec![], true),
            // Local ready beats local terminating; remote ones get no chain without cluster use.
            (vec![&ready_remote, &term_local, &ready_local], false, true, vec![], vec![2], vec![2], true),
            (vec![&ready_remote, &term_local], false, true, vec![], vec![4], vec![4], true),
            (vec![], true, true, vec![], vec![], vec![], false),
        ];
        for (i, (eps, uc, ul, cluster, local, all, any)) in cases.into_iter().enumerate() {
            let c = categorize(&eps, uc, ul, "me");
            assert_eq!(
                (octets(&c.cluster), octets(&c.local), octets(&c.all), c.has_any),
                (cluster, local, all, any),
                "case {i}"
            );
        }
    }
}
