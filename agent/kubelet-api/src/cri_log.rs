//! The CRI container log format (`<RFC3339Nano> stdout|stderr F|P <text>`) and kubelet's rendering of it for
//! `kubectl logs`: tail, since, timestamps and byte limits, following kuberuntime/logs.

use std::io::{self, Read, Seek, SeekFrom};

use chrono::{DateTime, Duration, FixedOffset, Timelike, Utc};

use crate::LogRequest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CriLine<'a> {
    pub timestamp: DateTime<FixedOffset>,
    pub stderr: bool,
    /// The text, ending in `\n` for a full (F) line; a partial (P) line has its newline removed.
    pub content: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CriParseError {
    #[error("timestamp is not found")]
    NoTimestamp,
    #[error("unexpected timestamp format")]
    BadTimestamp,
    #[error("stream type is not found")]
    NoStream,
    #[error("unexpected stream type")]
    BadStream,
    #[error("log tag is not found")]
    NoTag,
}

fn split_space(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b' ')?;
    Some((&b[..i], &b[i + 1..]))
}

/// Parses one raw file line (with its `\n`, if it has one).
pub(crate) fn parse_cri_line(line: &[u8]) -> Result<CriLine<'_>, CriParseError> {
    let (ts, rest) = split_space(line).ok_or(CriParseError::NoTimestamp)?;
    let ts = std::str::from_utf8(ts).map_err(|_| CriParseError::BadTimestamp)?;
    let timestamp = DateTime::parse_from_rfc3339(ts).map_err(|_| CriParseError::BadTimestamp)?;
    let (stream, rest) = split_space(rest).ok_or(CriParseError::NoStream)?;
    let stderr = match stream {
        b"stdout" => false,
        b"stderr" => true,
        _ => return Err(CriParseError::BadStream),
    };
    let (tags, mut content) = split_space(rest).ok_or(CriParseError::NoTag)?;
    // Tags are ':'-separated for forward compatibility; the first says partial or full.
    let partial = tags.split(|&c| c == b':').next() == Some(b"P");
    if partial && content.last() == Some(&b'\n') {
        content = &content[..content.len() - 1];
    }
    Ok(CriLine { timestamp, stderr, content })
}

/// Go's `time.RFC3339Nano` output: fractional seconds without trailing zeros (none at all when zero), `Z` for UTC.
pub(crate) fn format_rfc3339_nano(t: &DateTime<FixedOffset>) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    let off = t.offset().local_minus_utc();
    if off == 0 {
        s.push('Z');
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.abs();
        s.push_str(&format!("{sign}{:02}:{:02}", off / 3600, (off % 3600) / 60));
    }
    s
}

/// The offset where the last `n` complete lines begin; a trailing line without `\n` is not counted (but is after
/// the offset). `n < 0` means the whole file.
pub(crate) fn tail_start<R: Read + Seek>(f: &mut R, n: i64) -> io::Result<u64> {
    if n < 0 {
        return Ok(0);
    }
    let size = f.seek(SeekFrom::End(0))?;
    // The start of line n is just after the (n+1)-th newline from the end.
    let mut wanted = n as u64 + 1;
    let mut pos = size;
    let mut block = vec![0u8; 4096];
    while pos > 0 {
        let len = block.len().min(pos as usize);
        pos -= len as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut block[..len])?;
        for i in (0..len).rev() {
            if block[i] == b'\n' {
                wanted -= 1;
                if wanted == 0 {
                    return Ok(pos + i as u64 + 1);
                }
            }
        }
    }
    Ok(0)
}

/// Whether more output may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    More,
    Done,
}

/// Renders parsed lines as kubelet does; one per request.
pub(crate) struct LogRenderer {
    since: Option<DateTime<Utc>>,
    timestamps: bool,
    remain: i64,
    /// Lines still to print when a tail is read without follow (protects against a growing file).
    lines_left: Option<i64>,
    at_line_start: bool,
}

