//! Scheduling, DaemonSets and node lifecycle with the real server and kubectl. The test plays the
//! kubelet of nodes that have no agent: it registers Node objects, renews their Leases, marks
//! pods bound to them Running and Ready, and finishes the deletion of pods it was told to stop.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::Server;

fn node_manifest(name: &str, cpu: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": chrono::Utc::now().to_rfc3339(), "lastTransitionTime": chrono::Utc::now().to_rfc3339()}],
        },
    }))
    .unwrap()
}

/// The fake kubelets of a test: which nodes are alive, run by one background task.
#[derive(Clone)]
struct Kubelets {
    client: kube::Client,
    alive: Arc<Mutex<HashSet<String>>>,
}

fn micro_now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl Kubelets {
    async fn start(s: &Server) -> Kubelets {
        let k = Kubelets { client: s.client().await, alive: Arc::new(Mutex::new(HashSet::new())) };
        let bg = k.clone();
        tokio::spawn(async move {
            loop {
                bg.tick().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        k
    }

    async fn register(&self, name: &str, cpu: &str) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes.create(&PostParams::default(), &node_manifest(name, cpu)).await.unwrap();
        self.alive.lock().unwrap().insert(name.to_string());
        self.renew(name).await;
    }

    fn set_alive(&self, name: &str, alive: bool) {
        let mut a = self.alive.lock().unwrap();
        if alive {
            a.insert(name.to_string());
        } else {
            a.remove(name);
        }
    }

    async fn renew(&self, name: &str) {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let spec = json!({"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_now()});
        if leases.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec}))).await.is_err() {
            let lease: Lease = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
            let _ = leases.create(&PostParams::default(), &lease).await;
        }
    }

    /// As a kubelet that comes back: its own status says Ready again.
    async fn post_ready(&self, name: &str) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let now = chrono::Utc::now().to_rfc3339();
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
        nodes.patch_status(name, &PatchParams::default(), &Patch::Strategic(status)).await.unwrap();
    }

    async fn tick(&self) {
        let alive: Vec<String> = self.alive.lock().unwrap().iter().cloned().collect();
        for n in &alive {
            self.renew(n).await;
        }
        let Ok(pods) = Api::<Pod>::all(self.client.clone()).list(&ListParams::default()).await else { return };
        for p in pods.items {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            if !alive.contains(&node) {
                continue;
            }
            let (ns, name) =
                (p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default());
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            if p.metadata.deletion_timestamp.is_some() {
                let _ = api.delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await;
            } else if p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
                let now = chrono::Utc::now().to_rfc3339();
                let status = json!({"status": {"phase": "Running", "startTime": now, "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]}});
                let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status)).await;
            }
        }
    }
}

async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (name, nodeName) of the pods matching a label selector.
async fn placed(client: &kube::Client, ns: &str, selector: &str) -> Vec<(String, String, bool)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods.list(&ListParams::default().labels(selector)).await.unwrap();
    list.items
        .into_iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.spec.and_then(|s| s.node_name).unwrap_or_default(),
                p.metadata.deletion_timestamp.is_some(),
            )
        })
        .collect()
}

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: nginx:1.7.9
        resources:
          requests: {cpu: 100m, memory: 64Mi}
";

const BIG: &str = "apiVersion: v1
kind: Pod
metadata:
  name: big
spec:
  containers:
  - name: big
    image: busybox
    resources:
      requests: {cpu: '3'}
";

