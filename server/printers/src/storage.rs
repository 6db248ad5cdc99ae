//! Printers for PersistentVolume, PersistentVolumeClaim and StorageClass.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::column::{Column, AGE, NAME};
use crate::fields::{age, annotation, deleting, list_at, name, object, opt_bool, opt_str, quantity, str_at, string};
use crate::Printer;

/// The beta annotation that still overrides spec.storageClassName upstream.
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

pub(crate) const PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Capacity", "capacity is the description of the persistent volume's resources and capacity."),
        Column::string("Access Modes", "accessModes contains all ways the volume can be mounted."),
        Column::string("Reclaim Policy", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
        Column::string("Status", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
        Column::string("Claim", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
        Column::string("StorageClass", "StorageClass of the pv"),
        Column::string("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
        Column::string("Reason", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
        AGE,
        Column::string("VolumeMode", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.").wide(),
    ],
    cells: pv_cells,
};

fn pv_cells(pv: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let claim = object(pv, &["spec", "claimRef"])
        .map_or(String::new(), |c| format!("{}/{}", str_at(c, &["namespace"]), str_at(c, &["name"])));
    let class = annotation(pv, BETA_STORAGE_CLASS).unwrap_or_else(|| str_at(pv, &["spec", "storageClassName"]));
    vec![
        name(pv),
        // A missing quantity is Go's zero Quantity, which prints "0".
        string(quantity(pv, &["spec", "capacity", "storage"]).unwrap_or_else(|| "0".to_string())),
        string(access_modes(list_at(pv, &["spec", "accessModes"]))),
        string(str_at(pv, &["spec", "persistentVolumeReclaimPolicy"])),
        string(if deleting(pv) { "Terminating" } else { str_at(pv, &["status", "phase"]) }),
        string(claim),
        string(class),
        string(opt_str(pv, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
        string(str_at(pv, &["status", "reason"])),
        age(pv, now),
        string(opt_str(pv, &["spec", "volumeMode"]).unwrap_or("<unset>")),
    ]
}

pub(crate) const PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Status", "phase represents the current phase of PersistentVolumeClaim."),
        Column::string("Volume", "volumeName is the binding reference to the PersistentVolume backing this claim."),
        Column::string("Capacity", "capacity represents the actual resources of the underlying volume."),
        Column::string("Access Modes", "accessModes contains the actual access modes the volume backing the PVC has."),
        Column::string("StorageClass", "StorageClass of the pvc"),
        Column::string("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
        AGE,
        Column::string("VolumeMode", "volumeMode defines what type of volume is required by the claim.").wide(),
    ],
    cells: pvc_cells,
};

fn pvc_cells(pvc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let volume = str_at(pvc, &["spec", "volumeName"]);
    // Capacity and access modes are only shown once the claim is bound to a volume.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(pvc, &["status", "capacity", "storage"]).unwrap_or_else(|| "0".to_string()),
            access_modes(list_at(pvc, &["status", "accessModes"])),
        )
    };
    let class =
        annotation(pvc, BETA_STORAGE_CLASS).or_else(|| opt_str(pvc, &["spec", "storageClassName"])).unwrap_or("");
    vec![
        name(pvc),
        string(if deleting(pvc) { "Terminating" } else { str_at(pvc, &["status", "phase"]) }),
        string(volume),
        string(capacity),
        string(modes),
        string(class),
        string(opt_str(pvc, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
        age(pvc, now),
        string(opt_str(pvc, &["spec", "volumeMode"]).unwrap_or("<unset>")),
    ]
}

/// "RWO,ROX,RWX,RWOP" in that fixed order, duplicates and unknown modes dropped.
fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| has(mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) const STORAGE_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Provisioner", "provisioner indicates the type of the provisioner."),
        Column::string("ReclaimPolicy", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class."),
        Column::string("VolumeBindingMode", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
        Column::string("AllowVolumeExpansion", "allowVolumeExpansion shows whether the storage class allow volume expand."),
        AGE,
    ],
    cells: |sc, now| {
        let is_default = ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
            .iter()
            .any(|key| annotation(sc, key) == Some("true"));
        let name = str_at(sc, &["metadata", "name"]);
        vec![
            string(if is_default { format!("{name} (default)") } else { name.to_string() }),
            string(str_at(sc, &["provisioner"])),
            string(opt_str(sc, &["reclaimPolicy"]).unwrap_or("Delete")),
            string(opt_str(sc, &["volumeBindingMode"]).unwrap_or("Immediate")),
            Value::Bool(opt_bool(sc, &["allowVolumeExpansion"]).unwrap_or(false)),
            age(sc, now),
        ]
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::test_support::{ago, now};
    use serde_json::json;

    #[test]
    fn persistent_volumes() {
        let cases = vec![
            (
                json!({"metadata": {"name": "pv-1", "creationTimestamp": ago(3600)},
                    "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                             "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local-path",
                             "claimRef": {"namespace": "default", "name": "data-web-0"}, "volumeMode": "Filesystem"},
                    "status": {"phase": "Bound"}}),
                row![
                    "pv-1",
                    "10Gi",
                    "RWO,RWX",
                    "Retain",
                    "Bound",
                    "default/data-web-0",
                    "local-path",
                    "<unset>",
                    "",
                    "60m",
                    "Filesystem"
                ],
            ),
            (
                json!({"metadata": {"name": "pv-2", "deletionTimestamp": ago(1),
                                 "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
                    "spec": {"storageClassName": "ignored", "accessModes": ["ReadWriteOncePod"], "volumeAttributesClassName": "gold"},
                    "status": {"phase": "Failed", "reason": "ProvisioningFailed"}}),
                row![
                    "pv-2",
                    "0",
                    "RWOP",
                    "",
                    "Terminating",
                    "",
                    "legacy",
                    "gold",
                    "ProvisioningFailed",
                    "<unknown>",
                    "<unset>"
                ],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(pv_cells(&obj, now()), want, "{obj}");
        }
    }

    #[test]
    fn persistent_volume_claims() {
        let cases = vec![
            (
                json!({"metadata": {"name": "data", "creationTimestamp": ago(90)},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                             "storageClassName": "local-path", "volumeName": "pvc-123", "volumeMode": "Filesystem"},
                    "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "2Gi"}}}),
                row!["data", "Bound", "pvc-123", "2Gi", "RWO", "local-path", "<unset>", "90s", "Filesystem"],
            ),
            (
                json!({"metadata": {"name": "waiting", "creationTimestamp": ago(5)},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                    "status": {"phase": "Pending"}}),
                row!["waiting", "Pending", "", "", "", "", "<unset>", "5s", "<unset>"],
            ),
            (
                json!({"metadata": {"name": "gone", "deletionTimestamp": ago(1),
                                 "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
                    "spec": {"storageClassName": "new", "volumeName": "pv-9"}, "status": {"phase": "Bound"}}),
                row!["gone", "Terminating", "pv-9", "0", "", "old", "<unset>", "<unknown>", "<unset>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(pvc_cells(&obj, now()), want, "{obj}");
        }
    }

    #[test]
    fn storage_classes() {
        let cases = vec![
            (
                json!({"metadata": {"name": "local-path", "creationTimestamp": ago(10 * 86400),
                                 "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                    "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
                    "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true}),
                row!["local-path (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", true, "10d"],
            ),
            (
                json!({"metadata": {"name": "slow", "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "false"}},
                    "provisioner": "example.com/nfs"}),
                row!["slow", "example.com/nfs", "Delete", "Immediate", false, "<unknown>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!((STORAGE_CLASS.cells)(&obj, now()), want, "{obj}");
        }
    }
}
