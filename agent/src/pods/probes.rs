//! Liveness, readiness and startup probes: exec (inside the container through `edge-shim --exec`),
//! httpGet and tcpSocket (from the node to the pod IP), with upstream's thresholds and timing.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

/// Where a probe goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub pod_ip: String,
    pub container_pid: u32,
    pub shim: PathBuf,
}

/// One probe's counters, as the kubelet's worker keeps them.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub kind: Kind,
    pub next_at: Instant,
    successes: i32,
    failures: i32,
    /// The current verdict: None until the threshold is first reached.
    pub result: Option<bool>,
}

impl Tracker {
    pub fn new(kind: Kind, probe: &Probe, started: Instant) -> Self {
        let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        Tracker { kind, next_at: started + delay, successes: 0, failures: 0, result: None }
    }

    /// Records one outcome; returns the verdict when it changes.
    pub fn record(&mut self, probe: &Probe, ok: bool, now: Instant) -> Option<bool> {
        self.next_at = now + Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
        let (success_threshold, failure_threshold) =
            (probe.success_threshold.unwrap_or(1).max(1), probe.failure_threshold.unwrap_or(3).max(1));
        if ok {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= success_threshold && self.result != Some(true) {
                self.result = Some(true);
                return Some(true);
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= failure_threshold && self.result != Some(false) {
                self.result = Some(false);
                return Some(false);
            }
        }
        None
    }

    /// After a liveness kill the counters start again (upstream resets the worker).
    pub fn reset(&mut self, probe: &Probe, now: Instant) {
        *self = Tracker::new(self.kind, probe, now);
    }
}

pub fn probe_of(c: &Container, kind: Kind) -> Option<&Probe> {
    match kind {
        Kind::Startup => c.startup_probe.as_ref(),
        Kind::Liveness => c.liveness_probe.as_ref(),
        Kind::Readiness => c.readiness_probe.as_ref(),
    }
}

fn port_of(c: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// Runs the probe once; a timeout counts as a failure.
pub async fn check(probe: &Probe, c: &Container, target: &Target) -> bool {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    tokio::time::timeout(timeout, check_inner(probe, c, target)).await.unwrap_or_default()
}

async fn check_inner(probe: &Probe, c: &Container, target: &Target) -> bool {
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        if cmd.is_empty() {
            return false;
        }
        let std_cmd = edge_runtime::exec::exec_command(&target.shim, target.container_pid, &cmd, false);
        let mut cmd = tokio::process::Command::from(std_cmd);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        return matches!(cmd.status().await, Ok(s) if s.success());
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = port_of(c, &tcp.port) else { return false };
        let host = tcp.host.clone().unwrap_or_else(|| target.pod_ip.clone());
        return tokio::net::TcpStream::connect((host.as_str(), port)).await.is_ok();
    }
    if let Some(http) = &probe.http_get {
        let Some(port) = port_of(c, &http.port) else { return false };
        let host = http.host.clone().unwrap_or_else(|| target.pod_ip.clone());
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let Ok(mut s) = tokio::net::TcpStream::connect((host.as_str(), port)).await else { return false };
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n");
        for h in http.http_headers.iter().flatten() {
            req.push_str(&format!("{}: {}\r\n", h.name, h.value));
        }
        req.push_str("\r\n");
        if s.write_all(req.as_bytes()).await.is_err() {
            return false;
        }
        let mut buf = vec![0u8; 512];
        let mut got = 0;
        while got < 12 {
            match s.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        return http_status_ok(&buf[..got]);
    }
    false
}

/// Upstream counts 200–399 as success.
fn http_status_ok(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let code: Option<u16> = text.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    text.starts_with("HTTP/") && code.is_some_and(|c| (200..400).contains(&c))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thresholds() {
        let probe: Probe =
            serde_json::from_value(json!({"failureThreshold": 2, "successThreshold": 1, "periodSeconds": 1})).unwrap();
        let now = Instant::now();
        let mut t = Tracker::new(Kind::Liveness, &probe, now);
        assert_eq!(t.record(&probe, true, now), Some(true));
        assert_eq!(t.record(&probe, true, now), None);
        assert_eq!(t.record(&probe, false, now), None);
        assert_eq!(t.record(&probe, false, now), Some(false));
        assert_eq!(t.record(&probe, false, now), None);
        assert_eq!(t.next_at, now + Duration::from_secs(1));
    }

    #[test]
    fn http_codes() {
        assert!(http_status_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(http_status_ok(b"HTTP/1.0 302 Found\r\n"));
        assert!(!http_status_ok(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!http_status_ok(b"garbage"));
    }

    #[test]
    fn named_ports() {
        let c: Container =
            serde_json::from_value(json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]})).unwrap();
        assert_eq!(port_of(&c, &IntOrString::String("http".into())), Some(8080));
        assert_eq!(port_of(&c, &IntOrString::Int(81)), Some(81));
        assert_eq!(port_of(&c, &IntOrString::String("nope".into())), None);
    }
}
