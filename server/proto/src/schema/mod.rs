//! The protobuf schema of the built-in kinds: per message, which field number carries which JSON field and
//! how its value is encoded. The table itself is generated from upstream (see `tools/gen_schema.py`).

#[rustfmt::skip]
mod generated;

/// One protobuf message (a Go struct in k8s.io/api or apimachinery).
pub(crate) struct Message {
    /// Fully qualified protobuf name, for error messages.
    pub name: &'static str,
    /// Sorted by number.
    pub fields: &'static [Field],
}

impl Message {
    pub(crate) const fn new(name: &'static str, fields: &'static [Field]) -> Self {
        Self { name, fields }
    }

    pub(crate) fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields.binary_search_by_key(&number, |f| f.number).ok().and_then(|i| self.fields.get(i))
    }
}

pub(crate) struct Field {
    pub number: u32,
    /// Upstream JSON name; empty for inlined (embedded) structs.
    pub json: &'static str,
    /// Value type; for maps, the value type (keys are always strings).
    pub ty: Ty,
    pub shape: Shape,
    pub presence: Presence,
}

impl Field {
    pub(crate) const fn new(number: u32, json: &'static str, ty: Ty, shape: Shape, presence: Presence) -> Self {
        Self { number, json, ty, shape, presence }
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Ty {
    Str,
    /// JSON: base64 string.
    Bytes,
    Int32,
    Int64,
    Bool,
    Msg(&'static Message),
    /// metav1.Time: RFC 3339 with seconds.
    Time,
    /// metav1.MicroTime: RFC 3339 with microseconds.
    MicroTime,
    /// metav1.FieldsV1: raw JSON.
    FieldsV1,
    /// runtime.RawExtension: an embedded object.
    RawExtension,
    /// resource.Quantity: its string form.
    Quantity,
    /// intstr.IntOrString: a JSON number or string.
    IntOrString,
    /// A Go named `[]string` type (ExtraValue): a message with `repeated string items = 1`, a JSON array.
    StrList,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Single,
    Repeated,
    /// `map<string, ty>`, entries are messages with key = 1 and value = 2.
    Map,
    /// A Go embedded struct: a nested message on the wire, its fields merged into the parent in JSON.
    Inline,
}

/// How the Go field is declared, which decides whether a zero value on the wire means "absent".
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// A Go pointer: only written when set, so zero values are real values.
    Pointer,
    /// A non-pointer field with `omitempty`: a zero value is what Go writes for "unset".
    OmitEmpty,
    /// A non-pointer field without `omitempty`: Go's JSON would carry the zero value too.
    Always,
}

/// The message of a top-level kind.
pub(crate) fn root(api_version: &str, kind: &str) -> Option<&'static Message> {
    generated::ROOTS.iter().find(|(v, k, _)| *v == api_version && *k == kind).map(|(_, _, m)| *m)
}

#[cfg(test)]
pub(crate) fn roots() -> impl Iterator<Item = (&'static str, &'static str, &'static Message)> {
    generated::ROOTS.iter().map(|(v, k, m)| (*v, *k, *m))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Walks every message reachable from the roots.
    fn all_messages() -> Vec<&'static Message> {
        let mut seen = HashSet::new();
        let mut stack: Vec<&'static Message> = roots().map(|(_, _, m)| m).collect();
        let mut out = Vec::new();
        while let Some(m) = stack.pop() {
            if !seen.insert(m.name) {
                continue;
            }
            out.push(m);
            for f in m.fields {
                if let Ty::Msg(inner) = f.ty {
                    stack.push(inner);
                }
            }
        }
        out
    }

    #[test]
    fn fields_are_sorted_unique_and_named() {
        for m in all_messages() {
            for pair in m.fields.windows(2) {
                assert!(pair[0].number < pair[1].number, "{}: fields out of order", m.name);
            }
            for f in m.fields {
                assert_eq!(f.json.is_empty(), f.shape == Shape::Inline, "{}.{}", m.name, f.number);
                assert!(m.field(f.number).is_some_and(|g| std::ptr::eq(f, g)));
                if f.shape == Shape::Inline {
                    assert!(matches!(f.ty, Ty::Msg(_)), "{}: inline field {} is not a message", m.name, f.number);
                }
            }
        }
    }

    /// Upstream JSON names that a snake-to-camel conversion would get wrong, and Go pointers that decide
    /// whether zero values survive.
    #[test]
    fn carries_upstream_json_names_and_pointerness() {
        let cases: &[(&str, u32, &str, Presence)] = &[
            ("k8s.io.api.core.v1.PodStatus", 5, "hostIP", Presence::OmitEmpty),
            ("k8s.io.api.core.v1.PodStatus", 12, "podIPs", Presence::OmitEmpty),
            ("k8s.io.api.core.v1.ServiceSpec", 5, "externalIPs", Presence::OmitEmpty),
            ("k8s.io.api.core.v1.ServiceSpec", 18, "clusterIPs", Presence::OmitEmpty),
            ("k8s.io.api.core.v1.ServiceSpec", 17, "ipFamilyPolicy", Presence::Pointer),
            ("k8s.io.api.core.v1.ContainerPort", 5, "hostIP", Presence::OmitEmpty),
            ("k8s.io.api.core.v1.ContainerPort", 3, "containerPort", Presence::Always),
            ("k8s.io.api.core.v1.ConfigMap", 4, "immutable", Presence::Pointer),
            ("k8s.io.api.apps.v1.DeploymentSpec", 1, "replicas", Presence::Pointer),
            (
                "k8s.io.api.autoscaling.v1.HorizontalPodAutoscalerSpec",
                4,
                "targetCPUUtilizationPercentage",
                Presence::Pointer,
            ),
            ("k8s.io.api.rbac.v1.PolicyRule", 5, "nonResourceURLs", Presence::OmitEmpty),
            ("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta", 10, "deletionGracePeriodSeconds", Presence::Pointer),
        ];
        let by_name: Vec<_> = all_messages();
        for (msg, number, json, presence) in cases {
            let m = by_name.iter().find(|m| m.name == *msg).unwrap_or_else(|| panic!("{msg} missing"));
            let f = m.field(*number).unwrap_or_else(|| panic!("{msg}.{number} missing"));
            assert_eq!(f.json, *json, "{msg}.{number}");
            assert!(f.presence == *presence, "{msg}.{number} presence");
        }
    }

    #[test]
    fn volume_source_is_inlined_into_volume() {
        let volume = root("v1", "Pod")
            .and_then(|pod| pod.field(2))
            .and_then(|spec| if let Ty::Msg(m) = spec.ty { m.field(1) } else { None })
            .and_then(|volumes| if let Ty::Msg(m) = volumes.ty { Some(m) } else { None });
        let volume = volume.unwrap();
        assert_eq!(volume.name, "k8s.io.api.core.v1.Volume");
        assert!(volume.field(2).is_some_and(|f| f.shape == Shape::Inline));
    }
}
