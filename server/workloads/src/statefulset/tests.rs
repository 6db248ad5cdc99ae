//! Tables over a simulated namespace where the test plays the kubelet.

use super::*;
use crate::pods::test_pods::{pod as test_pod, t0};
use k8s_openapi::api::apps::v1::{RollingUpdateStatefulSetStrategy, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "db".to_string())].into()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

fn set(replicas: i32, policy: &str) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("sts-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            pod_management_policy: Some(policy.into()),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "db".to_string())].into()),
                match_expressions: None,
            },
            service_name: "web".into(),
            template: template("img:1"),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy { partition: Some(0), max_unavailable: None }),
            }),
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta { name: Some("www".into()), ..Default::default() },
                ..Default::default()
            }]),
            revision_history_limit: Some(10),
            ..Default::default()
        }),
        status: None,
    }
}

struct World {
    set: StatefulSet,
    pods: Vec<Pod>,
    revisions: Vec<ControllerRevision>,
    claims: Vec<PersistentVolumeClaim>,
    /// Whether new pods become Running and Ready right away.
    kubelet: bool,
    log: Vec<String>,
}

impl World {
    fn new(set: StatefulSet) -> World {
        World { set, pods: Vec::new(), revisions: Vec::new(), claims: Vec::new(), kubelet: true, log: Vec::new() }
    }

    fn pass(&mut self) -> Vec<Action> {
        let p = plan(&self.set, &self.pods, &self.revisions, &self.claims, t0()).unwrap();
        for a in &p.actions {
            match a.clone() {
                Action::CreateRevision(r) => self.revisions.push(r),
                Action::UpdateRevision(r) => {
                    self.revisions.retain(|x| x.metadata.name != r.metadata.name);
                    self.revisions.push(r);
                }
                Action::DeleteRevision(n) => self.revisions.retain(|x| x.metadata.name.as_deref() != Some(n.as_str())),
                Action::UpdatePod(_) => {}
                Action::CreateClaim(c) => self.claims.push(c),
                Action::CreatePod(mut pod) => {
                    self.log.push(format!("create {}", pods::name(&pod)));
                    if self.kubelet {
                        let ready = test_pod("x", "", "Running", Some(-100), 0);
                        pod.status = ready.status;
                    }
                    self.pods.push(pod);
                }
                Action::DeletePod(n) => {
                    self.log.push(format!("delete {n}"));
                    self.pods.retain(|x| pods::name(x) != n);
                }
                Action::UpdateStatus(s) => self.set.status = Some(s),
            }
        }
        p.actions
    }

    fn settle(&mut self) {
        for _ in 0..60 {
            if self.pass().is_empty() {
                return;
            }
        }
        panic!("no convergence: {:?}", self.log);
    }

    fn revision_of(&self, name: &str) -> String {
        let p = self.pods.iter().find(|p| pods::name(p) == name).unwrap();
        revision_label(p).to_string()
    }

    fn set_image(&mut self, image: &str) {
        self.set.spec.as_mut().unwrap().template = template(image);
        self.set.metadata.generation = Some(self.set.metadata.generation.unwrap() + 1);
    }
}

#[test]
fn ordered_ready_creates_one_at_a_time() {
    let mut w = World::new(set(3, "OrderedReady"));
    w.kubelet = false;
    let first = w.pass();
    assert!(matches!(&first[0], Action::CreateRevision(r) if r.revision == 1));
    assert!(matches!(&first[1], Action::CreateClaim(c) if c.metadata.name.as_deref() == Some("www-web-0")));
    assert!(matches!(&first[2], Action::CreatePod(p) if pods::name(p) == "web-0"));
    // web-0 is not Running and Ready: nothing more.
    assert!(!w.pass().iter().any(|a| matches!(a, Action::CreatePod(_))));
    w.pods[0].status = test_pod("x", "", "Running", Some(-100), 0).status;
    let next = w.pass();
    assert!(next.iter().any(|a| matches!(a, Action::CreatePod(p) if pods::name(p) == "web-1")), "{next:?}");
    assert!(!next.iter().any(|a| matches!(a, Action::CreatePod(p) if pods::name(p) == "web-2")));
}

