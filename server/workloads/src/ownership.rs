//! Which objects a controller owns, adopts or releases (upstream's `ControllerRefManager`):
//! an object whose controller reference names the owner is owned while the owner's selector
//! still matches it and released when it does not; an orphan that matches is adopted, unless the
//! owner or the orphan is being deleted. Objects controlled by someone else are never touched.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::selector;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Owned,
    Adopt,
    Release,
    Ignore,
}

/// The owner as the claim needs it.
#[derive(Debug, Clone)]
pub struct Owner<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub meta: &'a ObjectMeta,
    pub selector: &'a LabelSelector,
}

impl Owner<'_> {
    pub fn uid(&self) -> &str {
        self.meta.uid.as_deref().unwrap_or_default()
    }

    /// The controller reference a dependent carries (controller and blockOwnerDeletion set).
    pub fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.to_string(),
            kind: self.kind.to_string(),
            name: self.meta.name.clone().unwrap_or_default(),
            uid: self.uid().to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// The controller reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.iter().flatten().find(|r| r.controller == Some(true))
}

pub fn claim(owner: &Owner<'_>, dependent: &ObjectMeta) -> Claim {
    let owner_deleting = owner.meta.deletion_timestamp.is_some();
    let matches = selector::matches(owner.selector, dependent.labels.as_ref());
    match controller_of(dependent) {
        Some(r) if r.uid != owner.uid() => Claim::Ignore,
        Some(_) if matches => Claim::Owned,
        // An owner being deleted keeps what it has: the garbage collector decides.
        Some(_) if owner_deleting => Claim::Owned,
        Some(_) => Claim::Release,
        None if matches && !owner_deleting && dependent.deletion_timestamp.is_none() => Claim::Adopt,
        None => Claim::Ignore,
    }
}

/// Adds the owner's controller reference (adoption).
pub fn adopt(owner: &Owner<'_>, dependent: &mut ObjectMeta) {
    dependent.owner_references.get_or_insert_with(Vec::new).push(owner.controller_ref());
}

/// Removes the owner's reference (release); an emptied list is dropped, as upstream omits it.
pub fn release(owner_uid: &str, dependent: &mut ObjectMeta) {
    if let Some(refs) = dependent.owner_references.as_mut() {
        refs.retain(|r| r.uid != owner_uid);
        if refs.is_empty() {
            dependent.owner_references = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn meta(uid: &str, labels: &[(&str, &str)], controller: Option<&str>, deleting: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some(uid.into()),
            uid: Some(uid.into()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            owner_references: controller.map(|c| {
                vec![OwnerReference { uid: c.into(), controller: Some(true), name: c.into(), ..Default::default() }]
            }),
            deletion_timestamp: deleting.then(|| Time(chrono::Utc::now())),
            ..Default::default()
        }
    }

    #[test]
    fn claim_table() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: None,
        };
        let live = meta("rs", &[], None, false);
        let dying = meta("rs", &[], None, true);
        let cases = [
            (&live, meta("p", &[("app", "web")], Some("rs"), false), Claim::Owned),
            (&live, meta("p", &[("app", "db")], Some("rs"), false), Claim::Release),
            (&dying, meta("p", &[("app", "db")], Some("rs"), false), Claim::Owned),
            (&live, meta("p", &[("app", "web")], Some("other"), false), Claim::Ignore),
            (&live, meta("p", &[("app", "web")], None, false), Claim::Adopt),
            (&live, meta("p", &[("app", "web")], None, true), Claim::Ignore),
            (&dying, meta("p", &[("app", "web")], None, false), Claim::Ignore),
            (&live, meta("p", &[("app", "db")], None, false), Claim::Ignore),
        ];
        for (i, (owner_meta, dep, want)) in cases.into_iter().enumerate() {
            let owner = Owner { api_version: "apps/v1", kind: "ReplicaSet", meta: owner_meta, selector: &sel };
            assert_eq!(claim(&owner, &dep), want, "case {i}");
        }
    }

    #[test]
    fn adopt_then_release_round_trips() {
        let sel = LabelSelector::default();
        let owner_meta = meta("rs", &[], None, false);
        let owner = Owner { api_version: "apps/v1", kind: "ReplicaSet", meta: &owner_meta, selector: &sel };
        let mut dep = meta("p", &[], None, false);
        adopt(&owner, &mut dep);
        let r = controller_of(&dep).unwrap();
        assert_eq!((r.uid.as_str(), r.kind.as_str(), r.block_owner_deletion), ("rs", "ReplicaSet", Some(true)));
        release("rs", &mut dep);
        assert!(dep.owner_references.is_none());
    }
}
