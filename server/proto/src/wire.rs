//! The protobuf wire format, read-only: splits a message into (field number, value) records.

/// Why bytes are not a well-formed protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated input")]
    Truncated,
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    #[error("unsupported wire type {0}")]
    BadWireType(u8),
    #[error("field number 0 or out of range")]
    BadFieldNumber,
}

/// One field record as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    /// Whether this is the encoding of a zero value (0, "", empty bytes or an empty message).
    pub(crate) fn is_zero(&self) -> bool {
        match self {
            Self::Varint(v) | Self::Fixed64(v) => *v == 0,
            Self::Fixed32(v) => *v == 0,
            Self::Bytes(b) => b.is_empty(),
        }
    }

    /// The wire type number, for error messages.
    pub(crate) fn wire_type(&self) -> u8 {
        match self {
            Self::Varint(_) => 0,
            Self::Fixed64(_) => 1,
            Self::Bytes(_) => 2,
            Self::Fixed32(_) => 5,
        }
    }
}

/// Iterates over the fields of one message; stops at the first malformed record.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, failed: false }
    }

    fn next_field(&mut self) -> Result<(u32, WireValue<'a>), WireError> {
        let key = read_varint(&mut self.buf)?;
        let number = u32::try_from(key >> 3).map_err(|_| WireError::BadFieldNumber)?;
        // Field numbers are at most 2^29 - 1.
        if number == 0 || number > 0x1FFF_FFFF {
            return Err(WireError::BadFieldNumber);
        }
        let value = match (key & 7) as u8 {
            0 => WireValue::Varint(read_varint(&mut self.buf)?),
            1 => WireValue::Fixed64(u64::from_le_bytes(take_array(&mut self.buf)?)),
            2 => {
                let len = usize::try_from(read_varint(&mut self.buf)?).map_err(|_| WireError::Truncated)?;
                WireValue::Bytes(take(&mut self.buf, len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(take_array(&mut self.buf)?)),
            other => return Err(WireError::BadWireType(other)),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, WireValue<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        let item = self.next_field();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Reads one base-128 varint and advances `buf` past it.
pub(crate) fn read_varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first().ok_or(WireError::Truncated)?;
        *buf = rest;
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::VarintTooLong)
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], WireError> {
    if buf.len() < len {
        return Err(WireError::Truncated);
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

fn take_array<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], WireError> {
    let bytes = take(buf, N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    type Parsed<'a> = Result<Vec<(u32, WireValue<'a>)>, WireError>;

    fn all(buf: &[u8]) -> Parsed<'_> {
        Fields::new(buf).collect()
    }

    #[test]
    fn reads_each_wire_type() {
        let cases: &[(&[u8], Parsed<'_>)] = &[
            (&[], Ok(vec![])),
            (&[0x08, 0x96, 0x01], Ok(vec![(1, WireValue::Varint(150))])),
            (&[0x12, 0x02, b'h', b'i'], Ok(vec![(2, WireValue::Bytes(b"hi"))])),
            (&[0x1D, 1, 0, 0, 0], Ok(vec![(3, WireValue::Fixed32(1))])),
            (&[0x21, 2, 0, 0, 0, 0, 0, 0, 0], Ok(vec![(4, WireValue::Fixed64(2))])),
            // Field 16 needs a two-byte key.
            (&[0x80, 0x01, 0x00], Ok(vec![(16, WireValue::Varint(0))])),
            // Negative int32 is sign-extended to ten bytes.
            (
                &[0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
                Ok(vec![(1, WireValue::Varint(u64::MAX))]),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&all(input), want, "input {input:?}");
        }
    }

    #[test]
    fn rejects_malformed_input() {
        let cases: &[(&[u8], WireError)] = &[
            (&[0x08], WireError::Truncated),
            (&[0x08, 0x80], WireError::Truncated),
            (&[0x12, 0x05, b'a'], WireError::Truncated),
            (&[0x1D, 1, 0], WireError::Truncated),
            (&[0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], WireError::VarintTooLong),
            (&[0x0B], WireError::BadWireType(3)),
            (&[0x00, 0x00], WireError::BadFieldNumber),
        ];
        for (input, want) in cases {
            assert_eq!(all(input), Err(want.clone()), "input {input:?}");
        }
    }

    #[test]
    fn zero_values() {
        assert!(WireValue::Varint(0).is_zero());
        assert!(WireValue::Bytes(&[]).is_zero());
        assert!(!WireValue::Varint(1).is_zero());
        assert!(!WireValue::Bytes(&[0]).is_zero());
    }
}
