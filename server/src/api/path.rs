//! Upstream's URL layout: `/api/v1/...`, `/apis/{group}/{version}/...`, optionally
//! `namespaces/{ns}/`, then `{resource}[/{name}[/{subresource}]]`.

use crate::resources::{self, Resource};

#[derive(Debug)]
pub enum Route {
    Version,
    Healthz,
    Livez,
    Readyz,
    /// The cluster CA, for agents about to join (k3s's path).
    CaCerts,
    /// Node certificates for a join token.
    NodeCerts,
    ApiVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    OpenApiV3Index,
    OpenApiV3(String, String),
    Resource(Target),
}

#[derive(Debug, Clone)]
pub struct Target {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_prefix: bool,
}

pub fn parse(path: &str) -> Option<Route> {
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').skip(1).collect();
    match segs.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz", ..] => Some(Route::Healthz),
        ["livez", ..] => Some(Route::Livez),
        ["readyz", ..] => Some(Route::Readyz),
        ["cacerts"] => Some(Route::CaCerts),
        ["v1-edge", "node-certs"] => Some(Route::NodeCerts),
        ["api"] => Some(Route::ApiVersions),
        ["apis"] => Some(Route::GroupList),
        ["apis", g] => Some(Route::Group(g.to_string())),
        ["openapi", "v3"] => Some(Route::OpenApiV3Index),
        ["openapi", "v3", "api", v] => Some(Route::OpenApiV3(String::new(), v.to_string())),
        ["openapi", "v3", "apis", g, v] => Some(Route::OpenApiV3(g.to_string(), v.to_string())),
        ["api", v] => Some(Route::ResourceList(String::new(), v.to_string())),
        ["apis", g, v] => Some(Route::ResourceList(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => target("", v, rest).map(Route::Resource),
        ["apis", g, v, rest @ ..] => target(g, v, rest).map(Route::Resource),
        _ => None,
    }
}

fn target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let (watch_prefix, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let lookup = |plural: &str| resources::lookup(group, version, plural);
    let make = |resource, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
        resource,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
        watch_prefix,
    };
    match rest {
        // namespaces/{ns}/{resource}... unless {resource} is a subresource of the namespace itself.
        ["namespaces", ns, res, tail @ ..] if lookup(res).is_some_and(|r| r.namespaced) => {
            let r = lookup(res)?;
            match tail {
                [] => Some(make(r, Some(ns), None, None)),
                [name] => Some(make(r, Some(ns), Some(name), None)),
                [name, sub] => Some(make(r, Some(ns), Some(name), Some(sub))),
                _ => None,
            }
        }
        [res] => Some(make(lookup(res)?, None, None, None)),
        [res, name] => Some(make(lookup(res)?, None, Some(name), None)),
        [res, name, sub] => Some(make(lookup(res)?, None, Some(name), Some(sub))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str) -> Target {
        match parse(path) {
            Some(Route::Resource(t)) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_resolve_like_upstream() {
        let d = t("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(
            (d.resource.plural, d.namespace.as_deref(), d.name.as_deref(), d.subresource.as_deref()),
            ("deployments", Some("default"), Some("web"), Some("scale"))
        );
        let ns = t("/api/v1/namespaces/kube-system");
        assert_eq!((ns.resource.plural, ns.name.as_deref()), ("namespaces", Some("kube-system")));
        let fin = t("/api/v1/namespaces/x/finalize");
        assert_eq!(
            (fin.resource.plural, fin.name.as_deref(), fin.subresource.as_deref()),
            ("namespaces", Some("x"), Some("finalize"))
        );
        let all = t("/api/v1/pods");
        assert!(all.namespace.is_none() && all.name.is_none());
        let w = t("/api/v1/watch/namespaces/default/pods");
        assert!(w.watch_prefix && w.namespace.as_deref() == Some("default"));
        assert!(parse("/apis/apps/v1/nothings").is_none());
        assert!(matches!(parse("/apis/apps/v1"), Some(Route::ResourceList(..))));
    }
}
