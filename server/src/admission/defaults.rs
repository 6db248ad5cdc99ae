//! Upstream's defaulting (the `SetDefaults_*` functions of each API group) on JSON objects, so that what
//! `kubectl get -o yaml` shows after a create is what a Kubernetes user expects.

use serde_json::{json, Map, Value};

use crate::config::NodeSettings;

/// Sets `obj[key] = value` when the key is absent or null.
fn default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    match obj.get(key) {
        None | Some(Value::Null) => {
            obj.insert(key.to_string(), value);
        }
        Some(_) => {}
    }
}

/// The object at `path`, created as `{}` on the way when missing.
fn ensure<'a>(obj: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = obj;
    for seg in path {
        let map = cur.as_object_mut()?;
        if !matches!(map.get(*seg), Some(Value::Object(_))) {
            map.insert((*seg).to_string(), json!({}));
        }
        cur = map.get_mut(*seg)?;
    }
    cur.as_object_mut()
}

fn each_object(v: Option<&mut Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    v.and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

/// Defaults `obj` in place; `nodes` carries the flag-set default toleration seconds for pods.
pub fn apply(group: &str, kind: &str, obj: &mut Value, nodes: &NodeSettings) {
    match (group, kind) {
        ("", "Pod") => {
            if let Some(spec) = ensure(obj, &["spec"]) {
                pod_spec(spec, true);
                add_default_tolerations(spec, nodes);
            }
        }
        ("", "Namespace") => {
            if let Some(spec) = ensure(obj, &["spec"]) {
                default(spec, "finalizers", json!(["kubernetes"]));
            }
        }
        ("", "Service") => {
            if let Some(spec) = ensure(obj, &["spec"]) {
                service_spec(spec);
            }
        }
        ("", "Secret") => {
            if let Some(o) = obj.as_object_mut() {
                default(o, "type", json!("Opaque"));
            }
        }
        ("", "Endpoints") => {
            for subset in each_object(obj.get_mut("subsets")) {
                for port in each_object(subset.get_mut("ports")) {
                    default(port, "protocol", json!("TCP"));
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in each_object(obj.get_mut("ports")) {
                default(port, "protocol", json!("TCP"));
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = ensure(obj, &["spec"]) {
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("", "PersistentVolume") => {
            if let Some(spec) = ensure(obj, &["spec"]) {
                default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            if let Some(o) = obj.as_object_mut() {
                default(o, "reclaimPolicy", json!("Delete"));
                default(o, "volumeBindingMode", json!("Immediate"));
            }
        }
        ("apps", "Deployment") => {
            if let Some(spec) = ensure(obj, &["spec"]) {
                default(spec, "replicas", json!(1));
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "progressDeadlineSeconds", json!(600));
                default(spec, "strategy", json!({}));
                if let Some(strategy) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                    default(strategy, "type", json!("RollingUpdate"));
                    if strategy.get("type") == Some(&json!("RollingUpdate")) {
                        default(strategy, "rollingUpdate", json!({}));
                        if let Some(ru) = strategy.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                            default(ru, "maxUnavailable", json!("25%"));
                            default(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
            }
            template(obj);
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = ensure(obj, &["spec"]) {
                default(spec, "replicas", json!(1));
            }
            template(obj);
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = ensure(obj, &["spec"]) {
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "updateStrategy", json!({}));
                if let Some(strategy) = spec.get_mut("updateStrategy").and_then(Value::as_object_mut) {
                    default(strategy, "type", json!("RollingUpdate"));
                    if strategy.get("type") == Some(&json!("RollingUpdate")) {
                        default(strategy, "rollingUpdate", json!({}));
                        if let Some(ru) = strategy.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                            default(ru, "maxUnavailable", json!(1));
                            default(ru, "maxSurge", json!(0));
                        }
                    }
                }
            }
            template(obj);
        }
        ("apps", "StatefulSet") => {
            if let Some(spec) = ensure(obj, &["spec"]) {
                default(spec, "replicas", json!(1));
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                default(spec, "updateStrategy", json!({}));
                if let Some(strategy) = spec.get_mut("updateStrategy").and_then(Value::as_object_mut) {
                    default(strategy, "type", json!("RollingUpdate"));
                    if strategy.get("type") == Some(&json!("RollingUpdate")) {
                        default(strategy, "rollingUpdate", json!({"partition": 0}));
                    }
                }
                for pvc in each_object(spec.get_mut("volumeClaimTemplates")) {
                    if let Some(s) = pvc.get_mut("spec").and_then(Value::as_object_mut) {
                        default(s, "volumeMode", json!("Filesystem"));
                    }
                }
            }
            template(obj);
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            if let Some(spec) = ensure(obj, &["spec"]) {
                default(spec, "minReplicas", json!(1));
                // v2 form (the storage form): no metrics means "80% CPU", as upstream's v2 defaulting says.
                if spec.contains_key("targetCPUUtilizationPercentage") {
                    return;
                }
                let empty = spec.get("metrics").and_then(Value::as_array).is_none_or(|m| m.is_empty());
                if empty {
                    spec.insert(
                        "metrics".into(),
                        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
                    );
                }
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            for subject in each_object(obj.get_mut("subjects")) {
                let kind = subject.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
                if kind == "User" || kind == "Group" {
                    default(subject, "apiGroup", json!("rbac.authorization.k8s.io"));
                } else if kind == "ServiceAccount" {
                    default(subject, "apiGroup", json!(""));
                }
            }
        }
        _ => {}
    }
}

/// Pod defaulting (upstream's DefaultTolerationSeconds admission): tolerations for the
/// not-ready and unreachable NoExecute taints, bounded by the configured seconds, unless the pod
/// already tolerates them. Only appends, so what the user wrote stays as written.
fn add_default_tolerations(spec: &mut Map<String, Value>, s: &NodeSettings) {
    let current: Vec<k8s_openapi::api::core::v1::Toleration> = match spec.get("tolerations") {
        None | Some(Value::Null) => Vec::new(),
        // Malformed tolerations are validation's to report.
        Some(v) => match serde_json::from_value(v.clone()) {
            Ok(t) => t,
            Err(_) => return,
        },
    };
    let mut with = current.clone();
    edge_scheduler::taints::add_default_tolerations(
        &mut with,
        s.not_ready_toleration_seconds,
        s.unreachable_toleration_seconds,
    );
    if with.len() == current.len() {
        return;
    }
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(arr) = list.as_array_mut() {
        arr.extend(with[current.len()..].iter().filter_map(|t| serde_json::to_value(t).ok()));
    }
}

fn template(obj: &mut Value) {
    if let Some(spec) = ensure(obj, &["spec", "template", "spec"]) {
        pod_spec(spec, false);
    }
}

fn pod_spec(spec: &mut Map<String, Value>, is_pod: bool) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    if is_pod {
        default(spec, "enableServiceLinks", json!(true));
        default(spec, "priority", json!(0));
        default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        default(spec, "serviceAccountName", json!("default"));
        if let Some(sa) = spec.get("serviceAccountName").cloned() {
            default(spec, "serviceAccount", sa);
        }
    }
    for key in ["containers", "initContainers"] {
        for c in each_object(spec.get_mut(key)) {
            container(c);
        }
    }
    for v in each_object(spec.get_mut("volumes")) {
        for source in ["configMap", "secret"] {
            if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
                default(s, "defaultMode", json!(420));
            }
        }
        if let Some(s) = v.get_mut("downwardAPI").and_then(Value::as_object_mut) {
            default(s, "defaultMode", json!(420));
        }
        if let Some(s) = v.get_mut("projected").and_then(Value::as_object_mut) {
            default(s, "defaultMode", json!(420));
        }
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    default(c, "imagePullPolicy", json!(pull_policy_for(image)));
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    for p in each_object(c.get_mut("ports")) {
        default(p, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                default(h, "scheme", json!("HTTP"));
                default(h, "path", json!("/"));
            }
        }
    }
    for e in each_object(c.get_mut("env")) {
        if let Some(f) = e.get_mut("valueFrom").and_then(|v| v.get_mut("fieldRef")).and_then(Value::as_object_mut) {
            default(f, "apiVersion", json!("v1"));
        }
    }
}

/// Upstream: `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (digests count as tags).
pub fn pull_policy_for(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn service_spec(spec: &mut Map<String, Value>) {
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    if ty != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if spec.get("sessionAffinity") == Some(&json!("ClientIP")) {
        default(spec, "sessionAffinityConfig", json!({"clientIP": {"timeoutSeconds": 10800}}));
    }
    for p in each_object(spec.get_mut("ports")) {
        default(p, "protocol", json!("TCP"));
        if let Some(port) = p.get("port").cloned() {
            default(p, "targetPort", port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.7.9", "IfNotPresent"),
            ("registry:5000/nginx", "Always"),
            ("registry:5000/nginx:1.0", "IfNotPresent"),
            ("nginx@sha256:abc", "IfNotPresent"),
        ] {
            assert_eq!(pull_policy_for(image), want, "{image}");
        }
    }

    #[test]
    fn deployment_gets_upstream_defaults_without_overwriting_given_values() {
        let mut d = json!({"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "w"}},
            "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "w", "image": "nginx:1.7.9", "ports": [{"containerPort": 80}]}]}}}});
        apply("apps", "Deployment", &mut d, &NodeSettings::default());
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
        assert!(pod.get("serviceAccountName").is_none(), "templates are not given a service account");
    }

    #[test]
    fn recreate_strategy_gets_no_rolling_update_block() {
        let mut d = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply("apps", "Deployment", &mut d, &NodeSettings::default());
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn service_ports_default_target_port_and_protocol() {
        let mut s = json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}});
        apply("", "Service", &mut s, &NodeSettings::default());
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(s["spec"]["ports"][1]["targetPort"], "dns");
    }

    #[test]
    fn default_tolerations_append_to_what_the_user_wrote() {
        let mut spec: Map<String, Value> = serde_json::from_value(json!({"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]})).unwrap();
        add_default_tolerations(&mut spec, &NodeSettings::default());
        let t = spec["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 5);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
        let mut empty = Map::new();
        add_default_tolerations(&mut empty, &NodeSettings::default());
        assert_eq!(empty["tolerations"].as_array().unwrap().len(), 2);
    }
}
