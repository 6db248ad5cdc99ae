//! The core/v1 Event printer (LAST SEEN TYPE REASON OBJECT MESSAGE, plus the wide columns).
//! Upstream's Event table is the one whose Name column is not first: it comes last, wide only.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::column::{Column, NAME};
use crate::fields::{int_at, name, object, since, str_at, string, time_at};
use crate::Printer;

pub(crate) const PRINTER: Printer = Printer {
    columns: &[
        Column::string("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
        Column::string("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
        Column::string("Reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        Column::string("Object", "The object that this event is about."),
        Column::string("Subobject", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].").wide(),
        Column::string("Source", "The component reporting this event. Should be a short machine understandable string.").wide(),
        Column::string("Message", "A human-readable description of the status of this operation."),
        Column::string("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)").wide(),
        Column::string("Count", "The number of times this event has occurred.").wide(),
        Column { priority: 1, ..NAME },
    ],
    cells,
};

fn cells(event: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Events from events.k8s.io carry eventTime/series instead of the legacy timestamps.
    let first_seen = match time_at(event, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(event, &["eventTime"]), now),
    };
    let mut last_seen = match time_at(event, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = int_at(event, &["count"]);
    if let Some(series) = object(event, &["series"]) {
        last_seen = since(time_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        // Singleton events of the new API have no count.
        count = 1;
    }

    let kind = str_at(event, &["involvedObject", "kind"]).to_lowercase();
    let target = match str_at(event, &["involvedObject", "name"]) {
        "" => kind,
        object_name => format!("{kind}/{object_name}"),
    };

    vec![
        string(last_seen),
        string(str_at(event, &["type"])),
        string(str_at(event, &["reason"])),
        string(target),
        string(str_at(event, &["involvedObject", "fieldPath"])),
        string(event_source(event)),
        string(str_at(event, &["message"]).trim()),
        string(first_seen),
        Value::from(count),
        name(event),
    ]
}

/// "component, host", falling back to reportingController / reportingInstance.
fn event_source(event: &Value) -> String {
    let first_non_empty = |a: &'static [&'static str], b: &'static str| match str_at(event, a) {
        "" => str_at(event, &[b]),
        s => s,
    };
    let component = first_non_empty(&["source", "component"], "reportingController");
    match first_non_empty(&["source", "host"], "reportingInstance") {
        "" => component.to_string(),
        instance => format!("{component}, {instance}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::test_support::{ago, now};
    use serde_json::json;

    #[test]
    fn events_print_like_upstream() {
        let cases = vec![
            (
                json!({"metadata": {"name": "web-0.17c1"}, "type": "Normal", "reason": "Scheduled",
                    "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default"},
                    "message": "Successfully assigned default/web-0 to edge-1\n",
                    "source": {"component": "default-scheduler"},
                    "firstTimestamp": ago(600), "lastTimestamp": ago(65), "count": 4}),
                row![
                    "65s",
                    "Normal",
                    "Scheduled",
                    "pod/web-0",
                    "",
                    "default-scheduler",
                    "Successfully assigned default/web-0 to edge-1",
                    "10m",
                    4,
                    "web-0.17c1"
                ],
            ),
            (
                json!({"metadata": {"name": "e2"}, "type": "Warning", "reason": "BackOff",
                    "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
                    "message": "Back-off restarting failed container",
                    "source": {"component": "kubelet", "host": "edge-2"},
                    "firstTimestamp": ago(3 * 3600)}),
                row![
                    "3h",
                    "Warning",
                    "BackOff",
                    "pod/web-1",
                    "spec.containers{web}",
                    "kubelet, edge-2",
                    "Back-off restarting failed container",
                    "3h",
                    1,
                    "e2"
                ],
            ),
            (
                json!({"metadata": {"name": "e3"}, "type": "Normal", "reason": "LeaderElection",
                    "involvedObject": {"kind": "Lease"},
                    "eventTime": "2024-05-01T11:59:50.123456Z",
                    "reportingController": "edge-controller", "reportingInstance": "edge-1",
                    "series": {"count": 7, "lastObservedTime": "2024-05-01T11:59:58.000000Z"}}),
                row!["2s", "Normal", "LeaderElection", "lease", "", "edge-controller, edge-1", "", "9s", 7, "e3"],
            ),
            (json!({"metadata": {"name": "e4"}}), row!["<unknown>", "", "", "", "", "", "", "<unknown>", 1, "e4"]),
        ];
        for (obj, want) in cases {
            assert_eq!(cells(&obj, now()), want, "{obj}");
        }
    }
}
