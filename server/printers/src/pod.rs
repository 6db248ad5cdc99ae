//! The Pod printer: READY, STATUS and RESTARTS as upstream's printPod derives them from
//! container statuses, init containers (including restartable sidecars) and deletion.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::column::{Column, AGE, NAME};
use crate::fields::{age, bool_at, deleting, int_at, list_at, name, object, opt_bool, since, str_at, string, time_at};
use crate::Printer;

pub(crate) const PRINTER: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        Column::string("Status", "The aggregate status of the containers in this pod."),
        Column::string("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        AGE,
        Column::string("IP", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.").wide(),
        Column::string("Node", "NodeName indicates in which node this pod is scheduled.").wide(),
        Column::string("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.").wide(),
        Column::string("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.").wide(),
    ],
    cells,
};

/// The reason a pod whose node is lost gets when it is deleted (NodeUnreachablePodReason).
const NODE_LOST: &str = "NodeLost";

fn condition_true(pod: &Value, kind: &str) -> bool {
    list_at(pod, &["status", "conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == kind && str_at(c, &["status"]) == "True")
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    a.max(b)
}

/// When the container last terminated, if its previous run is recorded.
fn last_terminated(status: &Value) -> Option<DateTime<Utc>> {
    object(status, &["lastState", "terminated"]).and_then(|t| time_at(t, &["finishedAt"]))
}

/// "Signal:9" / "ExitCode:1" for a terminated state without a reason.
fn exit_reason(terminated: &Value) -> String {
    match int_at(terminated, &["signal"]) {
        0 => format!("ExitCode:{}", int_at(terminated, &["exitCode"])),
        signal => format!("Signal:{signal}"),
    }
}

fn cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = list_at(pod, &["spec", "initContainers"]);
    // Sidecars (init containers with restartPolicy Always) count as regular containers.
    let restartable: HashSet<&str> =
        init_specs.iter().filter(|c| str_at(c, &["restartPolicy"]) == "Always").map(|c| str_at(c, &["name"])).collect();
    let total = list_at(pod, &["spec", "containers"]).len()
        + init_specs.iter().filter(|c| str_at(c, &["restartPolicy"]) == "Always").count();

    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = match str_at(pod, &["status", "reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if list_at(pod, &["status", "conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let mut restarts = 0;
    let mut restartable_restarts = 0;
    let mut ready = 0;
    let mut last_restart = None;
    let mut last_restartable_restart = None;
    let mut initializing = false;
    for (i, status) in list_at(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
        let count = int_at(status, &["restartCount"]);
        restarts += count;
        last_restart = later(last_restart, last_terminated(status));
        let is_restartable = restartable.contains(str_at(status, &["name"]));
        if is_restartable {
            restartable_restarts += count;
            last_restartable_restart = later(last_restartable_restart, last_terminated(status));
        }
        let terminated = object(status, &["state", "terminated"]);
        let waiting_reason = object(status, &["state", "waiting"]).map(|w| str_at(w, &["reason"]));
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if is_restartable && opt_bool(status, &["started"]) == Some(true) {
            if bool_at(status, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match str_at(t, &["reason"]) {
                "" => format!("Init:{}", exit_reason(t)),
                r => format!("Init:{r}"),
            }
        } else if let Some(r) = waiting_reason.filter(|r| !r.is_empty() && *r != "PodInitializing") {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        // The first container's state wins, so walk them last to first.
        for status in list_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int_at(status, &["restartCount"]);
            last_restart = later(last_restart, last_terminated(status));
            let waiting_reason = object(status, &["state", "waiting"]).map_or("", |w| str_at(w, &["reason"]));
            let terminated = object(status, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match str_at(t, &["reason"]) {
                    "" => exit_reason(t),
                    r => r.to_string(),
                };
            } else if bool_at(status, &["ready"]) && object(status, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A container that is still running keeps a pod with a completed container Running.
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") { "Running" } else { "NotReady" }.to_string();
        }
    }

    if deleting(pod) && str_at(pod, &["status", "reason"]) == NODE_LOST {
        reason = "Unknown".to_string();
    } else if deleting(pod) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    vec![
        name(pod),
        string(format!("{ready}/{total}")),
        string(reason),
        string(restarts_cell),
        age(pod, now),
        string(or_none(pod_ip(pod))),
        string(or_none(str_at(pod, &["spec", "nodeName"]))),
        string(or_none(str_at(pod, &["status", "nominatedNodeName"]))),
        string(readiness_gates(pod)),
    ]
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "<none>"
    } else {
        s
    }
}

/// status.podIP is authoritative when set (as in upstream's v1 conversion), else podIPs[0].
fn pod_ip(pod: &Value) -> &str {
    match str_at(pod, &["status", "podIP"]) {
        "" => list_at(pod, &["status", "podIPs"]).first().map_or("", |ip| str_at(ip, &["ip"])),
        ip => ip,
    }
}

/// "true/total" over spec.readinessGates, or "<none>" without gates.
fn readiness_gates(pod: &Value) -> String {
    let gates = list_at(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = list_at(pod, &["status", "conditions"]);
    let passing = gates
        .iter()
        .filter(|gate| {
            let kind = str_at(gate, &["conditionType"]);
            conditions.iter().find(|c| str_at(c, &["type"]) == kind).is_some_and(|c| str_at(c, &["status"]) == "True")
        })
        .count();
    format!("{passing}/{}", gates.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::test_support::{ago, now};
    use serde_json::json;

    fn containers(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!({"name": format!("c{i}"), "image": "busybox"})).collect()
    }

    fn running(ready: bool, restarts: i64) -> Value {
        json!({"ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": ago(100)}}})
    }

    fn pod(name: &str, n: usize, status: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"containers": containers(n)}, "status": status})
    }

    /// The first five cells (NAME READY STATUS RESTARTS AGE); cases follow upstream's TestPrintPod.
    #[test]
    fn status_ready_and_restarts() {
        let cases = vec![
            (
                pod(
                    "test1",
                    2,
                    json!({"phase": "podPhase", "containerStatuses": [running(true, 3), {"restartCount": 3}]}),
                ),
                row!["test1", "1/2", "podPhase", "6", "<unknown>"],
            ),
            (
                pod(
                    "test2",
                    2,
                    json!({"phase": "podPhase", "containerStatuses": [running(true, 3),
                {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3}]}),
                ),
                row!["test2", "1/2", "ContainerWaitingReason", "6", "<unknown>"],
            ),
            (
                pod(
                    "test3",
                    2,
                    json!({"phase": "podPhase", "containerStatuses": [
                {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3},
                {"state": {"terminated": {"reason": "ContainerTerminatedReason"}}, "restartCount": 3}]}),
                ),
                row!["test3", "0/2", "ContainerWaitingReason", "6", "<unknown>"],
            ),
            (
                pod(
                    "test4",
                    2,
                    json!({"phase": "podPhase", "containerStatuses": [running(true, 3), {"ready": true, "restartCount": 3}]}),
                ),
                row!["test4", "1/2", "podPhase", "6", "<unknown>"],
            ),
            (
                pod(
                    "test5",
                    2,
                    json!({"phase": "podPhase", "reason": "podReason", "containerStatuses": [running(true, 3), {"ready": true, "restartCount": 3}]}),
                ),
                row!["test5", "1/2", "podReason", "6", "<unknown>"],
            ),
            (
                pod(
                    "test6",
                    2,
                    json!({"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 3, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}, running(true, 3)]}),
                ),
                row!["test6", "1/2", "NotReady", "6", "<unknown>"],
            ),
            (
                pod(
                    "test6",
                    2,
                    json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
                {"ready": true, "restartCount": 3, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}, running(true, 3)]}),
                ),
                row!["test6", "1/2", "Running", "6", "<unknown>"],
            ),
            (
                pod(
                    "test12",
                    1,
                    json!({"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 3, "state": {"running": {}}, "lastState": {"terminated": {"finishedAt": ago(5 * 86400)}}}]}),
                ),
                row!["test12", "1/1", "Running", "3 (5d ago)", "<unknown>"],
            ),
            (
                pod(
                    "test14",
                    2,
                    json!({"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 6, "state": {"running": {}}, "lastState": {"terminated": {"finishedAt": ago(5 * 86400)}}},
                {"ready": true, "restartCount": 3, "state": {"running": {}}, "lastState": {"terminated": {"finishedAt": ago(20 * 86400)}}}]}),
                ),
                row!["test14", "2/2", "Running", "9 (5d ago)", "<unknown>"],
            ),
            (
                pod(
                    "test15",
                    2,
                    json!({"phase": "podPhase", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                ),
                row!["test15", "0/2", "SchedulingGated", "0", "<unknown>"],
            ),
            (
                pod(
                    "test16",
                    1,
                    json!({"phase": "Succeeded", "containerStatuses": [
                {"ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}),
                ),
                row!["test16", "0/1", "Completed", "0", "<unknown>"],
            ),
            (
                pod(
                    "test17",
                    1,
                    json!({"phase": "Failed", "containerStatuses": [
                {"state": {"terminated": {"reason": "Error", "exitCode": 1}}}]}),
                ),
                row!["test17", "0/1", "Error", "0", "<unknown>"],
            ),
            (
                pod(
                    "crash",
                    1,
                    json!({"phase": "Running", "containerStatuses": [
                {"ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(75)}}}]}),
                ),
                row!["crash", "0/1", "CrashLoopBackOff", "4 (75s ago)", "<unknown>"],
            ),
            (
                pod(
                    "killed",
                    1,
                    json!({"phase": "Running", "containerStatuses": [{"state": {"terminated": {"signal": 9, "exitCode": 137}}}]}),
                ),
                row!["killed", "0/1", "Signal:9", "0", "<unknown>"],
            ),
            (
                pod(
                    "exited",
                    1,
                    json!({"phase": "Running", "containerStatuses": [{"state": {"terminated": {"exitCode": 2}}}]}),
                ),
                row!["exited", "0/1", "ExitCode:2", "0", "<unknown>"],
            ),
            (
                pod(
                    "pending",
                    1,
                    json!({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}),
                ),
                row!["pending", "0/1", "ContainerCreating", "0", "<unknown>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(&cells(&obj, now())[..5], &want[..], "{obj}");
        }
    }

    fn init_pod(name: &str, n_init: usize, status: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"initContainers": containers(n_init), "containers": containers(1)}, "status": status})
    }

    #[test]
    fn init_containers() {
        let restarting = json!({"ready": false, "restartCount": 3, "state": {"running": {}},
                                "lastState": {"terminated": {"finishedAt": ago(10)}}});
        let waiting_main = json!([{"ready": false, "restartCount": 0, "state": {"waiting": {}}}]);
        let cases = vec![
            (
                init_pod(
                    "test7",
                    1,
                    json!({"phase": "podPhase", "initContainerStatuses": [restarting], "containerStatuses": waiting_main}),
                ),
                row!["test7", "0/1", "Init:0/1", "3 (10s ago)", "<unknown>"],
            ),
            (
                init_pod(
                    "test8",
                    2,
                    json!({"phase": "podPhase", "initContainerStatuses": [restarting, {"state": {"waiting": {}}}],
                "containerStatuses": waiting_main}),
                ),
                row!["test8", "0/1", "Init:0/2", "3 (10s ago)", "<unknown>"],
            ),
            (
                init_pod(
                    "test9",
                    2,
                    json!({"phase": "podPhase", "initContainerStatuses": [{"state": {"terminated": {}}}, restarting],
                "containerStatuses": waiting_main}),
                ),
                row!["test9", "0/1", "Init:1/2", "3 (10s ago)", "<unknown>"],
            ),
            (
                init_pod(
                    "test10",
                    2,
                    json!({"phase": "podPhase", "initContainerStatuses": [
                {"restartCount": 2, "state": {"terminated": {}}, "lastState": {"terminated": {"finishedAt": ago(120)}}}, restarting],
                "containerStatuses": waiting_main}),
                ),
                row!["test10", "0/1", "Init:1/2", "5 (10s ago)", "<unknown>"],
            ),
            (
                init_pod(
                    "test11",
                    1,
                    json!({"phase": "Running", "initContainerStatuses": [
                {"restartCount": 2, "state": {"terminated": {}}, "lastState": {"terminated": {"finishedAt": ago(120)}}}],
                "containerStatuses": [{"restartCount": 4, "state": {"running": {}}, "lastState": {"terminated": {"finishedAt": ago(20)}}}]}),
                ),
                row!["test11", "0/1", "Running", "4 (20s ago)", "<unknown>"],
            ),
            (
                init_pod(
                    "initcrash",
                    1,
                    json!({"phase": "Pending", "initContainerStatuses": [
                {"restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                ),
                row!["initcrash", "0/1", "Init:CrashLoopBackOff", "1", "<unknown>"],
            ),
            (
                init_pod(
                    "initerr",
                    1,
                    json!({"phase": "Pending", "initContainerStatuses": [
                {"state": {"terminated": {"reason": "Error", "exitCode": 1}}}]}),
                ),
                row!["initerr", "0/1", "Init:Error", "0", "<unknown>"],
            ),
            (
                init_pod(
                    "initexit",
                    1,
                    json!({"phase": "Pending", "initContainerStatuses": [{"state": {"terminated": {"exitCode": 3}}}]}),
                ),
                row!["initexit", "0/1", "Init:ExitCode:3", "0", "<unknown>"],
            ),
            (
                init_pod(
                    "initsig",
                    1,
                    json!({"phase": "Pending", "initContainerStatuses": [{"state": {"terminated": {"exitCode": 3, "signal": 15}}}]}),
                ),
                row!["initsig", "0/1", "Init:Signal:15", "0", "<unknown>"],
            ),
            (
                init_pod(
                    "podinit",
                    1,
                    json!({"phase": "Pending", "initContainerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]}),
                ),
                row!["podinit", "0/1", "Init:0/1", "0", "<unknown>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(&cells(&obj, now())[..5], &want[..], "{obj}");
        }
    }

    #[test]
    fn sidecars_count_as_containers() {
        let obj = json!({
            "metadata": {"name": "sidecar"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}, {"name": "setup"}], "containers": containers(1)},
            "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "proxy", "ready": true, "started": true, "restartCount": 2, "state": {"running": {}},
                     "lastState": {"terminated": {"finishedAt": ago(30)}}},
                    {"name": "setup", "restartCount": 5, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                     "lastState": {"terminated": {"finishedAt": ago(5)}}}],
                "containerStatuses": [running(true, 1)]}
        });
        // The completed plain init container's restarts no longer count once the pod is initialized.
        assert_eq!(&cells(&obj, now())[..4], &row!["sidecar", "2/2", "Running", "3 (30s ago)"][..]);
    }

    #[test]
    fn deletion_and_wide_columns() {
        let deleting = json!({
            "metadata": {"name": "web-0", "creationTimestamp": ago(400), "deletionTimestamp": ago(3)},
            "spec": {"containers": containers(1), "nodeName": "edge-1",
                     "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]},
            "status": {"phase": "Running", "podIP": "10.42.0.7", "podIPs": [{"ip": "10.42.0.7"}, {"ip": "fd00::7"}],
                       "conditions": [{"type": "example.com/lb", "status": "True"}, {"type": "example.com/dns", "status": "False"}],
                       "containerStatuses": [running(true, 0)]}
        });
        assert_eq!(
            cells(&deleting, now()),
            row!["web-0", "1/1", "Terminating", "0", "6m40s", "10.42.0.7", "edge-1", "<none>", "1/2"]
        );

        let lost = json!({"metadata": {"name": "lost", "deletionTimestamp": ago(3)},
                          "status": {"phase": "Running", "reason": "NodeLost", "podIPs": [{"ip": "fd00::8"}], "nominatedNodeName": "edge-2"}});
        assert_eq!(
            cells(&lost, now()),
            row!["lost", "0/0", "Unknown", "0", "<unknown>", "fd00::8", "<none>", "edge-2", "<none>"]
        );

        let finished =
            json!({"metadata": {"name": "done", "deletionTimestamp": ago(3)}, "status": {"phase": "Succeeded"}});
        assert_eq!(cells(&finished, now())[2], json!("Succeeded"));
    }
}