impl LogRenderer {
    pub fn new(req: &LogRequest, now: DateTime<Utc>) -> Self {
        let mut since = req.since_seconds.map(|s| now - Duration::seconds(s));
        if let Some(t) = req.since_time {
            if since.is_none_or(|s| t > s) {
                since = Some(t);
            }
        }
        Self {
            since,
            timestamps: req.timestamps,
            remain: req.limit_bytes.unwrap_or(i64::MAX),
            lines_left: req.tail_lines.filter(|_| !req.follow),
            at_line_start: true,
        }
    }

    pub fn done(&self) -> bool {
        self.remain <= 0 || self.lines_left == Some(0)
    }

    /// Appends the rendering of one raw file line to `out`.
    pub fn feed(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Flow {
        if self.done() {
            return Flow::Done;
        }
        let line = match parse_cri_line(raw) {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "skipping unparsable CRI log line");
                return Flow::More;
            }
        };
        if self.since.is_none_or(|s| line.timestamp >= s) {
            let start = out.len();
            if self.timestamps && self.at_line_start {
                out.extend_from_slice(format_rfc3339_nano(&line.timestamp).as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.content);
            let written = (out.len() - start) as i64;
            if written > self.remain {
                out.truncate(start + self.remain as usize);
            }
            self.remain -= written.min(self.remain);
        }
        if let Some(n) = &mut self.lines_left {
            *n -= 1;
        }
        self.at_line_start = line.content.last().is_none_or(|&c| c == b'\n');
        if self.done() {
            Flow::Done
        } else {
            Flow::More
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Cursor};

    const LOG: &str = "\
2024-05-01T10:00:00.000000001Z stdout F one
2024-05-01T10:00:01Z stderr F two
2024-05-01T10:00:02.5Z stdout P thr
2024-05-01T10:00:02.6Z stdout F ee
garbage line
2024-05-01T10:00:03.120000000+02:00 stdout F four
";

    /// The whole non-follow pipeline: tail offset, then every line through the renderer.
    fn render(content: &str, req: &LogRequest, now: DateTime<Utc>) -> String {
        let mut cur = Cursor::new(content.as_bytes().to_vec());
        let start = tail_start(&mut cur, req.tail_lines.unwrap_or(-1)).unwrap();
        cur.set_position(start);
        let mut r = LogRenderer::new(req, now);
        let mut out = Vec::new();
        let mut line = Vec::new();
        while cur.read_until(b'\n', &mut line).unwrap() > 0 {
            if r.feed(&line, &mut out) == Flow::Done {
                break;
            }
            line.clear();
        }
        String::from_utf8(out).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T10:00:04Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_cri_lines() {
        let l = parse_cri_line(b"2024-05-01T10:00:00.5Z stderr F hello world\n").unwrap();
        assert!(l.stderr);
        assert_eq!(l.content, b"hello world\n");
        assert_eq!(l.timestamp.timestamp_subsec_nanos(), 500_000_000);
        let l = parse_cri_line(b"2024-05-01T10:00:00Z stdout P:x part\n").unwrap();
        assert_eq!(l.content, b"part");
        let l = parse_cri_line(b"2024-05-01T10:00:00Z stdout F \n").unwrap();
        assert_eq!(l.content, b"\n");
        let errs: &[(&[u8], CriParseError)] = &[
            (b"nospace", CriParseError::NoTimestamp),
            (b"yesterday stdout F x\n", CriParseError::BadTimestamp),
            (b"2024-05-01T10:00:00Z stdout", CriParseError::NoStream),
            (b"2024-05-01T10:00:00Z stdin F x\n", CriParseError::BadStream),
            (b"2024-05-01T10:00:00Z stdout F", CriParseError::NoTag),
        ];
        for (line, want) in errs {
            assert_eq!(parse_cri_line(line).unwrap_err(), *want);
        }
    }

    #[test]
    fn go_rfc3339_nano() {
        let cases = [
            ("2024-05-01T10:00:00.000000001Z", "2024-05-01T10:00:00.000000001Z"),
            ("2024-05-01T10:00:00.500000000Z", "2024-05-01T10:00:00.5Z"),
            ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
            ("2024-05-01T10:00:00.12+02:00", "2024-05-01T10:00:00.12+02:00"),
            ("2024-05-01T10:00:00-05:30", "2024-05-01T10:00:00-05:30"),
        ];
        for (input, want) in cases {
            assert_eq!(format_rfc3339_nano(&DateTime::parse_from_rfc3339(input).unwrap()), want);
        }
    }

    #[test]
    fn tail_offsets() {
        let cases: &[(&str, i64, u64)] = &[
            ("a\nb\nc\n", 0, 6),
            ("a\nb\nc\n", 1, 4),
            ("a\nb\nc\n", 2, 2),
            ("a\nb\nc\n", 3, 0),
            ("a\nb\nc\n", 10, 0),
            ("a\nb\nc\n", -1, 0),
            ("a\nb\nincomplete", 1, 2),
            ("", 3, 0),
        ];
        for &(content, n, want) in cases {
            assert_eq!(tail_start(&mut Cursor::new(content), n).unwrap(), want, "{content:?} tail {n}");
        }
        // Longer than one read block.
        let big: String = (0..3000).map(|i| format!("line {i}\n")).collect();
        let off = tail_start(&mut Cursor::new(big.as_bytes()), 2).unwrap() as usize;
        assert_eq!(&big[off..], "line 2998\nline 2999\n");
    }

    #[test]
    fn renders_like_kubelet() {
        let base = LogRequest::default();
        let ts = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        let cases: Vec<(&str, LogRequest, &str)> = vec![
            // `four` is at 08:00:03.12Z once its offset is applied: every since filter drops it.
            ("plain", base.clone(), "one\ntwo\nthree\nfour\n"),
            (
                "timestamps: one prefix per logical line",
                LogRequest { timestamps: true, ..base.clone() },
                "2024-05-01T10:00:00.000000001Z one\n2024-05-01T10:00:01Z two\n\
                 2024-05-01T10:00:02.5Z three\n2024-05-01T10:00:03.12+02:00 four\n",
            ),
            // The raw lines are counted: the garbage line is one of them.
            ("tail 2", LogRequest { tail_lines: Some(2), ..base.clone() }, "four\n"),
            ("tail 3", LogRequest { tail_lines: Some(3), ..base.clone() }, "ee\nfour\n"),
            ("tail 0", LogRequest { tail_lines: Some(0), ..base.clone() }, ""),
            ("sinceSeconds", LogRequest { since_seconds: Some(3), ..base.clone() }, "two\nthree\n"),
            ("sinceTime", LogRequest { since_time: ts("2024-05-01T10:00:02.55Z"), ..base.clone() }, "ee\n"),
            (
                "since excludes earlier",
                LogRequest { since_time: ts("2024-05-01T09:00:00Z"), ..base.clone() },
                "one\ntwo\nthree\n",
            ),
            ("limitBytes cuts mid-line", LogRequest { limit_bytes: Some(6), ..base.clone() }, "one\ntw"),
            (
                "limitBytes counts the prefix",
                LogRequest { limit_bytes: Some(12), timestamps: true, ..base.clone() },
                "2024-05-01T1",
            ),
        ];
        for (name, req, want) in cases {
            assert_eq!(render(LOG, &req, now()), want, "{name}");
        }
    }

    #[test]
    fn tail_without_follow_stops_after_n_lines_even_if_more_were_written() {
        let mut r = LogRenderer::new(&LogRequest { tail_lines: Some(1), ..Default::default() }, now());
        let mut out = Vec::new();
        assert_eq!(r.feed(b"2024-05-01T10:00:00Z stdout F a\n", &mut out), Flow::Done);
        assert_eq!(r.feed(b"2024-05-01T10:00:00Z stdout F b\n", &mut out), Flow::Done);
        assert_eq!(out, b"a\n");
        // With follow the tail only picks the start.
        let mut r = LogRenderer::new(&LogRequest { tail_lines: Some(1), follow: true, ..Default::default() }, now());
        r.feed(b"2024-05-01T10:00:00Z stdout F a\n", &mut out);
        assert!(!r.done());
    }
}
