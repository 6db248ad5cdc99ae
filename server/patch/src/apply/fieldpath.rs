//! Field paths and field sets as structured-merge-diff models them, and their `FieldsV1`
//! encoding in `metadata.managedFields` (`f:` field, `k:` keyed item, `v:` set value,
//! `i:` index, `.` for "this node itself").

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Debug, Clone)]
pub enum PathElement {
    Field(String),
    /// A keyed list item: key fields sorted by name.
    Key(Vec<(String, Value)>),
    /// An item of a set list.
    Value(Value),
    Index(usize),
}

pub type Path = Vec<PathElement>;

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The `FieldsV1` object key.
    pub fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let obj: Map<String, Value> = fields.iter().cloned().collect();
                format!("k:{}", Value::Object(obj))
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    pub fn decode(s: &str) -> Result<PathElement, String> {
        let bad = || format!("invalid FieldsV1 path element {s:?}");
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        Ok(match kind {
            "f" => PathElement::Field(rest.to_string()),
            "k" => match serde_json::from_str::<Value>(rest).map_err(|_| bad())? {
                Value::Object(fields) => PathElement::key(fields.into_iter().collect()),
                _ => return Err(bad()),
            },
            "v" => PathElement::Value(serde_json::from_str(rest).map_err(|_| bad())?),
            "i" => PathElement::Index(rest.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        })
    }

    pub fn key(mut fields: Vec<(String, Value)>) -> PathElement {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }
}

/// Upstream's `PathElement.String()`, used in conflict messages: `.spec`,
/// `[name="nginx"]`, `[="a"]`, `[0]`.
impl std::fmt::Display for PathElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A total order on JSON values, close to structured-merge-diff's `value.Compare`, so sets
/// serialize in upstream's order.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.as_f64().unwrap_or(0.0).total_cmp(&y.as_f64().unwrap_or(0.0)),
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            x.iter().zip(y).map(|(p, q)| compare_values(p, q)).find(|o| o.is_ne()).unwrap_or(x.len().cmp(&y.len()))
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            xs.iter()
                .zip(&ys)
                .map(|(p, q)| p.0.cmp(q.0).then_with(|| compare_values(p.1, q.1)))
                .find(|o| o.is_ne())
                .unwrap_or(xs.len().cmp(&ys.len()))
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => a
                .iter()
                .zip(b)
                .map(|(p, q)| p.0.cmp(&q.0).then_with(|| compare_values(&p.1, &q.1)))
                .find(|o| o.is_ne())
                .unwrap_or(a.len().cmp(&b.len())),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for PathElement {}