#[test]
fn parallel_creates_all_at_once() {
    let mut w = World::new(set(3, "Parallel"));
    w.kubelet = false;
    let created: Vec<String> = w
        .pass()
        .iter()
        .filter_map(|a| if let Action::CreatePod(p) = a { Some(pods::name(p).to_string()) } else { None })
        .collect();
    assert_eq!(created, ["web-0", "web-1", "web-2"]);
}

#[test]
fn scale_down_in_reverse_order() {
    let mut w = World::new(set(4, "OrderedReady"));
    w.settle();
    assert_eq!(w.log, ["create web-0", "create web-1", "create web-2", "create web-3"]);
    w.log.clear();
    w.set.spec.as_mut().unwrap().replicas = Some(1);
    w.settle();
    assert_eq!(w.log, ["delete web-3", "delete web-2", "delete web-1"]);
    let s = w.set.status.as_ref().unwrap();
    assert_eq!((s.replicas, s.ready_replicas, s.available_replicas), (1, Some(1), Some(1)));
}

#[test]
fn scale_down_waits_for_terminating_and_unhealthy() {
    let mut w = World::new(set(3, "OrderedReady"));
    w.settle();
    w.set.spec.as_mut().unwrap().replicas = Some(1);
    w.pods[2].metadata.deletion_timestamp = Some(Time(t0()));
    assert!(!w.pass().iter().any(|a| matches!(a, Action::DeletePod(_))), "web-2 still terminating");
    w.pods.remove(2);
    w.pods[0].status = None;
    assert!(!w.pass().iter().any(|a| matches!(a, Action::DeletePod(_))), "web-0 unhealthy");
    let mut parallel = World::new(set(3, "Parallel"));
    parallel.settle();
    parallel.set.spec.as_mut().unwrap().replicas = Some(1);
    parallel.pods[0].status = None;
    let deleted: Vec<Action> = parallel.pass().into_iter().filter(|a| matches!(a, Action::DeletePod(_))).collect();
    assert_eq!(deleted, [Action::DeletePod("web-2".into()), Action::DeletePod("web-1".into())]);
}

#[test]
fn pods_and_claims_carry_identity() {
    let mut w = World::new(set(1, "OrderedReady"));
    w.settle();
    let p = &w.pods[0];
    let l = p.metadata.labels.as_ref().unwrap();
    assert_eq!(l[POD_NAME_LABEL], "web-0");
    assert_eq!(l[POD_INDEX_LABEL], "0");
    assert_eq!(l[REVISION_LABEL], w.revisions[0].metadata.name.clone().unwrap());
    assert!(l[REVISION_LABEL].starts_with("web-"));
    let spec = p.spec.as_ref().unwrap();
    assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-0"), Some("web")));
    let vol = &spec.volumes.as_ref().unwrap()[0];
    assert_eq!(
        (vol.name.as_str(), vol.persistent_volume_claim.as_ref().unwrap().claim_name.as_str()),
        ("www", "www-web-0")
    );
    assert_eq!(w.claims[0].metadata.labels.as_ref().unwrap()["app"], "db");
    let r = ownership::controller_of(&p.metadata).unwrap();
    assert_eq!((r.kind.as_str(), r.name.as_str()), ("StatefulSet", "web"));
    assert_eq!(ordinal("web", "web-12"), Some(12));
    assert_eq!(ordinal("web", "webx-1"), None);
    assert_eq!(ordinal("web", "web-a"), None);
}

