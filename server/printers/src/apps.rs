//! Printers for the apps/v1 workloads: Deployment, ReplicaSet, DaemonSet and StatefulSet.

use serde_json::Value;

use crate::column::{Column, AGE, CONTAINERS, IMAGES, NAME};
use crate::fields::{age, at, container_cells, int_at, map_at, name, string};
use crate::labels::{format_label_selector, format_labels, selector_string};
use crate::Printer;

const TEMPLATE_SPEC: &[&str] = &["spec", "template", "spec"];

fn template_containers(obj: &Value) -> [Value; 2] {
    container_cells(at(obj, TEMPLATE_SPEC).unwrap_or(&Value::Null))
}

pub(crate) const DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Ready", "Number of the pod with ready state"),
        Column::string("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
        Column::string("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.").wide(),
    ],
    cells: |d, now| {
        let [containers, images] = template_containers(d);
        // Deployments print the selector bare (no "<none>"), and "<invalid>" when it cannot parse.
        let selector = selector_string(at(d, &["spec", "selector"])).unwrap_or_else(|_| "<invalid>".to_string());
        vec![
            name(d),
            string(format!("{}/{}", int_at(d, &["status", "readyReplicas"]), int_at(d, &["spec", "replicas"]))),
            Value::from(int_at(d, &["status", "updatedReplicas"])),
            Value::from(int_at(d, &["status", "availableReplicas"])),
            age(d, now),
            containers,
            images,
            string(selector),
        ]
    },
};

pub(crate) const REPLICA_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::integer("Desired", "Replicas is the number of desired replicas."),
        Column::integer("Current", "Replicas is the most recently observed number of replicas."),
        Column::integer("Ready", "The number of ready replicas for this replica set."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", "Selector is a label query over pods that should match the replica count.").wide(),
    ],
    cells: |rs, now| {
        let [containers, images] = template_containers(rs);
        vec![
            name(rs),
            Value::from(int_at(rs, &["spec", "replicas"])),
            Value::from(int_at(rs, &["status", "replicas"])),
            Value::from(int_at(rs, &["status", "readyReplicas"])),
            age(rs, now),
            containers,
            images,
            string(format_label_selector(at(rs, &["spec", "selector"]))),
        ]
    },
};

pub(crate) const DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::integer("Desired", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
        Column::integer("Current", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
        Column::integer("Ready", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
        Column::integer("Up-to-date", "The total number of nodes that are running updated daemon pod"),
        Column::integer("Available", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
        Column::string("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", "A label query over pods that are managed by the daemon set.").wide(),
    ],
    cells: |ds, now| {
        let [containers, images] = template_containers(ds);
        let status = |field: &str| Value::from(int_at(ds, &["status", field]));
        vec![
            name(ds),
            status("desiredNumberScheduled"),
            status("currentNumberScheduled"),
            status("numberReady"),
            status("updatedNumberScheduled"),
            status("numberAvailable"),
            string(format_labels(map_at(ds, &["spec", "template", "spec", "nodeSelector"]))),
            age(ds, now),
            containers,
            images,
            string(format_label_selector(at(ds, &["spec", "selector"]))),
        ]
    },
};

pub(crate) const STATEFUL_SET: Printer = Printer {
    columns: &[NAME, Column::string("Ready", "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES],
    cells: |sts, now| {
        let [containers, images] = template_containers(sts);
        vec![
            name(sts),
            string(format!("{}/{}", int_at(sts, &["status", "readyReplicas"]), int_at(sts, &["spec", "replicas"]))),
            age(sts, now),
            containers,
            images,
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
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "nginx", "image": "nginx:1.7.9"}, {"name": "log", "image": "busybox"}]}})
    }

    #[test]
    fn deployments() {
        let cases = vec![
            (
                json!({"metadata": {"name": "web", "creationTimestamp": ago(300)},
                    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
                    "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
                row!["web", "2/3", 3, 2, "5m", "nginx,log", "nginx:1.7.9,busybox", "app=web"],
            ),
            (
                json!({"metadata": {"name": "empty"}, "spec": {"selector": {}}}),
                row!["empty", "0/0", 0, 0, "<unknown>", "", "", ""],
            ),
            (
                json!({"metadata": {"name": "bad"}, "spec": {"replicas": 1,
                    "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}}}),
                row!["bad", "0/1", 0, 0, "<unknown>", "", "", "<invalid>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!((DEPLOYMENT.cells)(&obj, now()), want, "{obj}");
        }
    }

    #[test]
    fn replica_sets_daemon_sets_stateful_sets() {
        let rs = json!({"metadata": {"name": "web-5d9f", "creationTimestamp": ago(7200)},
                        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d9f"}}, "template": template()},
                        "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            (REPLICA_SET.cells)(&rs, now()),
            row!["web-5d9f", 2, 2, 1, "120m", "nginx,log", "nginx:1.7.9,busybox", "app=web,pod-template-hash=5d9f"]
        );
        assert_eq!(
            (REPLICA_SET.cells)(&json!({"metadata": {"name": "x"}}), now()),
            row!["x", 0, 0, 0, "<unknown>", "", "", "<none>"]
        );

        let mut ds_template = template();
        ds_template["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        let ds = json!({"metadata": {"name": "flannel", "creationTimestamp": ago(86400)},
                        "spec": {"selector": {"matchLabels": {"app": "flannel"}}, "template": ds_template},
                        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                                   "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert_eq!(
            (DAEMON_SET.cells)(&ds, now()),
            row![
                "flannel",
                3,
                3,
                2,
                3,
                2,
                "kubernetes.io/os=linux",
                "24h",
                "nginx,log",
                "nginx:1.7.9,busybox",
                "app=flannel"
            ]
        );

        let sts = json!({"metadata": {"name": "db", "creationTimestamp": ago(45)},
                         "spec": {"replicas": 3, "template": template()}, "status": {"readyReplicas": 1}});
        assert_eq!((STATEFUL_SET.cells)(&sts, now()), row!["db", "1/3", "45s", "nginx,log", "nginx:1.7.9,busybox"]);
    }
}
