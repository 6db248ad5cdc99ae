use super::*;
use serde_json::{json, Value};

fn node(name: &str, cpu: &str, extra: Value) -> Node {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    });
    merge(&mut n, extra);
    serde_json::from_value(n).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn pod(name: &str, cpu: &str, extra: Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"schedulerName": "default-scheduler", "containers": [{"name": "c", "image": "x",
                 "resources": {"requests": {"cpu": cpu}}}]},
        "status": {"phase": "Pending"},
    });
    merge(&mut p, extra);
    serde_json::from_value(p).unwrap()
}

fn owned(name: &str, owner: &str) -> Pod {
    pod(
        name,
        "10m",
        json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner, "controller": true}]}}),
    )
}

fn bound(mut p: Pod, node: &str) -> Pod {
    if let Some(s) = p.spec.as_mut() {
        s.node_name = Some(node.into());
    }
    p
}

fn state(n: Node, pods: &[Pod]) -> NodeState {
    let mut s = NodeState::new(n);
    for p in pods {
        s.add_pod(p);
    }
    s
}

#[test]
fn filters_table() {
    let tainted = json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}});
    let toleration = json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}});
    let port = |p: i32| json!({"spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": p}]}]}});
    let cases: Vec<(&str, NodeState, Pod, Vec<Reason>)> = vec![
        ("fits", state(node("n", "1", json!({})), &[]), pod("p", "500m", json!({})), vec![]),
        (
            "cpu exhausted by bound pods",
            state(node("n", "1", json!({})), &[pod("a", "800m", json!({}))]),
            pod("p", "300m", json!({})),
            vec![Reason::Insufficient("cpu")],
        ),
        (
            "cpu and memory",
            state(node("n", "1", json!({})), &[]),
            pod(
                "p",
                "2",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2", "memory": "8Gi"}}}]}}),
            ),
            vec![Reason::Insufficient("cpu"), Reason::Insufficient("memory")],
        ),
        (
            "pod count",
            state(node("n", "1", json!({"status": {"allocatable": {"pods": "1"}}})), &[pod("a", "0", json!({}))]),
            pod("p", "0", json!({})),
            vec![Reason::TooManyPods],
        ),
        (
            "cordoned",
            state(node("n", "1", json!({"spec": {"unschedulable": true}})), &[]),
            pod("p", "1m", json!({})),
            vec![Reason::Unschedulable],
        ),
        (
            "cordon tolerated",
            state(node("n", "1", json!({"spec": {"unschedulable": true}})), &[]),
            pod(
                "p",
                "1m",
                json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}),
            ),
            vec![],
        ),
        (
            "taint",
            state(node("n", "1", tainted.clone()), &[]),
            pod("p", "1m", json!({})),
            vec![Reason::UntoleratedTaint { key: "dedicated".into(), value: "db".into() }],
        ),
        ("taint tolerated", state(node("n", "1", tainted), &[]), pod("p", "1m", toleration), vec![]),
        (
            "prefer-no-schedule only scores",
            state(node("n", "1", json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}})), &[]),
            pod("p", "1m", json!({})),
            vec![],
        ),
        (
            "not ready implies a taint",
            state(node("n", "1", json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})), &[]),
            pod("p", "1m", json!({})),
            vec![Reason::UntoleratedTaint { key: "node.kubernetes.io/not-ready".into(), value: "".into() }],
        ),
        (
            "unknown implies unreachable",
            state(node("n", "1", json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})), &[]),
            pod("p", "1m", json!({})),
            vec![Reason::UntoleratedTaint { key: "node.kubernetes.io/unreachable".into(), value: "".into() }],
        ),
        (
            "node selector",
            state(node("n", "1", json!({})), &[]),
            pod("p", "1m", json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
            vec![Reason::NodeAffinity],
        ),
        (
            "matchFields",
            state(node("n", "1", json!({})), &[]),
            pod(
                "p",
                "1m",
                json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
             {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["other"]}]}]}}}}}),
            ),
            vec![Reason::NodeAffinity],
        ),
        (
            "host port taken",
            state(node("n", "1", json!({})), &[pod("a", "0", port(8080))]),
            pod("p", "0", port(8080)),
            vec![Reason::NodePorts],
        ),
        (
            "other host port",
            state(node("n", "1", json!({})), &[pod("a", "0", port(8080))]),
            pod("p", "0", port(8081)),
            vec![],
        ),
    ];
    for (name, n, p, want) in cases {
        assert_eq!(filter(&p, &n), want, "{name}");
    }
}

