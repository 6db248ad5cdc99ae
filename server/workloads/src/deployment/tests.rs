//! Whole-controller tables: a simulated cluster where ReplicaSets report their pods at once.

use super::*;
use crate::pods::test_pods::t0;
use k8s_openapi::api::apps::v1::{DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn labels() -> BTreeMap<String, String> {
    [("app".to_string(), "web".to_string())].into()
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels()), ..Default::default() }),
        spec: Some(PodSpec {
            containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(labels()), match_expressions: None },
            template: template("img:1"),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(surge),
                    max_unavailable: Some(unavailable),
                }),
            }),
            progress_deadline_seconds: Some(600),
            revision_history_limit: Some(10),
            ..Default::default()
        }),
        status: None,
    }
}

/// The API server, ReplicaSet controller and kubelet, reduced to what the planner sees.
struct World {
    d: Deployment,
    rss: Vec<ReplicaSet>,
    now: DateTime<Utc>,
    serial: i64,
    /// Pods become available this many passes after their ReplicaSet grew (0: at once).
    events: Vec<String>,
    /// (total spec replicas, total available) after every pass.
    history: Vec<(i32, i32)>,
    available_immediately: bool,
}

impl World {
    fn new(d: Deployment) -> World {
        World {
            d,
            rss: Vec::new(),
            now: t0(),
            serial: 0,
            events: Vec::new(),
            history: Vec::new(),
            available_immediately: true,
        }
    }

    fn set_template(&mut self, image: &str) {
        let spec = self.d.spec.as_mut().unwrap();
        spec.template = template(image);
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap() + 1);
    }

    fn pass(&mut self) -> Vec<Action> {
        let plan = plan(&self.d, &self.rss, &[], self.now).unwrap();
        for a in &plan.actions {
            match a.clone() {
                Action::CreateReplicaSet(mut rs) => {
                    self.serial += 1;
                    rs.metadata.uid = Some(format!("rs-uid-{}", self.serial));
                    rs.metadata.creation_timestamp = Some(Time(self.now + Duration::seconds(self.serial)));
                    rs.metadata.generation = Some(1);
                    self.rss.push(rs);
                }
                Action::UpdateReplicaSet(rs) => {
                    let slot = self.rss.iter_mut().find(|r| r.metadata.name == rs.metadata.name).unwrap();
                    let generation = slot.metadata.generation.unwrap_or(1) + i64::from(slot.spec != rs.spec);
                    *slot = rs;
                    slot.metadata.generation = Some(generation);
                }
                Action::DeleteReplicaSet(n) => self.rss.retain(|r| name(r) != n),
                Action::UpdateAnnotations(a) => self.d.metadata.annotations = Some(a),
                Action::UpdateStatus(s) => self.d.status = Some(s),
                Action::Event(e) => self.events.push(e.message),
            }
        }
        // The ReplicaSet controller and kubelets catch up.
        for rs in &mut self.rss {
            let want = replicas(rs);
            let old = rs.status.clone().unwrap_or_default();
            let avail = if self.available_immediately { want } else { old.available_replicas.unwrap_or(0).min(want) };
            rs.status = Some(ReplicaSetStatus {
                replicas: want,
                ready_replicas: Some(avail),
                available_replicas: Some(avail),
                observed_generation: rs.metadata.generation,
                ..Default::default()
            });
        }
        let total: i32 = self.rss.iter().map(replicas).sum();
        let avail: i32 = self.rss.iter().map(available).sum();
        self.history.push((total, avail));
        plan.actions
    }

    /// Passes until nothing is written.
    fn settle(&mut self) {
        for _ in 0..50 {
            if self.pass().is_empty() {
                return;
            }
        }
        panic!("no convergence: {:?}", self.events);
    }

    fn rs_by_image(&self, image: &str) -> &ReplicaSet {
        self.rss
            .iter()
            .find(|r| {
                r.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers[0]
                    .image
                    .as_deref()
                    == Some(image)
            })
            .unwrap()
    }

    fn progressing(&self) -> (String, String) {
        let c = cond::get(self.d.status.as_ref().unwrap(), cond::PROGRESSING).unwrap();
        (c.status.clone(), c.reason.clone().unwrap())
    }
}

