//! Host-local IPAM: hands out pod addresses from the node's pod CIDR and remembers them on disk.
//!
//! The layout follows CNI's host-local plugin: one file per allocated address, named by the
//! address and holding the owner (a pod key). A file is created complete and exclusively (written
//! to a temp name, then hard-linked into place, which fails if the address is taken), so a crash
//! never leaves a half-written reservation and two allocators can never hand out one address.
//! `last_reserved_ip` makes allocation round-robin, so a just-released address is not reused at
//! once (a stale peer might still hold it in its caches).

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::error::{NetError, Result};

const LAST_RESERVED: &str = "last_reserved_ip";

/// Makes temp file names unique per call: one agent allocates for many pods at once, and a name
/// shared by two concurrent reservations would let one link the other's owner into place.
static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn tmp_suffix() -> String {
    format!("{}-{}", std::process::id(), TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

#[derive(Debug, Clone)]
pub struct HostLocalIpam {
    dir: PathBuf,
    cidr: Ipv4Net,
}

impl HostLocalIpam {
    /// `dir` is this node's IPAM directory (e.g. `<data-dir>/net/ipam/<cidr>`); created if missing.
    pub fn new(dir: impl Into<PathBuf>, cidr: Ipv4Net) -> Result<Self> {
        let cidr = cidr.trunc();
        // A /31 or /32 leaves no room for the gateway plus one pod.
        if cidr.prefix_len() > 30 {
            return Err(NetError::CidrTooSmall(cidr));
        }
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| NetError::io(format!("creating {}", dir.display()), e))?;
        Ok(Self { dir, cidr })
    }

    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bridge's address: the first host address of the CIDR, never given to a pod.
    pub fn gateway(&self) -> Ipv4Addr {
        gateway_of(self.cidr)
    }

    /// Returns the owner's address, allocating one if it has none (idempotent per owner, so a
    /// retried pod setup keeps its address).
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr> {
        if let Some(ip) = self.lookup(owner)? {
            return Ok(ip);
        }
        let candidates = self.candidates();
        let start = self
            .last_reserved()
            .and_then(|last| candidates.iter().position(|c| *c == last))
            .map(|i| i + 1)
            .unwrap_or(0);
        let n = candidates.len();
        for i in 0..n {
            let ip = candidates[(start + i) % n];
            if self.try_reserve(ip, owner)? {
                self.write_last_reserved(ip)?;
                return Ok(ip);
            }
        }
        Err(NetError::PoolExhausted(self.cidr))
    }

    /// The owner's current address, if any.
    pub fn lookup(&self, owner: &str) -> Result<Option<Ipv4Addr>> {
        Ok(self.allocations()?.into_iter().find(|(_, o)| o == owner).map(|(ip, _)| ip))
    }

    /// Frees every address held by `owner`; returns them. Releasing an unknown owner is not an error.
    pub fn release(&self, owner: &str) -> Result<Vec<Ipv4Addr>> {
        let mut freed = Vec::new();
        for (ip, o) in self.allocations()? {
            if o == owner {
                let path = self.dir.join(ip.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => freed.push(ip),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(NetError::io(format!("removing {}", path.display()), e)),
                }
            }
        }
        Ok(freed)
    }

    /// Every reservation on disk, sorted by address.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>> {
        let rd = fs::read_dir(&self.dir).map_err(|e| NetError::io(format!("reading {}", self.dir.display()), e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| NetError::io(format!("reading {}", self.dir.display()), e))?;
            let name = entry.file_name();
            // Other files (last_reserved_ip, temp files) are not reservations.
            let Some(ip) = name.to_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let owner = fs::read_to_string(entry.path())
                .map_err(|e| NetError::io(format!("reading {}", entry.path().display()), e))?;
            out.push((ip, owner.trim().to_string()));
        }
        out.sort();
        Ok(out)
    }

    /// Pod-assignable addresses in order: the network address, the gateway and the broadcast
    /// address are skipped.
    fn candidates(&self) -> Vec<Ipv4Addr> {
        let gw = self.gateway();
        self.cidr.hosts().filter(|ip| *ip != gw).collect()
    }

    fn try_reserve(&self, ip: Ipv4Addr, owner: &str) -> Result<bool> {
        let target = self.dir.join(ip.to_string());
        let tmp = self.dir.join(format!(".tmp-{}-{}", ip, tmp_suffix()));
        write_file(&tmp, owner)?;
        // link(2) is atomic and refuses an existing target: exactly one allocator wins.
        let res = fs::hard_link(&tmp, &target);
        let _ = fs::remove_file(&tmp);
        match res {
            Ok(()) => {
                sync_dir(&self.dir);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(NetError::io(format!("reserving {}", target.display()), e)),
        }
    }

    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.dir.join(LAST_RESERVED)).ok()?.trim().parse().ok()
    }

    fn write_last_reserved(&self, ip: Ipv4Addr) -> Result<()> {
        let tmp = self.dir.join(format!(".tmp-last-{}", tmp_suffix()));
        write_file(&tmp, &ip.to_string())?;
        let target = self.dir.join(LAST_RESERVED);
        fs::rename(&tmp, &target).map_err(|e| NetError::io(format!("writing {}", target.display()), e))
    }
}

