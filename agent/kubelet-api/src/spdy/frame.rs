//! SPDY/3.1 frames: their in-memory form and the byte codec, including the per-connection zlib contexts that
//! header blocks are (de)compressed with.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::HEADER_DICTIONARY;

/// The protocol version carried in every control frame.
pub const VERSION: u16 = 3;
/// FLAG_FIN on DATA and on SYN_STREAM/SYN_REPLY/HEADERS.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_INVALID_STREAM: u32 = 2;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

const FRAME_HEADER_LEN: usize = 8;
/// The length field is 24 bits wide.
pub const MAX_FRAME_PAYLOAD: usize = (1 << 24) - 1;
/// A decompressed header block larger than this is refused: the peer is either broken or hostile.
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// Header name/value pairs as they are on the wire: lower-case names, several values joined by NUL.
pub type Headers = Vec<(String, String)>;

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream { stream_id: u32, associated_to: u32, priority: u8, slot: u8, flags: u8, headers: Headers },
    SynReply { stream_id: u32, flags: u8, headers: Headers },
    RstStream { stream_id: u32, status: u32 },
    Settings { flags: u8, entries: Vec<Setting> },
    Ping { id: u32 },
    GoAway { last_good_stream_id: u32, status: u32 },
    Headers { stream_id: u32, flags: u8, headers: Headers },
    WindowUpdate { stream_id: u32, delta: u32 },
    Data { stream_id: u32, flags: u8, data: Bytes },
}

impl Frame {
    /// The value of header `name` (names compare case-insensitively; SPDY requires lower case anyway).
    pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("frame payload of {0} bytes is too large")]
    TooLarge(usize),
    #[error("header block: {0}")]
    HeaderBlock(String),
    #[error("header compression: {0}")]
    Compression(String),
}

/// Encodes the frames one side of a connection sends. Its zlib context spans the whole connection, so one encoder
/// must write every frame of its direction, in order.
pub struct Encoder {
    compress: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        let mut compress = Compress::new(Compression::best(), true);
        // Before any input, setting the dictionary only records it (and its DICTID in the zlib header); it can only
        // fail on a stream that already produced output.
        if let Err(e) = compress.set_dictionary(HEADER_DICTIONARY) {
            tracing::error!(error = %e, "setting the SPDY header dictionary failed");
        }
        Self { compress }
    }

    /// Appends the wire form of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        let mut payload = BytesMut::new();
        let (kind, flags) = match frame {
            Frame::Data { stream_id, flags, data } => {
                if data.len() > MAX_FRAME_PAYLOAD {
                    return Err(FrameError::TooLarge(data.len()));
                }
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                out.extend_from_slice(data);
                return Ok(());
            }
            Frame::SynStream { stream_id, associated_to, priority, slot, flags, headers } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(associated_to & 0x7fff_ffff);
                payload.put_u8((priority & 0x07) << 5);
                payload.put_u8(*slot);
                self.compress_headers(headers, &mut payload)?;
                (TYPE_SYN_STREAM, *flags)
            }
            Frame::SynReply { stream_id, flags, headers } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                self.compress_headers(headers, &mut payload)?;
                (TYPE_SYN_REPLY, *flags)
            }
            Frame::RstStream { stream_id, status } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(*status);
                (TYPE_RST_STREAM, 0)
            }
            Frame::Settings { flags, entries } => {
                payload.put_u32(entries.len() as u32);
                for e in entries {
                    payload.put_u32((u32::from(e.flags) << 24) | (e.id & 0x00ff_ffff));
                    payload.put_u32(e.value);
                }
                (TYPE_SETTINGS, *flags)
            }
            Frame::Ping { id } => {
                payload.put_u32(*id);
                (TYPE_PING, 0)
            }
            Frame::GoAway { last_good_stream_id, status } => {
                payload.put_u32(last_good_stream_id & 0x7fff_ffff);
                payload.put_u32(*status);
                (TYPE_GOAWAY, 0)
            }
            Frame::Headers { stream_id, flags, headers } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                self.compress_headers(headers, &mut payload)?;
                (TYPE_HEADERS, *flags)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(delta & 0x7fff_ffff);
                (TYPE_WINDOW_UPDATE, 0)
            }
        };
        if payload.len() > MAX_FRAME_PAYLOAD {
            return Err(FrameError::TooLarge(payload.len()));
        }
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        out.put_u32((u32::from(flags) << 24) | payload.len() as u32);
        out.extend_from_slice(&payload);
        Ok(())
    }

    fn compress_headers(&mut self, headers: &Headers, out: &mut BytesMut) -> Result<(), FrameError> {
        let mut raw = BytesMut::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            raw.put_u32(name.len() as u32);
            raw.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            raw.put_u32(value.len() as u32);
            raw.extend_from_slice(value.as_bytes());
        }
        // A sync flush ends every block on a byte boundary while keeping the window for the next block.
        let mut input: &[u8] = &raw;
        let mut compressed = Vec::with_capacity(raw.len() + 64);
        loop {
            if compressed.capacity() - compressed.len() < 64 {
                compressed.reserve(256);
            }
            let before = self.compress.total_in();
            self.compress
                .compress_vec(input, &mut compressed, FlushCompress::Sync)
                .map_err(|e| FrameError::Compression(e.to_string()))?;
            let used = (self.compress.total_in() - before) as usize;
            input = &input[used..];
            // zlib finished the flush when it left output space unused.
            if input.is_empty() && compressed.len() < compressed.capacity() {
                break;
            }
        }
        out.extend_from_slice(&compressed);
        Ok(())
    }
}

