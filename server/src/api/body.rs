//! Request bodies: read with upstream's 3 MiB limit and decoded from JSON, YAML or Kubernetes protobuf
//! into JSON values.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::status::ApiError;

pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How much of an oversized body is read and thrown away so that the client can finish sending and
/// read the 413, rather than seeing its connection cut mid-request.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

pub async fn read(mut body: Incoming) -> Result<Bytes, ApiError> {
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen <= MAX_BODY {
            buf.extend_from_slice(&data);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::too_large());
    }
    Ok(buf.freeze())
}

/// The media type without parameters, lower-cased.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type.unwrap_or("application/json").split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Decodes an object body (create/update) in any of the accepted media types.
pub fn decode_object(content_type: Option<&str>, bytes: &[u8]) -> Result<Value, ApiError> {
    let mt = media_type(content_type);
    let value = match mt.as_str() {
        "application/json" | "" => decode_json(bytes)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(bytes)?,
        "application/vnd.kubernetes.protobuf" => edge_proto::decode(bytes).map_err(|e| match e {
            edge_proto::DecodeError::UnsupportedType { .. } => ApiError::unsupported_media_type(&format!("{mt}: {e}")),
            other => ApiError::bad_request(format!("decoding protobuf body: {other}")),
        })?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(value)
}

pub fn decode_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))
}

pub fn decode_yaml(bytes: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("the YAML body is not UTF-8"))?;
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))?;
    serde_json::to_value(yaml).map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))
}
