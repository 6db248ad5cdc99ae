//! Downward API values: pod fields (`fieldRef`) and container resources (`resourceFieldRef`), as
//! upstream's kubelet (podFieldSelectorRuntimeValue), pkg/fieldpath and pkg/api/v1/resource read them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use thiserror::Error;

use crate::quantity::{Quantity, QuantityError};
use crate::validation::qualified_name_errors;
use crate::PodContext;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldPathError {
    #[error("unsupported pod version: {0}")]
    UnsupportedVersion(String),
    #[error("field label does not support subscript: {0}")]
    LabelSubscriptNotSupported(String),
    #[error("field label not supported: {0}")]
    LabelNotSupported(String),
    #[error("fieldPath {} does not support subscript", go_quote(.0))]
    SubscriptNotSupported(String),
    #[error("invalid key subscript in {path}: {reasons}")]
    InvalidSubscript { path: String, reasons: String },
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    #[error("host IP unknown")]
    HostIpUnknown,
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("invalid divisor {0:?}: must be positive")]
    InvalidDivisor(String),
    #[error(transparent)]
    Quantity(#[from] QuantityError),
}

/// The value of an env `fieldRef` with apiVersion v1: the kubelet's own fields (node name, service
/// account, host and pod IPs) and then the pod's metadata.
pub fn pod_field(ctx: &PodContext, path: &str) -> Result<String, FieldPathError> {
    let internal = convert_field_label(path)?;
    let pod = ctx.pod;
    let spec = pod.spec.as_ref();
    match internal {
        "spec.nodeName" => Ok(spec.and_then(|s| s.node_name.clone()).unwrap_or_default()),
        "spec.serviceAccountName" => Ok(spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default()),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.clone().ok_or(FieldPathError::HostIpUnknown),
        "status.podIP" => Ok(ctx.pod_ips.first().cloned().unwrap_or_default()),
        "status.podIPs" => Ok(ctx.pod_ips.join(",")),
        other => metadata_field(pod, other),
    }
}

/// `fieldRef` as an env var carries it: the apiVersion is checked before the path.
pub(crate) fn pod_field_selector(
    ctx: &PodContext,
    selector: &k8s_openapi::api::core::v1::ObjectFieldSelector,
) -> Result<String, FieldPathError> {
    // The API server defaults an absent apiVersion to v1.
    match selector.api_version.as_deref() {
        None | Some("v1") => pod_field(ctx, &selector.field_path),
        Some(other) => Err(FieldPathError::UnsupportedVersion(other.to_string())),
    }
}

/// `ConvertDownwardAPIFieldLabel`: which labels exist at all; `spec.host` is the old `spec.nodeName`.
fn convert_field_label(label: &str) -> Result<&str, FieldPathError> {
    if let Some((path, _)) = split_subscript(label) {
        return match path {
            "metadata.annotations" | "metadata.labels" => Ok(label),
            _ => Err(FieldPathError::LabelSubscriptNotSupported(label.to_string())),
        };
    }
    match label {
        "metadata.annotations"
        | "metadata.labels"
        | "metadata.name"
        | "metadata.namespace"
        | "metadata.uid"
        | "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.serviceAccountName"
        | "spec.schedulerName"
        | "status.phase"
        | "status.hostIP"
        | "status.hostIPs"
        | "status.podIP"
        | "status.podIPs" => Ok(label),
        "spec.host" => Ok("spec.nodeName"),
        _ => Err(FieldPathError::LabelNotSupported(label.to_string())),
    }
}

/// `fieldpath.ExtractFieldPathAsString`: what a downwardAPI volume item can show.
pub(crate) fn metadata_field(pod: &Pod, path: &str) -> Result<String, FieldPathError> {
    let meta = &pod.metadata;
    if let Some((base, key)) = split_subscript(path) {
        let (map, checked_key) = match base {
            // Annotation keys may carry upper case in their prefix, so upstream validates them lowered.
            "metadata.annotations" => (&meta.annotations, key.to_lowercase()),
            "metadata.labels" => (&meta.labels, key.to_string()),
            _ => return Err(FieldPathError::SubscriptNotSupported(path.to_string())),
        };
        let reasons = qualified_name_errors(&checked_key);
        if !reasons.is_empty() {
            return Err(FieldPathError::InvalidSubscript { path: path.to_string(), reasons: reasons.join(";") });
        }
        return Ok(map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    match path {
        "metadata.annotations" => Ok(format_map(meta.annotations.as_ref())),
        "metadata.labels" => Ok(format_map(meta.labels.as_ref())),
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        _ => Err(FieldPathError::UnsupportedFieldPath(path.to_string())),
    }
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (base, key) = inner.split_once("['")?;
    (!base.is_empty()).then_some((base, key))
}

/// `fieldpath.FormatMap`: `key="value"` lines sorted by key, values quoted as Go's `%q` does, no
/// trailing newline.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.map(|m| m.iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// Go's `strconv.Quote`. Printability follows Rust's character classes, which agree with Go's
/// `unicode.IsPrint` for everything but unassigned and private-use code points.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    // Control (Cc), separators other than the ASCII space (Z*), and the common format characters (Cf).
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{600}'..='\u{605}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}')
        || matches!(c, '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'))
}

