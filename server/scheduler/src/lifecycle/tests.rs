use super::*;
use serde_json::{json, Value};

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
}

fn ts(s: i64) -> String {
    at(s).to_rfc3339()
}

fn node(name: &str, ready: &str, taints: Value, extra_spec: Value) -> Node {
    let mut spec = json!({"taints": taints});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": ts(0)},
        "spec": spec,
        "status": {"conditions": [
            {"type": "Ready", "status": ready, "reason": "KubeletReady", "lastHeartbeatTime": ts(0), "lastTransitionTime": ts(0)},
            {"type": "MemoryPressure", "status": "False"},
        ]},
    }))
    .unwrap()
}

fn observed(n: Node, lease: Option<i64>) -> Observed {
    Observed { node: n, lease_renewed: lease.map(at) }
}

const GRACE: i64 = 40;

fn plan(o: &[Observed], now: i64) -> (Vec<NodeAction>, Option<DateTime<Utc>>) {
    plan_nodes(o, at(now), Duration::seconds(GRACE))
}

fn taint_keys(actions: &[NodeAction]) -> Vec<(String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            NodeAction::SetTaints { taints, .. } => {
                Some(taints.iter().map(|t| (t.key.clone(), t.effect.clone())).collect::<Vec<_>>())
            }
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn fresh_lease_keeps_node_and_says_when_to_look_again() {
    let (actions, next) = plan(&[observed(node("a", "True", json!(null), json!({})), Some(100))], 120);
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(next, Some(at(140)));
}

#[test]
fn stale_lease_marks_unknown_and_taints_unreachable() {
    let (actions, next) = plan(
        &[observed(node("a", "True", json!([{"key": "user", "effect": "NoSchedule"}]), json!({})), Some(100))],
        141,
    );
    assert_eq!(next, None);
    let NodeAction::MarkUnknown { conditions, .. } = &actions[0] else { panic!("{actions:?}") };
    let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref(), ready.message.as_deref()),
        ("Unknown", Some(UNKNOWN_REASON), Some(UNKNOWN_MESSAGE))
    );
    assert_eq!(ready.last_heartbeat_time, Some(Time(at(0))), "the heartbeat stays the kubelet's");
    assert_eq!(ready.last_transition_time, Some(Time(at(141))));
    // Missing watched conditions appear as never updated.
    let disk = conditions.iter().find(|c| c.type_ == "DiskPressure").unwrap();
    assert_eq!((disk.status.as_str(), disk.reason.as_deref()), ("Unknown", Some(NEVER_REASON)));
    assert_eq!(
        taint_keys(&actions),
        vec![
            ("user".into(), "NoSchedule".into()),
            (taints::UNREACHABLE.into(), "NoExecute".into()),
            (taints::UNREACHABLE.into(), "NoSchedule".into())
        ]
    );
    let NodeAction::SetTaints { taints: t, .. } = &actions[1] else { panic!() };
    assert_eq!(t[1].time_added, Some(Time(at(141))));
}

#[test]
fn no_lease_counts_from_creation() {
    let (actions, _) = plan(&[observed(node("a", "True", json!(null), json!({})), None)], 30);
    assert!(actions.is_empty());
    let (actions, _) = plan(&[observed(node("a", "True", json!(null), json!({})), None)], 41);
    assert!(matches!(actions[0], NodeAction::MarkUnknown { .. }));
}

#[test]
fn steady_unknown_node_needs_nothing() {
    let tainted = json!([{"key": taints::UNREACHABLE, "effect": "NoExecute", "timeAdded": ts(141)}, {"key": taints::UNREACHABLE, "effect": "NoSchedule"}]);
    let mut n = node("a", "Unknown", tainted, json!({}));
    n.status.as_mut().unwrap().conditions = unknown_conditions(&n, at(141));
    let (actions, _) = plan(&[observed(n.clone(), Some(100))], 200);
    assert!(actions.is_empty(), "{actions:?}");
    // A renewed lease alone does not clear the taint: Ready comes back from the kubelet's status.
    let (actions, next) = plan(&[observed(n, Some(199))], 200);
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(next, Some(at(239)));
}

#[test]
fn taints_follow_conditions_and_cordon() {
    let stale = json!([{"key": taints::UNREACHABLE, "effect": "NoExecute"}, {"key": taints::UNREACHABLE, "effect": "NoSchedule"}, {"key": "user", "effect": "NoExecute"}]);
    let cases = [
        (node("a", "True", stale, json!({})), vec![("user", "NoExecute")]),
        (
            node("a", "False", json!(null), json!({})),
            vec![(taints::NOT_READY, "NoExecute"), (taints::NOT_READY, "NoSchedule")],
        ),
        (node("a", "True", json!(null), json!({"unschedulable": true})), vec![(taints::UNSCHEDULABLE, "NoSchedule")]),
    ];
    for (n, want) in cases {
        let (actions, _) = plan(&[observed(n, Some(100))], 101);
        let want: Vec<(String, String)> = want.iter().map(|(k, e)| (k.to_string(), e.to_string())).collect();
        assert_eq!(taint_keys(&actions), want);
    }
    let mut pressured = node("a", "True", json!(null), json!({}));
    pressured.status.as_mut().unwrap().conditions.as_mut().unwrap()[1].status = "True".into();
    let (actions, _) = plan(&[observed(pressured, Some(100))], 101);
    assert_eq!(taint_keys(&actions), vec![(taints::MEMORY_PRESSURE.to_string(), "NoSchedule".to_string())]);
}