#[test]
fn first_rollout_creates_a_revision_one_replica_set() {
    let mut w = World::new(deployment(3, IntOrString::Int(1), IntOrString::Int(1)));
    w.settle();
    assert_eq!(w.rss.len(), 1);
    let rs = &w.rss[0];
    let hash = rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH].clone();
    assert_eq!(name(rs), format!("web-{hash}"));
    assert_eq!(rs.spec.as_ref().unwrap().selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH], hash);
    assert_eq!(replicas(rs), 3);
    assert_eq!(revision::annotation(rs, revision::REVISION), Some("1"));
    assert_eq!(revision::annotation(rs, revision::DESIRED_REPLICAS), Some("3"));
    assert_eq!(revision::annotation(rs, revision::MAX_REPLICAS), Some("4"));
    assert_eq!(ownership::controller_of(&rs.metadata).unwrap().uid, "d-uid");
    assert_eq!(w.d.metadata.annotations.as_ref().unwrap()[revision::REVISION], "1");
    assert_eq!(w.events, [format!("Scaled up replica set web-{hash} from 0 to 3")]);
    let s = w.d.status.as_ref().unwrap();
    assert_eq!(
        (s.replicas, s.updated_replicas, s.available_replicas, s.unavailable_replicas),
        (Some(3), Some(3), Some(3), None)
    );
    assert_eq!(w.progressing(), ("True".into(), cond::NEW_RS_AVAILABLE.into()));
    assert_eq!(cond::get(s, cond::AVAILABLE).unwrap().reason.as_deref(), Some(cond::MIN_AVAILABLE));
}

#[test]
fn rolling_update_table() {
    // (replicas, maxSurge, maxUnavailable, max pods at once, min available at once)
    let pct = |s: &str| IntOrString::String(s.into());
    let cases = [
        (3, IntOrString::Int(1), IntOrString::Int(1), 4, 2),
        (3, IntOrString::Int(1), IntOrString::Int(0), 4, 3),
        (3, IntOrString::Int(0), IntOrString::Int(1), 3, 2),
        (3, IntOrString::Int(0), IntOrString::Int(0), 3, 2),
        (10, pct("25%"), pct("25%"), 13, 8),
        (4, pct("50%"), pct("10%"), 6, 4),
    ];
    for (n, surge, unavailable, max_pods, min_available) in cases {
        let mut w = World::new(deployment(n, surge.clone(), unavailable.clone()));
        w.settle();
        w.set_template("img:2");
        w.history.clear();
        w.settle();
        let case = format!("{n} {surge:?} {unavailable:?}: {:?}", w.history);
        assert!(w.history.iter().all(|(total, _)| *total <= max_pods), "{case}");
        assert!(w.history.iter().all(|(_, avail)| *avail >= min_available), "{case}");
        assert!(w.history.iter().any(|(total, _)| *total == max_pods), "surge unused: {case}");
        assert_eq!(replicas(w.rs_by_image("img:2")), n, "{case}");
        assert_eq!(replicas(w.rs_by_image("img:1")), 0, "{case}");
        assert_eq!(w.d.metadata.annotations.as_ref().unwrap()[revision::REVISION], "2");
        assert_eq!(w.progressing(), ("True".into(), cond::NEW_RS_AVAILABLE.into()), "{case}");
    }
}

#[test]
fn first_step_of_a_rollout() {
    let mut w = World::new(deployment(3, IntOrString::Int(1), IntOrString::Int(1)));
    w.settle();
    w.available_immediately = false;
    w.set_template("img:2");
    w.pass();
    // Surge 1: the new set starts at 1; unavailable 1: one old pod may go in the same pass.
    assert_eq!(replicas(w.rs_by_image("img:2")), 1);
    assert_eq!(replicas(w.rs_by_image("img:1")), 2);
    assert_eq!(w.progressing(), ("True".into(), cond::NEW_RS_CREATED.into()));
    w.pass();
    assert_eq!(replicas(w.rs_by_image("img:2")), 2);
    assert_eq!(replicas(w.rs_by_image("img:1")), 2);
    // Nothing more until pods become available.
    assert!(w.pass().iter().all(|a| !matches!(a, Action::UpdateReplicaSet(_))));
}

