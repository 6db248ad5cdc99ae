//! Messages whose JSON form is not a plain object: metav1.Time/MicroTime (RFC 3339 strings),
//! resource.Quantity (a string), intstr.IntOrString (a number or a string) and metav1.FieldsV1 (raw JSON).

use serde_json::Value;

use crate::error::DecodeError;
use crate::wire::{Fields, WireValue};

const TIMESTAMP: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Timestamp";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";

/// Which precision a timestamp is written with.
#[derive(Clone, Copy)]
pub(crate) enum Precision {
    /// metav1.Time: whole seconds (its protobuf decoding drops nanoseconds too).
    Seconds,
    /// metav1.MicroTime.
    Micros,
}

/// A Timestamp message (seconds = 1, nanos = 2). Go writes a zero time as an empty message, which is JSON null.
pub(crate) fn time(bytes: &[u8], precision: Precision) -> Result<Value, DecodeError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let (mut seconds, mut nanos) = (0i64, 0i32);
    for item in Fields::new(bytes) {
        match wire_item(TIMESTAMP, item)? {
            (1, WireValue::Varint(v)) => seconds = v as i64,
            // int32 on the wire is sign-extended to 64 bits.
            (2, WireValue::Varint(v)) => nanos = v as i64 as i32,
            (number, value) => unexpected(TIMESTAMP, "seconds/nanos", 2, number, value)?,
        }
    }
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(invalid(TIMESTAMP, "nanos", format!("{nanos} is out of range")));
    }
    format_rfc3339(seconds, nanos, precision).map(Value::String)
}

/// Formats like Go's `Format(time.RFC3339)` / `RFC3339Micro` in UTC.
fn format_rfc3339(seconds: i64, nanos: i32, precision: Precision) -> Result<String, DecodeError> {
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // Go refuses to marshal years it cannot write with four digits.
    if !(0..=9999).contains(&year) {
        return Err(invalid(TIMESTAMP, "seconds", format!("year {year} is outside [0,9999]")));
    }
    let (h, m, s) = (secs_of_day / 3600, secs_of_day % 3600 / 60, secs_of_day % 60);
    Ok(match precision {
        Precision::Seconds => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
        Precision::Micros => {
            format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:06}Z", nanos / 1000)
        }
    })
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A Quantity message (string = 1). Go writes the zero Quantity as "0".
pub(crate) fn quantity(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut text = String::from("0");
    for item in Fields::new(bytes) {
        match wire_item(QUANTITY, item)? {
            (1, WireValue::Bytes(b)) => text = utf8(QUANTITY, "string", b)?,
            (number, value) => unexpected(QUANTITY, "string", 1, number, value)?,
        }
    }
    Ok(Value::String(text))
}

/// An IntOrString message (type = 1: 0 int / 1 string, intVal = 2, strVal = 3).
pub(crate) fn int_or_string(bytes: &[u8]) -> Result<Value, DecodeError> {
    let (mut kind, mut int_val, mut str_val) = (0u64, 0i32, String::new());
    for item in Fields::new(bytes) {
        match wire_item(INT_OR_STRING, item)? {
            (1, WireValue::Varint(v)) => kind = v,
            (2, WireValue::Varint(v)) => int_val = v as i64 as i32,
            (3, WireValue::Bytes(b)) => str_val = utf8(INT_OR_STRING, "strVal", b)?,
            (number, value) => unexpected(INT_OR_STRING, "type/intVal/strVal", 3, number, value)?,
        }
    }
    match kind {
        0 => Ok(Value::from(int_val)),
        1 => Ok(Value::String(str_val)),
        other => Err(invalid(INT_OR_STRING, "type", format!("unknown type {other}"))),
    }
}

/// A FieldsV1 message (Raw = 1) holding a JSON document.
pub(crate) fn fields_v1(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut raw: &[u8] = &[];
    for item in Fields::new(bytes) {
        match wire_item(FIELDS_V1, item)? {
            (1, WireValue::Bytes(b)) => raw = b,
            (number, value) => unexpected(FIELDS_V1, "Raw", 1, number, value)?,
        }
    }
    parse_json(FIELDS_V1, "Raw", raw)
}