#[test]
fn rolling_update_goes_from_the_highest_ordinal() {
    let mut w = World::new(set(3, "OrderedReady"));
    w.settle();
    let old_rev = w.revision_of("web-0");
    w.set_image("img:2");
    w.log.clear();
    w.settle();
    assert_eq!(w.log, ["delete web-2", "create web-2", "delete web-1", "create web-1", "delete web-0", "create web-0"]);
    let new_rev = w.revision_of("web-0");
    assert_ne!(old_rev, new_rev);
    let s = w.set.status.as_ref().unwrap();
    assert_eq!(
        (s.current_revision.as_deref(), s.update_revision.as_deref()),
        (Some(new_rev.as_str()), Some(new_rev.as_str()))
    );
    assert_eq!((s.current_replicas, s.updated_replicas, s.observed_generation), (Some(3), Some(3), Some(2)));
}

#[test]
fn partition_keeps_lower_ordinals_on_the_current_revision() {
    let mut w = World::new(set(3, "OrderedReady"));
    w.settle();
    let old_rev = w.revision_of("web-0");
    w.set.spec.as_mut().unwrap().update_strategy.as_mut().unwrap().rolling_update.as_mut().unwrap().partition = Some(2);
    w.set_image("img:2");
    w.settle();
    assert_eq!(w.revision_of("web-0"), old_rev);
    assert_eq!(w.revision_of("web-1"), old_rev);
    assert_ne!(w.revision_of("web-2"), old_rev);
    // A lost pod below the partition comes back at the current revision.
    w.pods.retain(|p| pods::name(p) != "web-1");
    w.settle();
    assert_eq!(w.revision_of("web-1"), old_rev);
    let s = w.set.status.as_ref().unwrap();
    assert_eq!((s.current_replicas, s.updated_replicas), (Some(2), Some(1)));
    assert_eq!(s.current_revision.as_deref(), Some(old_rev.as_str()));
}

#[test]
fn returning_to_an_old_template_reuses_its_revision() {
    let mut w = World::new(set(1, "OrderedReady"));
    w.settle();
    let first = w.revision_of("web-0");
    w.set_image("img:2");
    w.settle();
    w.set_image("img:1");
    w.settle();
    assert_eq!(w.revision_of("web-0"), first);
    let r = w.revisions.iter().find(|r| r.metadata.name.as_deref() == Some(first.as_str())).unwrap();
    assert_eq!(r.revision, 3);
    assert_eq!(revision_template(r), Some(template("img:1")));
}

#[test]
fn history_beyond_the_limit_is_pruned() {
    let mut w = World::new(set(1, "OrderedReady"));
    w.set.spec.as_mut().unwrap().revision_history_limit = Some(1);
    w.settle();
    for image in ["img:2", "img:3", "img:4"] {
        w.set_image(image);
        w.settle();
    }
    let mut numbers: Vec<i64> = w.revisions.iter().map(|r| r.revision).collect();
    numbers.sort();
    assert_eq!(numbers, [3, 4]);
}

#[test]
fn failed_pods_are_replaced() {
    let mut w = World::new(set(2, "OrderedReady"));
    w.settle();
    w.pods[0].status.as_mut().unwrap().phase = Some("Failed".into());
    w.log.clear();
    w.settle();
    assert_eq!(w.log, ["delete web-0", "create web-0"]);
}

#[test]
fn revision_name_collision_bumps_collision_count() {
    let s = set(1, "OrderedReady");
    let first = plan(&s, &[], &[], &[], t0()).unwrap();
    let Some(Action::CreateRevision(mut squatter)) = first.actions.first().cloned() else {
        panic!("{:?}", first.actions)
    };
    // Same name, someone else's content.
    squatter.metadata.owner_references = None;
    squatter.data = Some(RawExtension(json!({"other": true})));
    let p = plan(&s, &[], &[squatter], &[], t0()).unwrap();
    assert!(
        matches!(p.actions.as_slice(), [Action::UpdateStatus(st)] if st.collision_count == Some(1)),
        "{:?}",
        p.actions
    );
}