/// Decodes the frames of one direction of a connection; like [`Encoder`], it must see all of them, in order.
pub struct Decoder {
    decompress: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self { decompress: Decompress::new(true) }
    }

    /// Takes one whole frame off the front of `buf`, or returns `None` (leaving `buf` alone) until enough bytes
    /// arrived. Control frames of unknown types are skipped, as SPDY requires.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            if buf.len() < FRAME_HEADER_LEN {
                return Ok(None);
            }
            let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let flags = buf[4];
            let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
            if buf.len() < FRAME_HEADER_LEN + len {
                buf.reserve(FRAME_HEADER_LEN + len - buf.len());
                return Ok(None);
            }
            buf.advance(FRAME_HEADER_LEN);
            let mut p = buf.split_to(len).freeze();
            if word & 0x8000_0000 == 0 {
                return Ok(Some(Frame::Data { stream_id: word & 0x7fff_ffff, flags, data: p }));
            }
            let version = ((word >> 16) & 0x7fff) as u16;
            if version != VERSION {
                return Err(FrameError::Version(version));
            }
            let frame = match (word & 0xffff) as u16 {
                TYPE_SYN_STREAM => {
                    need(&p, 10, "SYN_STREAM")?;
                    let stream_id = p.get_u32() & 0x7fff_ffff;
                    let associated_to = p.get_u32() & 0x7fff_ffff;
                    let priority = p.get_u8() >> 5;
                    let slot = p.get_u8();
                    let headers = self.decompress_headers(&p)?;
                    Frame::SynStream { stream_id, associated_to, priority, slot, flags, headers }
                }
                TYPE_SYN_REPLY => {
                    need(&p, 4, "SYN_REPLY")?;
                    let stream_id = p.get_u32() & 0x7fff_ffff;
                    let headers = self.decompress_headers(&p)?;
                    Frame::SynReply { stream_id, flags, headers }
                }
                TYPE_RST_STREAM => {
                    need(&p, 8, "RST_STREAM")?;
                    Frame::RstStream { stream_id: p.get_u32() & 0x7fff_ffff, status: p.get_u32() }
                }
                TYPE_SETTINGS => {
                    need(&p, 4, "SETTINGS")?;
                    let n = p.get_u32() as usize;
                    if p.remaining() != n.saturating_mul(8) {
                        return Err(FrameError::Malformed("SETTINGS"));
                    }
                    let entries = (0..n)
                        .map(|_| {
                            let w = p.get_u32();
                            Setting { flags: (w >> 24) as u8, id: w & 0x00ff_ffff, value: p.get_u32() }
                        })
                        .collect();
                    Frame::Settings { flags, entries }
                }
                TYPE_PING => {
                    need(&p, 4, "PING")?;
                    Frame::Ping { id: p.get_u32() }
                }
                TYPE_GOAWAY => {
                    need(&p, 8, "GOAWAY")?;
                    Frame::GoAway { last_good_stream_id: p.get_u32() & 0x7fff_ffff, status: p.get_u32() }
                }
                TYPE_HEADERS => {
                    need(&p, 4, "HEADERS")?;
                    let stream_id = p.get_u32() & 0x7fff_ffff;
                    let headers = self.decompress_headers(&p)?;
                    Frame::Headers { stream_id, flags, headers }
                }
                TYPE_WINDOW_UPDATE => {
                    need(&p, 8, "WINDOW_UPDATE")?;
                    Frame::WindowUpdate { stream_id: p.get_u32() & 0x7fff_ffff, delta: p.get_u32() & 0x7fff_ffff }
                }
                _ => continue,
            };
            return Ok(Some(frame));
        }
    }

    fn decompress_headers(&mut self, block: &[u8]) -> Result<Headers, FrameError> {
        let mut input = block;
        let mut raw: Vec<u8> = Vec::with_capacity(block.len() * 4 + 64);
        loop {
            if raw.capacity() - raw.len() < 256 {
                if raw.len() >= MAX_HEADER_BLOCK {
                    return Err(FrameError::HeaderBlock("decompressed header block too large".into()));
                }
                raw.reserve(raw.capacity().max(1024));
            }
            let before = self.decompress.total_in();
            let res = self.decompress.decompress_vec(input, &mut raw, FlushDecompress::Sync);
            let used = (self.decompress.total_in() - before) as usize;
            input = &input[used..];
            match res {
                Ok(Status::StreamEnd) => return Err(FrameError::Compression("unexpected end of zlib stream".into())),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress
                        .set_dictionary(HEADER_DICTIONARY)
                        .map_err(|e| FrameError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(FrameError::Compression(e.to_string())),
            }
            if input.is_empty() && raw.len() < raw.capacity() {
                break;
            }
        }
        parse_header_block(&raw)
    }
}