fn pod(name: &str, node: &str, tolerations: Value, extra: Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"nodeName": node, "containers": [], "tolerations": tolerations},
        "status": {"phase": "Running"},
    });
    if let (Some(m), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if let (Some(Value::Object(dst)), Value::Object(src)) = (m.get_mut(k), v) {
                dst.extend(src.clone());
            }
        }
    }
    serde_json::from_value(p).unwrap()
}

fn noexec(key: &str, added: i64) -> Taint {
    Taint { key: key.into(), effect: NO_EXECUTE.into(), value: None, time_added: Some(Time(at(added))) }
}

#[test]
fn eviction_time_table() {
    let unreachable = noexec(taints::UNREACHABLE, 100);
    let other = noexec("other", 90);
    let default_tol =
        json!([{"key": taints::UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]);
    let cases: Vec<(&str, Value, Vec<&Taint>, Option<i64>)> = vec![
        ("no taints", json!(null), vec![], None),
        ("untolerated", json!(null), vec![&unreachable], Some(150)),
        ("tolerated for 30s", default_tol.clone(), vec![&unreachable], Some(130)),
        ("tolerated forever", json!([{"operator": "Exists"}]), vec![&unreachable], None),
        (
            "shortest wins",
            json!([{"operator": "Exists", "tolerationSeconds": 60}, {"key": taints::UNREACHABLE, "operator": "Exists", "tolerationSeconds": 5}]),
            vec![&unreachable],
            Some(105),
        ),
        ("negative is zero", json!([{"operator": "Exists", "tolerationSeconds": -3}]), vec![&unreachable], Some(100)),
        ("one of two untolerated", default_tol, vec![&unreachable, &other], Some(150)),
        (
            "earliest taint counts",
            json!([{"operator": "Exists", "tolerationSeconds": 30}]),
            vec![&unreachable, &other],
            Some(120),
        ),
    ];
    for (name, tol, taints, want) in cases {
        let p = pod("p", "a", tol, json!({}));
        assert_eq!(eviction_time(&p, &taints, at(150)), want.map(at), "{name}");
    }
}

#[test]
fn pods_are_evicted_removed_and_marked() {
    let tainted = json!([{"key": taints::UNREACHABLE, "effect": "NoExecute", "timeAdded": ts(100)}]);
    let nodes = vec![node("dead", "Unknown", tainted, json!({})), node("live", "True", json!(null), json!({}))];
    let tol =
        json!([{"key": taints::UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]);
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let pods = vec![
        pod("due", "dead", tol.clone(), json!({})),
        pod(
            "waiting",
            "dead",
            json!([{"key": taints::UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]),
            ready.clone(),
        ),
        pod(
            "daemon",
            "dead",
            json!([{"key": taints::UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]),
            json!({}),
        ),
        pod("orphan", "gone", json!(null), json!({})),
        pod("terminating-over", "dead", tol.clone(), json!({"metadata": {"deletionTimestamp": ts(129)}})),
        pod("terminating-soon", "dead", tol.clone(), json!({"metadata": {"deletionTimestamp": ts(135)}})),
        pod("terminating-live", "live", tol.clone(), json!({"metadata": {"deletionTimestamp": ts(0)}})),
        pod("healthy", "live", tol, ready),
    ];
    let (actions, next) = plan_pods(&nodes, &pods, at(130));
    let ns = |n: &str| ("ns".to_string(), n.to_string());
    let expect = vec![
        PodAction::Evict { namespace: ns("due").0, name: ns("due").1 },
        PodAction::MarkNotReady { namespace: "ns".into(), name: "waiting".into() },
        PodAction::ForceDelete { namespace: "ns".into(), name: "orphan".into() },
        PodAction::ForceDelete { namespace: "ns".into(), name: "terminating-over".into() },
    ];
    assert_eq!(actions, expect);
    assert_eq!(next, Some(at(135)));
}

#[test]
fn pods_see_the_taints_about_to_be_written() {
    let o = vec![observed(node("a", "True", json!(null), json!({})), Some(0))];
    let (actions, _) = plan(&o, 100);
    let nodes = nodes_after(&o, &actions);
    let (pod_actions, next) = plan_pods(&nodes, &[pod("p", "a", json!(null), json!({}))], at(100));
    assert_eq!(pod_actions, vec![PodAction::Evict { namespace: "ns".into(), name: "p".into() }]);
    assert_eq!(next, None);
}