/// First host address of the CIDR (flannel's and CNI's bridge gateway convention).
pub fn gateway_of(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()).wrapping_add(1))
}

fn write_file(path: &Path, content: &str) -> Result<()> {
    let ctx = || format!("writing {}", path.display());
    let mut f = fs::File::create(path).map_err(|e| NetError::io(ctx(), e))?;
    f.write_all(content.as_bytes()).map_err(|e| NetError::io(ctx(), e))?;
    // The reservation must survive a power cut once allocate() has returned.
    f.sync_all().map_err(|e| NetError::io(ctx(), e))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn concurrent_allocations_in_one_process_never_share_an_address() {
        // One agent wires many pods at once: every owner must get its own address, and the file
        // of each address must name that owner.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let ipam = std::sync::Arc::new(HostLocalIpam::new(dir.path(), net("10.42.0.0/24")).unwrap());
            let threads: Vec<_> = (0..8)
                .map(|i| {
                    let ipam = ipam.clone();
                    std::thread::spawn(move || (format!("pod{i}"), ipam.allocate(&format!("pod{i}"))))
                })
                .collect();
            let mut got: Vec<(String, Ipv4Addr)> = Vec::new();
            for t in threads {
                let (owner, r) = t.join().unwrap();
                got.push((owner, r.unwrap()));
            }
            let mut ips: Vec<Ipv4Addr> = got.iter().map(|(_, ip)| *ip).collect();
            ips.sort();
            ips.dedup();
            assert_eq!(ips.len(), 8, "{got:?}");
            for (owner, ip) in &got {
                assert_eq!(ipam.lookup(owner).unwrap(), Some(*ip));
            }
        }
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn allocation_order_skips_reserved_addresses() {
        // (cidr, number of allocations, expected addresses in order)
        let cases: &[(&str, usize, &[&str])] = &[
            ("10.42.1.0/24", 3, &["10.42.1.2", "10.42.1.3", "10.42.1.4"]),
            ("10.42.1.0/30", 1, &["10.42.1.2"]),
            ("10.42.1.0/29", 5, &["10.42.1.2", "10.42.1.3", "10.42.1.4", "10.42.1.5", "10.42.1.6"]),
            // A CIDR given with host bits is truncated to its network.
            ("10.42.7.9/24", 1, &["10.42.7.2"]),
        ];
        for (cidr, n, want) in cases {
            let d = tempfile::tempdir().unwrap();
            let ipam = HostLocalIpam::new(d.path(), net(cidr)).unwrap();
            let got: Vec<Ipv4Addr> = (0..*n).map(|i| ipam.allocate(&format!("pod{i}")).unwrap()).collect();
            let want: Vec<Ipv4Addr> = want.iter().map(|s| ip(s)).collect();
            assert_eq!(got, want, "cidr {cidr}");
        }
    }

    #[test]
    fn exhaustion_and_too_small() {
        let d = tempfile::tempdir().unwrap();
        // /30: network .0, gateway .1, broadcast .3: exactly one pod address.
        let ipam = HostLocalIpam::new(d.path(), net("10.0.0.0/30")).unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), ip("10.0.0.2"));
        assert!(matches!(ipam.allocate("b"), Err(NetError::PoolExhausted(_))));
        for small in ["10.0.0.0/31", "10.0.0.0/32"] {
            let d = tempfile::tempdir().unwrap();
            assert!(matches!(HostLocalIpam::new(d.path(), net(small)), Err(NetError::CidrTooSmall(_))));
        }
    }

    #[test]
    fn same_owner_gets_same_address() {
        let d = tempfile::tempdir().unwrap();
        let ipam = HostLocalIpam::new(d.path(), net("10.42.1.0/24")).unwrap();
        let a = ipam.allocate("ns/a").unwrap();
        assert_eq!(ipam.allocate("ns/a").unwrap(), a);
        assert_eq!(ipam.allocations().unwrap(), vec![(a, "ns/a".to_string())]);
    }

    #[test]
    fn restart_never_hands_out_an_address_twice() {
        let d = tempfile::tempdir().unwrap();
        let first = HostLocalIpam::new(d.path(), net("10.42.1.0/24")).unwrap();
        let a = first.allocate("a").unwrap();
        let b = first.allocate("b").unwrap();
        drop(first);
        // A new allocator over the same directory stands for an agent restart.
        let second = HostLocalIpam::new(d.path(), net("10.42.1.0/24")).unwrap();
        let c = second.allocate("c").unwrap();
        assert!(c != a && c != b);
        assert_eq!(second.lookup("a").unwrap(), Some(a));
        assert_eq!(second.lookup("b").unwrap(), Some(b));
    }

    #[test]
    fn release_by_owner_and_round_robin_reuse() {
        let d = tempfile::tempdir().unwrap();
        let ipam = HostLocalIpam::new(d.path(), net("10.0.0.0/29")).unwrap();
        let owners = ["a", "b", "c"];
        let ips: Vec<_> = owners.iter().map(|o| ipam.allocate(o).unwrap()).collect();
        assert_eq!(ipam.release("b").unwrap(), vec![ips[1]]);
        assert_eq!(ipam.release("b").unwrap(), Vec::<Ipv4Addr>::new());
        assert_eq!(ipam.lookup("b").unwrap(), None);
        // Round robin: the freed .3 is not reused while later addresses are free.
        assert_eq!(ipam.allocate("d").unwrap(), ip("10.0.0.5"));
        assert_eq!(ipam.allocate("e").unwrap(), ip("10.0.0.6"));
        // Wrap-around finds the released address.
        assert_eq!(ipam.allocate("f").unwrap(), ip("10.0.0.3"));
        assert!(matches!(ipam.allocate("g"), Err(NetError::PoolExhausted(_))));
    }

    #[test]
    fn foreign_files_are_ignored_and_taken_addresses_skipped() {
        let d = tempfile::tempdir().unwrap();
        // Reservation made by a previous run, plus junk that is not a reservation.
        std::fs::write(d.path().join("10.42.1.2"), "old-pod\n").unwrap();
        std::fs::write(d.path().join("lock"), "").unwrap();
        let ipam = HostLocalIpam::new(d.path(), net("10.42.1.0/24")).unwrap();
        assert_eq!(ipam.allocate("new").unwrap(), ip("10.42.1.3"));
        assert_eq!(ipam.lookup("old-pod").unwrap(), Some(ip("10.42.1.2")));
    }
}
