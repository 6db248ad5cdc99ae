//! Turning request paths and query strings into typed requests, with upstream's parameter names and checks.

use chrono::{DateTime, Utc};

use crate::{ExecRequest, LogRequest};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Healthz,
    Logs {
        namespace: String,
        pod: String,
        container: String,
    },
    /// `attach` reaches the container's main process instead of starting a new one.
    Exec {
        namespace: String,
        pod: String,
        container: String,
        attach: bool,
    },
    PortForward {
        namespace: String,
        pod: String,
        uid: Option<String>,
    },
}

/// Matches kubelet's paths (pkg/kubelet/server/server.go); `None` for anything else.
pub(crate) fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs.iter().skip(1).any(|s| s.is_empty()) {
        return None;
    }
    let s = |i: usize| segs[i].to_string();
    match (segs[0], segs.len()) {
        ("healthz", 1) => Some(Route::Healthz),
        ("containerLogs", 4) => Some(Route::Logs { namespace: s(1), pod: s(2), container: s(3) }),
        ("exec", 4) => Some(Route::Exec { namespace: s(1), pod: s(2), container: s(3), attach: false }),
        ("exec", 5) => Some(Route::Exec { namespace: s(1), pod: s(2), container: s(4), attach: false }),
        ("attach", 4) => Some(Route::Exec { namespace: s(1), pod: s(2), container: s(3), attach: true }),
        ("attach", 5) => Some(Route::Exec { namespace: s(1), pod: s(2), container: s(4), attach: true }),
        ("portForward", 3) => Some(Route::PortForward { namespace: s(1), pod: s(2), uid: None }),
        ("portForward", 4) => Some(Route::PortForward { namespace: s(1), pod: s(2), uid: Some(s(3)) }),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryError {
    /// Undecodable parameter: 400.
    #[error("{0}")]
    Bad(String),
    /// Decodable but invalid (ValidatePodLogOptions): 422.
    #[error("{0}")]
    Invalid(String),
}

fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

/// Go's strconv.ParseBool, which the parameter codec uses.
fn parse_bool(name: &str, v: &str) -> Result<bool, QueryError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(QueryError::Bad(format!("invalid value {v:?} for {name}: not a boolean"))),
    }
}

fn parse_i64(name: &str, v: &str) -> Result<i64, QueryError> {
    v.parse().map_err(|_| QueryError::Bad(format!("invalid value {v:?} for {name}: not an integer")))
}

pub(crate) fn log_request(
    namespace: String,
    pod: String,
    container: String,
    query: Option<&str>,
) -> Result<LogRequest, QueryError> {
    let mut req = LogRequest { namespace, pod, container, ..Default::default() };
    for (k, v) in pairs(query) {
        match k.as_str() {
            "follow" => req.follow = parse_bool(&k, &v)?,
            "previous" => req.previous = parse_bool(&k, &v)?,
            "timestamps" => req.timestamps = parse_bool(&k, &v)?,
            "tailLines" => req.tail_lines = Some(parse_i64(&k, &v)?),
            "sinceSeconds" => req.since_seconds = Some(parse_i64(&k, &v)?),
            "limitBytes" => req.limit_bytes = Some(parse_i64(&k, &v)?),
            "sinceTime" => {
                let t = DateTime::parse_from_rfc3339(&v)
                    .map_err(|e| QueryError::Bad(format!("invalid value {v:?} for sinceTime: {e}")))?;
                req.since_time = Some(t.with_timezone(&Utc));
            }
            _ => {}
        }
    }
    // The checks of ValidatePodLogOptions.
    if req.tail_lines.is_some_and(|n| n < 0) {
        return Err(QueryError::Invalid("tailLines: Invalid value: must be greater than or equal to 0".into()));
    }
    if req.limit_bytes.is_some_and(|n| n < 1) {
        return Err(QueryError::Invalid("limitBytes: Invalid value: must be greater than 0".into()));
    }
    if req.since_seconds.is_some() && req.since_time.is_some() {
        return Err(QueryError::Invalid("at most one of `sinceTime` or `sinceSeconds` may be specified".into()));
    }
    if req.since_seconds.is_some_and(|n| n < 1) {
        return Err(QueryError::Invalid("sinceSeconds: Invalid value: must be greater than 0".into()));
    }
    Ok(req)
}