/// A set of paths, stored as a tree: `members` end here, `children` continue. Children are
/// never empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    pub fn new() -> Set {
        Set::default()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Inserting the empty path is a no-op, as upstream.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    #[cfg(test)]
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    pub fn members(&self) -> &BTreeSet<PathElement> {
        &self.members
    }

    pub fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children.get(pe)
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, child)| {
                let rest = match other.children.get(pe) {
                    Some(theirs) => child.difference(theirs),
                    None => child.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        Set { members, children }
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, child)| {
                let common = child.intersection(other.children.get(pe)?);
                (!common.is_empty()).then(|| (pe.clone(), common))
            })
            .collect();
        Set { members, children }
    }

    /// Removes every path of `self` that is in `other` or below a member of `other`.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(pe, _)| !other.members.contains(pe))
            .filter_map(|(pe, child)| {
                let rest = match other.children.get(pe) {
                    Some(theirs) => child.recursive_difference(theirs),
                    None => child.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        Set { members, children }
    }

    /// Upstream's `EnsureNamedFieldsAreMembers`: a struct field with owned children counts
    /// as a member itself.
    pub fn with_fields_as_members(&self) -> Set {
        let mut out = Set { members: self.members.clone(), children: BTreeMap::new() };
        for (pe, child) in &self.children {
            if matches!(pe, PathElement::Field(_)) {
                out.members.insert(pe.clone());
            }
            out.children.insert(pe.clone(), child.with_fields_as_members());
        }
        out
    }

    /// Every member path, members of a node before its children, as upstream iterates.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(p);
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `FieldsV1` JSON for this set.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        let elements: BTreeSet<&PathElement> = self.members.iter().chain(self.children.keys()).collect();
        for pe in elements {
            let mut inner = Map::new();
            if let Some(child) = self.children.get(pe) {
                if self.members.contains(pe) {
                    inner.insert(".".to_string(), Value::Object(Map::new()));
                }
                if let Value::Object(rest) = child.to_fields_v1() {
                    inner.extend(rest);
                }
            }
            out.insert(pe.encode(), Value::Object(inner));
        }
        Value::Object(out)
    }

    pub fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let obj = v.as_object().ok_or("FieldsV1 must be an object")?;
        let mut set = Set::new();
        for (key, inner) in obj {
            if key == "." {
                continue;
            }
            let pe = PathElement::decode(key)?;
            let inner_obj = inner.as_object().ok_or("FieldsV1 entries must be objects")?;
            if inner_obj.is_empty() || inner_obj.contains_key(".") {
                set.members.insert(pe.clone());
            }
            let child = Set::from_fields_v1(inner)?;
            if !child.is_empty() {
                set.children.insert(pe, child);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    #[test]
    fn fields_v1_round_trip_in_upstream_order() {
        let text = r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{}},"k:{\"port\":443,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}},"f:selector":{}}}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        let set = Set::from_fields_v1(&v).unwrap();
        assert!(set.has(&[f("metadata"), f("labels")]));
        assert!(!set.has(&[f("metadata")]));
        assert!(set.has(&[f("spec"), f("selector")]));
        let port = PathElement::key(vec![("protocol".into(), json!("TCP")), ("port".into(), json!(80))]);
        assert!(set.has(&[f("spec"), f("ports"), port.clone(), f("port")]));
        assert_eq!(serde_json::to_string(&set.to_fields_v1()).unwrap(), text);
    }

    #[test]
    fn ordering_and_display() {
        // Numbers in keys sort numerically (9 before 10), fields before keys before values.
        let k9 = PathElement::key(vec![("port".into(), json!(9))]);
        let k10 = PathElement::key(vec![("port".into(), json!(10))]);
        assert!(k9 < k10);
        assert!(f("z") < k9);
        assert!(k10 < PathElement::Value(json!("a")));
        let path =
            vec![f("spec"), f("containers"), PathElement::key(vec![("name".into(), json!("nginx"))]), f("image")];
        assert_eq!(path_string(&path), r#".spec.containers[name="nginx"].image"#);
        assert_eq!(
            path_string(&[f("metadata"), f("finalizers"), PathElement::Value(json!("x"))]),
            r#".metadata.finalizers[="x"]"#
        );
    }

    #[test]
    fn set_algebra() {
        let mut a = Set::new();
        a.insert(&[f("spec"), f("replicas")]);
        a.insert(&[f("spec"), f("paused")]);
        a.insert(&[f("metadata"), f("labels"), f("app")]);
        let mut b = Set::new();
        b.insert(&[f("spec"), f("replicas")]);
        b.insert(&[f("metadata"), f("labels")]);
        let d = a.difference(&b);
        assert!(!d.has(&[f("spec"), f("replicas")]));
        assert!(d.has(&[f("spec"), f("paused")]));
        assert!(d.has(&[f("metadata"), f("labels"), f("app")]));
        let rd = a.recursive_difference(&b);
        assert!(!rd.has(&[f("metadata"), f("labels"), f("app")]));
        let i = a.intersection(&b);
        assert_eq!(i.paths(), vec![vec![f("spec"), f("replicas")]]);
        assert_eq!(a.union(&b).paths().len(), 4);
        assert!(a.with_fields_as_members().has(&[f("spec")]));
        assert!(a.difference(&a).is_empty());
    }
}
