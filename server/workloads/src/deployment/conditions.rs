//! Deployment conditions with upstream's update rules (`SetDeploymentCondition`): a condition
//! with the same status and reason is left alone; a status that does not change keeps its
//! lastTransitionTime.

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

pub fn new(type_: &str, status: &str, reason: &str, message: String, now: DateTime<Utc>) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn get<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

pub fn remove(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
        if c.is_empty() {
            status.conditions = None;
        }
    }
}

pub fn set(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(current) = get(status, &cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != cond.type_);
    conditions.push(cond);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn set_keeps_transition_time_and_ignores_repeats() {
        let t0 = Utc::now();
        let t1 = t0 + Duration::seconds(10);
        let mut s = DeploymentStatus::default();
        set(&mut s, new(PROGRESSING, "True", NEW_RS_CREATED, "a".into(), t0));
        set(&mut s, new(PROGRESSING, "True", NEW_RS_CREATED, "b".into(), t1));
        assert_eq!(get(&s, PROGRESSING).unwrap().message.as_deref(), Some("a"));
        set(&mut s, new(PROGRESSING, "True", NEW_RS_AVAILABLE, "c".into(), t1));
        let c = get(&s, PROGRESSING).unwrap();
        assert_eq!((c.last_transition_time.clone(), c.last_update_time.clone()), (Some(Time(t0)), Some(Time(t1))));
        set(&mut s, new(PROGRESSING, "False", TIMED_OUT, "d".into(), t1));
        assert_eq!(get(&s, PROGRESSING).unwrap().last_transition_time, Some(Time(t1)));
        remove(&mut s, PROGRESSING);
        assert!(s.conditions.is_none());
    }
}
