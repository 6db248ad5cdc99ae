//! From a pod's container (plus its image config and resolved env) to what the runtime runs: the
//! command line, user, cgroup limits, capabilities — with Kubernetes' rules for each.

use std::collections::BTreeMap;
use std::path::Path;

use edge_images::manifest::ContainerConfig;
use edge_runtime::Resources;
use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// containerd's default capability set, which a container without capability settings gets.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability, for privileged containers.
pub const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ContainerError {
    #[error("no command specified: the image has no entrypoint or cmd and the container no command")]
    NoCommand,
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
}

/// The process args: `command` replaces the entrypoint (and drops the image's cmd), `args` replaces
/// cmd; both expanded against the container's env.
pub fn command_line(
    c: &Container,
    image: &ContainerConfig,
    env: &[(String, String)],
) -> Result<Vec<String>, ContainerError> {
    let expand_all =
        |v: &[String]| v.iter().map(|s| edge_projection::expansion::expand_with_env(s, env)).collect::<Vec<_>>();
    let args = match (&c.command, &c.args) {
        (Some(cmd), args) if !cmd.is_empty() => {
            let mut v = expand_all(cmd);
            v.extend(expand_all(args.as_deref().unwrap_or_default()));
            v
        }
        (_, Some(args)) if !args.is_empty() => {
            let mut v = image.entrypoint.clone().unwrap_or_default();
            v.extend(expand_all(args));
            v
        }
        _ => {
            let mut v = image.entrypoint.clone().unwrap_or_default();
            v.extend(image.cmd.clone().unwrap_or_default());
            v
        }
    };
    if args.is_empty() {
        return Err(ContainerError::NoCommand);
    }
    Ok(args)
}

/// Image env first, the pod's resolved env overriding by name.
pub fn merge_env(image: &ContainerConfig, pod_env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = image
        .env
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    for (k, v) in pod_env {
        match out.iter_mut().find(|(ek, _)| *ek == k) {
            Some(e) => e.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// uid/gid: runAsUser/runAsGroup (container, then pod), else the image's `User` (numeric, or a
/// name looked up in the rootfs' /etc/passwd and /etc/group).
pub fn user(
    sc: Option<&SecurityContext>,
    psc: Option<&PodSecurityContext>,
    image_user: Option<&str>,
    rootfs: &Path,
) -> Result<(u32, u32), ContainerError> {
    let run_as_user = sc.and_then(|s| s.run_as_user).or_else(|| psc.and_then(|p| p.run_as_user));
    let run_as_group = sc.and_then(|s| s.run_as_group).or_else(|| psc.and_then(|p| p.run_as_group));
    let (mut uid, mut gid) = (0u32, 0u32);
    if let Some(spec) = image_user.filter(|u| !u.is_empty()) {
        let (u, g) = spec.split_once(':').map_or((spec, None), |(u, g)| (u, Some(g)));
        match u.parse::<u32>() {
            Ok(n) => {
                uid = n;
                gid = passwd_lookup(rootfs, |_, id| id == n).map_or(0, |(_, g)| g);
            }
            Err(_) => {
                let (n, g) =
                    passwd_lookup(rootfs, |name, _| name == u).ok_or_else(|| ContainerError::UnknownUser(u.into()))?;
                uid = n;
                gid = g;
            }
        }
        if let Some(g) = g {
            gid = g.parse().ok().or_else(|| group_lookup(rootfs, g)).unwrap_or(gid);
        }
    }
    if let Some(u) = run_as_user {
        uid = u as u32;
        if run_as_group.is_none() {
            gid = passwd_lookup(rootfs, |_, id| id == uid).map_or(0, |(_, g)| g);
        }
    }
    if let Some(g) = run_as_group {
        gid = g as u32;
    }
    Ok((uid, gid))
}

fn passwd_lookup(rootfs: &Path, matches: impl Fn(&str, u32) -> bool) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(rootfs.join("etc/passwd")).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let (uid, gid) = (f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
        matches(f.first()?, uid).then_some((uid, gid))
    })
}

fn group_lookup(rootfs: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(rootfs.join("etc/group")).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (*f.first()? == name).then(|| f.get(2)?.parse().ok()).flatten()
    })
}

