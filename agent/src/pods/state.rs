//! What the agent knows about one pod beyond the API object: its address, and per container the
//! current run, the previous termination, restart count and back-off. Kept in
//! `<pods-dir>/<uid>/state.json` so a restarted agent reports the same restart counts and states.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "state.json";
/// CrashLoopBackOff: 10 s doubling to 5 min, forgotten after 10 min of running fine.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    pub exit_code: i32,
    pub reason: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Run {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: DateTime<Utc> },
    Terminated(Termination),
}

impl Default for Run {
    fn default() -> Self {
        Run::Waiting { reason: "ContainerCreating".into(), message: None }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerState {
    pub run: Run,
    /// The run before the current one (`lastState`).
    pub last: Option<Termination>,
    pub restart_count: i32,
    pub image_id: Option<String>,
    /// Current back-off step and when the next start may happen.
    pub backoff: Option<Duration>,
    pub backoff_until: Option<DateTime<Utc>>,
    /// The last run ended and the next start is a restart (fresh rootfs, restartCount + 1).
    #[serde(default)]
    pub pending_restart: bool,
    /// Readiness and startup as the probes last decided (not persisted: probes run again).
    #[serde(skip)]
    pub ready: bool,
    #[serde(skip)]
    pub started: bool,
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        matches!(self.run, Run::Running { .. })
    }

    /// The next back-off step after a crash: 10 s, doubling, capped at 5 min; reset when the last
    /// run lasted 10 minutes.
    pub fn next_backoff(&self, ran_for: Option<Duration>) -> Duration {
        match (self.backoff, ran_for) {
            (_, Some(d)) if d >= BACKOFF_RESET_AFTER => BACKOFF_INITIAL,
            (None, _) => BACKOFF_INITIAL,
            (Some(b), _) => (b * 2).min(BACKOFF_MAX),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PodState {
    pub pod_ip: Option<String>,
    pub sandbox_ready: bool,
    pub start_time: Option<DateTime<Utc>>,
    pub init_done: bool,
    pub containers: BTreeMap<String, ContainerState>,
    pub init_containers: BTreeMap<String, ContainerState>,
}

impl PodState {
    pub fn path(pod_dir: &Path) -> PathBuf {
        pod_dir.join(STATE_FILE)
    }

    pub fn load(pod_dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(Self::path(pod_dir)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn save(&self, pod_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(pod_dir)?;
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        edge_runtime::layout::write_atomic(&Self::path(pod_dir), &bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_steps() {
        let mut c = ContainerState::default();
        let mut seen = vec![];
        for _ in 0..7 {
            let b = c.next_backoff(Some(Duration::from_secs(1)));
            seen.push(b.as_secs());
            c.backoff = Some(b);
        }
        assert_eq!(seen, vec![10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(c.next_backoff(Some(Duration::from_secs(601))), BACKOFF_INITIAL);
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PodState { pod_ip: Some("10.42.0.5".into()), ..Default::default() };
        s.containers.insert(
            "app".into(),
            ContainerState {
                run: Run::Running { started_at: Utc::now() },
                restart_count: 2,
                backoff: Some(Duration::from_secs(20)),
                ..Default::default()
            },
        );
        s.save(dir.path()).unwrap();
        let back = PodState::load(dir.path()).unwrap();
        assert_eq!(back.pod_ip, s.pod_ip);
        assert_eq!(back.containers["app"].restart_count, 2);
        assert_eq!(back.containers["app"].run, s.containers["app"].run);
    }
}
