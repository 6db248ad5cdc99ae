//! What the agent asks for ([`ContainerSpec`]) and the OCI runtime spec it becomes: own mount, pid,
//! uts and ipc namespaces, the sandbox's network namespace joined by path, an absolute cgroups path
//! under the caller's parent (named for the node, so agents sharing a machine never collide).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};
use oci_spec::OciSpecError;

use crate::layout::valid_name;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub cpu_shares: Option<u64>,
    /// CFS quota per period, in microseconds (`limits.cpu` × period).
    pub cpu_quota_us: Option<i64>,
    pub cpu_period_us: Option<u64>,
    pub memory_limit_bytes: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    /// DNS label; unique within the sandbox.
    pub name: String,
    /// Absolute path of the prepared root filesystem.
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    /// `NAME=value` pairs; PATH is added when absent.
    pub env: Vec<(String, String)>,
    /// Empty means `/`.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Absolute cgroup path of the pod, e.g. `/edge/<node>/pod<uid>`; the container's cgroup is
    /// `<parent>/<name>`.
    pub cgroup_parent: String,
    pub resources: Resources,
    pub mounts: Vec<BindMount>,
    pub hostname: Option<String>,
    pub readonly_rootfs: bool,
    /// Capability names with or without `CAP_` (Kubernetes writes `NET_ADMIN`); None keeps the
    /// runtime's default set.
    pub capabilities: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("invalid container name {0:?}")]
    Name(String),
    #[error("{what} must be an absolute path, got {path:?}")]
    NotAbsolute { what: &'static str, path: PathBuf },
    #[error("no command: args are empty")]
    NoArgs,
    #[error("unknown capability {0:?}")]
    Capability(String),
    #[error("building the OCI spec")]
    Oci(#[from] OciSpecError),
}

pub(crate) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ContainerSpec {
    pub fn cgroup_path(&self) -> String {
        format!("{}/{}", self.cgroup_parent.trim_end_matches('/'), self.name)
    }

    /// The OCI runtime spec for this container inside a sandbox whose network namespace is `netns`.
    pub fn to_oci(&self, netns: &Path) -> Result<Spec, SpecError> {
        if !valid_name(&self.name) {
            return Err(SpecError::Name(self.name.clone()));
        }
        let absolute = |what, p: &Path| {
            if p.is_absolute() {
                Ok(())
            } else {
                Err(SpecError::NotAbsolute { what, path: p.to_path_buf() })
            }
        };
        absolute("rootfs", &self.rootfs)?;
        absolute("netns", netns)?;
        absolute("cgroup parent", Path::new(&self.cgroup_parent))?;
        if self.args.is_empty() {
            return Err(SpecError::NoArgs);
        }

        let mut env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !self.env.iter().any(|(k, _)| k == "PATH") {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        let mut process = ProcessBuilder::default()
            .terminal(false)
            .args(self.args.clone())
            .env(env)
            .cwd(if self.cwd.is_empty() { "/" } else { &self.cwd })
            .user(UserBuilder::default().uid(self.uid).gid(self.gid).build()?)
            .no_new_privileges(true);
        if let Some(names) = &self.capabilities {
            let caps = parse_capabilities(names)?;
            process = process.capabilities(
                LinuxCapabilitiesBuilder::default()
                    .bounding(caps.clone())
                    .effective(caps.clone())
                    .permitted(caps)
                    .build()?,
            );
        }
        // Keep the default rlimits and the rest of the spec defaults for anything not set here.
        let defaults = Spec::default();
        if let Some(p) = defaults.process() {
            if let Some(r) = p.rlimits() {
                process = process.rlimits(r.clone());
            }
            if self.capabilities.is_none() {
                if let Some(c) = p.capabilities() {
                    process = process.capabilities(c.clone());
                }
            }
        }

        let ns = |typ| LinuxNamespaceBuilder::default().typ(typ).build();
        let namespaces = vec![
            ns(LinuxNamespaceType::Mount)?,
            ns(LinuxNamespaceType::Pid)?,
            ns(LinuxNamespaceType::Uts)?,
            ns(LinuxNamespaceType::Ipc)?,
            LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network).path(netns).build()?,
        ];

        let mut resources = LinuxResourcesBuilder::default().devices(vec![]);
        let r = &self.resources;
        if r.cpu_shares.is_some() || r.cpu_quota_us.is_some() || r.cpu_period_us.is_some() {
            let mut cpu = LinuxCpuBuilder::default();
            if let Some(s) = r.cpu_shares {
                cpu = cpu.shares(s);
            }
            if let Some(q) = r.cpu_quota_us {
                cpu = cpu.quota(q);
            }
            if let Some(p) = r.cpu_period_us {
                cpu = cpu.period(p);
            }
            resources = resources.cpu(cpu.build()?);
        }
        if let Some(limit) = r.memory_limit_bytes {
            resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
        }

        let default_linux = defaults.linux().clone().unwrap_or_default();
        let mut linux = LinuxBuilder::default()
            .namespaces(namespaces)
            .cgroups_path(PathBuf::from(self.cgroup_path()))
            .resources(resources.build()?);
        if let Some(m) = default_linux.masked_paths() {
            linux = linux.masked_paths(m.clone());
        }
        if let Some(r) = default_linux.readonly_paths() {
            linux = linux.readonly_paths(r.clone());
        }

        let mut mounts: Vec<Mount> = defaults.mounts().clone().unwrap_or_default();
        for m in &self.mounts {
            absolute("mount source", &m.source)?;
            absolute("mount destination", &m.destination)?;
            let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
            if m.readonly {
                options.push("ro".into());
            }
            mounts.push(
                MountBuilder::default()
                    .destination(&m.destination)
                    .typ("bind")
                    .source(&m.source)
                    .options(options)
                    .build()?,
            );
        }

        let mut spec = Spec::default();
        spec.set_process(Some(process.build()?))
            .set_root(Some(RootBuilder::default().path(&self.rootfs).readonly(self.readonly_rootfs).build()?))
            .set_hostname(Some(self.hostname.clone().unwrap_or_else(|| self.name.clone())))
            .set_mounts(Some(mounts))
            .set_linux(Some(linux.build()?));
        Ok(spec)
    }
}

fn parse_capabilities(names: &[String]) -> Result<HashSet<Capability>, SpecError> {
    names
        .iter()
        .map(|n| {
            let bare = n.strip_prefix("CAP_").unwrap_or(n);
            Capability::from_str(&bare.to_ascii_uppercase()).map_err(|_| SpecError::Capability(n.clone()))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespace;

    fn base() -> ContainerSpec {
        ContainerSpec {
            name: "app".into(),
            rootfs: "/r/rootfs".into(),
            args: vec!["sh".into(), "-c".into(), "true".into()],
            cgroup_parent: "/edge/node1/podabc".into(),
            ..Default::default()
        }
    }

    #[test]
    fn namespaces_join_sandbox_netns() {
        let spec = base().to_oci(Path::new("/run/netns/pod")).unwrap();
        let ns: &Vec<LinuxNamespace> = spec.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
        let mut got: Vec<(String, Option<PathBuf>)> =
            ns.iter().map(|n| (n.typ().to_string(), n.path().clone())).collect();
        got.sort();
        let mut want = vec![
            ("ipc".to_string(), None),
            ("mnt".to_string(), None),
            ("net".to_string(), Some(PathBuf::from("/run/netns/pod"))),
            ("pid".to_string(), None),
            ("uts".to_string(), None),
        ];
        want.sort();
        assert_eq!(got, want);
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.cgroups_path().as_deref(), Some(Path::new("/edge/node1/podabc/app")));
    }

    #[test]
    fn process_and_root() {
        let mut c = base();
        c.env = vec![("A".into(), "1".into())];
        c.uid = 1000;
        c.gid = 2000;
        c.readonly_rootfs = true;
        c.hostname = Some("web-0".into());
        let spec = c.to_oci(Path::new("/n")).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.env().as_ref().unwrap(), &vec![format!("PATH={DEFAULT_PATH}"), "A=1".to_string()]);
        assert_eq!(p.cwd(), Path::new("/"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 2000));
        assert_eq!(p.args().as_ref().unwrap()[0], "sh");
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        assert_eq!(spec.hostname().as_deref(), Some("web-0"));
        // An explicit PATH is kept as given and not duplicated.
        c.env = vec![("PATH".into(), "/x".into())];
        let spec = c.to_oci(Path::new("/n")).unwrap();
        assert_eq!(spec.process().as_ref().unwrap().env().as_ref().unwrap(), &vec!["PATH=/x".to_string()]);
    }

    #[test]
    fn resources_and_mounts() {
        let mut c = base();
        c.resources = Resources {
            cpu_shares: Some(512),
            cpu_quota_us: Some(50_000),
            cpu_period_us: Some(100_000),
            memory_limit_bytes: Some(20 << 20),
        };
        c.mounts = vec![BindMount { source: "/data".into(), destination: "/mnt/d".into(), readonly: true }];
        let spec = c.to_oci(Path::new("/n")).unwrap();
        let res = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert_eq!(res.memory().as_ref().unwrap().limit(), Some(20 << 20));
        let cpu = res.cpu().as_ref().unwrap();
        assert_eq!((cpu.shares(), cpu.quota(), cpu.period()), (Some(512), Some(50_000), Some(100_000)));
        let m = spec.mounts().as_ref().unwrap().last().unwrap();
        assert_eq!(m.destination(), Path::new("/mnt/d"));
        assert_eq!(m.options().as_ref().unwrap(), &vec!["rbind".to_string(), "rprivate".into(), "ro".into()]);
        assert!(spec.mounts().as_ref().unwrap().iter().any(|m| m.destination() == Path::new("/proc")));
        // Without limits no controller section is written.
        let spec = base().to_oci(Path::new("/n")).unwrap();
        let res = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert!(res.memory().is_none() && res.cpu().is_none());
    }

    #[test]
    fn capabilities() {
        let mut c = base();
        c.capabilities = Some(vec!["NET_ADMIN".into(), "CAP_KILL".into()]);
        let spec = c.to_oci(Path::new("/n")).unwrap();
        let caps = spec.process().as_ref().unwrap().capabilities().as_ref().unwrap();
        let want: HashSet<Capability> = [Capability::NetAdmin, Capability::Kill].into();
        assert_eq!(caps.bounding().as_ref().unwrap(), &want);
        assert_eq!(caps.effective().as_ref().unwrap(), &want);
        c.capabilities = Some(vec!["FLY".into()]);
        assert!(matches!(c.to_oci(Path::new("/n")), Err(SpecError::Capability(n)) if n == "FLY"));
    }

    #[test]
    fn rejects_bad_input() {
        let cases: Vec<(ContainerSpec, &str)> = vec![
            (ContainerSpec { name: "../x".into(), ..base() }, "name"),
            (ContainerSpec { rootfs: "rel".into(), ..base() }, "rootfs"),
            (ContainerSpec { cgroup_parent: "edge".into(), ..base() }, "cgroup parent"),
            (ContainerSpec { args: vec![], ..base() }, "args"),
        ];
        for (c, what) in cases {
            assert!(c.to_oci(Path::new("/n")).is_err(), "{what}");
        }
        assert!(base().to_oci(Path::new("netns")).is_err());
    }
}
