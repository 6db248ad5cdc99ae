//! Platforms (os/architecture/variant) and choosing a manifest from an index the way containerd's
//! `platforms.Only` does: an arm/v7 node also runs arm/v6 and v5, arm64 also runs arm/v8 and below,
//! amd64 also runs 386, and closer matches are preferred.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: &str) -> Self {
        Platform { os: os.into(), architecture: architecture.into(), variant: variant.into() }
    }

    /// Parses `linux/arm/v7`, `linux/amd64` or `arm64`.
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let p = match parts.as_slice() {
            [arch] => Platform::new("linux", arch, ""),
            [os, arch] => Platform::new(os, arch, ""),
            [os, arch, variant] => Platform::new(os, arch, variant),
            _ => return None,
        };
        (!p.os.is_empty() && !p.architecture.is_empty()).then(|| p.normalized())
    }

    /// The platform this process runs on.
    pub fn host() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", String::new()),
            "aarch64" => ("arm64", String::new()),
            "x86" => ("386", String::new()),
            "arm" => ("arm", arm_variant_from_cpuinfo().unwrap_or_else(|| "v7".into())),
            other => (other, String::new()),
        };
        Platform::new("linux", arch, &variant).normalized()
    }

    /// containerd's normalization: aliases (`aarch64`, `x86_64`, `armhf`) and default variants.
    pub fn normalized(&self) -> Self {
        let os = self.os.to_ascii_lowercase();
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.to_ascii_lowercase();
        let (arch, variant) = match arch.as_str() {
            "i386" => ("386".to_string(), String::new()),
            "x86_64" | "x86-64" | "amd64" => ("amd64".into(), if variant == "v1" { String::new() } else { variant }),
            "aarch64" | "arm64" => (
                "arm64".into(),
                match variant.as_str() {
                    "8" | "v8" | "v8.0" => String::new(),
                    "9" | "9.0" | "v9.0" => "v9".into(),
                    _ => variant,
                },
            ),
            "armhf" => ("arm".into(), "v7".into()),
            "armel" => ("arm".into(), "v6".into()),
            "arm" => (
                "arm".into(),
                match variant.as_str() {
                    "" | "7" => "v7".into(),
                    "5" | "6" | "8" => format!("v{variant}"),
                    _ => variant,
                },
            ),
            _ => (arch, variant),
        };
        Platform { os, architecture: arch, variant }
    }

    /// Platforms this one can run, best first (containerd's `platformVector`).
    pub fn compatible(&self) -> Vec<Platform> {
        let p = self.normalized();
        let mut out = vec![p.clone()];
        let with = |arch: &str, variant: String| Platform { os: p.os.clone(), architecture: arch.into(), variant };
        match p.architecture.as_str() {
            "amd64" => {
                if let Some(v) = version_number(&p.variant) {
                    for n in (1..v).rev() {
                        out.push(with("amd64", if n == 1 { String::new() } else { format!("v{n}") }));
                    }
                }
                out.push(with("386", String::new()));
            }
            "arm" => {
                if let Some(v) = version_number(&p.variant) {
                    for n in (5..v).rev() {
                        out.push(with("arm", format!("v{n}")));
                    }
                }
            }
            "arm64" => {
                // arm64 v8.x: the minor versions below it; every arm64 also runs 32-bit arm up to v8.
                let variant = if p.variant.is_empty() { "v8".to_string() } else { p.variant.clone() };
                if let Some(rest) = variant.strip_prefix("v8.") {
                    if let Ok(minor) = rest.parse::<u32>() {
                        for m in (0..minor).rev() {
                            out.push(with("arm64", if m == 0 { String::new() } else { format!("v8.{m}") }));
                        }
                    }
                }
                for n in (5..=8).rev() {
                    out.push(with("arm", format!("v{n}")));
                }
            }
            _ => {}
        }
        out
    }

    /// Rank of `candidate` among the platforms this one runs (0 best), None if it cannot run it.
    pub fn rank(&self, candidate: &Platform) -> Option<usize> {
        let c = candidate.normalized();
        self.compatible().iter().position(|p| *p == c)
    }
}

fn version_number(variant: &str) -> Option<u32> {
    variant.strip_prefix('v').unwrap_or(variant).parse().ok()
}

fn arm_variant_from_cpuinfo() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("CPU architecture"))?;
    let v = line.split(':').nth(1)?.trim();
    // 32-bit kernels on ARMv8 cores report "8"; userspace there is v7 at best (containerd does the same).
    let n: u32 = v.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()?;
    Some(format!("v{}", n.min(7)))
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let cases = [
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/x86_64", "linux/amd64"),
            ("amd64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
        ];
        for (input, want) in cases {
            assert_eq!(Platform::parse(input).unwrap().to_string(), want, "{input}");
        }
    }

    #[test]
    fn rank_table() {
        // (node, candidate, expected rank)
        let cases = [
            ("linux/amd64", "linux/amd64", Some(0)),
            ("linux/amd64", "linux/386", Some(1)),
            ("linux/amd64", "linux/arm64", None),
            ("linux/arm/v7", "linux/arm/v7", Some(0)),
            ("linux/arm/v7", "linux/arm/v6", Some(1)),
            ("linux/arm/v7", "linux/arm/v5", Some(2)),
            ("linux/arm/v6", "linux/arm/v7", None),
            ("linux/arm64", "linux/arm64/v8", Some(0)),
            ("linux/arm64", "linux/arm/v7", Some(2)),
            ("linux/arm64", "linux/amd64", None),
            ("linux/arm64", "windows/arm64", None),
            ("linux/arm64/v8.2", "linux/arm64/v8.1", Some(1)),
            ("linux/arm64/v8.2", "linux/arm64", Some(2)),
            ("linux/amd64/v3", "linux/amd64", Some(2)),
        ];
        for (node, cand, want) in cases {
            let n = Platform::parse(node).unwrap();
            let c = Platform::parse(cand).unwrap();
            assert_eq!(n.rank(&c), want, "{node} running {cand}");
        }
    }
}
