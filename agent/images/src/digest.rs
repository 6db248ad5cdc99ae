//! Content digests (`sha256:<hex>`): parsing, computing, and verifying streams against them.

use std::fmt;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex>")]
    Invalid(String),
    #[error("unsupported digest algorithm {0:?} (only sha256)")]
    UnsupportedAlgorithm(String),
}

/// A validated `sha256:<hex>` digest. Other algorithms are rejected at parse time so that every
/// digest the crate holds can be verified.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let (alg, hex) = s.split_once(':').ok_or_else(|| DigestError::Invalid(s.to_string()))?;
        if alg != "sha256" {
            if alg.is_empty() || hex.is_empty() {
                return Err(DigestError::Invalid(s.to_string()));
            }
            return Err(DigestError::UnsupportedAlgorithm(alg.to_string()));
        }
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(DigestError::Invalid(s.to_string()));
        }
        Ok(Digest(s.to_string()))
    }

    pub fn of(bytes: &[u8]) -> Self {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(h: Sha256) -> Self {
        Digest(format!("sha256:{}", to_hex(&h.finalize())))
    }

    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// The hex part: the file name of the blob in the content store.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

/// Running SHA-256 over bytes as they stream past, with the byte count.
#[derive(Default, Clone)]
pub struct Hasher {
    hasher: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> Digest {
        Digest::from_hasher(self.hasher)
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Hasher::new() }
    }
    /// Reads what is left (tar streams end before their padding) and returns digest and length.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let len = self.hasher.len();
        Ok((self.hasher.finish(), len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<W> {
    pub inner: W,
    pub hasher: Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let good = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let cases: &[(&str, Result<(), DigestError>)] = &[
            (good, Ok(())),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                Err(DigestError::Invalid(String::new())),
            ),
            ("sha256:abc", Err(DigestError::Invalid(String::new()))),
            ("e3b0c442", Err(DigestError::Invalid(String::new()))),
            ("sha512:abcd", Err(DigestError::UnsupportedAlgorithm("sha512".into()))),
            ("sha256:", Err(DigestError::Invalid(String::new()))),
        ];
        for (input, want) in cases {
            let got = Digest::parse(input);
            match (want, &got) {
                (Ok(()), Ok(d)) => assert_eq!(d.as_str(), *input),
                (Err(DigestError::Invalid(_)), Err(DigestError::Invalid(_))) => {}
                (Err(w), Err(g)) => assert_eq!(w, g, "{input}"),
                _ => panic!("{input}: got {got:?}"),
            }
        }
    }

    #[test]
    fn of_empty_is_known_value() {
        let d = Digest::of(b"");
        assert_eq!(d.hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let mut r = HashingReader::new(&b"abc"[..]);
        let mut buf = [0u8; 1];
        r.read_exact(&mut buf).unwrap();
        let (d2, n) = r.finish().unwrap();
        assert_eq!((d2, n), (Digest::of(b"abc"), 3));
    }
}