/// Kubelet's parameters are `input`/`output`/`error`/`tty` = "1"; the apiserver-style `stdin`/`stdout`/`stderr` =
/// "true" are accepted too so that a proxy that forwards kubectl's query unchanged also works.
pub(crate) fn exec_request(
    namespace: String,
    pod: String,
    container: String,
    query: Option<&str>,
    attach: bool,
) -> Result<ExecRequest, QueryError> {
    let mut req = ExecRequest { namespace, pod, container, ..Default::default() };
    let on = |v: &str| v == "1" || v.eq_ignore_ascii_case("true");
    for (k, v) in pairs(query) {
        match k.as_str() {
            "command" => req.command.push(v),
            "input" | "stdin" => req.stdin = on(&v),
            "output" | "stdout" => req.stdout = on(&v),
            "error" | "stderr" => req.stderr = on(&v),
            "tty" => req.tty = on(&v),
            _ => {}
        }
    }
    if req.command.is_empty() && !attach {
        return Err(QueryError::Bad("you must specify a command".into()));
    }
    if !req.stdin && !req.stdout && !req.stderr {
        return Err(QueryError::Bad("you must specify at least 1 of stdin, stdout, stderr".into()));
    }
    if req.tty {
        // Upstream bypasses stderr under a tty rather than failing.
        req.stderr = false;
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |ns: &str, p: &str, c: &str| (ns.to_string(), p.to_string(), c.to_string());
        let cases: Vec<(&str, Option<Route>)> = vec![
            ("/healthz", Some(Route::Healthz)),
            ("/containerLogs/ns/p/c", {
                let (namespace, pod, container) = r("ns", "p", "c");
                Some(Route::Logs { namespace, pod, container })
            }),
            ("/exec/ns/p/c", {
                let (namespace, pod, container) = r("ns", "p", "c");
                Some(Route::Exec { namespace, pod, container, attach: false })
            }),
            ("/exec/ns/p/uid-1/c", {
                let (namespace, pod, container) = r("ns", "p", "c");
                Some(Route::Exec { namespace, pod, container, attach: false })
            }),
            (
                "/attach/ns/p/c",
                Some(Route::Exec { namespace: "ns".into(), pod: "p".into(), container: "c".into(), attach: true }),
            ),
            ("/portForward/ns/p", Some(Route::PortForward { namespace: "ns".into(), pod: "p".into(), uid: None })),
            (
                "/portForward/ns/p/u",
                Some(Route::PortForward { namespace: "ns".into(), pod: "p".into(), uid: Some("u".into()) }),
            ),
            ("/containerLogs/ns/p", None),
            ("/containerLogs/ns//c", None),
            ("/exec/ns/p/a/b/c", None),
            ("/pods", None),
            ("/", None),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), want, "{path}");
        }
    }

    #[test]
    fn log_queries() {
        let q = |s: &str| log_request("ns".into(), "p".into(), "c".into(), Some(s));
        let got = q("follow=true&tailLines=10&timestamps=1&limitBytes=5&previous=false").unwrap();
        assert!(got.follow && got.timestamps && !got.previous);
        assert_eq!((got.tail_lines, got.limit_bytes), (Some(10), Some(5)));
        let got = q("sinceTime=2024-01-02T03:04:05Z").unwrap();
        assert_eq!(got.since_time.unwrap().to_rfc3339(), "2024-01-02T03:04:05+00:00");
        assert_eq!(q("sinceSeconds=30").unwrap().since_seconds, Some(30));
        assert!(matches!(q("follow=yes"), Err(QueryError::Bad(_))));
        assert!(matches!(q("tailLines=x"), Err(QueryError::Bad(_))));
        assert!(matches!(q("tailLines=-1"), Err(QueryError::Invalid(_))));
        assert!(matches!(q("limitBytes=0"), Err(QueryError::Invalid(_))));
        assert!(matches!(q("sinceSeconds=0"), Err(QueryError::Invalid(_))));
        assert!(matches!(q("sinceSeconds=5&sinceTime=2024-01-02T03:04:05Z"), Err(QueryError::Invalid(_))));
    }

    #[test]
    fn exec_queries() {
        let q = |s: &str| exec_request("ns".into(), "p".into(), "c".into(), Some(s), false);
        let got = q("command=sh&command=-c&command=echo%20hi&input=1&output=1&error=1").unwrap();
        assert_eq!(got.command, vec!["sh", "-c", "echo hi"]);
        assert!(got.stdin && got.stdout && got.stderr && !got.tty);
        let got = q("command=sh&stdin=true&stdout=true&stderr=true&tty=true").unwrap();
        assert!(got.stdin && got.stdout && !got.stderr && got.tty);
        assert!(q("output=1").is_err());
        assert!(q("command=ls").is_err());
    }
}
