//! The outer framing of a Kubernetes protobuf body: the `k8s\0` prefix and the runtime.Unknown message
//! that carries the object's apiVersion/kind next to its encoded bytes.

use serde_json::{Map, Value};

use crate::error::DecodeError;
use crate::wire::{Fields, WireValue};
use crate::{decode, schema, well_known};

pub(crate) const MAGIC: &[u8] = b"k8s\0";

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const TYPE_META: &str = "k8s.io.apimachinery.pkg.runtime.TypeMeta";

/// The fields of runtime.Unknown.
#[derive(Default)]
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

pub(crate) fn decode_body(body: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let inner = body.strip_prefix(MAGIC).ok_or(DecodeError::BadMagic)?;
    let unknown = parse_unknown(inner)?;
    if !unknown.content_encoding.is_empty() {
        return Err(DecodeError::UnsupportedPayload(format!("content encoding {:?}", unknown.content_encoding)));
    }
    let object = match unknown.content_type.as_str() {
        "" | "application/vnd.kubernetes.protobuf" => {
            let msg = schema::root(&unknown.api_version, &unknown.kind).ok_or_else(|| {
                DecodeError::UnsupportedType { api_version: unknown.api_version.clone(), kind: unknown.kind.clone() }
            })?;
            decode::message(msg, unknown.raw, depth + 1)?
        }
        // Unknown can wrap JSON too; then the object already carries its own fields.
        "application/json" => match well_known::parse_json(UNKNOWN, "raw", unknown.raw)? {
            Value::Object(map) => map,
            _ => return Err(well_known::invalid(UNKNOWN, "raw", "JSON payload is not an object".into())),
        },
        other => return Err(DecodeError::UnsupportedPayload(format!("content type {other:?}"))),
    };
    // apiVersion and kind first, as Go's JSON writes them.
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(unknown.api_version));
    out.insert("kind".into(), Value::String(unknown.kind));
    for (k, v) in object {
        if k != "apiVersion" && k != "kind" {
            out.insert(k, v);
        }
    }
    Ok(Value::Object(out))
}

fn parse_unknown(bytes: &[u8]) -> Result<Unknown<'_>, DecodeError> {
    let mut u = Unknown::default();
    for item in Fields::new(bytes) {
        match item.map_err(|source| DecodeError::Wire { message: UNKNOWN, source })? {
            (1, WireValue::Bytes(b)) => {
                for item in Fields::new(b) {
                    match item.map_err(|source| DecodeError::Wire { message: TYPE_META, source })? {
                        (1, WireValue::Bytes(s)) => u.api_version = well_known::utf8(TYPE_META, "apiVersion", s)?,
                        (2, WireValue::Bytes(s)) => u.kind = well_known::utf8(TYPE_META, "kind", s)?,
                        (number, v) => reject(TYPE_META, &["apiVersion", "kind"], number, v)?,
                    }
                }
            }
            (2, WireValue::Bytes(b)) => u.raw = b,
            (3, WireValue::Bytes(s)) => u.content_encoding = well_known::utf8(UNKNOWN, "contentEncoding", s)?,
            (4, WireValue::Bytes(s)) => u.content_type = well_known::utf8(UNKNOWN, "contentType", s)?,
            (number, v) => reject(UNKNOWN, &["typeMeta", "raw", "contentEncoding", "contentType"], number, v)?,
        }
    }
    Ok(u)
}

/// A record that does not fit: a known field (numbered from 1 in `fields`) with the wrong wire type, or an
/// unknown field; either is tolerated only as a zero value.
fn reject(
    message: &'static str,
    fields: &[&'static str],
    number: u32,
    value: WireValue<'_>,
) -> Result<(), DecodeError> {
    if value.is_zero() {
        return Ok(());
    }
    let index = usize::try_from(number).ok().and_then(|n| n.checked_sub(1));
    match index.and_then(|i| fields.get(i)) {
        Some(field) => Err(DecodeError::WireType { message, field, wire_type: value.wire_type() }),
        None => Err(DecodeError::UnknownField { message, number }),
    }
}