#[test]
fn undo_reuses_the_old_replica_set_as_a_new_revision() {
    let mut w = World::new(deployment(3, IntOrString::Int(1), IntOrString::Int(1)));
    w.settle();
    w.set_template("img:2");
    w.settle();
    w.set_template("img:1");
    w.settle();
    assert_eq!(w.rss.len(), 2);
    let first = w.rs_by_image("img:1");
    assert_eq!(revision::annotation(first, revision::REVISION), Some("3"));
    assert_eq!(revision::annotation(first, revision::REVISION_HISTORY), Some("1"));
    assert_eq!(replicas(first), 3);
    assert_eq!(replicas(w.rs_by_image("img:2")), 0);
    assert_eq!(w.d.metadata.annotations.as_ref().unwrap()[revision::REVISION], "3");
}

#[test]
fn paused_deployment_scales_but_does_not_roll() {
    let mut w = World::new(deployment(3, IntOrString::Int(1), IntOrString::Int(1)));
    w.settle();
    w.d.spec.as_mut().unwrap().paused = Some(true);
    w.settle();
    assert_eq!(w.progressing(), ("Unknown".into(), cond::PAUSED.into()));
    w.set_template("img:2");
    w.d.spec.as_mut().unwrap().replicas = Some(5);
    w.settle();
    assert_eq!(w.rss.len(), 1);
    assert_eq!(replicas(&w.rss[0]), 5);
    assert_eq!(revision::annotation(&w.rss[0], revision::DESIRED_REPLICAS), Some("5"));
    w.d.spec.as_mut().unwrap().paused = None;
    w.settle();
    assert_eq!(replicas(w.rs_by_image("img:2")), 5);
    assert!(w.events.iter().any(|e| e.contains("Scaled up replica set web-")));
    assert_eq!(w.progressing(), ("True".into(), cond::NEW_RS_AVAILABLE.into()));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut w = World::new(deployment(10, IntOrString::Int(3), IntOrString::Int(2)));
    w.settle();
    w.available_immediately = false;
    w.set_template("img:2");
    w.pass();
    w.pass();
    let (new, old) = (replicas(w.rs_by_image("img:2")), replicas(w.rs_by_image("img:1")));
    assert_eq!((new, old), (5, 8));
    w.d.spec.as_mut().unwrap().replicas = Some(20);
    w.pass();
    // 23 allowed (20 + surge 3); each set grows by its share of the 13 it was sized for.
    let (new, old) = (replicas(w.rs_by_image("img:2")), replicas(w.rs_by_image("img:1")));
    assert_eq!((new, old), (9, 14));
    assert_eq!(revision::annotation(w.rs_by_image("img:1"), revision::MAX_REPLICAS), Some("23"));
}

#[test]
fn recreate_waits_for_old_pods() {
    let mut d = deployment(2, IntOrString::Int(1), IntOrString::Int(1));
    d.spec.as_mut().unwrap().strategy =
        Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None });
    let mut w = World::new(d);
    w.settle();
    w.set_template("img:2");
    w.pass();
    assert_eq!(w.rss.len(), 1, "new set only after old pods are gone");
    assert_eq!(replicas(&w.rss[0]), 0);
    w.settle();
    assert_eq!(replicas(w.rs_by_image("img:2")), 2);
    assert!(w.history.iter().all(|(total, _)| *total <= 2));
}

#[test]
fn recreate_old_pods_block_creation() {
    let mut d = deployment(1, IntOrString::Int(1), IntOrString::Int(1));
    d.spec.as_mut().unwrap().strategy =
        Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None });
    let mut w = World::new(d);
    w.settle();
    w.set_template("img:2");
    let old_uid = w.rss[0].metadata.uid.clone().unwrap();
    w.pass();
    let mut lingering = crate::pods::test_pods::pod("web-x", "n", "Running", Some(0), 0);
    lingering.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        uid: old_uid,
        controller: Some(true),
        ..Default::default()
    }]);
    let p = plan(&w.d, &w.rss, &[lingering], w.now).unwrap();
    assert!(!p.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))));
    let p = plan(&w.d, &w.rss, &[], w.now).unwrap();
    assert!(p.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))));
}

