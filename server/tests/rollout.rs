//! Workload controllers driven by the real kubectl, with the test playing the kubelet: every
//! pod that appears is marked Running and Ready through the status subresource. No Node exists,
//! so pods stay unscheduled and a deleted pod is gone at once, as a kubelet would finish it.
//! minReadySeconds is 2 rather than the 5 to keep the run short.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use support::{eventually, Server};

const MIN_READY_SECONDS: i64 = 2;

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  minReadySeconds: {MIN_READY_SECONDS}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
"
    )
}

const STATEFULSET: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 3
  serviceName: db
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: db
        image: busybox:1
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
";

fn ready_since(p: &Pod) -> Option<chrono::DateTime<Utc>> {
    let c = p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(c.last_transition_time.as_ref()?.0)
}

/// Marks every new pod Running and Ready, as a kubelet would once its containers start.
async fn kubelet(api: Api<Pod>) {
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    while let Some(ev) = events.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
            _ => continue,
        };
        if ready_since(&pod).is_some() || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let containers = pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
        let statuses: Vec<_> = containers
            .iter()
            .map(|c| json!({"name": c.name, "image": c.image, "imageID": "", "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": now}}}))
            .collect();
        let patch = json!({"status": {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": statuses,
            "startTime": now,
        }});
        let name = pod.metadata.name.clone().unwrap_or_default();
        let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
    }
}

/// What the pod watch saw while `checking` was on.
#[derive(Default, Debug)]
struct Seen {
    checking: bool,
    max_pods: usize,
    min_available: usize,
    samples: usize,
    /// Order in which pods were first seen, with whether the previous ordinal was Ready then.
    created: Vec<String>,
    violations: Vec<String>,
}

/// Watches pods; after every event checks how many exist (not terminating) and how many are
/// available (Ready for at least minReadySeconds). Between events that count can only grow.
async fn observe(api: Api<Pod>, seen: Arc<Mutex<Seen>>) {
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    let mut events = watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = events.next().await {
        match ev {
            Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                if !pods.contains_key(&name) {
                    let mut s = seen.lock().unwrap();
                    s.created.push(name.clone());
                    // A StatefulSet pod must find its predecessor Running and Ready.
                    if let Some((set, ord)) = name.rsplit_once('-').and_then(|(s, o)| Some((s, o.parse::<u32>().ok()?)))
                    {
                        if ord > 0 && set == "db" {
                            let prev = pods.get(&format!("{set}-{}", ord - 1));
                            if prev.and_then(ready_since).is_none() {
                                s.violations.push(format!("{name} created before {set}-{} was Ready", ord - 1));
                            }
                        }
                    }
                }
                pods.insert(name, p);
            }
            Ok(watcher::Event::Delete(p)) => {
                pods.remove(p.metadata.name.as_deref().unwrap_or_default());
            }
            _ => continue,
        }
        let now = Utc::now();
        let live: Vec<&Pod> = pods.values().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        let available = live
            .iter()
            .filter(|p| ready_since(p).is_some_and(|t| t + chrono::Duration::seconds(MIN_READY_SECONDS) < now))
            .count();
        let mut s = seen.lock().unwrap();
        if s.checking {
            s.samples += 1;
            s.max_pods = s.max_pods.max(live.len());
            s.min_available = s.min_available.min(available);
            if live.len() > 4 || available < 2 {
                let names: Vec<&str> = live.iter().map(|p| p.metadata.name.as_deref().unwrap_or_default()).collect();
                s.violations.push(format!("{} pods, {available} available: {names:?}", live.len()));
            }
        }
    }
}

fn start_checking(seen: &Arc<Mutex<Seen>>) {
    let mut s = seen.lock().unwrap();
    s.checking = true;
    s.max_pods = 0;
    s.min_available = usize::MAX;
}

fn stop_checking(seen: &Arc<Mutex<Seen>>, what: &str) {
    let mut s = seen.lock().unwrap();
    s.checking = false;
    assert!(s.violations.is_empty(), "{what}: {:?}", s.violations);
    assert!(s.samples > 0, "{what}: the watch saw nothing");
    assert!(s.max_pods <= 4 && s.min_available >= 2, "{what}: {s:?}");
    eprintln!("{what}: max {} pods, min {} available over {} events", s.max_pods, s.min_available, s.samples);
}

fn kubectl(s: &Server, args: &[&str]) -> String {
    tokio::task::block_in_place(|| s.ok(args))
}

