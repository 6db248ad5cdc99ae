//! Taints and tolerations: upstream's `ToleratesTaint`, the well-known taint keys the node
//! lifecycle controller manages, the tolerations every pod gets by default
//! (DefaultTolerationSeconds admission) and the ones DaemonSet pods get.

use k8s_openapi::api::core::v1::{Taint, Toleration};

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";

pub fn taint(key: &str, effect: &str) -> Taint {
    Taint { key: key.to_string(), effect: effect.to_string(), value: None, time_added: None }
}

/// Upstream's `Toleration.ToleratesTaint`: an empty effect matches every effect, an empty key
/// with `Exists` matches every key, `Exists` ignores the value and `Equal` (the default) compares it.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
        _ => false,
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first taint accepted by `filter` that no toleration tolerates (upstream's
/// `FindMatchingUntoleratedTaint`).
pub fn find_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints.iter().filter(|t| filter(t)).find(|t| !tolerated(tolerations, t))
}

/// Upstream's DefaultTolerationSeconds admission: pods that do not already tolerate the
/// not-ready and unreachable NoExecute taints get tolerations for them, bounded in time.
pub fn add_default_tolerations(tolerations: &mut Vec<Toleration>, not_ready_seconds: i64, unreachable_seconds: i64) {
    for (key, seconds) in [(NOT_READY, not_ready_seconds), (UNREACHABLE, unreachable_seconds)] {
        let t = taint(key, NO_EXECUTE);
        if !tolerated(tolerations, &t) {
            tolerations.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".into()),
                effect: Some(NO_EXECUTE.into()),
                toleration_seconds: Some(seconds),
                value: None,
            });
        }
    }
}

/// Upstream's `AddOrUpdateDaemonPodTolerations`: daemon pods stay through node problems and
/// cordons; host-network ones also through a missing pod network.
pub fn add_daemon_tolerations(tolerations: &mut Vec<Toleration>, host_network: bool) {
    let mut wanted = vec![
        (NOT_READY, NO_EXECUTE),
        (UNREACHABLE, NO_EXECUTE),
        (DISK_PRESSURE, NO_SCHEDULE),
        (MEMORY_PRESSURE, NO_SCHEDULE),
        (PID_PRESSURE, NO_SCHEDULE),
        (UNSCHEDULABLE, NO_SCHEDULE),
    ];
    if host_network {
        wanted.push((NETWORK_UNAVAILABLE, NO_SCHEDULE));
    }
    for (key, effect) in wanted {
        let t = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            value: None,
            toleration_seconds: None,
        };
        // "AddOrUpdate": a toleration for the same key and effect is replaced.
        tolerations.retain(|x| !(x.key.as_deref() == Some(key) && x.effect.as_deref() == Some(effect)));
        tolerations.push(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            toleration_seconds: None,
        }
    }

    fn tn(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.to_string()),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn toleration_matching_table() {
        let cases = [
            (tol("k", "Equal", "v", "NoSchedule"), tn("k", "v", "NoSchedule"), true),
            (tol("k", "", "v", "NoSchedule"), tn("k", "v", "NoSchedule"), true),
            (tol("k", "Equal", "v", "NoSchedule"), tn("k", "w", "NoSchedule"), false),
            (tol("k", "Equal", "v", "NoExecute"), tn("k", "v", "NoSchedule"), false),
            (tol("k", "Equal", "v", ""), tn("k", "v", "NoExecute"), true),
            (tol("k", "Exists", "", "NoSchedule"), tn("k", "anything", "NoSchedule"), true),
            (tol("", "Exists", "", ""), tn("any", "x", "NoExecute"), true),
            (tol("", "Exists", "", "NoSchedule"), tn("any", "x", "NoExecute"), false),
            (tol("other", "Exists", "", ""), tn("k", "", "NoSchedule"), false),
            (tol("k", "Bogus", "", ""), tn("k", "", "NoSchedule"), false),
        ];
        for (t, taint, want) in cases {
            assert_eq!(tolerates(&t, &taint), want, "{t:?} vs {taint:?}");
        }
    }

    #[test]
    fn default_tolerations_are_added_once() {
        let mut t = vec![tol(UNREACHABLE, "Exists", "", NO_EXECUTE)];
        add_default_tolerations(&mut t, 30, 30);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].key.as_deref(), Some(NOT_READY));
        assert_eq!(t[1].toleration_seconds, Some(30));
        add_default_tolerations(&mut t, 30, 30);
        assert_eq!(t.len(), 2);
        // A blanket toleration already covers both.
        let mut all = vec![tol("", "Exists", "", "")];
        add_default_tolerations(&mut all, 5, 5);
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn daemon_tolerations_cover_node_problems() {
        let mut t = vec![];
        add_daemon_tolerations(&mut t, false);
        assert_eq!(t.len(), 6);
        assert!(tolerated(&t, &tn(UNREACHABLE, "", NO_EXECUTE)));
        assert!(tolerated(&t, &tn(UNSCHEDULABLE, "", NO_SCHEDULE)));
        assert!(!tolerated(&t, &tn(NETWORK_UNAVAILABLE, "", NO_SCHEDULE)));
        add_daemon_tolerations(&mut t, true);
        assert_eq!(t.len(), 7);
    }
}