const AGENT: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: kube-system
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: busybox:1.36
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_spread_wait_for_room_and_daemons_cover_nodes() {
    let s = Server::start();
    let k = Kubelets::start(&s).await;
    for n in ["n1", "n2", "n3"] {
        k.register(n, "2").await;
    }
    assert!(s.apply_stdin(&["apply", "-f", "-"], WEB).status.success());
    let c = k.client.clone();
    eventually("3 web pods on 3 different nodes", 20, || async {
        let p = placed(&c, "default", "app=web").await;
        let nodes: HashSet<&str> = p.iter().map(|(_, n, _)| n.as_str()).filter(|n| !n.is_empty()).collect();
        p.len() == 3 && nodes.len() == 3
    })
    .await;
    let web = placed(&c, "default", "app=web").await;
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={}", web[0].0),
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains(&format!("Successfully assigned default/{} to {}", web[0].0, web[0].1)), "{events}");

    // Too big for every node: upstream's message, and the PodScheduled condition.
    assert!(s.apply_stdin(&["apply", "-f", "-"], BIG).status.success());
    let want = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
    eventually("FailedScheduling for the big pod", 10, || async {
        s.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=big,reason=FailedScheduling",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .contains(want)
    })
    .await;
    let cond = s.ok(&["get", "pod", "big", "-o", r#"jsonpath={.status.conditions[?(@.type=="PodScheduled")].reason} {.status.conditions[?(@.type=="PodScheduled")].message}"#]);
    assert_eq!(cond, format!("Unschedulable {want}"));
    let described = s.ok(&["describe", "pod", "big"]);
    assert!(described.contains("FailedScheduling") && described.contains("default-scheduler"), "{described}");
    // A big node appears: the pod goes there.
    k.register("big-node", "8").await;
    eventually("the big pod on the big node", 10, || async {
        s.ok(&["get", "pod", "big", "-o", "jsonpath={.spec.nodeName}"]) == "big-node"
    })
    .await;
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=big,reason=Scheduled",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert_eq!(events, "Successfully assigned default/big to big-node");

    // One daemon pod per node, pinned by node affinity and bound by the scheduler.
    assert!(s.apply_stdin(&["apply", "-f", "-"], AGENT).status.success());
    eventually("one agent pod per node, all ready", 20, || async {
        let p = placed(&c, "kube-system", "app=agent").await;
        let nodes: HashSet<&str> = p.iter().map(|(_, n, _)| n.as_str()).filter(|n| !n.is_empty()).collect();
        p.len() == 4
            && nodes.len() == 4
            && s.ok(&["get", "ds", "agent", "-n", "kube-system", "-o", "jsonpath={.status.numberReady}"]) == "4"
    })
    .await;
    let status = s.ok(&["get", "ds", "agent", "-n", "kube-system", "-o",
        "jsonpath={.status.desiredNumberScheduled} {.status.currentNumberScheduled} {.status.updatedNumberScheduled} {.status.numberAvailable} {.status.numberMisscheduled} {.status.observedGeneration}"]);
    assert_eq!(status, "4 4 4 4 0 1");
    let affinity = s.ok(&["get", "pods", "-n", "kube-system", "-l", "app=agent", "-o",
        "jsonpath={.items[0].spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key}"]);
    assert_eq!(affinity, "metadata.name");
    assert!(s.ok(&["get", "controllerrevisions", "-n", "kube-system"]).contains("agent-"));

    // A rolling update replaces every daemon pod with the new template.
    s.ok(&["set", "image", "ds/agent", "-n", "kube-system", "agent=busybox:1.37"]);
    eventually("the rolled daemon pods", 30, || async {
        let images = s.ok(&[
            "get",
            "pods",
            "-n",
            "kube-system",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ]);
        images.split_whitespace().count() == 4
            && images.split_whitespace().all(|i| i == "busybox:1.37")
            && s.ok(&[
                "get",
                "ds",
                "agent",
                "-n",
                "kube-system",
                "-o",
                "jsonpath={.status.updatedNumberScheduled} {.status.numberAvailable}",
            ]) == "4 4"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_is_tainted_and_its_pods_move() {
    let s = Server::start_with(&[
        "--node-monitor-grace-period",
        "3s",
        "--default-not-ready-toleration-seconds",
        "2",
        "--default-unreachable-toleration-seconds",
        "2",
    ]);
    let k = Kubelets::start(&s).await;
    for n in ["n1", "n2", "n3"] {
        k.register(n, "2").await;
    }
    assert!(s.apply_stdin(&["apply", "-f", "-"], WEB).status.success());
    let c = k.client.clone();
    eventually("3 web pods spread", 20, || async {
        let p = placed(&c, "default", "app=web").await;
        p.len() == 3
            && p.iter().map(|(_, n, _)| n.as_str()).filter(|n| !n.is_empty()).collect::<HashSet<_>>().len() == 3
    })
    .await;
    let tolerations =
        s.ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].spec.tolerations[*].tolerationSeconds}"]);
    assert_eq!(tolerations, "2 2");

    k.set_alive("n3", false);
    eventually("n3 Unknown and tainted", 15, || async {
        let ready = s.ok(&["get", "node", "n3", "-o", r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}"#]);
        let taints = s.ok(&["get", "node", "n3", "-o", "jsonpath={.spec.taints[*].key}:{.spec.taints[*].effect}"]);
        ready == "Unknown/NodeStatusUnknown" && taints.contains("node.kubernetes.io/unreachable") && taints.contains("NoExecute")
    })
    .await;
    let msg = s.ok(&["get", "node", "n3", "-o", r#"jsonpath={.status.conditions[?(@.type=="Ready")].message}"#]);
    assert_eq!(msg, "Kubelet stopped posting node status.");
    assert!(s.ok(&["get", "nodes"]).contains("NotReady"));
    eventually("web pods gone from n3 and replaced on live nodes", 20, || async {
        let p = placed(&c, "default", "app=web").await;
        p.len() == 3 && p.iter().all(|(_, n, deleting)| (n == "n1" || n == "n2") && !deleting)
    })
    .await;
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=TaintManagerEviction",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains("Marking for deletion Pod default/web-"), "{events}");

    // The kubelet comes back and posts Ready: the taints go.
    k.set_alive("n3", true);
    k.post_ready("n3").await;
    eventually("n3 untainted", 10, || async {
        s.ok(&["get", "node", "n3", "-o", "jsonpath={.spec.taints}"]).is_empty()
    })
    .await;

    // A deleted node's pods are removed.
    k.set_alive("n2", false);
    s.ok(&["delete", "node", "n2"]);
    eventually("no pods on the deleted node", 20, || async {
        let p = placed(&c, "default", "app=web").await;
        p.len() == 3 && p.iter().all(|(_, n, _)| n != "n2" && !n.is_empty())
    })
    .await;
}
