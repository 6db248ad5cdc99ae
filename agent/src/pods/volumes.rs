//! A pod's volumes on the node: emptyDir (a directory, or tmpfs for medium Memory), hostPath, and
//! configMap / secret / downwardAPI / projected volumes written by kubelet's atomic `..data` swap so
//! that updates reach running containers. Also fetches the ConfigMaps and Secrets the pod refers
//! to (for volumes and env) in one place, so projection itself stays pure (edge-projection).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use edge_projection::atomic_writer::AtomicWriter;
use edge_projection::{Lookup, PodContext};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Volume};
use kube::api::Api;
use nix::mount::{mount, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("volume {0}: mounting tmpfs: {1}")]
    Tmpfs(String, nix::Error),
    #[error("volume {0}: {1}")]
    Projection(String, String),
    #[error("volume {0}: hostPath type check failed: {1}")]
    HostPathType(String, String),
    #[error("volume {0}: unsupported volume source (edge supports emptyDir, hostPath, configMap, secret, downwardAPI, projected)")]
    Unsupported(String),
    #[error("fetching {0}: {1}")]
    Api(String, String),
}

/// The ConfigMaps and Secrets a pod refers to, fetched before projection.
#[derive(Default)]
pub struct Fetched {
    config_maps: HashMap<String, ConfigMap>,
    secrets: HashMap<String, Secret>,
}

impl Lookup for Fetched {
    fn config_map(&self, _namespace: &str, name: &str) -> Option<ConfigMap> {
        self.config_maps.get(name).cloned()
    }
    fn secret(&self, _namespace: &str, name: &str) -> Option<Secret> {
        self.secrets.get(name).cloned()
    }
}

/// Names of the ConfigMaps and Secrets referenced by env, envFrom, volumes and imagePullSecrets.
pub fn references(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let v = serde_json::to_value(pod.spec.as_ref()).unwrap_or_default();
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    walk(&v, &mut cms, &mut secrets);
    for s in pod.spec.as_ref().and_then(|s| s.image_pull_secrets.as_ref()).into_iter().flatten() {
        secrets.push(s.name.clone());
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// Every `configMapKeyRef`/`configMapRef`/`configMap` and secret counterpart carries a `name`
/// (volumes use `secretName`), whichever field of the spec holds it.
fn walk(v: &serde_json::Value, cms: &mut Vec<String>, secrets: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m {
                match k.as_str() {
                    "configMapKeyRef" | "configMapRef" | "configMap" => {
                        cms.extend(val["name"].as_str().map(str::to_string));
                    }
                    "secretKeyRef" | "secretRef" => secrets.extend(val["name"].as_str().map(str::to_string)),
                    "secret" => secrets.extend(val["secretName"].as_str().or(val["name"].as_str()).map(str::to_string)),
                    _ => {}
                }
                walk(val, cms, secrets);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, cms, secrets)),
        _ => {}
    }
}

pub async fn fetch(client: &kube::Client, pod: &Pod) -> Result<Fetched, VolumeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (cms, secrets) = references(pod);
    let mut out = Fetched::default();
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for name in cms {
        match cm_api.get_opt(&name).await {
            Ok(Some(cm)) => {
                out.config_maps.insert(name, cm);
            }
            Ok(None) => {}
            Err(e) => return Err(VolumeError::Api(format!("configmap {name}"), e.to_string())),
        }
    }
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), ns);
    for name in secrets {
        match secret_api.get_opt(&name).await {
            Ok(Some(s)) => {
                out.secrets.insert(name, s);
            }
            Ok(None) => {}
            Err(e) => return Err(VolumeError::Api(format!("secret {name}"), e.to_string())),
        }
    }
    Ok(out)
}

impl Fetched {
    pub fn secret_by_name(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }
}

pub fn volume_dir(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(name)
}

