//! Layer decompression by sniffing magic bytes (gzip, zstd, or a plain tar): docker archives and some
//! registries label layers loosely, the bytes do not lie.

use std::io::{self, BufRead, BufReader, Read};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `reader` in the decoder its first bytes call for.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(64 * 1024, reader);
    let head = buf.fill_buf()?;
    Ok(match sniff(head) {
        // MultiGzDecoder: concatenated gzip members are valid layers (pigz, some builders).
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(ZstdFrames { inner: Some(buf), decoder: None }),
        Compression::None => Box::new(buf),
    })
}

/// Decodes a sequence of zstd frames (a stream may hold several) with the pure-Rust decoder.
struct ZstdFrames<R: BufRead> {
    inner: Option<R>,
    decoder: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(d) = &mut self.decoder {
                let n = d.read(out)?;
                if n > 0 || out.is_empty() {
                    return Ok(n);
                }
                let Some(d) = self.decoder.take() else { return Ok(0) };
                self.inner = Some(d.into_inner());
            }
            let Some(mut inner) = self.inner.take() else { return Ok(0) };
            if inner.fill_buf()?.is_empty() {
                return Ok(0);
            }
            let d = ruzstd::decoding::StreamingDecoder::new(inner)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
            self.decoder = Some(d);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn roundtrip_table() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zst = ruzstd::encoding::compress_to_vec(&data[..], ruzstd::encoding::CompressionLevel::Fastest);
        let mut two_frames = zst.clone();
        two_frames.extend(ruzstd::encoding::compress_to_vec(&b"tail"[..], ruzstd::encoding::CompressionLevel::Fastest));
        let mut want_two = data.clone();
        want_two.extend(b"tail");
        let cases: Vec<(&str, Vec<u8>, Compression, Vec<u8>)> = vec![
            ("plain", data.clone(), Compression::None, data.clone()),
            ("gzip", gz.clone(), Compression::Gzip, data.clone()),
            ("zstd", zst.clone(), Compression::Zstd, data.clone()),
            ("zstd two frames", two_frames, Compression::Zstd, want_two),
        ];
        for (name, input, kind, want) in cases {
            assert_eq!(sniff(&input), kind, "{name}");
            let mut out = Vec::new();
            decompress(&input[..]).unwrap().read_to_end(&mut out).unwrap();
            assert!(out == want, "{name}");
        }
        let mut truncated = Vec::new();
        assert!(decompress(&gz[..gz.len() / 2]).unwrap().read_to_end(&mut truncated).is_err());
    }
}