#[test]
fn progress_deadline_exceeded() {
    let mut w = World::new(deployment(2, IntOrString::Int(1), IntOrString::Int(0)));
    w.d.spec.as_mut().unwrap().progress_deadline_seconds = Some(30);
    w.settle();
    w.available_immediately = false;
    w.set_template("img:2");
    w.settle();
    assert_eq!(w.progressing(), ("True".into(), cond::RS_UPDATED.into()));
    let p = plan(&w.d, &w.rss, &[], w.now).unwrap();
    assert_eq!(p.recheck_at, Some(w.now + Duration::seconds(31)));
    w.now += Duration::seconds(31);
    w.settle();
    assert_eq!(w.progressing(), ("False".into(), cond::TIMED_OUT.into()));
    let c = cond::get(w.d.status.as_ref().unwrap(), cond::PROGRESSING).unwrap();
    assert_eq!(
        c.message.as_deref(),
        Some(format!("ReplicaSet {:?} has timed out progressing.", name(w.rs_by_image("img:2"))).as_str())
    );
}

#[test]
fn old_replica_sets_beyond_history_limit_are_deleted() {
    let mut w = World::new(deployment(1, IntOrString::Int(1), IntOrString::Int(0)));
    w.d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    w.settle();
    for image in ["img:2", "img:3", "img:4"] {
        w.set_template(image);
        w.settle();
    }
    let mut images: Vec<String> =
        w.rss.iter().map(|r| revision::annotation(r, revision::REVISION).unwrap().to_string()).collect();
    images.sort();
    assert_eq!(images, ["3", "4"]);
}

#[test]
fn name_collision_bumps_collision_count() {
    let d = deployment(1, IntOrString::Int(1), IntOrString::Int(0));
    let hash = compute_hash(&d.spec.as_ref().unwrap().template, None);
    let squatter = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("web-{hash}")),
            uid: Some("x".into()),
            labels: Some([("other".to_string(), "x".to_string())].into()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec { template: Some(template("other")), ..Default::default() }),
        status: None,
    };
    let p = plan(&d, &[squatter], &[], t0()).unwrap();
    assert!(
        matches!(p.actions.as_slice(), [Action::UpdateStatus(s)] if s.collision_count == Some(1)),
        "{:?}",
        p.actions
    );
    let mut d2 = d.clone();
    d2.status = Some(DeploymentStatus { collision_count: Some(1), ..Default::default() });
    let p = plan(&d2, &[], &[], t0()).unwrap();
    let Some(Action::CreateReplicaSet(rs)) = p.actions.first() else { panic!("{:?}", p.actions) };
    assert_ne!(name(rs), format!("web-{hash}"));
}

#[test]
fn adopts_orphans_and_releases_mismatches() {
    let d = deployment(1, IntOrString::Int(1), IntOrString::Int(0));
    let mut orphan = ReplicaSet {
        metadata: ObjectMeta {
            name: Some("orphan".into()),
            uid: Some("o".into()),
            labels: Some(labels()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec { replicas: Some(1), template: Some(template("img:1")), ..Default::default() }),
        status: None,
    };
    let p = plan(&d, &[orphan.clone()], &[], t0()).unwrap();
    let Some(Action::UpdateReplicaSet(adopted)) = p.actions.first() else { panic!("{:?}", p.actions) };
    assert_eq!(ownership::controller_of(&adopted.metadata).unwrap().uid, "d-uid");
    assert!(!p.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))), "the adopted set is the new one");
    orphan.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    orphan.metadata.owner_references = adopted.metadata.owner_references.clone();
    let p = plan(&d, &[orphan], &[], t0()).unwrap();
    assert!(p
        .actions
        .iter()
        .any(|a| matches!(a, Action::UpdateReplicaSet(r) if r.metadata.owner_references.is_none())));
}

#[test]
fn waits_for_scaled_down_sets_to_catch_up() {
    let mut w = World::new(deployment(3, IntOrString::Int(1), IntOrString::Int(1)));
    w.settle();
    w.set_template("img:2");
    w.pass();
    // Old set scaled 3 -> 2 but its controller still reports 3 pods.
    let old = w.rss.iter_mut().find(|r| replicas(r) == 2).unwrap();
    old.status.as_mut().unwrap().replicas = 3;
    old.status.as_mut().unwrap().available_replicas = Some(3);
    let new = w.rss.iter_mut().find(|r| replicas(r) == 1).unwrap();
    new.status.as_mut().unwrap().available_replicas = Some(1);
    let p = plan(&w.d, &w.rss, &[], w.now).unwrap();
    assert!(!p.actions.iter().any(|a| matches!(a, Action::UpdateReplicaSet(_))), "{:?}", p.actions);
}
