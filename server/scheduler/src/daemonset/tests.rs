use super::*;
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn ds(image: &str, strategy: Value, extra_spec: Value) -> DaemonSet {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {"metadata": {"labels": {"app": "agent"}},
                     "spec": {"containers": [{"name": "a", "image": image}]}},
        "updateStrategy": strategy,
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 2},
        "spec": spec,
    }))
    .unwrap()
}

fn rolling(max_unavailable: Value, max_surge: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable, "maxSurge": max_surge}})
}

fn node(name: &str, labels: Value, taints: Value) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})).unwrap()
}

fn three_nodes() -> Vec<Node> {
    vec![node("a", json!({}), json!(null)), node("b", json!({}), json!(null)), node("c", json!({}), json!(null))]
}

/// A pod the controller made earlier for `node` at the template of `d`, bound and in the given state.
fn pod_of(d: &DaemonSet, node: &str, name: &str, ready: bool, created_s: i64) -> Pod {
    let mut p = new_pod(d, node, &current_hash(d));
    p.metadata.name = Some(name.into());
    p.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now() + Duration::seconds(created_s)));
    if let Some(s) = p.spec.as_mut() {
        s.node_name = Some(node.into());
    }
    let status = if ready {
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]})
    } else {
        json!({"phase": "Pending"})
    };
    p.status = Some(serde_json::from_value(status).unwrap());
    p
}

fn run(d: &DaemonSet, nodes: &[Node], pods: &[Pod]) -> Plan {
    plan(&Observed { ds: d, nodes, pods, revisions: &[], now: now() })
}

fn created_on(p: &Plan) -> Vec<String> {
    p.create_pods.iter().filter_map(pod_node).collect()
}

#[test]
fn one_pod_per_eligible_node() {
    let d = ds(
        "agent:1",
        rolling(json!(1), json!(0)),
        json!({"template": {"metadata": {"labels": {"app": "agent"}},
        "spec": {"nodeSelector": {"role": "edge"}, "containers": [{"name": "a", "image": "agent:1"}]}}}),
    );
    let nodes = vec![
        node("a", json!({"role": "edge"}), json!(null)),
        node("b", json!({"role": "edge"}), json!([{"key": "dedicated", "effect": "NoSchedule"}])),
        node("c", json!({}), json!(null)),
        // Daemon pods tolerate unreachable nodes and cordons.
        node(
            "d",
            json!({"role": "edge"}),
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                                                  {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        ),
    ];
    let p = run(&d, &nodes, &[]);
    assert_eq!(created_on(&p), vec!["a", "d"]);
    let pod = &p.create_pods[0];
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels.get(REVISION_HASH_LABEL), Some(&current_hash(&d)));
    assert_eq!(labels.get(TEMPLATE_GENERATION_LABEL).map(String::as_str), Some("2"));
    assert_eq!(pod.metadata.owner_references.as_ref().unwrap()[0].controller, Some(true));
    let spec = pod.spec.as_ref().unwrap();
    assert!(spec.node_name.is_none(), "the scheduler binds it");
    assert_eq!(spec.tolerations.as_ref().unwrap().len(), 6);
    let rev = p.create_revision.as_ref().unwrap();
    assert_eq!(rev.revision, 1);
    assert_eq!(rev.metadata.name.as_deref(), Some(format!("agent-{}", current_hash(&d)).as_str()));
    assert_eq!(p.status.desired_number_scheduled, 2);
    assert_eq!(p.status.number_unavailable, Some(2));
    assert_eq!(p.status.observed_generation, Some(2));
}

#[test]
fn status_counts_pods_per_node() {
    let d = ds("agent:1", rolling(json!(1), json!(0)), json!({}));
    let nodes = vec![node("a", json!({}), json!(null)), node("b", json!({}), json!(null))];
    let mut stray = pod_of(&d, "gone", "stray", true, 0);
    stray.spec.as_mut().unwrap().node_name = Some("gone".into());
    let pods =
        vec![pod_of(&d, "a", "pa", true, 0), pod_of(&d, "b", "pb", false, 0), pod_of(&d, "b", "pb2", false, 5), stray];
    let p = run(&d, &nodes, &pods);
    assert!(p.create_pods.is_empty());
    assert_eq!(p.delete_pods, vec!["pb2".to_string(), "stray".to_string()], "duplicates and pods of vanished nodes go");
    let s = &p.status;
    assert_eq!(
        (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready, s.number_misscheduled),
        (2, 2, 1, 1)
    );
    assert_eq!((s.number_available, s.updated_number_scheduled, s.number_unavailable), (Some(1), Some(2), Some(1)));
}

#[test]
fn pods_leave_nodes_that_stop_matching() {
    let d = ds(
        "agent:1",
        rolling(json!(1), json!(0)),
        json!({"template": {"metadata": {"labels": {"app": "agent"}},
        "spec": {"nodeSelector": {"role": "edge"}, "containers": [{"name": "a", "image": "agent:1"}]}}}),
    );
    let nodes = vec![node("a", json!({}), json!(null))];
    let p = run(&d, &nodes, &[pod_of(&d, "a", "pa", true, 0)]);
    assert_eq!(p.delete_pods, vec!["pa".to_string()]);
    assert_eq!(p.status.number_misscheduled, 1);
    // A NoSchedule taint added later keeps the running pod but places no new one.
    let d2 = ds("agent:1", rolling(json!(1), json!(0)), json!({}));
    let tainted = vec![node("a", json!({}), json!([{"key": "x", "effect": "NoSchedule"}]))];
    let p = run(&d2, &tainted, &[pod_of(&d2, "a", "pa", true, 0)]);
    assert!(p.delete_pods.is_empty() && p.create_pods.is_empty());
    let p = run(&d2, &tainted, &[]);
    assert!(p.create_pods.is_empty());
    // NoExecute: it goes.
    let evicting = vec![node("a", json!({}), json!([{"key": "x", "effect": "NoExecute"}]))];
    assert_eq!(run(&d2, &evicting, &[pod_of(&d2, "a", "pa", true, 0)]).delete_pods, vec!["pa".to_string()]);
}