/// The value of a `resourceFieldRef` on `container`, with the container's unset (or zero) cpu, memory
/// and ephemeral-storage limits defaulted to the node's allocatable, divided by `divisor` (default 1)
/// and rounded up.
pub fn resource_field(
    ctx: &PodContext,
    container: &Container,
    resource: &str,
    divisor: Option<&ApiQuantity>,
) -> Result<String, FieldPathError> {
    let divisor_text = divisor.map(|d| d.0.as_str()).unwrap_or("1");
    let divisor = Quantity::parse(divisor_text)?;
    // An unset divisor reaches the kubelet as the zero quantity, which means 1.
    let divisor = if divisor.is_zero() { Quantity::parse("1")? } else { divisor };
    let resources = container.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let get = |list: Option<&BTreeMap<String, ApiQuantity>>, name: &str| -> Result<Option<Quantity>, FieldPathError> {
        Ok(list.and_then(|l| l.get(name)).map(|q| Quantity::parse(&q.0)).transpose()?)
    };
    let limit_or_allocatable = |name: &str, allocatable: Quantity| -> Result<Quantity, FieldPathError> {
        Ok(get(limits, name)?.filter(|q| !q.is_zero()).unwrap_or(allocatable))
    };
    let zero = Quantity::parse("0")?;

    let (kind, quantity) = match resource {
        "limits.cpu" => (Kind::Cpu, limit_or_allocatable("cpu", millis(ctx.node_allocatable_cpu_millis)?)?),
        "limits.memory" => (Kind::Bytes, limit_or_allocatable("memory", units(ctx.node_allocatable_memory)?)?),
        "limits.ephemeral-storage" => {
            (Kind::Bytes, limit_or_allocatable("ephemeral-storage", units(ctx.node_allocatable_ephemeral_storage)?)?)
        }
        "requests.cpu" => (Kind::Cpu, get(requests, "cpu")?.unwrap_or(zero)),
        "requests.memory" => (Kind::Bytes, get(requests, "memory")?.unwrap_or(zero)),
        "requests.ephemeral-storage" => (Kind::Bytes, get(requests, "ephemeral-storage")?.unwrap_or(zero)),
        // Huge pages are never overcommitted, so they are never defaulted from the node.
        other => match other.split_once('.') {
            Some(("requests", name)) if name.starts_with("hugepages-") => {
                (Kind::Bytes, get(requests, name)?.unwrap_or(zero))
            }
            Some(("limits", name)) if name.starts_with("hugepages-") => {
                (Kind::Bytes, get(limits, name)?.unwrap_or(zero))
            }
            _ => return Err(FieldPathError::UnsupportedResource(resource.to_string())),
        },
    };
    let (numerator, denominator) = match kind {
        Kind::Cpu => (quantity.milli_value(), divisor.milli_value()),
        Kind::Bytes => (quantity.value(), divisor.value()),
    };
    if denominator <= 0 {
        return Err(FieldPathError::InvalidDivisor(divisor_text.to_string()));
    }
    // Upstream divides in float64 and takes the ceiling; done the same way so large values round alike.
    Ok(((numerator as f64 / denominator as f64).ceil() as i64).to_string())
}

enum Kind {
    Cpu,
    Bytes,
}

fn millis(value: i64) -> Result<Quantity, QuantityError> {
    Quantity::parse(&format!("{value}m"))
}

fn units(value: i64) -> Result<Quantity, QuantityError> {
    Quantity::parse(&value.to_string())
}

/// A `resourceFieldRef.containerName`: regular containers first, then init containers.
pub fn container_by_name<'p>(pod: &'p Pod, name: &str) -> Result<&'p Container, FieldPathError> {
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.iter()).into_iter().flatten();
    let init = spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten();
    containers.chain(init).find(|c| c.name == name).ok_or_else(|| FieldPathError::ContainerNotFound(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        let cases = [
            ("plain", "\"plain\""),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("line\nbreak\ttab", "\"line\\nbreak\\ttab\""),
            ("\u{1}\u{7f}", "\"\\x01\\x7f\""),
            ("é日本", "\"é日本\""),
            ("\u{200b}\u{2028}", "\"\\u200b\\u2028\""),
            ("\u{a0}", "\"\\u00a0\""),
        ];
        for (input, expected) in cases {
            assert_eq!(go_quote(input), expected, "{input:?}");
        }
    }

    #[test]
    fn format_map_sorts_and_quotes() {
        let map = BTreeMap::from([
            ("b".to_string(), "x\"y".to_string()),
            ("a".to_string(), "line\nbreak".to_string()),
            ("c".to_string(), String::new()),
        ]);
        assert_eq!(format_map(Some(&map)), "a=\"line\\nbreak\"\nb=\"x\\\"y\"\nc=\"\"");
        assert_eq!(format_map(None), "");
    }

    #[test]
    fn split_subscript_cases() {
        assert_eq!(split_subscript("metadata.annotations['myKey']"), Some(("metadata.annotations", "myKey")));
        assert_eq!(split_subscript("metadata.annotations['a[b]c']"), Some(("metadata.annotations", "a[b]c")));
        assert_eq!(split_subscript("metadata.labels['']"), Some(("metadata.labels", "")));
        assert_eq!(split_subscript("metadata.labels"), None);
        assert_eq!(split_subscript("['x']"), None);
    }
}