fn revisions(history: &str) -> Vec<String> {
    history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn deployment_rollout_history_undo_and_scale() {
    let s = Server::start();
    let pods: Api<Pod> = Api::namespaced(s.client().await, "default");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let kubelet_task = tokio::spawn(kubelet(pods.clone()));
    let observer = tokio::spawn(observe(pods.clone(), seen.clone()));

    let out = tokio::task::block_in_place(|| s.apply_stdin(&["apply", "-f", "-"], &deployment("nginx:1")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = kubectl(&s, &["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    // Let the first pods pass minReadySeconds before the invariant is watched.
    eventually("3 available pods", Duration::from_secs(10), || {
        kubectl(&s, &["get", "deploy", "web", "-o", "jsonpath={.status.availableReplicas}"]) == "3"
    });

    start_checking(&seen);
    kubectl(&s, &["set", "image", "deployment/web", "web=nginx:2"]);
    let status = kubectl(&s, &["rollout", "status", "deployment/web", "--timeout=40s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    stop_checking(&seen, "rollout to nginx:2");
    let images = kubectl(&s, &["get", "pods", "-o", "jsonpath={.items[*].spec.containers[0].image}"]);
    assert_eq!(images.split_whitespace().collect::<Vec<_>>(), ["nginx:2"; 3], "{images}");

    let history = kubectl(&s, &["rollout", "history", "deployment/web"]);
    assert_eq!(revisions(&history), ["1", "2"], "{history}");

    eventually("3 available pods", Duration::from_secs(10), || {
        kubectl(&s, &["get", "deploy", "web", "-o", "jsonpath={.status.availableReplicas}"]) == "3"
    });
    start_checking(&seen);
    kubectl(&s, &["rollout", "undo", "deployment/web"]);
    let status = kubectl(&s, &["rollout", "status", "deployment/web", "--timeout=40s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    stop_checking(&seen, "undo to nginx:1");
    let history = kubectl(&s, &["rollout", "history", "deployment/web"]);
    assert_eq!(revisions(&history), ["2", "3"], "{history}");
    let rev3 = kubectl(&s, &["rollout", "history", "deployment/web", "--revision=3"]);
    assert!(rev3.contains("nginx:1"), "{rev3}");
    let annotations = kubectl(
        &s,
        &["get", "deploy", "web", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"],
    );
    assert_eq!(annotations, "3");
    let rs = kubectl(&s, &["get", "rs", "-o", "jsonpath={range .items[*]}{.metadata.annotations.deployment\\.kubernetes\\.io/revision}/{.metadata.annotations.deployment\\.kubernetes\\.io/revision-history}/{.spec.replicas}{\"\\n\"}{end}"]);
    let mut rs_lines: Vec<&str> = rs.lines().collect();
    rs_lines.sort();
    assert_eq!(rs_lines, ["2//0", "3/1/3"], "{rs}");

    kubectl(&s, &["scale", "deployment/web", "--replicas=5"]);
    kubectl(&s, &["rollout", "status", "deployment/web", "--timeout=20s"]);
    eventually("5 pods", Duration::from_secs(10), || kubectl(&s, &["get", "pods", "-o", "name"]).lines().count() == 5);
    kubectl(&s, &["scale", "deployment/web", "--replicas=3"]);
    eventually("3 pods", Duration::from_secs(10), || kubectl(&s, &["get", "pods", "-o", "name"]).lines().count() == 3);
    eventually("status of 3", Duration::from_secs(10), || {
        kubectl(
            &s,
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.status.replicas}/{.status.updatedReplicas}/{.status.readyReplicas}",
            ],
        ) == "3/3/3"
    });
    let conditions = kubectl(
        &s,
        &["get", "deploy", "web", "-o", "jsonpath={range .status.conditions[*]}{.type}={.status}/{.reason} {end}"],
    );
    assert!(conditions.contains("Available=True/MinimumReplicasAvailable"), "{conditions}");
    assert!(conditions.contains("Progressing=True/NewReplicaSetAvailable"), "{conditions}");
    let events = kubectl(&s, &["get", "events", "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}"]);
    assert!(events.contains("ScalingReplicaSet: Scaled up replica set web-"), "{events}");
    assert!(events.contains("SuccessfulCreate: Created pod: web-"), "{events}");
    kubelet_task.abort();
    observer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn pause_resume_and_restart() {
    let s = Server::start();
    let pods: Api<Pod> = Api::namespaced(s.client().await, "default");
    let kubelet_task = tokio::spawn(kubelet(pods.clone()));
    let out = tokio::task::block_in_place(|| {
        s.apply_stdin(&["apply", "-f", "-"], &deployment("nginx:1").replace("minReadySeconds: 2", "minReadySeconds: 0"))
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    kubectl(&s, &["rollout", "status", "deployment/web", "--timeout=30s"]);

    kubectl(&s, &["rollout", "pause", "deployment/web"]);
    kubectl(&s, &["set", "image", "deployment/web", "web=nginx:2"]);
    eventually("paused condition", Duration::from_secs(10), || {
        kubectl(&s, &["get", "deploy", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}"])
            == "DeploymentPaused"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(kubectl(&s, &["get", "rs", "-o", "name"]).lines().count(), 1, "no rollout while paused");
    kubectl(&s, &["rollout", "resume", "deployment/web"]);
    kubectl(&s, &["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert_eq!(kubectl(&s, &["get", "rs", "-o", "name"]).lines().count(), 2);

    kubectl(&s, &["rollout", "restart", "deployment/web"]);
    kubectl(&s, &["rollout", "status", "deployment/web", "--timeout=30s"]);
    let history = kubectl(&s, &["rollout", "history", "deployment/web"]);
    assert_eq!(revisions(&history), ["1", "2", "3"], "{history}");
    kubelet_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn statefulset_comes_up_in_order_with_claims() {
    let s = Server::start();
    let pods: Api<Pod> = Api::namespaced(s.client().await, "default");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let kubelet_task = tokio::spawn(kubelet(pods.clone()));
    let observer = tokio::spawn(observe(pods.clone(), seen.clone()));

    let out = tokio::task::block_in_place(|| s.apply_stdin(&["apply", "-f", "-"], STATEFULSET));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = kubectl(&s, &["rollout", "status", "statefulset/db", "--timeout=30s"]);
    assert!(status.contains("roll out complete") || status.contains("rolling update complete"), "{status}");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.created, ["db-0", "db-1", "db-2"]);
        assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    }
    let claims = kubectl(&s, &["get", "pvc", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(claims, "data-db-0 data-db-1 data-db-2");
    let hostname = kubectl(
        &s,
        &[
            "get",
            "pod",
            "db-1",
            "-o",
            "jsonpath={.spec.hostname}/{.spec.subdomain}/{.spec.volumes[0].persistentVolumeClaim.claimName}",
        ],
    );
    assert_eq!(hostname, "db-1/db/data-db-1");
    let st = kubectl(
        &s,
        &[
            "get",
            "sts",
            "db",
            "-o",
            "jsonpath={.status.replicas}/{.status.readyReplicas}/{.status.currentReplicas}/{.status.updatedReplicas}",
        ],
    );
    assert_eq!(st, "3/3/3/3");
    assert!(kubectl(&s, &["get", "controllerrevisions", "-o", "name"]).contains("db-"));

    // A rolling update replaces pods from the highest ordinal down.
    seen.lock().unwrap().created.clear();
    kubectl(&s, &["set", "image", "statefulset/db", "db=busybox:2"]);
    kubectl(&s, &["rollout", "status", "statefulset/db", "--timeout=30s"]);
    assert_eq!(seen.lock().unwrap().created, ["db-2", "db-1", "db-0"]);

    kubectl(&s, &["scale", "statefulset/db", "--replicas=1"]);
    eventually("scale down to db-0", Duration::from_secs(10), || {
        kubectl(&s, &["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]) == "db-0"
    });
    kubelet_task.abort();
    observer.abort();
}

#[test]
fn progress_deadline_is_reported_when_pods_never_become_ready() {
    // No kubelet here: the pods stay Pending.
    let s = Server::start();
    let manifest =
        deployment("nginx:1").replace("  minReadySeconds: 2\n", "  minReadySeconds: 0\n  progressDeadlineSeconds: 2\n");
    let out = s.apply_stdin(&["apply", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = s.fails(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    let reason = s.ok(&["get", "deploy", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"Progressing\")].status}/{.status.conditions[?(@.type==\"Progressing\")].reason}"]);
    assert_eq!(reason, "False/ProgressDeadlineExceeded");
    let available = s.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Available\")].status}/{.status.unavailableReplicas}",
    ]);
    assert_eq!(available, "False/3");
}

#[test]
fn replicaset_adopts_orphans_and_releases_relabelled_pods() {
    let s = Server::start();
    let orphan = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: orphan\n  labels:\n    tier: frontend\nspec:\n  containers:\n  - name: c\n    image: nginx:1\n";
    assert!(s.apply_stdin(&["apply", "-f", "-"], orphan).status.success());
    let rs = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: frontend\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      tier: frontend\n  template:\n    metadata:\n      labels:\n        tier: frontend\n    spec:\n      containers:\n      - name: c\n        image: nginx:1\n";
    assert!(s.apply_stdin(&["apply", "-f", "-"], rs).status.success());
    let owned = || {
        s.ok(&["get", "pods", "-l", "tier=frontend", "-o", "jsonpath={range .items[*]}{.metadata.name}={.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}/{.metadata.ownerReferences[0].blockOwnerDeletion} {end}"])
    };
    eventually("the orphan adopted and one pod created", Duration::from_secs(10), || {
        let o = owned();
        o.split_whitespace().count() == 2 && o.contains("orphan=frontend/true/true")
    });
    let names = owned();
    let created =
        names.split_whitespace().find(|p| !p.starts_with("orphan=")).unwrap().split('=').next().unwrap().to_string();
    assert!(created.starts_with("frontend-") && created.len() == "frontend-".len() + 5, "{created}");

    s.ok(&["label", "pod", &created, "tier=other", "--overwrite"]);
    eventually("the relabelled pod released and replaced", Duration::from_secs(10), || {
        owned().split_whitespace().filter(|p| p.ends_with("=frontend/true/true")).count() == 2
            && s.ok(&["get", "pod", &created, "-o", "jsonpath={.metadata.ownerReferences}"]).is_empty()
    });
    eventually("status", Duration::from_secs(10), || {
        s.ok(&[
            "get",
            "rs",
            "frontend",
            "-o",
            "jsonpath={.status.replicas}/{.status.fullyLabeledReplicas}/{.status.observedGeneration}",
        ]) == "2/2/1"
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=frontend",
        "-o",
        "jsonpath={range .items[*]}{.reason} {end}",
    ]);
    assert!(events.contains("SuccessfulCreate"), "{events}");
}