#[test]
fn rolling_update_respects_max_unavailable() {
    let old = ds("agent:1", rolling(json!(1), json!(0)), json!({}));
    let new = ds("agent:2", rolling(json!(1), json!(0)), json!({}));
    let pods: Vec<Pod> = ["a", "b", "c"].iter().map(|n| pod_of(&old, n, &format!("old-{n}"), true, 0)).collect();
    let p = run(&new, &three_nodes(), &pods);
    assert_eq!(p.delete_pods, vec!["old-a".to_string()]);
    assert!(p.create_pods.is_empty());
    assert_eq!(p.status.updated_number_scheduled, None);
    // The replacement exists but is not ready yet: nothing else goes.
    let mut pods2 = vec![pod_of(&new, "a", "new-a", false, 10)];
    pods2.extend(pods[1..].iter().cloned());
    let p = run(&new, &three_nodes(), &pods2);
    assert!(p.delete_pods.is_empty(), "{:?}", p.delete_pods);
    // Ready: the next old pod goes.
    pods2[0] = pod_of(&new, "a", "new-a", true, 10);
    assert_eq!(run(&new, &three_nodes(), &pods2).delete_pods, vec!["old-b".to_string()]);
    // maxUnavailable 2 (or 50% of 3, rounded up) takes two at once; unavailable old pods always go.
    for mu in [json!(2), json!("50%")] {
        let wide = ds("agent:2", rolling(mu, json!(0)), json!({}));
        assert_eq!(run(&wide, &three_nodes(), &pods).delete_pods, vec!["old-a".to_string(), "old-b".to_string()]);
    }
    let mut broken = pods.clone();
    broken[2] = pod_of(&old, "c", "old-c", false, 0);
    // As upstream, replacing an unavailable old pod does not use up the budget.
    assert_eq!(run(&new, &three_nodes(), &broken).delete_pods, vec!["old-a".to_string(), "old-c".to_string()]);
}

#[test]
fn rolling_update_with_surge_creates_before_deleting() {
    let old = ds("agent:1", rolling(json!(0), json!(1)), json!({}));
    let new = ds("agent:2", rolling(json!(0), json!(1)), json!({}));
    let pods: Vec<Pod> = ["a", "b", "c"].iter().map(|n| pod_of(&old, n, &format!("old-{n}"), true, 0)).collect();
    let p = run(&new, &three_nodes(), &pods);
    assert_eq!(created_on(&p), vec!["a"]);
    assert!(p.delete_pods.is_empty());
    let mut surged = pods.clone();
    surged.push(pod_of(&new, "a", "new-a", false, 10));
    let p = run(&new, &three_nodes(), &surged);
    assert!(p.create_pods.is_empty() && p.delete_pods.is_empty(), "waits for the surge pod: {:?}", p.delete_pods);
    surged[3] = pod_of(&new, "a", "new-a", true, 10);
    let p = run(&new, &three_nodes(), &surged);
    assert_eq!(p.delete_pods, vec!["old-a".to_string()]);
    assert_eq!(created_on(&p), vec!["b"]);
}

#[test]
fn on_delete_never_replaces_by_itself() {
    let old = ds("agent:1", json!({"type": "OnDelete"}), json!({}));
    let new = ds("agent:2", json!({"type": "OnDelete"}), json!({}));
    let pods: Vec<Pod> = ["a", "b", "c"].iter().map(|n| pod_of(&old, n, &format!("old-{n}"), true, 0)).collect();
    let p = run(&new, &three_nodes(), &pods);
    assert!(p.delete_pods.is_empty() && p.create_pods.is_empty());
    let p = run(&new, &three_nodes(), &pods[1..]);
    assert_eq!(created_on(&p), vec!["a"]);
    assert_eq!(p.create_pods[0].metadata.labels.as_ref().unwrap().get(REVISION_HASH_LABEL), Some(&current_hash(&new)));
}

fn revision(name: &str, hash: &str, number: i64) -> ControllerRevision {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {REVISION_HASH_LABEL: hash}}, "revision": number}),
    )
    .unwrap()
}

#[test]
fn revisions_are_reused_and_trimmed() {
    let d = ds("agent:1", rolling(json!(1), json!(0)), json!({"revisionHistoryLimit": 1}));
    let h = current_hash(&d);
    let revs = vec![revision(&format!("agent-{h}"), &h, 1), revision("agent-x", "x", 2), revision("agent-y", "y", 3)];
    let p = plan(&Observed { ds: &d, nodes: &[], pods: &[], revisions: &revs, now: now() });
    assert!(p.create_revision.is_none());
    assert_eq!(p.update_revisions.len(), 1);
    assert_eq!(p.update_revisions[0].revision, 4, "a rollback makes the old revision the newest");
    assert_eq!(p.delete_revisions, vec!["agent-x".to_string()]);
}
