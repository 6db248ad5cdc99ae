//! Printers for batch/v1 Job and CronJob.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::column::{Column, AGE, CONTAINERS, IMAGES, NAME};
use crate::duration::human_duration;
use crate::fields::{
    age, at, container_cells, deleting, int_at, list_at, name, opt_bool, opt_int, opt_str, since, str_at, string,
    time_at,
};
use crate::labels::format_label_selector;
use crate::Printer;

pub(crate) const JOB: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Status", "Status of the job."),
        Column::string("Completions", "The number of pods which reached phase Succeeded."),
        Column::string("Duration", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", "A label query over pods that should match the pod count.").wide(),
    ],
    cells: job_cells,
};

/// Upstream's hasJobCondition: the first condition of that type decides.
fn has_condition(job: &Value, kind: &str) -> bool {
    list_at(job, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == kind)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

fn job_cells(job: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = int_at(job, &["status", "succeeded"]);
    let completions = match opt_int(job, &["spec", "completions"]) {
        Some(total) => format!("{succeeded}/{total}"),
        None => match int_at(job, &["spec", "parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (time_at(job, &["status", "startTime"]), time_at(job, &["status", "completionTime"])) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let status = if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if deleting(job) {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [containers, images] = container_cells(at(job, &["spec", "template", "spec"]).unwrap_or(&Value::Null));
    vec![
        name(job),
        string(status),
        string(completions),
        string(duration),
        age(job, now),
        containers,
        images,
        string(format_label_selector(at(job, &["spec", "selector"]))),
    ]
}

pub(crate) const CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Schedule", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
        Column::string("Timezone", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
        Column::boolean("Suspend", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions."),
        Column::integer("Active", "A list of pointers to currently running jobs."),
        Column::string("Last Schedule", "Information when was the last time the job was successfully scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", "A label query over pods that should match the pod count.").wide(),
    ],
    cells: |cj, now| {
        let last_schedule = match time_at(cj, &["status", "lastScheduleTime"]) {
            Some(t) => since(Some(t), now),
            None => "<none>".to_string(),
        };
        let suspend = match opt_bool(cj, &["spec", "suspend"]) {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let job_spec = at(cj, &["spec", "jobTemplate", "spec"]).unwrap_or(&Value::Null);
        let [containers, images] = container_cells(at(job_spec, &["template", "spec"]).unwrap_or(&Value::Null));
        vec![
            name(cj),
            string(str_at(cj, &["spec", "schedule"])),
            string(opt_str(cj, &["spec", "timeZone"]).unwrap_or("<none>")),
            string(suspend),
            Value::from(list_at(cj, &["status", "active"]).len()),
            string(last_schedule),
            age(cj, now),
            containers,
            images,
            string(format_label_selector(at(job_spec, &["selector"]))),
        ]
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::test_support::{ago, now};
    use serde_json::json;

    fn template() -> Value {
        json!({"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}], "restartPolicy": "Never"}})
    }

    #[test]
    fn jobs() {
        let sel = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}});
        let cases = vec![
            (
                json!({"metadata": {"name": "pi", "creationTimestamp": ago(600)},
                    "spec": {"completions": 1, "parallelism": 1, "selector": sel, "template": template()},
                    "status": {"succeeded": 1, "startTime": ago(600), "completionTime": ago(553),
                               "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}}),
                row![
                    "pi",
                    "Complete",
                    "1/1",
                    "47s",
                    "10m",
                    "pi",
                    "perl:5.34",
                    "batch.kubernetes.io/controller-uid=abc"
                ],
            ),
            (
                json!({"metadata": {"name": "work", "creationTimestamp": ago(200)},
                    "spec": {"parallelism": 3, "template": template()},
                    "status": {"succeeded": 1, "startTime": ago(190), "active": 2}}),
                row!["work", "Running", "1/1 of 3", "3m10s", "3m20s", "pi", "perl:5.34", "<none>"],
            ),
            (
                json!({"metadata": {"name": "fail"}, "spec": {"completions": 5},
                    "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}),
                row!["fail", "Failed", "0/5", "", "<unknown>", "", "", "<none>"],
            ),
            (
                json!({"metadata": {"name": "paused"}, "spec": {"suspend": true},
                    "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}),
                row!["paused", "Suspended", "0/1", "", "<unknown>", "", "", "<none>"],
            ),
            (
                json!({"metadata": {"name": "dying", "deletionTimestamp": ago(1)},
                    "status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}}),
                row!["dying", "Terminating", "0/1", "", "<unknown>", "", "", "<none>"],
            ),
            (
                json!({"metadata": {"name": "target"}, "status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}}),
                row!["target", "FailureTarget", "0/1", "", "<unknown>", "", "", "<none>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(job_cells(&obj, now()), want, "{obj}");
        }
    }

    #[test]
    fn cron_jobs() {
        let cases = vec![
            (
                json!({"metadata": {"name": "hello", "creationTimestamp": ago(3 * 3600)},
                    "spec": {"schedule": "*/1 * * * *", "suspend": false,
                             "jobTemplate": {"spec": {"template": template()}}},
                    "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(42)}}),
                row!["hello", "*/1 * * * *", "<none>", "False", 1, "42s", "3h", "pi", "perl:5.34", "<none>"],
            ),
            (
                json!({"metadata": {"name": "nightly"},
                    "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "suspend": true}}),
                row!["nightly", "0 3 * * *", "Europe/Berlin", "True", 0, "<none>", "<unknown>", "", "", "<none>"],
            ),
            (
                json!({"metadata": {"name": "bare"}, "spec": {"schedule": "@hourly"}}),
                row!["bare", "@hourly", "<none>", "<unset>", 0, "<none>", "<unknown>", "", "", "<none>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!((CRON_JOB.cells)(&obj, now()), want, "{obj}");
        }
    }
}
