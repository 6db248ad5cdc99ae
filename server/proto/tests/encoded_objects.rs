//! Objects encoded by prost with k8s-pb (the same generated.proto kubectl's gogo code uses), wrapped in the
//! `k8s\0` + runtime.Unknown envelope, decoded and compared with the JSON upstream would hold.
//! Go writes every non-pointer field, so the inputs set zero values (`Some("")`, `Some(0)`, empty messages)
//! the way kubectl's bodies carry them.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::BTreeMap;

use edge_proto::{decode, is_supported, DecodeError};
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::authentication::v1 as authn;
use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::autoscaling::{v1 as hpa1, v2 as hpa2};
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::events::v1 as events;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{json, Value};

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), Quantity { string: s(v) })).collect()
}

/// ObjectMeta as Go writes it for a new object: every non-pointer field present, zero-valued.
fn new_meta(name: &str, namespace: &str, labels: BTreeMap<String, String>) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(namespace),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels,
        ..Default::default()
    }
}

fn int_or_str_int(v: i32) -> IntOrString {
    IntOrString { r#type: Some(0), int_val: Some(v), str_val: s("") }
}

fn int_or_str_str(v: &str) -> IntOrString {
    IntOrString { r#type: Some(1), int_val: Some(0), str_val: s(v) }
}

/// A Container as kubectl's Go structs write it: all non-pointer fields zero unless given.
fn go_container(name: &str, image: &str) -> core::Container {
    core::Container {
        name: s(name),
        image: s(image),
        working_dir: s(""),
        resources: Some(core::ResourceRequirements::default()),
        termination_message_path: s(""),
        termination_message_policy: s(""),
        image_pull_policy: s(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

fn go_pod_spec(containers: Vec<core::Container>) -> core::PodSpec {
    core::PodSpec {
        containers,
        restart_policy: s(""),
        dns_policy: s(""),
        service_account_name: s(""),
        service_account: s(""),
        node_name: s(""),
        host_network: Some(false),
        host_pid: Some(false),
        host_ipc: Some(false),
        hostname: s(""),
        subdomain: s(""),
        scheduler_name: s(""),
        priority_class_name: s(""),
        ..Default::default()
    }
}

#[test]
fn decodes_objects_like_kubectl_sends_them() {
    let cases: Vec<(&str, Vec<u8>, Value)> = vec![
        (
            "configmap from literals",
            envelope(
                "v1",
                "ConfigMap",
                core::ConfigMap {
                    metadata: Some(new_meta("cm", "", BTreeMap::new())),
                    data: labels(&[("db.host", "localhost"), ("db.port", "3306")]),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
                   "data": {"db.host": "localhost", "db.port": "3306"}}),
        ),
        (
            // immutable is a *bool: false is a real value.
            "configmap immutable false and binaryData",
            envelope(
                "v1",
                "ConfigMap",
                core::ConfigMap {
                    metadata: Some(new_meta("cm", "ns", BTreeMap::new())),
                    immutable: Some(false),
                    binary_data: [("blob".to_owned(), vec![0u8, 1, 2, 255])].into(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"},
                   "immutable": false, "binaryData": {"blob": "AAEC/w=="}}),
        ),
        (
            "secret with binary data",
            envelope(
                "v1",
                "Secret",
                core::Secret {
                    metadata: Some(new_meta("tls", "default", BTreeMap::new())),
                    data: [("tls.key".to_owned(), vec![0x30, 0x82, 0x01, 0x00, 0xFF]), ("empty".to_owned(), vec![])]
                        .into(),
                    r#type: s("kubernetes.io/tls"),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "default"},
                   "data": {"tls.key": "MIIBAP8=", "empty": ""}, "type": "kubernetes.io/tls"}),
        ),
        (
            "kubectl create deployment web --image=nginx:1.7.9 --replicas=3 --port=80",
            envelope("apps/v1", "Deployment", create_deployment().encode_to_vec()),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [
                            {"name": "nginx", "image": "nginx:1.7.9", "ports": [{"containerPort": 80}]}
                        ]}
                    }
                }
            }),
        ),
        (
            "deployment with a full pod template",
            envelope("apps/v1", "Deployment", full_deployment().encode_to_vec()),
            full_deployment_json(),
        ),
        (
            "kubectl autoscale (autoscaling/v1)",
            envelope(
                "autoscaling/v1",
                "HorizontalPodAutoscaler",
                hpa1::HorizontalPodAutoscaler {
                    metadata: Some(new_meta("web", "", BTreeMap::new())),
                    spec: Some(hpa1::HorizontalPodAutoscalerSpec {
                        scale_target_ref: Some(hpa1::CrossVersionObjectReference {
                            kind: s("Deployment"),
                            name: s("web"),
                            api_version: s("apps/v1"),
                        }),
                        min_replicas: Some(2),
                        max_replicas: Some(5),
                        target_cpu_utilization_percentage: Some(80),
                    }),
                    status: Some(hpa1::HorizontalPodAutoscalerStatus {
                        current_replicas: Some(0),
                        desired_replicas: Some(0),
                        ..Default::default()
                    }),
                }
                .encode_to_vec(),
            ),
            // currentReplicas/desiredReplicas have no omitempty: Go's JSON carries their zeros too.
            json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                   "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                            "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80},
                   "status": {"currentReplicas": 0, "desiredReplicas": 0}}),
        ),
        (
            "autoscaling/v2 HPA with a resource metric and behavior",
            envelope(
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                hpa2::HorizontalPodAutoscaler {
                    metadata: Some(new_meta("web", "prod", BTreeMap::new())),
                    spec: Some(hpa2::HorizontalPodAutoscalerSpec {
                        scale_target_ref: Some(hpa2::CrossVersionObjectReference {
                            kind: s("Deployment"),
                            name: s("web"),
                            api_version: s("apps/v1"),
                        }),
                        min_replicas: Some(1),
                        max_replicas: Some(10),
                        metrics: vec![hpa2::MetricSpec {
                            r#type: s("Resource"),
                            resource: Some(hpa2::ResourceMetricSource {
                                name: s("memory"),
                                target: Some(hpa2::MetricTarget {
                                    r#type: s("AverageValue"),
                                    average_value: Some(Quantity { string: s("500Mi") }),
                                    ..Default::default()
                                }),
                            }),
                            ..Default::default()
                        }],
                        behavior: Some(hpa2::HorizontalPodAutoscalerBehavior {
                            scale_down: Some(hpa2::HpaScalingRules {
                                stabilization_window_seconds: Some(0),
                                select_policy: s("Max"),
                                policies: vec![hpa2::HpaScalingPolicy {
                                    r#type: s("Percent"),
                                    value: Some(50),
                                    period_seconds: Some(60),
                                }],
                                tolerance: None,
                            }),
                            scale_up: None,
                        }),
                    }),
                    status: Some(hpa2::HorizontalPodAutoscalerStatus {
                        current_replicas: Some(0),
                        desired_replicas: Some(0),
                        ..Default::default()
                    }),
                }
                .encode_to_vec(),
            ),
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                   "metadata": {"name": "web", "namespace": "prod"},
                   "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                            "minReplicas": 1, "maxReplicas": 10,
                            "metrics": [{"type": "Resource", "resource": {"name": "memory",
                                "target": {"type": "AverageValue", "averageValue": "500Mi"}}}],
                            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}},
                   "status": {"desiredReplicas": 0}}),
        ),
        (
            "kubectl auth can-i create deployments.apps --subresource=scale",
            envelope(
                "authorization.k8s.io/v1",
                "SelfSubjectAccessReview",
                authz::SelfSubjectAccessReview {
                    metadata: Some(new_meta("", "", BTreeMap::new())),
                    spec: Some(authz::SelfSubjectAccessReviewSpec {
                        resource_attributes: Some(authz::ResourceAttributes {
                            namespace: s("default"),
                            verb: s("create"),
                            group: s("apps"),
                            version: s(""),
                            resource: s("deployments"),
                            subresource: s("scale"),
                            name: s(""),
                            field_selector: None,
                            label_selector: None,
                        }),
                        non_resource_attributes: None,
                    }),
                    status: Some(authz::SubjectAccessReviewStatus {
                        allowed: Some(false),
                        denied: Some(false),
                        reason: s(""),
                        evaluation_error: s(""),
                    }),
                }
                .encode_to_vec(),
            ),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                   "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "group": "apps",
                            "resource": "deployments", "subresource": "scale"}},
                   "status": {"allowed": false}}),
        ),
        (
            "service with named targetPort and dual-stack fields",
            envelope(
                "v1",
                "Service",
                core::Service {
                    metadata: Some(new_meta("web", "", BTreeMap::new())),
                    spec: Some(core::ServiceSpec {
                        ports: vec![
                            core::ServicePort {
                                name: s("http"),
                                protocol: s("TCP"),
                                port: Some(80),
                                target_port: Some(int_or_str_str("http")),
                                node_port: Some(0),
                                app_protocol: None,
                            },
                            core::ServicePort {
                                name: s(""),
                                protocol: s("UDP"),
                                port: Some(53),
                                target_port: Some(int_or_str_int(0)),
                                node_port: Some(0),
                                app_protocol: None,
                            },
                        ],
                        selector: labels(&[("app", "web")]),
                        cluster_ip: s("10.0.0.10"),
                        cluster_ips: vec!["10.0.0.10".into(), "fd00::10".into()],
                        ip_families: vec!["IPv4".into(), "IPv6".into()],
                        ip_family_policy: s("PreferDualStack"),
                        external_ips: vec!["192.0.2.1".into()],
                        r#type: s("ClusterIP"),
                        session_affinity: s(""),
                        load_balancer_ip: s(""),
                        external_name: s(""),
                        external_traffic_policy: s(""),
                        health_check_node_port: Some(0),
                        publish_not_ready_addresses: Some(false),
                        ..Default::default()
                    }),
                    status: Some(core::ServiceStatus {
                        load_balancer: Some(core::LoadBalancerStatus::default()),
                        conditions: vec![],
                    }),
                }
                .encode_to_vec(),
            ),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                   "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"},
                                      {"protocol": "UDP", "port": 53}],
                            "selector": {"app": "web"}, "clusterIP": "10.0.0.10",
                            "clusterIPs": ["10.0.0.10", "fd00::10"], "ipFamilies": ["IPv4", "IPv6"],
                            "ipFamilyPolicy": "PreferDualStack", "externalIPs": ["192.0.2.1"], "type": "ClusterIP"}}),
        ),
        (
            // userInfo.extra values are ExtraValue wrapper messages on the wire, bare arrays in JSON.
            "whoami answer with extra",
            envelope(
                "authentication.k8s.io/v1",
                "SelfSubjectReview",
                authn::SelfSubjectReview {
                    metadata: Some(new_meta("", "", BTreeMap::new())),
                    status: Some(authn::SelfSubjectReviewStatus {
                        user_info: Some(authn::UserInfo {
                            username: s("alice"),
                            uid: s(""),
                            groups: vec!["system:authenticated".into()],
                            extra: [("scopes".to_owned(), authn::ExtraValue { items: vec!["a".into(), "b".into()] })]
                                .into(),
                        }),
                    }),
                }
                .encode_to_vec(),
            ),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                   "status": {"userInfo": {"username": "alice", "groups": ["system:authenticated"],
                                           "extra": {"scopes": ["a", "b"]}}}}),
        ),
        (
            "controller revision with embedded JSON",
            envelope(
                "apps/v1",
                "ControllerRevision",
                apps::ControllerRevision {
                    metadata: Some(new_meta("web-1", "", BTreeMap::new())),
                    data: Some(RawExtension { raw: Some(br#"{"spec":{"template":{}}}"#.to_vec()) }),
                    revision: Some(1),
                }
                .encode_to_vec(),
            ),
            json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "web-1"},
                   "data": {"spec": {"template": {}}}, "revision": 1}),
        ),
        (
            "events.k8s.io event with MicroTime",
            envelope(
                "events.k8s.io/v1",
                "Event",
                events::Event {
                    metadata: Some(new_meta("e", "", BTreeMap::new())),
                    event_time: Some(meta::MicroTime { seconds: Some(1_704_164_645), nanos: Some(123_456_000) }),
                    reporting_controller: s("edge"),
                    reporting_instance: s(""),
                    action: s("Pull"),
                    reason: s("Pulled"),
                    deprecated_count: Some(0),
                    deprecated_first_timestamp: Some(meta::Time::default()),
                    r#type: s("Normal"),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                   "eventTime": "2024-01-02T03:04:05.123456Z", "reportingController": "edge",
                   "action": "Pull", "reason": "Pulled", "type": "Normal"}),
        ),
        (
            "object meta with every field",
            envelope("v1", "Namespace", namespace_full_meta().encode_to_vec()),
            namespace_full_meta_json(),
        ),
    ];
    for (name, body, want) in cases {
        let got = decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}:\n got  {got}\n want {want}");
    }
}