#[test]
fn fit_error_prints_upstreams_message() {
    let nodes = vec![
        state(
            node(
                "a",
                "1",
                json!({"spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]}}),
            ),
            &[],
        ),
        state(node("b", "1", json!({})), &[]),
        state(node("c", "1", json!({})), &[]),
    ];
    let err = schedule_one(&pod("big", "2", json!({})), &nodes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient cpu. \
         preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    );
    let all_short = vec![
        state(node("a", "1", json!({})), &[]),
        state(node("b", "1", json!({})), &[]),
        state(node("c", "1", json!({})), &[]),
    ];
    assert_eq!(
        schedule_one(&pod("big", "2", json!({})), &all_short).unwrap_err().to_string(),
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
    let never = pod("big", "2", json!({"spec": {"preemptionPolicy": "Never"}}));
    assert_eq!(
        schedule_one(&never, &all_short[..1]).unwrap_err().to_string(),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    );
    assert_eq!(
        schedule_one(&pod("p", "1m", json!({})), &[]).unwrap_err().to_string(),
        "no nodes available to schedule pods"
    );
}

fn placements(decisions: &[Decision]) -> Vec<(String, String)> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Bind { name, node, .. } => Some((name.clone(), node.clone())),
            Decision::Unschedulable { .. } => None,
        })
        .collect()
}

#[test]
fn pods_of_one_owner_spread_over_nodes() {
    let nodes = vec![node("a", "4", json!({})), node("b", "4", json!({})), node("c", "4", json!({}))];
    let pods: Vec<Pod> = (0..6).map(|i| owned(&format!("p{i}"), "rs1")).collect();
    let placed = placements(&plan(&pods, nodes));
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for (_, n) in &placed {
        *per_node.entry(n.clone()).or_default() += 1;
    }
    assert_eq!(per_node, BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)]));
}

#[test]
fn spreading_accounts_for_pods_already_bound() {
    let nodes = vec![node("a", "4", json!({})), node("b", "4", json!({}))];
    let pods = vec![bound(owned("old", "rs1"), "a"), owned("new", "rs1")];
    assert_eq!(placements(&plan(&pods, nodes)), vec![("new".into(), "b".into())]);
}

#[test]
fn least_allocated_node_wins() {
    let busy = pod("busy", "3", json!({}));
    let nodes = vec![node("a", "4", json!({})), node("b", "4", json!({}))];
    let pods = vec![bound(busy, "a"), pod("p", "100m", json!({}))];
    assert_eq!(placements(&plan(&pods, nodes)), vec![("p".into(), "b".into())]);
}

#[test]
fn prefer_no_schedule_is_avoided_not_forbidden() {
    let soft = json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}});
    let nodes = vec![node("a", "4", soft.clone()), node("b", "4", json!({}))];
    assert_eq!(placements(&plan(&[pod("p", "1m", json!({}))], nodes)), vec![("p".into(), "b".into())]);
    let only_soft = vec![node("a", "4", soft)];
    assert_eq!(placements(&plan(&[pod("p", "1m", json!({}))], only_soft)), vec![("p".into(), "a".into())]);
}

#[test]
fn preferred_affinity_attracts() {
    let nodes = vec![node("a", "4", json!({})), node("b", "4", json!({"metadata": {"labels": {"disk": "ssd"}}}))];
    let p = pod(
        "p",
        "1m",
        json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}}),
    );
    assert_eq!(placements(&plan(&[p], nodes)), vec![("p".into(), "b".into())]);
}

#[test]
fn placements_in_one_pass_consume_capacity_by_priority() {
    let nodes = vec![node("a", "1", json!({}))];
    let low = pod("low", "600m", json!({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"}}));
    let high = pod(
        "high",
        "600m",
        json!({"metadata": {"creationTimestamp": "2024-01-01T00:00:05Z"}, "spec": {"priority": 1000}}),
    );
    let decisions = plan(&[low, high], nodes);
    assert_eq!(placements(&decisions), vec![("high".into(), "a".into())]);
    assert!(matches!(&decisions[1], Decision::Unschedulable { name, message, .. }
        if name == "low" && message.starts_with("0/1 nodes are available: 1 Insufficient cpu.")));
}

#[test]
fn only_pending_pods_of_the_default_scheduler_are_planned() {
    let nodes = vec![node("a", "4", json!({}))];
    let pods = vec![
        pod("other", "1m", json!({"spec": {"schedulerName": "custom"}})),
        pod("deleting", "1m", json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})),
        pod("done", "1m", json!({"status": {"phase": "Succeeded"}})),
        bound(pod("bound", "1m", json!({})), "a"),
        pod("mine", "1m", json!({})),
    ];
    assert_eq!(placements(&plan(&pods, nodes)), vec![("mine".into(), "a".into())]);
}