/// Parses embedded JSON; empty means absent.
pub(crate) fn parse_json(message: &'static str, field: &'static str, raw: &[u8]) -> Result<Value, DecodeError> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| invalid(message, field, format!("invalid JSON: {e}")))
}

pub(crate) fn utf8(message: &'static str, field: &'static str, bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| invalid(message, field, "invalid UTF-8".into()))
}

pub(crate) fn invalid(message: &'static str, field: &'static str, reason: String) -> DecodeError {
    DecodeError::InvalidValue { message, field, reason }
}

fn wire_item<'a>(
    message: &'static str,
    item: Result<(u32, WireValue<'a>), crate::wire::WireError>,
) -> Result<(u32, WireValue<'a>), DecodeError> {
    item.map_err(|source| DecodeError::Wire { message, source })
}

/// A record these fixed layouts (fields 1..=`last`) do not expect: a known number with the wrong wire type,
/// or an unknown field, tolerated only as a zero value like any unknown field.
fn unexpected(
    message: &'static str,
    field: &'static str,
    last: u32,
    number: u32,
    value: WireValue<'_>,
) -> Result<(), DecodeError> {
    if value.is_zero() {
        return Ok(());
    }
    match number {
        n if n <= last => Err(DecodeError::WireType { message, field, wire_type: value.wire_type() }),
        _ => Err(DecodeError::UnknownField { message, number }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn timestamp(seconds: i64, nanos: i32) -> Vec<u8> {
        let mut out = vec![0x08];
        push_varint(&mut out, seconds as u64);
        out.push(0x10);
        push_varint(&mut out, nanos as i64 as u64);
        out
    }

    fn push_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    #[test]
    fn times_format_like_go() {
        let cases: &[(i64, i32, Precision, Value)] = &[
            (0, 0, Precision::Seconds, json!("1970-01-01T00:00:00Z")),
            (1_704_164_645, 999_999_999, Precision::Seconds, json!("2024-01-02T03:04:05Z")),
            (1_704_164_645, 123_456_789, Precision::Micros, json!("2024-01-02T03:04:05.123456Z")),
            (951_782_400, 0, Precision::Seconds, json!("2000-02-29T00:00:00Z")),
            (-1, 0, Precision::Seconds, json!("1969-12-31T23:59:59Z")),
            (253_402_300_799, 0, Precision::Seconds, json!("9999-12-31T23:59:59Z")),
        ];
        for (seconds, nanos, precision, want) in cases {
            assert_eq!(&time(&timestamp(*seconds, *nanos), *precision).unwrap(), want);
        }
        assert_eq!(time(&[], Precision::Seconds).unwrap(), Value::Null);
        assert!(time(&timestamp(253_402_300_800, 0), Precision::Seconds).is_err());
        assert!(time(&timestamp(0, -1), Precision::Micros).is_err());
    }

    #[test]
    fn int_or_string_forms() {
        let cases: &[(&[u8], Value)] = &[
            (&[0x08, 0x00, 0x10, 0x50, 0x1A, 0x00], json!(80)),
            (&[0x08, 0x01, 0x10, 0x00, 0x1A, 0x04, b'h', b't', b't', b'p'], json!("http")),
            (&[0x08, 0x01, 0x1A, 0x03, b'2', b'5', b'%'], json!("25%")),
            (&[], json!(0)),
        ];
        for (input, want) in cases {
            assert_eq!(&int_or_string(input).unwrap(), want);
        }
        assert!(int_or_string(&[0x08, 0x02]).is_err());
    }

    #[test]
    fn quantity_and_fields_v1() {
        assert_eq!(quantity(&[0x0A, 0x04, b'1', b'0', b'0', b'm']).unwrap(), json!("100m"));
        assert_eq!(quantity(&[]).unwrap(), json!("0"));
        assert_eq!(fields_v1(b"\x0A\x0A{\"f:a\":{}}").unwrap(), json!({"f:a": {}}));
        assert!(fields_v1(b"\x0A\x01{").is_err());
        assert!(matches!(quantity(&[0x10, 0x01]), Err(DecodeError::UnknownField { number: 2, .. })));
    }
}