fn create_deployment() -> apps::Deployment {
    let app = labels(&[("app", "web")]);
    let mut nginx = go_container("nginx", "nginx:1.7.9");
    nginx.ports = vec![core::ContainerPort {
        name: s(""),
        host_port: Some(0),
        container_port: Some(80),
        protocol: s(""),
        host_ip: s(""),
    }];
    apps::Deployment {
        metadata: Some(new_meta("web", "", app.clone())),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(meta::LabelSelector { match_labels: app.clone(), match_expressions: vec![] }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(new_meta("", "", app)),
                spec: Some(go_pod_spec(vec![nginx])),
            }),
            strategy: Some(apps::DeploymentStrategy { r#type: s(""), rolling_update: None }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    }
}

fn full_deployment() -> apps::Deployment {
    let mut d = create_deployment();
    let spec = d.spec.as_mut().unwrap();
    spec.replicas = Some(0);
    spec.strategy = Some(apps::DeploymentStrategy {
        r#type: s("RollingUpdate"),
        rolling_update: Some(apps::RollingUpdateDeployment {
            max_unavailable: Some(int_or_str_int(0)),
            max_surge: Some(int_or_str_str("25%")),
        }),
    });
    spec.revision_history_limit = Some(10);
    let pod = spec.template.as_mut().unwrap().spec.as_mut().unwrap();
    pod.termination_grace_period_seconds = Some(30);
    pod.restart_policy = s("Always");
    pod.node_selector = labels(&[("kubernetes.io/os", "linux")]);
    pod.security_context =
        Some(core::PodSecurityContext { run_as_non_root: Some(true), fs_group: Some(2000), ..Default::default() });
    pod.volumes = vec![
        core::Volume {
            name: s("cache"),
            volume_source: Some(core::VolumeSource {
                empty_dir: Some(core::EmptyDirVolumeSource { medium: s(""), size_limit: None }),
                ..Default::default()
            }),
        },
        core::Volume {
            name: s("conf"),
            volume_source: Some(core::VolumeSource {
                config_map: Some(core::ConfigMapVolumeSource {
                    local_object_reference: Some(core::LocalObjectReference { name: s("web-conf") }),
                    items: vec![core::KeyToPath { key: s("nginx.conf"), path: s("nginx.conf"), mode: None }],
                    default_mode: Some(0o644),
                    optional: None,
                }),
                ..Default::default()
            }),
        },
        core::Volume {
            name: s("host"),
            volume_source: Some(core::VolumeSource {
                host_path: Some(core::HostPathVolumeSource { path: s("/var/log"), r#type: None }),
                ..Default::default()
            }),
        },
    ];
    let c = pod.containers.first_mut().unwrap();
    c.command = vec!["nginx".into(), "-g".into(), "daemon off;".into()];
    c.image_pull_policy = s("IfNotPresent");
    c.env = vec![
        core::EnvVar { name: s("MODE"), value: s("prod"), value_from: None },
        // value "" is omitempty; valueFrom is the payload.
        core::EnvVar {
            name: s("POD_IP"),
            value: s(""),
            value_from: Some(core::EnvVarSource {
                field_ref: Some(core::ObjectFieldSelector { api_version: s("v1"), field_path: s("status.podIP") }),
                ..Default::default()
            }),
        },
        core::EnvVar {
            name: s("PASSWORD"),
            value: s(""),
            value_from: Some(core::EnvVarSource {
                secret_key_ref: Some(core::SecretKeySelector {
                    local_object_reference: Some(core::LocalObjectReference { name: s("db") }),
                    key: s("password"),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
        },
    ];
    c.resources = Some(core::ResourceRequirements {
        limits: quantities(&[("memory", "128Mi")]),
        requests: quantities(&[("cpu", "100m"), ("memory", "64Mi")]),
        claims: vec![],
    });
    c.volume_mounts = vec![core::VolumeMount {
        name: s("conf"),
        read_only: Some(true),
        recursive_read_only: None,
        mount_path: s("/etc/nginx"),
        sub_path: s(""),
        mount_propagation: None,
        sub_path_expr: s(""),
    }];
    let http_probe = |path: &str| core::Probe {
        handler: Some(core::ProbeHandler {
            http_get: Some(core::HttpGetAction {
                path: s(path),
                port: Some(int_or_str_int(80)),
                host: s(""),
                scheme: s("HTTP"),
                http_headers: vec![],
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(0),
        timeout_seconds: Some(1),
        period_seconds: Some(10),
        success_threshold: Some(1),
        failure_threshold: Some(3),
        termination_grace_period_seconds: None,
    };
    c.liveness_probe = Some(http_probe("/healthz"));
    c.readiness_probe = Some(core::Probe {
        handler: Some(core::ProbeHandler {
            tcp_socket: Some(core::TcpSocketAction { port: Some(int_or_str_str("http")), host: s("") }),
            ..Default::default()
        }),
        ..Default::default()
    });
    c.lifecycle = Some(core::Lifecycle {
        pre_stop: Some(core::LifecycleHandler {
            exec: Some(core::ExecAction { command: vec!["sleep".into(), "5".into()] }),
            ..Default::default()
        }),
        ..Default::default()
    });
    c.security_context = Some(core::SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_user: Some(0),
        capabilities: Some(core::Capabilities { add: vec![], drop: vec!["ALL".into()] }),
        ..Default::default()
    });
    d
}

fn full_deployment_json() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "volumes": [
                        {"name": "cache", "emptyDir": {}},
                        {"name": "conf", "configMap": {"name": "web-conf",
                            "items": [{"key": "nginx.conf", "path": "nginx.conf"}], "defaultMode": 420}},
                        {"name": "host", "hostPath": {"path": "/var/log"}}
                    ],
                    "containers": [{
                        "name": "nginx", "image": "nginx:1.7.9",
                        "command": ["nginx", "-g", "daemon off;"],
                        "ports": [{"containerPort": 80}],
                        "env": [
                            {"name": "MODE", "value": "prod"},
                            {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password", "optional": false}}}
                        ],
                        "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
                        "volumeMounts": [{"name": "conf", "readOnly": true, "mountPath": "/etc/nginx"}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"},
                            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                        "readinessProbe": {"tcpSocket": {"port": "http"}},
                        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
                        "imagePullPolicy": "IfNotPresent",
                        "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsUser": 0,
                            "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false}
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "securityContext": {"runAsNonRoot": true, "fsGroup": 2000}
                }
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "revisionHistoryLimit": 10
        }
    })
}

fn namespace_full_meta() -> core::Namespace {
    core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("team-a"),
            generate_name: s("team-"),
            namespace: s(""),
            self_link: s(""),
            uid: s("0b3b6a1c-7d5e-4c53-9d2e-3f1b2a4c5d6e"),
            resource_version: s("42"),
            generation: Some(3),
            creation_timestamp: Some(meta::Time { seconds: Some(1_704_164_645), nanos: Some(0) }),
            deletion_timestamp: Some(meta::Time { seconds: Some(1_704_164_700), nanos: Some(0) }),
            deletion_grace_period_seconds: Some(0),
            labels: labels(&[("team", "a")]),
            annotations: labels(&[("note", "")]),
            owner_references: vec![meta::OwnerReference {
                api_version: s("v1"),
                kind: s("ConfigMap"),
                name: s("owner"),
                uid: s("u-1"),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }],
            finalizers: vec!["kubernetes".into()],
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl-create"),
                operation: s("Update"),
                api_version: s("v1"),
                time: Some(meta::Time { seconds: Some(1_704_164_645), nanos: Some(0) }),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:metadata":{"f:labels":{".":{},"f:team":{}}}}"#.to_vec()),
                }),
                subresource: s(""),
            }],
        }),
        spec: Some(core::NamespaceSpec { finalizers: vec!["kubernetes".into()] }),
        status: Some(core::NamespaceStatus { phase: s(""), conditions: vec![] }),
    }
}

fn namespace_full_meta_json() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": "team-a", "generateName": "team-", "uid": "0b3b6a1c-7d5e-4c53-9d2e-3f1b2a4c5d6e",
            "resourceVersion": "42", "generation": 3,
            "creationTimestamp": "2024-01-02T03:04:05Z", "deletionTimestamp": "2024-01-02T03:05:00Z",
            "deletionGracePeriodSeconds": 0,
            "labels": {"team": "a"}, "annotations": {"note": ""},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-1",
                                 "controller": true, "blockOwnerDeletion": false}],
            "finalizers": ["kubernetes"],
            "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                               "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:team": {}}}}}]
        },
        "spec": {"finalizers": ["kubernetes"]}
    })
}

