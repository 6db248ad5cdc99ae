//! What the node is made of, read from /proc, /etc and the data dir's filesystem.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Everything the Node object reports about the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    pub hostname: String,
    pub internal_ip: Ipv4Addr,
    pub kubelet_port: u16,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// Size of the filesystem holding the data dir.
    pub ephemeral_storage_bytes: u64,
    /// Free fraction (0..1) of that filesystem and of memory, for the pressure conditions.
    pub disk_available_ratio: f64,
    pub memory_available_bytes: u64,
    pub max_pods: u32,
    /// DiskPressure below this available fraction (0..1).
    pub disk_pressure_ratio: f64,
    pub architecture: String,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub extra_labels: Vec<(String, String)>,
    pub data_dir: PathBuf,
}

/// The kubelet version edge reports: the API level it implements, marked as edge's build.
pub const KUBELET_VERSION: &str = concat!("v1.32.0+edge-", env!("CARGO_PKG_VERSION"));
pub const RUNTIME_VERSION: &str = concat!("edge://", env!("CARGO_PKG_VERSION"));

impl NodeFacts {
    pub fn gather(
        name: &str,
        internal_ip: Ipv4Addr,
        kubelet_port: u16,
        data_dir: &Path,
        extra_labels: Vec<(String, String)>,
    ) -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let (total, available) = (meminfo_kib(&meminfo, "MemTotal"), meminfo_kib(&meminfo, "MemAvailable"));
        let (disk_total, disk_avail) = disk(data_dir);
        NodeFacts {
            name: name.to_string(),
            hostname: crate::config::hostname(),
            internal_ip,
            kubelet_port,
            cpus: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
            memory_bytes: total * 1024,
            ephemeral_storage_bytes: disk_total,
            disk_available_ratio: if disk_total > 0 { disk_avail as f64 / disk_total as f64 } else { 1.0 },
            memory_available_bytes: available * 1024,
            max_pods: 110,
            disk_pressure_ratio: 0.10,
            architecture: go_arch(std::env::consts::ARCH).to_string(),
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image: os_image(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()),
            machine_id: read_trim("/etc/machine-id"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            extra_labels,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// The same node with its changing numbers (free memory and disk) read again.
    pub fn refreshed(&self) -> Self {
        let mut f =
            Self::gather(&self.name, self.internal_ip, self.kubelet_port, &self.data_dir, self.extra_labels.clone());
        f.disk_pressure_ratio = self.disk_pressure_ratio;
        f
    }
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn meminfo_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn disk(path: &Path) -> (u64, u64) {
    let _ = std::fs::create_dir_all(path);
    filesystem_bytes(path).unwrap_or((0, 0))
}

/// Size and available bytes of the filesystem holding `path`.
// The counts are u32 on 32-bit targets and u64 elsewhere; the conversions are for the former.
#[allow(clippy::useless_conversion)]
pub fn filesystem_bytes(path: &Path) -> Option<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = u64::from(s.fragment_size());
    Some((u64::from(s.blocks()) * frag, u64::from(s.blocks_available()) * frag))
}

/// `PRETTY_NAME` from os-release, as the kubelet reports osImage.
pub fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// Go's GOARCH names, which `kubernetes.io/arch` and nodeInfo use.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "riscv64" => "riscv64",
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        let mem = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   12000 kB\n";
        assert_eq!(meminfo_kib(mem, "MemTotal"), 24_000_000);
        assert_eq!(meminfo_kib(mem, "MemAvailable"), 12_000);
        assert_eq!(meminfo_kib(mem, "Nope"), 0);
        let osr = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(os_image(osr), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os_image(""), "Linux");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("x86_64"), "amd64");
    }
}
