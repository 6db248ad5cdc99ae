//! The pod status the kubelet would write, computed from the pod spec and [`PodState`] (pure, so
//! tested with tables): phase, conditions, container statuses, IPs, start time, QoS class.

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use super::container::qos_class;
use super::state::{ContainerState, PodState, Run, Termination};

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn container_id(pod_uid: &str, name: &str) -> String {
    format!("edge://{pod_uid}-{name}")
}

fn terminated_json(t: &Termination, id: &str) -> Value {
    let mut v = json!({
        "exitCode": t.exit_code, "reason": t.reason, "finishedAt": ts(&t.finished_at), "containerID": id,
    });
    if let Some(s) = &t.started_at {
        v["startedAt"] = json!(ts(s));
    }
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    v
}

fn container_status(pod_uid: &str, c: &Container, st: Option<&ContainerState>) -> Value {
    let default = ContainerState::default();
    let st = st.unwrap_or(&default);
    let id = container_id(pod_uid, &c.name);
    let state = match &st.run {
        Run::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
        Run::Running { started_at } => json!({"running": {"startedAt": ts(started_at)}}),
        Run::Terminated(t) => json!({"terminated": terminated_json(t, &id)}),
    };
    let last = st.last.as_ref().map_or(json!({}), |t| json!({"terminated": terminated_json(t, &id)}));
    let mut v = json!({
        "name": c.name,
        "state": state,
        "lastState": last,
        "ready": st.is_running() && st.ready,
        "restartCount": st.restart_count,
        "image": c.image.clone().unwrap_or_default(),
        "imageID": st.image_id.clone().unwrap_or_default(),
        "started": st.is_running() && st.started,
    });
    if !matches!(st.run, Run::Waiting { .. }) || st.last.is_some() {
        v["containerID"] = json!(id);
    }
    v
}

/// Upstream's getPhase for the regular containers (init containers are handled by the caller).
pub fn phase(pod: &Pod, st: &PodState) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else { return "Pending" };
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if !st.init_done {
        let failed_init = spec.init_containers.iter().flatten().any(
            |c| matches!(st.init_containers.get(&c.name).map(|s| &s.run), Some(Run::Terminated(t)) if t.exit_code != 0),
        );
        return if failed_init && policy == "Never" { "Failed" } else { "Pending" };
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &spec.containers {
        match st.containers.get(&c.name) {
            None => waiting += 1,
            Some(cs) => match &cs.run {
                Run::Running { .. } => running += 1,
                Run::Terminated(t) => {
                    stopped += 1;
                    if t.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                Run::Waiting { .. } if cs.last.is_some() => stopped += 1,
                Run::Waiting { .. } => waiting += 1,
            },
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    match policy {
        "Always" => "Running",
        "OnFailure" if succeeded < stopped => "Running",
        _ if succeeded == stopped => "Succeeded",
        _ => "Failed",
    }
}

fn condition(old: &Pod, typ: &str, ok: bool, reason: Option<&str>, now: DateTime<Utc>) -> Value {
    let status = if ok { "True" } else { "False" };
    let prev = old
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == typ && c.status == status))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let mut v = json!({"type": typ, "status": status, "lastProbeTime": null,
                       "lastTransitionTime": ts(&prev.unwrap_or(now))});
    if let Some(r) = reason {
        v["reason"] = json!(r);
    }
    v
}

/// The status subresource body (conditions merge by type under a strategic merge patch, keeping
/// PodScheduled from the scheduler).
pub fn pod_status(pod: &Pod, st: &PodState, host_ip: &str, now: DateTime<Utc>) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let phase = phase(pod, st);
    let statuses: Vec<Value> =
        spec.containers.iter().map(|c| container_status(uid, c, st.containers.get(&c.name))).collect();
    let init_statuses: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(uid, c, st.init_containers.get(&c.name)))
        .collect();
    let all_ready =
        spec.containers.iter().all(|c| st.containers.get(&c.name).is_some_and(|s| s.is_running() && s.ready));
    let not_ready: Vec<&str> = spec
        .containers
        .iter()
        .filter(|c| !st.containers.get(&c.name).is_some_and(|s| s.is_running() && s.ready))
        .map(|c| c.name.as_str())
        .collect();
    let terminal = phase == "Succeeded" || phase == "Failed";
    let ready_reason = if terminal {
        Some("PodCompleted")
    } else if all_ready {
        None
    } else {
        Some("ContainersNotReady")
    };
    let mut ready = condition(pod, "Ready", all_ready && !terminal, ready_reason, now);
    let mut containers_ready = condition(pod, "ContainersReady", all_ready && !terminal, ready_reason, now);
    if !all_ready && !terminal {
        let msg = format!("containers with unready status: [{}]", not_ready.join(" "));
        ready["message"] = json!(msg);
        containers_ready["message"] = json!(msg);
    }
    let initialized =
        condition(pod, "Initialized", st.init_done, (!st.init_done).then_some("ContainersNotInitialized"), now);
    let sandbox = condition(pod, "PodReadyToStartContainers", st.sandbox_ready && !terminal, None, now);
    let mut conditions = vec![sandbox, initialized, ready, containers_ready];
    if let Some(scheduled) = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
    {
        conditions.push(serde_json::to_value(scheduled).unwrap_or(Value::Null));
    }
    let mut v = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "containerStatuses": statuses,
        "qosClass": qos_class(pod),
    });
    if !init_statuses.is_empty() {
        v["initContainerStatuses"] = json!(init_statuses);
    }
    if let Some(ip) = &st.pod_ip {
        v["podIP"] = json!(ip);
        v["podIPs"] = json!([{"ip": ip}]);
    }
    if let Some(t) = &st.start_time {
        v["startTime"] = json!(ts(t));
    }
    v
}