/// Prepares every volume of the pod (idempotent; projected volumes are rewritten only when their
/// content changed) and returns volume name → host path.
pub fn prepare(
    pod_dir: &Path,
    ctx: &PodContext,
    lookup: &dyn Lookup,
) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let mut out = BTreeMap::new();
    let volumes: &[Volume] = ctx.pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    for v in volumes {
        let name = v.name.clone();
        let io = |e| VolumeError::Io(name.clone(), e);
        let dir = volume_dir(pod_dir, &name);
        let path = if let Some(ed) = &v.empty_dir {
            std::fs::create_dir_all(&dir).map_err(io)?;
            if ed.medium.as_deref() == Some("Memory") && !super::rootfs::is_mountpoint(&dir) {
                let size = ed
                    .size_limit
                    .as_ref()
                    .and_then(super::container::parse_quantity)
                    .map(|b| format!(",size={}", b as u64));
                let opts = format!("mode=0777{}", size.unwrap_or_default());
                mount(Some("tmpfs"), &dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(opts.as_str()))
                    .map_err(|e| VolumeError::Tmpfs(name.clone(), e))?;
            }
            dir
        } else if let Some(hp) = &v.host_path {
            let p = PathBuf::from(&hp.path);
            check_host_path(&name, &p, hp.type_.as_deref().unwrap_or(""))?;
            p
        } else if v.config_map.is_some() || v.secret.is_some() || v.downward_api.is_some() || v.projected.is_some() {
            let files = edge_projection::volumes::project(ctx, v, lookup)
                .map_err(|e| VolumeError::Projection(name.clone(), e.to_string()))?;
            std::fs::create_dir_all(&dir).map_err(io)?;
            AtomicWriter::new(dir.clone())
                .write(&files)
                .map_err(|e| VolumeError::Projection(name.clone(), e.to_string()))?;
            dir
        } else {
            return Err(VolumeError::Unsupported(name));
        };
        out.insert(name, path);
    }
    Ok(out)
}

/// hostPath `type` checks and creation, as upstream.
fn check_host_path(name: &str, p: &Path, typ: &str) -> Result<(), VolumeError> {
    let err = |m: String| VolumeError::HostPathType(name.to_string(), m);
    let meta = std::fs::metadata(p);
    match typ {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            std::fs::create_dir_all(p).map_err(|e| VolumeError::Io(name.to_string(), e))?;
            Ok(())
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| VolumeError::Io(name.to_string(), e))?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| VolumeError::Io(name.to_string(), e))?;
            }
            Ok(())
        }
        "Directory" if meta.as_ref().is_ok_and(|m| m.is_dir()) => Ok(()),
        "File" if meta.as_ref().is_ok_and(|m| m.is_file()) => Ok(()),
        "Directory" => Err(err(format!("hostPath type check failed: {} is not a directory", p.display()))),
        "File" => Err(err(format!("hostPath type check failed: {} is not a file", p.display()))),
        "Socket" | "CharDevice" | "BlockDevice" => {
            if meta.is_ok() {
                Ok(())
            } else {
                Err(err(format!("{} does not exist", p.display())))
            }
        }
        other => Err(err(format!("unknown hostPath type {other:?}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn referenced_objects() {
        let pod: Pod = serde_json::from_value(json!({"spec": {
            "imagePullSecrets": [{"name": "regcred"}],
            "containers": [{"name": "c",
                "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "k"}}},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "cm2"}}, {"secretRef": {"name": "s2"}}]}],
            "volumes": [{"name": "v1", "configMap": {"name": "cm3"}}, {"name": "v2", "secret": {"secretName": "s3"}},
                        {"name": "v3", "projected": {"sources": [{"configMap": {"name": "cm4"}}, {"secret": {"name": "s4"}}]}}]
        }}))
        .unwrap();
        let (cms, secrets) = references(&pod);
        assert_eq!(cms, vec!["cm1", "cm2", "cm3", "cm4"]);
        assert_eq!(secrets, vec!["regcred", "s1", "s2", "s3", "s4"]);
    }

    #[test]
    fn host_path_types() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("made/here");
        check_host_path("v", &d, "DirectoryOrCreate").unwrap();
        assert!(d.is_dir());
        check_host_path("v", &d, "Directory").unwrap();
        assert!(check_host_path("v", &d, "File").is_err());
        let f = dir.path().join("f/file");
        check_host_path("v", &f, "FileOrCreate").unwrap();
        check_host_path("v", &f, "File").unwrap();
        assert!(check_host_path("v", &dir.path().join("nope"), "Directory").is_err());
    }
}
