//! An IP network (`10.42.0.0/16`), parsed from the `--cluster-cidr` flag's comma-separated list.

use std::fmt;
use std::net::IpAddr;

/// A network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub net: IpAddr,
    pub len: u8,
}

impl Cidr {
    /// Parses `A/N` (a bare address is a host route).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, len) = match s.trim().split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max)?,
            None => max,
        };
        Some(Cidr { net, len })
    }

    /// All valid entries of a comma-separated list; invalid ones are reported back.
    pub fn parse_list(s: &str) -> (Vec<Cidr>, Vec<String>) {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match Cidr::parse(part) {
                Some(c) => ok.push(c),
                None => bad.push(part.to_owned()),
            }
        }
        (ok, bad)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_of_both_families() {
        let (ok, bad) = Cidr::parse_list("10.42.0.0/16, fd00:42::/56,10.0.0.1,nonsense,10.0.0.0/33");
        let shown: Vec<String> = ok.iter().map(Cidr::to_string).collect();
        assert_eq!(shown, vec!["10.42.0.0/16", "fd00:42::/56", "10.0.0.1/32"]);
        assert_eq!(bad, vec!["nonsense", "10.0.0.0/33"]);
    }
}
