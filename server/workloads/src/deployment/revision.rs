//! Revision bookkeeping on ReplicaSets (upstream `deployment/util`): the `revision` annotation,
//! the `revision-history` of a ReplicaSet brought back by a rollback, the replica annotations
//! proportional scaling reads, and which Deployment annotations ReplicaSets inherit.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Upstream's cap on the `revision-history` annotation's length (`maxRevHistoryLengthInChars`).
pub const MAX_HISTORY_CHARS: usize = 2000;

pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

pub fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

pub fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(rs, key).and_then(|v| v.parse().ok())
}

fn skip_copy(key: &str) -> bool {
    matches!(key, LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO)
}

/// Copies the Deployment's own annotations onto the ReplicaSet; true if any changed.
pub fn copy_deployment_annotations(deployment: Option<&BTreeMap<String, String>>, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in deployment.into_iter().flatten() {
        if skip_copy(k) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Raises the ReplicaSet's revision to `new_revision` when it is lower, remembering the old
/// number in `revision-history` (a rollback reuses an old ReplicaSet); true if changed.
pub fn bump_revision(rs: &mut ReplicaSet, new_revision: i64) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = annotations.get(REVISION).cloned();
    let old_int: i64 = match old.as_deref() {
        None | Some("") => 0,
        Some(s) => match s.parse() {
            Ok(v) => v,
            // Upstream leaves a ReplicaSet with a garbled revision alone.
            Err(_) => return false,
        },
    };
    if old_int >= new_revision {
        return false;
    }
    annotations.insert(REVISION.into(), new_revision.to_string());
    if let Some(old) = old.filter(|o| !o.is_empty()) {
        let history = annotations.get(REVISION_HISTORY).cloned().unwrap_or_default();
        let mut entries: Vec<&str> = history.split(',').filter(|s| !s.is_empty()).collect();
        entries.push(&old);
        // Oldest entries fall off first when the list outgrows its limit.
        while entries.join(",").len() > MAX_HISTORY_CHARS && entries.len() > 1 {
            entries.remove(0);
        }
        let joined = entries.join(",");
        annotations.insert(REVISION_HISTORY.into(), joined);
    }
    true
}

/// Sets desired/max replica annotations; true if changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if annotations.get(k) != Some(&v) {
            annotations.insert(k.into(), v);
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rs(annotations: &[(&str, &str)]) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn bump_revision_table() {
        // (annotations before, new revision, changed, revision after, history after)
        let cases: [(&[(&str, &str)], i64, bool, &str, Option<&str>); 5] = [
            (&[], 1, true, "1", None),
            (&[(REVISION, "1")], 3, true, "3", Some("1")),
            (&[(REVISION, "3"), (REVISION_HISTORY, "1")], 5, true, "5", Some("1,3")),
            (&[(REVISION, "4")], 3, false, "4", None),
            (&[(REVISION, "x")], 3, false, "x", None),
        ];
        for (before, new, changed, after, history) in cases {
            let mut r = rs(before);
            assert_eq!(bump_revision(&mut r, new), changed, "{before:?}");
            assert_eq!(annotation(&r, REVISION), Some(after));
            assert_eq!(annotation(&r, REVISION_HISTORY), history);
        }
    }

    #[test]
    fn copies_only_user_annotations() {
        let d: BTreeMap<String, String> =
            [(LAST_APPLIED, "{}"), (REVISION, "9"), ("kubernetes.io/change-cause", "set image")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let mut r = rs(&[(REVISION, "2")]);
        assert!(copy_deployment_annotations(Some(&d), &mut r));
        assert_eq!(annotation(&r, "kubernetes.io/change-cause"), Some("set image"));
        assert_eq!(annotation(&r, REVISION), Some("2"));
        assert_eq!(annotation(&r, LAST_APPLIED), None);
        assert!(!copy_deployment_annotations(Some(&d), &mut r));
    }
}