fn need(p: &Bytes, n: usize, what: &'static str) -> Result<(), FrameError> {
    if p.len() < n {
        return Err(FrameError::Malformed(what));
    }
    Ok(())
}

fn parse_header_block(mut raw: &[u8]) -> Result<Headers, FrameError> {
    fn take<'a>(raw: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
        if raw.len() < n {
            return Err(FrameError::HeaderBlock("truncated".into()));
        }
        let (head, rest) = raw.split_at(n);
        *raw = rest;
        Ok(head)
    }
    fn take_u32(raw: &mut &[u8]) -> Result<usize, FrameError> {
        let b = take(raw, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn take_str(raw: &mut &[u8]) -> Result<String, FrameError> {
        let n = take_u32(raw)?;
        let b = take(raw, n)?;
        String::from_utf8(b.to_vec()).map_err(|_| FrameError::HeaderBlock("header is not UTF-8".into()))
    }
    let count = take_u32(&mut raw)?;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = take_str(&mut raw)?;
        let value = take_str(&mut raw)?;
        headers.push((name, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frames: &[Frame]) -> Vec<Frame> {
        let mut tx = Encoder::new();
        let mut rx = Decoder::new();
        let mut wire = BytesMut::new();
        for f in frames {
            tx.encode(f, &mut wire).unwrap();
        }
        let mut out = Vec::new();
        while let Some(f) = rx.decode(&mut wire).unwrap() {
            out.push(f);
        }
        assert!(wire.is_empty());
        out
    }

    fn hdrs(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(HEADER_DICTIONARY.len(), 1423);
        assert!(HEADER_DICTIONARY.ends_with(b"enq=0."));
        let mut c = Compress::new(Compression::best(), true);
        assert_eq!(c.set_dictionary(HEADER_DICTIONARY).unwrap(), 0xe3c6_a7c2);
    }

    #[test]
    fn every_frame_kind_round_trips() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 3,
                slot: 0,
                flags: 0,
                headers: hdrs(&[("streamtype", "error"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: FLAG_FIN,
                headers: hdrs(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynReply { stream_id: 1, flags: 0, headers: vec![] },
            Frame::Data { stream_id: 3, flags: 0, data: Bytes::from_static(b"hello") },
            Frame::Data { stream_id: 3, flags: FLAG_FIN, data: Bytes::new() },
            Frame::RstStream { stream_id: 5, status: RST_CANCEL },
            Frame::Settings {
                flags: 0,
                entries: vec![Setting { flags: 1, id: 7, value: 65536 }, Setting { flags: 0, id: 4, value: 100 }],
            },
            Frame::Ping { id: 1 },
            Frame::GoAway { last_good_stream_id: 3, status: 0 },
            Frame::Headers { stream_id: 3, flags: 0, headers: hdrs(&[("x", "a\0b")]) },
            Frame::WindowUpdate { stream_id: 3, delta: 1024 },
        ];
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn header_blocks_share_one_zlib_stream_per_direction() {
        let mut tx = Encoder::new();
        let h = hdrs(&[("streamtype", "data"), ("port", "80"), ("requestid", "1")]);
        let mut first = BytesMut::new();
        tx.encode(&Frame::SynReply { stream_id: 1, flags: 0, headers: h.clone() }, &mut first).unwrap();
        // zlib header with FDICT set, then the dictionary's Adler-32: the bytes every SPDY/3 peer expects.
        assert_eq!(first[12..14], [0x78, 0xf9]);
        assert_eq!(first[14..18], [0xe3, 0xc6, 0xa7, 0xc2]);
        let mut second = BytesMut::new();
        tx.encode(&Frame::SynReply { stream_id: 3, flags: 0, headers: h.clone() }, &mut second).unwrap();
        // The second block refers back to the first one: no zlib header again, and shorter.
        assert!(second.len() < first.len());
        assert_ne!(second[12..14], [0x78, 0xf9]);

        // A fresh decoder cannot start with the second block; one that saw the first can.
        let mut rx = Decoder::new();
        let mut wire = second.clone();
        assert!(rx.decode(&mut wire).is_err());
        let mut rx = Decoder::new();
        let mut wire = first;
        wire.extend_from_slice(&second);
        let a = rx.decode(&mut wire).unwrap().unwrap();
        let b = rx.decode(&mut wire).unwrap().unwrap();
        assert_eq!(a, Frame::SynReply { stream_id: 1, flags: 0, headers: h.clone() });
        assert_eq!(b, Frame::SynReply { stream_id: 3, flags: 0, headers: h });
    }

    #[test]
    fn decodes_frames_compressed_by_another_zlib() {
        // Two SYN_STREAMs as kubectl opens them for one forwarded connection, built with C zlib (level 9 like Go's
        // framer, the SPDY/3 dictionary, Z_SYNC_FLUSH) so the decoder is checked against an independent encoder.
        let wire: &[u8] = &[
            0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0x25, 0x3a, 0x48, 0xf9, 0x5b, 0x04, 0x4e, 0xea, 0x16, 0x06, 0x16,
            0x06, 0x40, 0x9a, 0xb3, 0x08, 0x12, 0x5f, 0x99, 0xa0, 0x74, 0xcc, 0x68, 0x00, 0x4e, 0x89, 0x25, 0x45, 0xa9,
            0x89, 0xb9, 0xd0, 0xc2, 0x86, 0x35, 0x15, 0x14, 0x15, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x80, 0x03, 0x00,
            0x01, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x53, 0x33,
            0xa8, 0xa4, 0x4a, 0x04, 0x00, 0x00, 0x00, 0xff, 0xff,
        ];
        let mut c = Decoder::new();
        let mut buf = BytesMut::from(wire);
        let expect = |id, kind| Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: hdrs(&[("port", "8080"), ("requestid", "0"), ("streamtype", kind)]),
        };
        assert_eq!(c.decode(&mut buf).unwrap(), Some(expect(1, "error")));
        assert_eq!(c.decode(&mut buf).unwrap(), Some(expect(3, "data")));
        assert!(buf.is_empty());
    }

    #[test]
    fn frame_header_layout() {
        let mut c = Encoder::new();
        let mut wire = BytesMut::new();
        c.encode(&Frame::Ping { id: 7 }, &mut wire).unwrap();
        assert_eq!(&wire[..], &[0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 7]);
        let mut wire = BytesMut::new();
        c.encode(&Frame::Data { stream_id: 5, flags: FLAG_FIN, data: Bytes::from_static(b"ab") }, &mut wire).unwrap();
        assert_eq!(&wire[..], &[0, 0, 0, 5, 0x01, 0, 0, 2, b'a', b'b']);
        let mut wire = BytesMut::new();
        c.encode(&Frame::RstStream { stream_id: 9, status: RST_REFUSED_STREAM }, &mut wire).unwrap();
        assert_eq!(&wire[..], &[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 3]);
    }

    #[test]
    fn partial_input_waits_and_unknown_control_frames_are_skipped() {
        let mut e = Encoder::new();
        let mut c = Decoder::new();
        let mut wire = BytesMut::new();
        // Type 10 (CREDENTIAL) is not handled: it must be skipped, not break the stream.
        wire.extend_from_slice(&[0x80, 0x03, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb]);
        e.encode(&Frame::Ping { id: 9 }, &mut wire).unwrap();
        let mut partial = wire.split_to(13);
        assert_eq!(c.decode(&mut partial).unwrap(), None);
        partial.extend_from_slice(&wire);
        assert_eq!(c.decode(&mut partial).unwrap(), Some(Frame::Ping { id: 9 }));
        assert!(partial.is_empty());
    }

    #[test]
    fn rejects_other_versions() {
        let mut c = Decoder::new();
        let mut wire = BytesMut::from(&[0x80, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1][..]);
        assert!(matches!(c.decode(&mut wire), Err(FrameError::Version(2))));
    }
}