/// A Quantity as a number (`500m` → 0.5, `128Mi` → 134217728), read with apimachinery's rules
/// (edge-projection's parser: the same one the downward API uses).
pub fn parse_quantity(q: &Quantity) -> Option<f64> {
    edge_projection::quantity::Quantity::parse(&q.0).ok().map(|x| x.milli_value() as f64 / 1000.0)
}

/// cgroup settings from requests/limits, as the kubelet maps them: shares from requests.cpu
/// (1024 per core, at least 2), CFS quota from limits.cpu over a 100 ms period, memory limit.
pub fn resources(c: &Container) -> Resources {
    let get = |m: Option<&BTreeMap<String, Quantity>>, k: &str| m.and_then(|m| m.get(k)).and_then(parse_quantity);
    let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let lim = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    // A limit without a request means request = limit (API defaulting does the same).
    let cpu_req = get(req, "cpu").or_else(|| get(lim, "cpu"));
    let mut r = Resources {
        cpu_shares: Some(cpu_req.map_or(2, |cores| ((cores * 1024.0).round() as u64).max(2))),
        ..Default::default()
    };
    if let Some(cores) = get(lim, "cpu") {
        r.cpu_period_us = Some(100_000);
        r.cpu_quota_us = Some(((cores * 100_000.0).ceil() as i64).max(1000));
    }
    r.memory_limit_bytes = get(lim, "memory").map(|b| b as i64);
    r
}