/// Whether the pod's stored status already says what `desired` says (so no write is needed).
pub fn unchanged(pod: &Pod, desired: &Value) -> bool {
    let Some(old) = pod.status.as_ref().and_then(|s| serde_json::to_value(s).ok()) else { return false };
    let Some(d) = desired.as_object() else { return false };
    d.iter().all(|(k, v)| {
        let o = &old[k];
        match k.as_str() {
            // Conditions: compare as a set by type (the server may order them differently).
            "conditions" => {
                let norm = |x: &Value| {
                    let mut cs: Vec<Value> = x
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|mut c| {
                            if let Some(m) = c.as_object_mut() {
                                m.retain(|_, v| !v.is_null());
                            }
                            c
                        })
                        .collect();
                    cs.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
                    cs
                };
                norm(o) == norm(v)
            }
            _ => strip_nulls(o) == strip_nulls(v),
        }
    })
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null() && *v != &json!({}))
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pods::state::ContainerState;

    fn pod(policy: &str, names: &[&str]) -> Pod {
        let cs: Vec<Value> = names.iter().map(|n| json!({"name": n, "image": "busybox"})).collect();
        serde_json::from_value(
            json!({"metadata": {"name": "p", "uid": "u1"}, "spec": {"restartPolicy": policy, "containers": cs}}),
        )
        .unwrap()
    }

    fn term(code: i32) -> Run {
        Run::Terminated(Termination {
            exit_code: code,
            reason: if code == 0 { "Completed".into() } else { "Error".into() },
            started_at: None,
            finished_at: Utc::now(),
            message: None,
        })
    }

    fn state(runs: &[(&str, Run, bool)]) -> PodState {
        let mut s = PodState { init_done: true, sandbox_ready: true, ..Default::default() };
        for (n, r, has_last) in runs {
            let last = has_last.then(|| Termination {
                exit_code: 1,
                reason: "Error".into(),
                started_at: None,
                finished_at: Utc::now(),
                message: None,
            });
            s.containers.insert(n.to_string(), ContainerState { run: r.clone(), last, ..Default::default() });
        }
        s
    }

    #[test]
    fn phases() {
        let running = Run::Running { started_at: Utc::now() };
        let backoff = Run::Waiting { reason: "CrashLoopBackOff".into(), message: None };
        let cases = [
            ("Always", vec![("a", Run::default(), false)], "Pending"),
            ("Always", vec![("a", running.clone(), false)], "Running"),
            ("Always", vec![("a", backoff.clone(), true)], "Running"),
            ("Never", vec![("a", term(0), false)], "Succeeded"),
            ("Never", vec![("a", term(2), false)], "Failed"),
            ("OnFailure", vec![("a", term(0), false)], "Succeeded"),
            ("OnFailure", vec![("a", backoff, true)], "Running"),
            ("Never", vec![("a", term(0), false), ("b", running, false)], "Running"),
            ("Never", vec![("a", term(0), false), ("b", term(1), false)], "Failed"),
        ];
        for (policy, runs, want) in cases {
            let names: Vec<&str> = runs.iter().map(|r| r.0).collect();
            assert_eq!(phase(&pod(policy, &names), &state(&runs)), want, "{policy} {runs:?}");
        }
        let mut s = state(&[("a", Run::default(), false)]);
        s.init_done = false;
        assert_eq!(phase(&pod("Always", &["a"]), &s), "Pending");
    }

    #[test]
    fn status_document() {
        let p = pod("Always", &["a"]);
        let mut s = state(&[("a", Run::Running { started_at: Utc::now() }, true)]);
        s.pod_ip = Some("10.42.0.9".into());
        s.containers.get_mut("a").unwrap().ready = true;
        s.containers.get_mut("a").unwrap().started = true;
        s.containers.get_mut("a").unwrap().restart_count = 1;
        let v = pod_status(&p, &s, "10.0.0.5", Utc::now());
        assert_eq!(v["phase"], "Running");
        assert_eq!(v["podIP"], "10.42.0.9");
        assert_eq!(v["qosClass"], "BestEffort");
        let cs = &v["containerStatuses"][0];
        assert_eq!(cs["ready"], true);
        assert_eq!(cs["restartCount"], 1);
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(cs["containerID"], "edge://u1-a");
        let ready = v["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");

        // Written back, the same status is recognised as unchanged; a readiness change is not.
        let mut stored = p.clone();
        stored.status = Some(serde_json::from_value(v.clone()).unwrap());
        assert!(unchanged(&stored, &pod_status(&stored, &s, "10.0.0.5", Utc::now())));
        s.containers.get_mut("a").unwrap().ready = false;
        let v2 = pod_status(&stored, &s, "10.0.0.5", Utc::now());
        assert!(!unchanged(&stored, &v2));
        let ready = v2["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["message"], "containers with unready status: [a]");
    }
}
