//! Names derived from addresses: the dashed IP labels (`10-42-0-7`, `fd00--7`) of pod and endpoint names, and
//! reverse-lookup names (`in-addr.arpa`, `ip6.arpa`) parsed back into addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The dashed form CoreDNS uses for pod names and endpoints without a hostname: every `.` or `:` becomes `-`.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// Parses a dashed label back into an address; `None` when it is not one (pod names are checked only for shape,
/// like CoreDNS's "pods insecure").
pub fn parse_dashed(label: &str) -> Option<IpAddr> {
    if label.contains(['.', ':']) {
        return None;
    }
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The address named by a full reverse name (labels lowercased, root excluded), e.g. `["7","0","42","10","in-addr",
/// "arpa"]`. Partial names (a /24's `0.42.10.in-addr.arpa`) are not addresses and give `None`.
pub fn parse_reverse(labels: &[String]) -> Option<IpAddr> {
    match labels {
        [d, c, b, a, in_addr, arpa] if in_addr == "in-addr" && arpa == "arpa" => {
            let octet = |s: &String| s.parse::<u8>().ok().filter(|_| s.len() == 1 || !s.starts_with('0'));
            Some(IpAddr::V4(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?)))
        }
        [nibbles @ .., ip6, arpa] if ip6 == "ip6" && arpa == "arpa" && nibbles.len() == 32 => {
            let mut value: u128 = 0;
            // The least significant nibble comes first in the name.
            for nibble in nibbles.iter().rev() {
                let digit = match nibble.as_bytes() {
                    [c] => char::from(*c).to_digit(16)?,
                    _ => return None,
                };
                value = (value << 4) | u128::from(digit);
            }
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    }
}

/// The reverse name of an address, without the trailing dot.
#[cfg(test)]
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Vec<String> {
        name.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn dashed_round_trips() {
        let cases: &[(&str, &str)] = &[
            ("10.42.0.7", "10-42-0-7"),
            ("0.0.0.0", "0-0-0-0"),
            ("fd00::7", "fd00--7"),
            ("2001:db8:0:1:2:3:4:5", "2001-db8-0-1-2-3-4-5"),
            ("::1", "--1"),
        ];
        for (ip, label) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(dashed(ip), *label);
            assert_eq!(parse_dashed(label), Some(ip), "{label}");
        }
    }

    #[test]
    fn dashed_rejects_non_addresses() {
        for label in ["10-42-0", "10-42-0-256", "nginx", "10.42.0.7", "1-2-3-4-5", "", "fd00:-1", "g--1"] {
            assert_eq!(parse_dashed(label), None, "{label}");
        }
    }

    #[test]
    fn reverse_names_round_trip() {
        for ip in ["10.43.0.10", "192.168.1.255", "fd00:43::a", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(parse_reverse(&labels(&reverse_name(ip))), Some(ip), "{ip}");
        }
        assert_eq!(reverse_name("10.43.0.10".parse().unwrap()), "10.0.43.10.in-addr.arpa");
    }

    #[test]
    fn partial_or_malformed_reverse_names_are_not_addresses() {
        for name in [
            "0.43.10.in-addr.arpa",
            "1.0.0.43.10.in-addr.arpa",
            "x.0.43.10.in-addr.arpa",
            "256.0.43.10.in-addr.arpa",
            "01.0.43.10.in-addr.arpa",
            "a.ip6.arpa",
            "10.0.43.10.in-addr.example",
        ] {
            assert_eq!(parse_reverse(&labels(name)), None, "{name}");
        }
    }
}
