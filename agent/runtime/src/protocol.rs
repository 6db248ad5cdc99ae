//! The agent↔shim protocol: one request line, one reply line, per connection on `<sandbox>/shim.sock`.
//!
//! Requests (container bundles must already be in `<sandbox>/<name>/config.json`):
//! - `PING` → `OK <shim-pid>`
//! - `START <name>` → `OK <container-pid>`: create + start with libcontainer; stale state of an earlier
//!   run with that name (and its `exit-code`) is removed first, the log file is appended to
//! - `KILL <name> <grace-ms>` → `OK`: SIGTERM now, SIGKILL after the grace period unless it exited
//!   (asynchronous: the caller watches `exit-code`)
//! - `DELETE <name>` → `OK`: SIGKILL if running, reap, libcontainer delete (state + cgroup)
//! - `SHUTDOWN` → `OK`: SIGKILL and delete every container, then the shim exits
//!
//! Errors are `ERR <message>` (one line). Connections are handled one at a time: every request is short.

use std::time::Duration;

use crate::layout::valid_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Ping,
    Start { name: String },
    Kill { name: String, grace: Duration },
    Delete { name: String },
    Shutdown,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("unknown or malformed request {0:?}")]
    Malformed(String),
    #[error("invalid container name {0:?}")]
    BadName(String),
}

impl Request {
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let name = |n: &str| {
            if valid_name(n) {
                Ok(n.to_string())
            } else {
                Err(ParseError::BadName(n.to_string()))
            }
        };
        match words.as_slice() {
            ["PING"] => Ok(Request::Ping),
            ["SHUTDOWN"] => Ok(Request::Shutdown),
            ["START", n] => Ok(Request::Start { name: name(n)? }),
            ["DELETE", n] => Ok(Request::Delete { name: name(n)? }),
            ["KILL", n, ms] => {
                let ms: u64 = ms.parse().map_err(|_| ParseError::Malformed(line.to_string()))?;
                Ok(Request::Kill { name: name(n)?, grace: Duration::from_millis(ms) })
            }
            _ => Err(ParseError::Malformed(line.to_string())),
        }
    }

    pub fn encode(&self) -> String {
        match self {
            Request::Ping => "PING\n".into(),
            Request::Shutdown => "SHUTDOWN\n".into(),
            Request::Start { name } => format!("START {name}\n"),
            Request::Delete { name } => format!("DELETE {name}\n"),
            Request::Kill { name, grace } => format!("KILL {name} {}\n", grace.as_millis()),
        }
    }
}

/// A reply: `Ok(payload)` or `Err(message)`.
pub fn encode_reply(reply: &Result<String, String>) -> String {
    let one_line = |s: &str| s.replace('\n', " ");
    match reply {
        Ok(p) if p.is_empty() => "OK\n".into(),
        Ok(p) => format!("OK {}\n", one_line(p)),
        Err(e) => format!("ERR {}\n", one_line(e)),
    }
}

pub fn parse_reply(line: &str) -> Result<String, String> {
    let line = line.trim_end_matches('\n');
    if line == "OK" {
        Ok(String::new())
    } else if let Some(p) = line.strip_prefix("OK ") {
        Ok(p.to_string())
    } else if let Some(e) = line.strip_prefix("ERR ") {
        Err(e.to_string())
    } else {
        Err(format!("malformed reply {line:?}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let cases = [
            Request::Ping,
            Request::Shutdown,
            Request::Start { name: "app".into() },
            Request::Delete { name: "side-car".into() },
            Request::Kill { name: "app".into(), grace: Duration::from_millis(1500) },
        ];
        for r in cases {
            assert_eq!(Request::parse(&r.encode()), Ok(r.clone()));
        }
    }

    #[test]
    fn bad_requests() {
        let cases = [
            ("", ParseError::Malformed("".into())),
            ("START", ParseError::Malformed("START".into())),
            ("START ../x", ParseError::BadName("../x".into())),
            ("KILL app soon", ParseError::Malformed("KILL app soon".into())),
            ("KILL .state 1", ParseError::BadName(".state".into())),
            ("start app", ParseError::Malformed("start app".into())),
        ];
        for (line, want) in cases {
            assert_eq!(Request::parse(line), Err(want), "{line:?}");
        }
    }

    #[test]
    fn replies() {
        let cases: [(Result<String, String>, &str); 3] = [
            (Ok(String::new()), "OK\n"),
            (Ok("42".into()), "OK 42\n"),
            (Err("no such\ncontainer".into()), "ERR no such container\n"),
        ];
        for (reply, line) in cases {
            assert_eq!(encode_reply(&reply), line);
            let back = parse_reply(line);
            assert_eq!(back, reply.map_err(|e| e.replace('\n', " ")));
        }
        assert!(parse_reply("WHAT").is_err());
    }
}
