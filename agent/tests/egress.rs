//! The egress masquerade table as the kernel and `nft` see it (root; in a throwaway netns).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn masquerade_table_reads_back_as_flannel_writes_it() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let ns = Netns(format!("edge-egress-{}", std::process::id()));
    assert!(Command::new("ip").args(["netns", "add", &ns.0]).status().unwrap().success());
    let path = format!("/run/netns/{}", ns.0);
    let cidr = "10.42.0.0/16".parse().unwrap();
    // Twice: applying again replaces the table instead of adding a second rule.
    for _ in 0..2 {
        edge_net::rtnl::with_netns(Path::new(&path), || edge_agent::egress::apply(cidr)).unwrap().unwrap();
    }
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, "nft", "list", "table", "ip", "edge-egress"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("type nat hook postrouting priority srcnat; policy accept;"), "{text}");
    assert!(text.contains("ip saddr 10.42.0.0/16 ip daddr != 10.42.0.0/16 masquerade fully-random"), "{text}");
    assert_eq!(text.matches("masquerade").count(), 1, "{text}");
    edge_net::rtnl::with_netns(Path::new(&path), edge_agent::egress::remove).unwrap().unwrap();
    let out = Command::new("ip").args(["netns", "exec", &ns.0, "nft", "list", "tables"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("edge-egress"));
}
