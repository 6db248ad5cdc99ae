//! kubectl's table columns for the built-in kinds.
//!
//! `kubectl get` asks for `application/json;as=Table;v=v1;g=meta.k8s.io`; the server answers with a
//! meta.k8s.io/v1 Table. This crate owns what goes into that Table: the column definitions and the
//! cells of one row, computed from an object's JSON the way upstream's printers
//! (kubernetes/pkg/printers/internalversion/printers.go, v1.32) compute them from typed objects.
//!
//! Upstream's server always generates tables with `Wide: true` and lets kubectl hide priority-1
//! columns, so [`cells`] always returns every column, wide ones included.
//!
//! Objects are read as they are stored: no API defaulting happens here (an absent
//! `spec.replicas` prints as 0, just as a zero value prints upstream). Missing or malformed fields
//! never panic; they print what upstream prints for zero values ("<none>", "<unset>", "<unknown>").

mod apps;
mod autoscaling;
mod batch;
mod column;
mod coordination;
mod core;
mod default_table;
mod duration;
mod events;
mod fields;
mod labels;
mod networking;
mod pod;
mod rbac;
mod storage;
#[cfg(test)]
mod test_support;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use column::Column;
pub use duration::human_duration;

/// How one kind is printed: its column definitions and the function computing a row.
#[derive(Clone, Copy)]
pub(crate) struct Printer {
    pub(crate) columns: &'static [Column],
    pub(crate) cells: fn(&Value, DateTime<Utc>) -> Vec<Value>,
}

fn printer(group: &str, kind: &str) -> Printer {
    match (group, kind) {
        ("", "Pod") => pod::PRINTER,
        ("", "Namespace") => core::NAMESPACE,
        ("", "Node") => core::NODE,
        ("", "Service") => core::SERVICE,
        ("", "Endpoints") => core::ENDPOINTS,
        ("", "ConfigMap") => core::CONFIG_MAP,
        ("", "Secret") => core::SECRET,
        ("", "ServiceAccount") => core::SERVICE_ACCOUNT,
        ("", "Event") => events::PRINTER,
        ("", "PersistentVolume") => storage::PERSISTENT_VOLUME,
        ("", "PersistentVolumeClaim") => storage::PERSISTENT_VOLUME_CLAIM,
        ("apps", "Deployment") => apps::DEPLOYMENT,
        ("apps", "ReplicaSet") => apps::REPLICA_SET,
        ("apps", "DaemonSet") => apps::DAEMON_SET,
        ("apps", "StatefulSet") => apps::STATEFUL_SET,
        ("batch", "Job") => batch::JOB,
        ("batch", "CronJob") => batch::CRON_JOB,
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaling::HORIZONTAL_POD_AUTOSCALER,
        ("storage.k8s.io", "StorageClass") => storage::STORAGE_CLASS,
        ("networking.k8s.io", "Ingress") => networking::INGRESS,
        ("networking.k8s.io", "IngressClass") => networking::INGRESS_CLASS,
        ("discovery.k8s.io", "EndpointSlice") => networking::ENDPOINT_SLICE,
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => rbac::BINDING,
        ("coordination.k8s.io", "Lease") => coordination::LEASE,
        // Role and ClusterRole have no printer upstream either: they get the default table.
        _ => default_table::PRINTER,
    }
}

/// Columns for a kind. The first is Name for every kind except Event, whose upstream columns start
/// with "Last Seen" and carry Name last (priority 1). Unknown kinds get upstream's default table
/// convertor: Name and "Created At" (type "date").
pub fn columns(group: &str, kind: &str) -> Vec<Column> {
    printer(group, kind).columns.to_vec()
}

/// One row's cells, in the order of [`columns`], computed from the object's JSON. `now` is the
/// server's clock, used for AGE and other durations.
pub fn cells(group: &str, kind: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    (printer(group, kind).cells)(obj, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: &[(&str, &str)] = &[
        ("", "Pod"),
        ("", "Namespace"),
        ("", "Node"),
        ("", "Service"),
        ("", "Endpoints"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "ServiceAccount"),
        ("", "Event"),
        ("", "PersistentVolume"),
        ("", "PersistentVolumeClaim"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "DaemonSet"),
        ("apps", "StatefulSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("storage.k8s.io", "StorageClass"),
        ("networking.k8s.io", "Ingress"),
        ("networking.k8s.io", "IngressClass"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("coordination.k8s.io", "Lease"),
        ("example.com", "Widget"),
    ];

    /// Every kind must yield one cell per column whatever the object looks like: kubectl
    /// rejects a Table whose rows and columns disagree, and malformed input must not panic.
    #[test]
    fn every_kind_has_one_cell_per_column_even_for_garbage() {
        let objects = [
            serde_json::json!({}),
            serde_json::json!(null),
            serde_json::json!("text"),
            serde_json::json!({"metadata": 5, "spec": [], "status": "x"}),
            serde_json::json!({"spec": {"containers": 3, "ports": {"a": 1}, "rules": "x", "metrics": [1, "a", null]},
                               "status": {"containerStatuses": [null, 5, {"state": 1}], "conditions": "x"}}),
        ];
        let now = test_support::now();
        for (group, kind) in KINDS {
            let cols = columns(group, kind);
            for obj in &objects {
                let row = cells(group, kind, obj, now);
                assert_eq!(row.len(), cols.len(), "{group}/{kind} on {obj}");
            }
        }
    }

    #[test]
    fn name_column_is_first_except_for_events() {
        for (group, kind) in KINDS {
            let cols = columns(group, kind);
            let named = cols.iter().filter(|c| c.format == "name").count();
            assert_eq!(named, 1, "{group}/{kind}");
            if *kind == "Event" {
                assert_eq!(cols[0].name, "Last Seen");
                assert_eq!(cols.last().map(|c| (c.name, c.priority)), Some(("Name", 1)));
            } else {
                assert_eq!((cols[0].name, cols[0].format), ("Name", "name"), "{group}/{kind}");
            }
        }
    }
}
