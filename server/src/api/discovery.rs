//! Legacy discovery (`/api`, `/apis`, `/apis/{g}/{v}`) and `/version`: what kubectl reads to map
//! `kubectl get deploy` to a URL. Short names and categories matter: kubectl has no fallback for them.

use serde_json::{json, Value};

use crate::resources::{self, RESOURCES};

pub const KUBE_VERSION: &str = "v1.32.0+edge";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": KUBE_VERSION,
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (rust)",
        "compiler": "rustc",
        "platform": format!("linux/{}", go_arch()),
    })
}

/// The architecture in Go's spelling, which clients print and compare.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0]})
}

pub fn group_list() -> Value {
    let groups: Vec<Value> = resources::group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_json(g, &vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(name: &str) -> Option<Value> {
    let (g, vs) = resources::group_versions().into_iter().find(|(g, _)| !g.is_empty() && *g == name)?;
    let mut v = group_json(g, &vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    let mut out = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        out.push(entry);
        for sub in r.subresources {
            let (kind, verbs, sub_group, sub_version): (&str, &[&str], Option<&str>, Option<&str>) = match *sub {
                "status" => (r.kind, &["get", "patch", "update"], None, None),
                "scale" => ("Scale", &["get", "patch", "update"], Some("autoscaling"), Some("v1")),
                "log" => ("Pod", &["get"], None, None),
                "exec" | "attach" | "portforward" => ("PodExecOptions", &["create", "get"], None, None),
                "binding" => ("Binding", &["create"], None, None),
                "eviction" => ("Eviction", &["create"], Some("policy"), Some("v1")),
                "ephemeralcontainers" => ("Pod", &["get", "patch", "update"], None, None),
                "finalize" => ("Namespace", &["update"], None, None),
                _ => continue,
            };
            let mut e = json!({"name": format!("{}/{}", r.plural, sub), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs});
            if let (Some(g), Some(v)) = (sub_group, sub_version) {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            out.push(e);
        }
    }
    if out.is_empty() {
        return None;
    }
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_short_names_categories_and_subresources() {
        let apps = resource_list("apps", "v1").unwrap();
        let names: Vec<&str> =
            apps["resources"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
        assert!(names.contains(&"deployments/scale") && names.contains(&"deployments/status"));
        let deploy = apps["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments").unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        let groups = group_list();
        let autoscaling = groups["groups"].as_array().unwrap().iter().find(|g| g["name"] == "autoscaling").unwrap();
        assert_eq!(autoscaling["preferredVersion"]["version"], "v2");
        assert!(resource_list("apps", "v9").is_none());
    }
}