/// Appends a raw field record to an encoded message.
fn with_extra_field(mut raw: Vec<u8>, key: u8, payload: &[u8]) -> Vec<u8> {
    raw.push(key);
    raw.extend_from_slice(payload);
    raw
}

#[test]
fn rejects_bad_bodies() {
    let cm =
        core::ConfigMap { metadata: Some(new_meta("cm", "", BTreeMap::new())), ..Default::default() }.encode_to_vec();
    let mut truncated = envelope("v1", "ConfigMap", cm.clone());
    truncated.push(0x08); // a key with no varint after it
    let wrong_magic = {
        let mut b = envelope("v1", "ConfigMap", cm.clone());
        b[3] = b'x';
        b
    };
    type Check = fn(&DecodeError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("wrong magic", wrong_magic, |e| matches!(e, DecodeError::BadMagic)),
        ("empty body", vec![], |e| matches!(e, DecodeError::BadMagic)),
        ("truncated varint", truncated, |e| matches!(e, DecodeError::Wire { .. })),
        ("truncated inner message", envelope("v1", "ConfigMap", cm[..cm.len() - 2].to_vec()), |e| {
            matches!(e, DecodeError::Wire { .. })
        }),
        (
            "unknown kind",
            envelope("v1", "Frobnicator", cm.clone()),
            |e| matches!(e, DecodeError::UnsupportedType { api_version, kind } if api_version == "v1" && kind == "Frobnicator"),
        ),
        ("known kind, unknown version", envelope("apps/v1beta1", "Deployment", vec![]), |e| {
            matches!(e, DecodeError::UnsupportedType { .. })
        }),
        // ConfigMap has fields 1-4; field 9 as varint 7 is data we cannot place.
        (
            "unknown non-zero field",
            envelope("v1", "ConfigMap", with_extra_field(cm.clone(), 9 << 3, &[7])),
            |e| matches!(e, DecodeError::UnknownField { message, number: 9 } if message.ends_with("ConfigMap")),
        ),
        ("string field sent as varint", envelope("v1", "ConfigMap", with_extra_field(cm.clone(), 1 << 3, &[1])), |e| {
            matches!(e, DecodeError::WireType { .. })
        }),
        (
            "gzip payload",
            {
                let unknown = Unknown {
                    type_meta: Some(TypeMeta { api_version: s("v1"), kind: s("ConfigMap") }),
                    raw: Some(cm.clone()),
                    content_encoding: s("gzip"),
                    content_type: s(""),
                };
                [b"k8s\0".to_vec(), unknown.encode_to_vec()].concat()
            },
            |e| matches!(e, DecodeError::UnsupportedPayload(_)),
        ),
    ];
    for (name, body, check) in cases {
        match decode(&body) {
            Ok(v) => panic!("{name}: decoded to {v}"),
            Err(e) => assert!(check(&e), "{name}: unexpected error {e:?}"),
        }
    }
}

