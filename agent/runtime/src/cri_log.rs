//! CRI container log format (what the kubelet writes and `kubectl logs` serves):
//! `<RFC3339Nano UTC> <stdout|stderr> <F|P> <content>\n`, one record per line; lines longer than
//! [`MAX_LINE`] are split into partial (`P`) records followed by a final (`F`) one.

use chrono::{DateTime, SecondsFormat, Utc};

/// Upstream's kubelet splits at 16 KiB as well.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One CRI record; `content` excludes the newline.
pub fn format_record(at: DateTime<Utc>, stream: Stream, partial: bool, content: &[u8]) -> Vec<u8> {
    let ts = at.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let mut out = Vec::with_capacity(ts.len() + content.len() + 12);
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.push(b' ');
    out.push(if partial { b'P' } else { b'F' });
    out.push(b' ');
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// Turns a byte stream (arbitrary read chunks) into CRI records.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn new(stream: Stream) -> Self {
        Self { stream, pending: Vec::new() }
    }

    /// Returns the records completed by `data`.
    pub fn push(&mut self, at: DateTime<Utc>, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in data {
            if b == b'\n' {
                out.extend(format_record(at, self.stream, false, &self.pending));
                self.pending.clear();
            } else {
                self.pending.push(b);
                if self.pending.len() == MAX_LINE {
                    out.extend(format_record(at, self.stream, true, &self.pending));
                    self.pending.clear();
                }
            }
        }
        out
    }

    /// At end of stream an unterminated line is still a complete record (as in the kubelet).
    pub fn finish(&mut self, at: DateTime<Utc>) -> Vec<u8> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let out = format_record(at, self.stream, false, &self.pending);
        self.pending.clear();
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 3, 4, 5).unwrap() + chrono::Duration::nanoseconds(123_456_789)
    }

    #[test]
    fn record_format() {
        let r = format_record(at(), Stream::Stdout, false, b"hello");
        assert_eq!(r, b"2026-11-27T03:04:05.123456789Z stdout F hello\n");
        let r = format_record(at(), Stream::Stderr, true, b"");
        assert_eq!(r, b"2026-11-27T03:04:05.123456789Z stderr P \n");
    }

    #[test]
    fn splitting() {
        let ts = "2026-11-27T03:04:05.123456789Z";
        let long = "x".repeat(MAX_LINE);
        // (chunks, expected output after finish)
        let cases: Vec<(Vec<&str>, String)> = vec![
            (vec!["a\nb\n"], format!("{ts} stdout F a\n{ts} stdout F b\n")),
            (vec!["he", "llo\nwor", "ld"], format!("{ts} stdout F hello\n{ts} stdout F world\n")),
            (vec!["\n"], format!("{ts} stdout F \n")),
            (vec![], String::new()),
            (vec![&long, "y\n"], format!("{ts} stdout P {long}\n{ts} stdout F y\n")),
        ];
        for (chunks, want) in cases {
            let mut s = LineSplitter::new(Stream::Stdout);
            let mut got = Vec::new();
            for c in &chunks {
                got.extend(s.push(at(), c.as_bytes()));
            }
            got.extend(s.finish(at()));
            assert_eq!(String::from_utf8(got).unwrap(), want, "{chunks:?}");
        }
    }
}
