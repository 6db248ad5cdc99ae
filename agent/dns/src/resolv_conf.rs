//! Reading the node's upstream resolvers from resolv.conf (the `nameserver` lines, resolv.conf(5)).

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

const DNS_PORT: u16 = 53;

/// The `nameserver` addresses of a resolv.conf, in order, on port 53. Malformed lines and IPv6 link-local scopes
/// given by interface name (which need a lookup this pure function cannot do) are skipped.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next().and_then(parse_nameserver) else {
            continue;
        };
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    if let Ok(ip) = word.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, DNS_PORT));
    }
    let (ip, scope) = word.split_once('%')?;
    let ip: Ipv6Addr = ip.parse().ok()?;
    Some(SocketAddr::V6(SocketAddrV6::new(ip, DNS_PORT, 0, scope.parse().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("plain", "nameserver 1.1.1.1\nnameserver 8.8.8.8\n", &["1.1.1.1:53", "8.8.8.8:53"]),
            (
                "other directives and comments",
                "# generated\nsearch example.com\noptions ndots:2\nnameserver 10.0.0.2 # office\n; nameserver 9.9.9.9\n",
                &["10.0.0.2:53"],
            ),
            ("ipv6", "nameserver 2001:4860:4860::8888\n", &["[2001:4860:4860::8888]:53"]),
            ("numeric scope", "nameserver fe80::1%2\n", &["[fe80::1%2]:53"]),
            ("named scope skipped", "nameserver fe80::1%eth0\n", &[]),
            ("garbage skipped", "nameserver\nnameserver dns.example\nnameservers 1.2.3.4\n", &[]),
            ("duplicates once", "nameserver 1.1.1.1\nnameserver 1.1.1.1\n", &["1.1.1.1:53"]),
            ("tabs", "nameserver\t127.0.0.53\n", &["127.0.0.53:53"]),
            ("empty", "", &[]),
        ];
        for (what, text, want) in cases {
            let got: Vec<String> = upstreams_from_resolv_conf(text).iter().map(ToString::to_string).collect();
            assert_eq!(got, *want, "{what}");
        }
    }
}