#[test]
fn ignores_unknown_zero_fields() {
    let cm =
        core::ConfigMap { metadata: Some(new_meta("cm", "", BTreeMap::new())), ..Default::default() }.encode_to_vec();
    let cases: &[(&str, u8, &[u8])] = &[("varint 0", 9 << 3, &[0]), ("empty bytes", (10 << 3) | 2, &[0])];
    for (name, key, payload) in cases {
        let body = envelope("v1", "ConfigMap", with_extra_field(cm.clone(), *key, payload));
        assert_eq!(
            decode(&body).unwrap_or_else(|e| panic!("{name}: {e}")),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}),
            "{name}"
        );
    }
}

#[test]
fn json_payload_in_unknown_is_passed_through() {
    let unknown = Unknown {
        type_meta: Some(TypeMeta { api_version: s("v1"), kind: s("ConfigMap") }),
        raw: Some(br#"{"metadata":{"name":"cm"},"data":{"a":"b"}}"#.to_vec()),
        content_encoding: s(""),
        content_type: s("application/json"),
    };
    let body = [b"k8s\0".to_vec(), unknown.encode_to_vec()].concat();
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}})
    );
}

#[test]
fn supported_types() {
    let cases: &[(&str, &str, bool)] = &[
        ("v1", "ConfigMap", true),
        ("v1", "Secret", true),
        ("v1", "Namespace", true),
        ("v1", "ServiceAccount", true),
        ("v1", "Service", true),
        ("v1", "ResourceQuota", true),
        ("apps/v1", "Deployment", true),
        ("batch/v1", "Job", true),
        ("batch/v1", "CronJob", true),
        ("autoscaling/v1", "HorizontalPodAutoscaler", true),
        ("autoscaling/v2", "HorizontalPodAutoscaler", true),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview", true),
        ("authentication.k8s.io/v1", "SelfSubjectReview", true),
        ("authentication.k8s.io/v1", "TokenRequest", true),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", true),
        ("scheduling.k8s.io/v1", "PriorityClass", true),
        ("policy/v1", "PodDisruptionBudget", true),
        ("networking.k8s.io/v1", "Ingress", true),
        ("apps/v1", "ConfigMap", false),
        ("v1", "Deployment", false),
        ("example.com/v1", "Widget", false),
    ];
    for (api_version, kind, want) in cases {
        assert_eq!(is_supported(api_version, kind), *want, "{api_version} {kind}");
    }
}