/// The capability set: privileged → all; else the default set with `drop` (incl. ALL) then `add`.
pub fn capabilities(sc: Option<&SecurityContext>) -> Vec<String> {
    if sc.and_then(|s| s.privileged).unwrap_or(false) {
        return ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    }
    let norm = |s: &String| s.trim_start_matches("CAP_").to_ascii_uppercase();
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let drop: Vec<String> = caps.and_then(|c| c.drop.as_ref()).into_iter().flatten().map(norm).collect();
    let add: Vec<String> = caps.and_then(|c| c.add.as_ref()).into_iter().flatten().map(norm).collect();
    let mut out: Vec<String> = if drop.iter().any(|d| d == "ALL") {
        vec![]
    } else {
        DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).filter(|c| !drop.contains(c)).collect()
    };
    if add.iter().any(|a| a == "ALL") {
        return ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    }
    for a in add {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The pod's QoS class, as upstream computes it from all (init and regular) containers.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else { return "BestEffort" };
    let all: Vec<&Container> = spec.containers.iter().chain(spec.init_containers.iter().flatten()).collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let req = c.resources.as_ref().and_then(|r| r.requests.clone()).unwrap_or_default();
        let lim = c.resources.as_ref().and_then(|r| r.limits.clone()).unwrap_or_default();
        for k in ["cpu", "memory"] {
            let (r, l) = (req.get(k).and_then(parse_quantity), lim.get(k).and_then(parse_quantity));
            if r.is_some_and(|v| v > 0.0) || l.is_some_and(|v| v > 0.0) {
                any = true;
            }
            match (r, l) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if (r - l).abs() > f64::EPSILON => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn command_lines() {
        let image = ContainerConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into()]),
            ..Default::default()
        };
        let env = vec![("PORT".to_string(), "80".to_string())];
        let cases = [
            (json!({"name": "c"}), vec!["/entry", "serve"]),
            (json!({"name": "c", "args": ["run", "$(PORT)"]}), vec!["/entry", "run", "80"]),
            (json!({"name": "c", "command": ["/bin/sh"]}), vec!["/bin/sh"]),
            (
                json!({"name": "c", "command": ["/bin/sh"], "args": ["-c", "echo $(PORT)"]}),
                vec!["/bin/sh", "-c", "echo 80"],
            ),
        ];
        for (c, want) in cases {
            assert_eq!(command_line(&container(c.clone()), &image, &env).unwrap(), want, "{c}");
        }
        assert_eq!(
            command_line(&container(json!({"name": "c"})), &ContainerConfig::default(), &env),
            Err(ContainerError::NoCommand)
        );
    }

    #[test]
    fn users() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/sh\n")
            .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let sc = |v: serde_json::Value| -> SecurityContext { serde_json::from_value(v).unwrap() };
        let r = dir.path();
        assert_eq!(user(None, None, None, r).unwrap(), (0, 0));
        assert_eq!(user(None, None, Some("www"), r).unwrap(), (33, 34));
        assert_eq!(user(None, None, Some("33"), r).unwrap(), (33, 34));
        assert_eq!(user(None, None, Some("www:staff"), r).unwrap(), (33, 50));
        assert_eq!(user(None, None, Some("1000:1000"), r).unwrap(), (1000, 1000));
        assert_eq!(user(Some(&sc(json!({"runAsUser": 33}))), None, Some("root"), r).unwrap(), (33, 34));
        assert_eq!(user(Some(&sc(json!({"runAsUser": 5, "runAsGroup": 6}))), None, None, r).unwrap(), (5, 6));
        let psc: PodSecurityContext = serde_json::from_value(json!({"runAsUser": 7})).unwrap();
        assert_eq!(user(None, Some(&psc), None, r).unwrap(), (7, 0));
        assert_eq!(user(None, None, Some("nobody"), r), Err(ContainerError::UnknownUser("nobody".into())));
    }

    #[test]
    fn resource_mapping() {
        let c = container(
            json!({"name": "c", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}}),
        );
        let r = resources(&c);
        assert_eq!(r.cpu_shares, Some(256));
        assert_eq!(r.cpu_quota_us, Some(50_000));
        assert_eq!(r.cpu_period_us, Some(100_000));
        assert_eq!(r.memory_limit_bytes, Some(64 << 20));
        let none = resources(&container(json!({"name": "c"})));
        assert_eq!((none.cpu_shares, none.cpu_quota_us, none.memory_limit_bytes), (Some(2), None, None));
        let q = |s: &str| parse_quantity(&Quantity(s.into()));
        assert_eq!(q("1"), Some(1.0));
        assert_eq!(q("1G"), Some(1e9));
        assert_eq!(q("1e3"), Some(1000.0));
        assert_eq!(q("1x"), None);
    }

    #[test]
    fn capability_sets() {
        let sc = |v: serde_json::Value| -> SecurityContext { serde_json::from_value(v).unwrap() };
        assert_eq!(capabilities(None).len(), DEFAULT_CAPABILITIES.len());
        let c = capabilities(Some(&sc(json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}))));
        assert_eq!(c, vec!["NET_BIND_SERVICE"]);
        let c = capabilities(Some(&sc(json!({"capabilities": {"drop": ["CAP_NET_RAW"], "add": ["NET_ADMIN"]}}))));
        assert!(!c.contains(&"NET_RAW".to_string()) && c.contains(&"NET_ADMIN".to_string()));
        assert_eq!(capabilities(Some(&sc(json!({"privileged": true})))).len(), ALL_CAPABILITIES.len());
    }

    #[test]
    fn qos() {
        let pod =
            |c: serde_json::Value| -> Pod { serde_json::from_value(json!({"spec": {"containers": [c]}})).unwrap() };
        assert_eq!(qos_class(&pod(json!({"name": "a"}))), "BestEffort");
        assert_eq!(qos_class(&pod(json!({"name": "a", "resources": {"requests": {"cpu": "1"}}}))), "Burstable");
        assert_eq!(
            qos_class(&pod(
                json!({"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}})
            )),
            "Guaranteed"
        );
    }
}
