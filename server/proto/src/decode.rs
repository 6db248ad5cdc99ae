//! Schema-driven decoding of one protobuf message into a JSON object, including the rules that turn
//! gogo-protobuf's always-written zero values back into "absent".

use serde_json::{Map, Value};

use crate::envelope;
use crate::error::DecodeError;
use crate::schema::{Field, Message, Presence, Shape, Ty};
use crate::well_known::{self, Precision};
use crate::wire::{read_varint, Fields, WireValue};

/// Deep enough for any built-in object; bounds recursion on hostile input.
pub(crate) const MAX_DEPTH: usize = 64;

pub(crate) fn message(msg: &'static Message, bytes: &[u8], depth: usize) -> Result<Map<String, Value>, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep(MAX_DEPTH));
    }
    let mut out = Map::new();
    for item in Fields::new(bytes) {
        let (number, value) = item.map_err(|source| DecodeError::Wire { message: msg.name, source })?;
        let Some(field) = msg.field(number) else {
            // Go writes every non-pointer field, so a newer client may send zero values we do not know.
            if value.is_zero() {
                continue;
            }
            return Err(DecodeError::UnknownField { message: msg.name, number });
        };
        let cx = Cx { msg, field, depth };
        match field.shape {
            Shape::Single => {
                let v = cx.value(field.ty, value)?;
                if !is_absent(&v, field.ty, field.presence) {
                    put(&mut out, field.json, v);
                }
            }
            Shape::Repeated => {
                let items = cx.repeated(value)?;
                if let Value::Array(list) = out.entry(field.json).or_insert_with(|| Value::Array(Vec::new())) {
                    list.extend(items);
                }
            }
            Shape::Map => {
                let (key, v) = cx.map_entry(value)?;
                if let Value::Object(map) = out.entry(field.json).or_insert_with(|| Value::Object(Map::new())) {
                    map.insert(key, v);
                }
            }
            Shape::Inline => {
                if let Value::Object(inner) = cx.value(field.ty, value)? {
                    for (k, v) in inner {
                        put(&mut out, &k, v);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Sets a singular field; a message seen twice is merged, as protobuf does.
fn put(out: &mut Map<String, Value>, key: &str, value: Value) {
    match (out.get_mut(key), value) {
        (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
        (_, value) => {
            out.insert(key.to_owned(), value);
        }
    }
}

/// Whether a decoded singular value stands for "not set" and must not appear in the JSON.
fn is_absent(value: &Value, ty: Ty, presence: Presence) -> bool {
    match (value, presence) {
        (Value::Null, _) => true,
        (_, Presence::Pointer) => false,
        // Go always writes non-pointer structs; empty ones carry nothing.
        (Value::Object(o), _) if matches!(ty, Ty::Msg(_)) => o.is_empty(),
        // Quantity's zero is "0", which Go's JSON writes as well.
        (_, _) if matches!(ty, Ty::Quantity) => false,
        (_, Presence::OmitEmpty) => is_zero(value),
        (_, Presence::Always) => false,
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0) || n.as_u64() == Some(0) || n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// The field being decoded, for values and error messages.
struct Cx {
    msg: &'static Message,
    field: &'static Field,
    depth: usize,
}

impl Cx {
    fn value(&self, ty: Ty, wire: WireValue<'_>) -> Result<Value, DecodeError> {
        match (ty, wire) {
            (Ty::Str, WireValue::Bytes(b)) => well_known::utf8(self.msg.name, self.field.json, b).map(Value::String),
            (Ty::Bytes, WireValue::Bytes(b)) => Ok(Value::String(crate::base64::encode(b))),
            // int32 negatives are sign-extended to 64 bits on the wire; truncating recovers them.
            (Ty::Int32, WireValue::Varint(v)) => Ok(Value::from(v as i32)),
            (Ty::Int64, WireValue::Varint(v)) => Ok(Value::from(v as i64)),
            (Ty::Bool, WireValue::Varint(v)) => Ok(Value::Bool(v != 0)),
            (Ty::Msg(m), WireValue::Bytes(b)) => message(m, b, self.depth + 1).map(Value::Object),
            (Ty::Time, WireValue::Bytes(b)) => well_known::time(b, Precision::Seconds),
            (Ty::MicroTime, WireValue::Bytes(b)) => well_known::time(b, Precision::Micros),
            (Ty::FieldsV1, WireValue::Bytes(b)) => well_known::fields_v1(b),
            (Ty::Quantity, WireValue::Bytes(b)) => well_known::quantity(b),
            (Ty::IntOrString, WireValue::Bytes(b)) => well_known::int_or_string(b),
            (Ty::RawExtension, WireValue::Bytes(b)) => self.raw_extension(b),
            (Ty::StrList, WireValue::Bytes(b)) => self.str_list(b),
            (_, wire) => Err(self.wire_type(wire)),
        }
    }

    /// One wire record of a repeated field: one element, or several if a numeric field is packed.
    fn repeated(&self, wire: WireValue<'_>) -> Result<Vec<Value>, DecodeError> {
        match (self.field.ty, wire) {
            (Ty::Int32 | Ty::Int64 | Ty::Bool, WireValue::Bytes(mut packed)) => {
                let mut out = Vec::new();
                while !packed.is_empty() {
                    let v = read_varint(&mut packed)
                        .map_err(|source| DecodeError::Wire { message: self.msg.name, source })?;
                    out.push(self.value(self.field.ty, WireValue::Varint(v))?);
                }
                Ok(out)
            }
            (ty, wire) => Ok(vec![self.value(ty, wire)?]),
        }
    }

    /// A map entry message: key = 1 (string), value = 2.
    fn map_entry(&self, wire: WireValue<'_>) -> Result<(String, Value), DecodeError> {
        let WireValue::Bytes(entry) = wire else {
            return Err(self.wire_type(wire));
        };
        let (mut key, mut value) = (String::new(), None);
        for item in Fields::new(entry) {
            let (number, v) = item.map_err(|source| DecodeError::Wire { message: self.msg.name, source })?;
            match number {
                1 => match v {
                    WireValue::Bytes(b) => key = well_known::utf8(self.msg.name, self.field.json, b)?,
                    other => return Err(self.wire_type(other)),
                },
                2 => value = Some(self.value(self.field.ty, v)?),
                _ if v.is_zero() => {}
                _ => return Err(DecodeError::UnknownField { message: self.msg.name, number }),
            }
        }
        // An absent value is the value type's zero.
        let value = match value {
            Some(v) => v,
            None => self.value(self.field.ty, zero_wire(self.field.ty))?,
        };
        Ok((key, value))
    }

    /// ExtraValue-style wrappers: `repeated string items = 1` becomes a bare JSON array.
    fn str_list(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let mut items = Vec::new();
        for item in Fields::new(bytes) {
            match item.map_err(|source| DecodeError::Wire { message: self.msg.name, source })? {
                (1, WireValue::Bytes(b)) => {
                    items.push(Value::String(well_known::utf8(self.msg.name, self.field.json, b)?))
                }
                (_, v) if v.is_zero() => {}
                (1, v) => return Err(self.wire_type(v)),
                (number, _) => return Err(DecodeError::UnknownField { message: self.msg.name, number }),
            }
        }
        Ok(Value::Array(items))
    }

    /// runtime.RawExtension (raw = 1): embedded JSON, or an embedded protobuf object with its own envelope.
    fn raw_extension(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let mut raw: &[u8] = &[];
        for item in Fields::new(bytes) {
            match item.map_err(|source| DecodeError::Wire { message: self.msg.name, source })? {
                (1, WireValue::Bytes(b)) => raw = b,
                (_, v) if v.is_zero() => {}
                (1, v) => return Err(self.wire_type(v)),
                (number, _) => return Err(DecodeError::UnknownField { message: self.msg.name, number }),
            }
        }
        if raw.starts_with(envelope::MAGIC) {
            return envelope::decode_body(raw, self.depth + 1);
        }
        well_known::parse_json(self.msg.name, self.field.json, raw)
    }

    fn wire_type(&self, wire: WireValue<'_>) -> DecodeError {
        DecodeError::WireType { message: self.msg.name, field: self.field.json, wire_type: wire.wire_type() }
    }
}

/// The wire form of a type's zero value, for map entries that omit the value.
fn zero_wire(ty: Ty) -> WireValue<'static> {
    match ty {
        Ty::Int32 | Ty::Int64 | Ty::Bool => WireValue::Varint(0),
        _ => WireValue::Bytes(&[]),
    }
}
