//! configMap and secret payloads (`MakePayload` of both plugins): every key as a file, or only the
//! listed items at their paths with their modes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Secret};

use super::{mode_bits, File, VolumeError};
use crate::Lookup;

/// A missing optional ConfigMap projects as an empty one, so listed items are skipped, not errors.
pub(super) fn config_map_or_empty(
    lookup: &dyn Lookup,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<ConfigMap, VolumeError> {
    match lookup.config_map(namespace, name) {
        Some(cm) => Ok(cm),
        None if optional => Ok(ConfigMap::default()),
        None => Err(VolumeError::ConfigMapNotFound(name.to_string())),
    }
}

pub(super) fn secret_or_empty(
    lookup: &dyn Lookup,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<Secret, VolumeError> {
    match lookup.secret(namespace, name) {
        Some(secret) => Ok(secret),
        None if optional => Ok(Secret::default()),
        None => Err(VolumeError::SecretNotFound(name.to_string())),
    }
}

/// `data` and `binaryData` (the API server keeps their keys disjoint).
pub(super) fn config_map_payload(
    items: Option<&[KeyToPath]>,
    cm: &ConfigMap,
    default_mode: i32,
    optional: bool,
) -> Result<BTreeMap<String, File>, VolumeError> {
    let get = |key: &str| -> Option<Vec<u8>> {
        cm.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| cm.binary_data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone()))
    };
    let all_keys = || {
        let text = cm.data.iter().flatten().map(|(k, _)| k.as_str());
        text.chain(cm.binary_data.iter().flatten().map(|(k, _)| k.as_str()))
    };
    payload(items, default_mode, optional, get, all_keys, VolumeError::ConfigMapKeyNotFound)
}

/// Secret `data` arrives base64-decoded from k8s-openapi.
pub(super) fn secret_payload(
    items: Option<&[KeyToPath]>,
    secret: &Secret,
    default_mode: i32,
    optional: bool,
) -> Result<BTreeMap<String, File>, VolumeError> {
    let get = |key: &str| secret.data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone());
    let all_keys = || secret.data.iter().flatten().map(|(k, _)| k.as_str());
    payload(items, default_mode, optional, get, all_keys, VolumeError::SecretKeyNotFound)
}

fn payload<'k, G, K, I>(
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
    get: G,
    all_keys: K,
    missing: fn(String) -> VolumeError,
) -> Result<BTreeMap<String, File>, VolumeError>
where
    G: Fn(&str) -> Option<Vec<u8>>,
    K: Fn() -> I,
    I: Iterator<Item = &'k str>,
{
    let mut files = BTreeMap::new();
    match items {
        None | Some([]) => {
            for key in all_keys() {
                if let Some(data) = get(key) {
                    files.insert(key.to_string(), File { data, mode: mode_bits(default_mode) });
                }
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing(item.key.clone()));
                };
                let mode = mode_bits(item.mode.unwrap_or(default_mode));
                files.insert(item.path.clone(), File { data, mode });
            }
        }
    }
    Ok(files)
}
