//! The one error type of the crate.

use crate::wire::WireError;

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body does not start with `k8s\0`.
    #[error("not a Kubernetes protobuf body: missing the k8s\\0 prefix")]
    BadMagic,
    /// No schema for this apiVersion/kind: the server should answer 415 Unsupported Media Type.
    #[error("protobuf is not supported for apiVersion {api_version:?} kind {kind:?}")]
    UnsupportedType { api_version: String, kind: String },
    /// runtime.Unknown says the payload is compressed or in a format other than protobuf/JSON.
    #[error("unsupported payload: {0}")]
    UnsupportedPayload(String),
    #[error("malformed protobuf in {message}: {source}")]
    Wire {
        message: &'static str,
        #[source]
        source: WireError,
    },
    /// A field this schema does not know carries a value; dropping it would lose data.
    #[error("{message}: unknown field number {number} carries a non-zero value")]
    UnknownField { message: &'static str, number: u32 },
    #[error("{message}.{field}: wire type {wire_type} does not fit the field's type")]
    WireType { message: &'static str, field: &'static str, wire_type: u8 },
    #[error("{message}.{field}: {reason}")]
    InvalidValue { message: &'static str, field: &'static str, reason: String },
    #[error("objects nested deeper than {0} levels")]
    TooDeep(usize),
}
