//! Where a pod subresource goes on the kubelet, as upstream's pod strategy (LogLocation,
//! streamLocation, PortForwardLocation) works it out: the container, the node's address and kubelet
//! port, and the kubelet path with only the options that were set.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::api::status::{ApiError, ApiResult, FieldError};

/// The kubelet port when the Node does not report one.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// kubectl's annotation naming the container to use when none is given.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// The pod subresources answered by the kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Log,
    Exec,
    Attach,
    PortForward,
}

impl Stream {
    pub fn from_subresource(sub: &str) -> Option<Stream> {
        match sub {
            "log" => Some(Stream::Log),
            "exec" => Some(Stream::Exec),
            "attach" => Some(Stream::Attach),
            "portforward" => Some(Stream::PortForward),
            _ => None,
        }
    }
}

/// The query of a subresource request. Single-valued options take the first value, as upstream's
/// parameter codec does.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        Params(form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn container(&self) -> Option<&str> {
        self.first("container").filter(|c| !c.is_empty())
    }

    /// Go's strconv.ParseBool, which the parameter codec uses.
    fn flag(&self, key: &str) -> ApiResult<bool> {
        match self.first(key) {
            None | Some("") => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!("{key}: invalid boolean value {other:?}"))),
        }
    }

    fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        self.first(key)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| ApiError::bad_request(format!("{key}: invalid integer value {v:?}"))))
            .transpose()
    }
}

/// The kubelet query for `stream` from the API query, keys sorted as Go's url.Values encodes them.
/// Log options are validated as upstream's ValidatePodLogOptions does (422 on PodLogOptions).
pub fn kubelet_query(stream: Stream, pod: &str, params: &Params) -> ApiResult<String> {
    let mut out: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut set = |k: &'static str, v: String| out.entry(k).or_default().push(v);
    match stream {
        Stream::Log => {
            let (tail, limit, since) =
                (params.int("tailLines")?, params.int("limitBytes")?, params.int("sinceSeconds")?);
            let since_time = params
                .first("sinceTime")
                .filter(|v| !v.is_empty())
                .map(|v| {
                    chrono::DateTime::parse_from_rfc3339(v)
                        .map(|t| t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .map_err(|e| ApiError::bad_request(format!("sinceTime: invalid time {v:?}: {e}")))
                })
                .transpose()?;
            let mut errors = Vec::new();
            if let Some(n) = tail.filter(|n| *n < 0) {
                errors.push(FieldError::invalid("tailLines", &json!(n), "must be greater than or equal to 0"));
            }
            if let Some(n) = limit.filter(|n| *n < 1) {
                errors.push(FieldError::invalid("limitBytes", &json!(n), "must be greater than 0"));
            }
            match (since, &since_time) {
                (Some(_), Some(_)) => errors
                    .push(FieldError::forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified")),
                (Some(n), None) if n < 1 => {
                    errors.push(FieldError::invalid("sinceSeconds", &json!(n), "must be greater than 0"))
                }
                _ => {}
            }
            if !errors.is_empty() {
                return Err(ApiError::invalid("PodLogOptions", "", pod, &errors));
            }
            for (key, on) in [
                ("follow", params.flag("follow")?),
                ("previous", params.flag("previous")?),
                ("timestamps", params.flag("timestamps")?),
            ] {
                if on {
                    set(key, "true".into());
                }
            }
            for (key, value) in [("tailLines", tail), ("limitBytes", limit), ("sinceSeconds", since)] {
                if let Some(v) = value {
                    set(key, v.to_string());
                }
            }
            if let Some(t) = since_time {
                set("sinceTime", t);
            }
        }
        Stream::Exec | Stream::Attach => {
            for (api, kubelet) in [("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty")] {
                if params.flag(api)? {
                    set(kubelet, "1".into());
                }
            }
            if stream == Stream::Exec {
                for c in params.all("command") {
                    set("command", c.to_string());
                }
            }
        }
        Stream::PortForward => {
            let mut ports = Vec::new();
            for p in params.all("ports").chain(params.all("port")).flat_map(|v| v.split(',')) {
                match p.trim().parse::<u16>() {
                    Ok(n) if n > 0 => ports.push(n.to_string()),
                    _ => return Err(ApiError::bad_request(format!("invalid port {p:?}"))),
                }
            }
            if !ports.is_empty() {
                set("port", ports.join(","));
            }
        }
    }
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, vs) in &out {
        for v in vs {
            q.append_pair(k, v);
        }
    }
    Ok(q.finish())
}

/// Every container name of the pod, init containers first, as upstream's VisitContainers walks them.
fn container_names(pod: &Value) -> Vec<&str> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod["spec"][k].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// The container a request is for: the one asked for, else kubectl's default-container annotation,
/// else the pod's only container.
pub fn container(pod: &Value, requested: Option<&str>) -> ApiResult<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let annotated = pod["metadata"]["annotations"][DEFAULT_CONTAINER_ANNOTATION].as_str().filter(|c| !c.is_empty());
    if let Some(c) = requested.or(annotated) {
        if !container_names(pod).contains(&c) {
            return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")));
        }
        return Ok(c.to_string());
    }
    let containers = pod["spec"]["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
    match containers {
        [only] => Ok(only["name"].as_str().unwrap_or_default().to_string()),
        [] => Err(ApiError::bad_request(format!("a container name must be specified for pod {name}"))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            container_names(pod).join(" ")
        ))),
    }
}

/// The node a pod runs on; upstream's error when it has none yet.
pub fn node_name(pod: &Value) -> ApiResult<&str> {
    match pod["spec"]["nodeName"].as_str() {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(no_host(pod)),
    }
}

pub fn no_host(pod: &Value) -> ApiError {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    ApiError::bad_request(format!("pod {name} does not have a host assigned"))
}

/// The kubelet's host and port from a Node: its InternalIP, else its Hostname; the port from
/// status.daemonEndpoints, else 10250.
pub fn kubelet_endpoint(node: &Value) -> ApiResult<(String, u16)> {
    let addresses = node["status"]["addresses"].as_array().map(Vec::as_slice).unwrap_or_default();
    let of_type = |t: &str| {
        addresses.iter().find(|a| a["type"] == t).and_then(|a| a["address"].as_str()).filter(|a| !a.is_empty())
    };
    let Some(host) = of_type("InternalIP").or_else(|| of_type("Hostname")) else {
        let known: Vec<String> = addresses.iter().map(|a| format!("{}/{}", a["type"], a["address"])).collect();
        return Err(ApiError::new(
            500,
            "",
            format!("no preferred addresses found; known addresses: [{}]", known.join(" ")),
        ));
    };
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok((host.to_string(), port))
}

/// The kubelet path (with query) for `stream` on `namespace/pod`, `container` for all but port-forward.
pub fn kubelet_path(stream: Stream, namespace: &str, pod: &str, container: &str, query: &str) -> String {
    let path = match stream {
        Stream::Log => format!("/containerLogs/{namespace}/{pod}/{container}"),
        Stream::Exec => format!("/exec/{namespace}/{pod}/{container}"),
        Stream::Attach => format!("/attach/{namespace}/{pod}/{container}"),
        Stream::PortForward => format!("/portForward/{namespace}/{pod}"),
    };
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: &[&str], init: &[&str], default: Option<&str>) -> Value {
        let list = |names: &[&str]| names.iter().map(|n| json!({"name": n, "image": "x"})).collect::<Vec<_>>();
        let mut p = json!({"metadata": {"name": "web"}, "spec": {"containers": list(containers)}});
        if !init.is_empty() {
            p["spec"]["initContainers"] = json!(list(init));
        }
        if let Some(d) = default {
            p["metadata"]["annotations"] = json!({DEFAULT_CONTAINER_ANNOTATION: d});
        }
        p
    }

    #[test]
    fn containers_resolve_like_upstream() {
        let cases: &[(Value, Option<&str>, Result<&str, &str>)] = &[
            (pod(&["a"], &[], None), None, Ok("a")),
            (pod(&["a", "b"], &[], None), Some("b"), Ok("b")),
            (pod(&["a", "b"], &["i"], None), Some("i"), Ok("i")),
            (pod(&["a", "b"], &[], Some("b")), None, Ok("b")),
            (pod(&["a", "b"], &[], Some("b")), Some("a"), Ok("a")),
            (
                pod(&["a", "b"], &[], None),
                None,
                Err("a container name must be specified for pod web, choose one of: [a b]"),
            ),
            (
                pod(&["a", "b"], &["i"], None),
                None,
                Err("a container name must be specified for pod web, choose one of: [i a b]"),
            ),
            (pod(&[], &[], None), None, Err("a container name must be specified for pod web")),
            (pod(&["a"], &[], None), Some("c"), Err("container c is not valid for pod web")),
            (pod(&["a", "b"], &[], Some("gone")), None, Err("container gone is not valid for pod web")),
        ];
        for (p, requested, want) in cases {
            let got = container(p, *requested).map_err(|e| (e.code, e.message));
            match want {
                Ok(c) => assert_eq!(got, Ok(c.to_string()), "{requested:?}"),
                Err(m) => assert_eq!(got, Err((400, m.to_string())), "{requested:?}"),
            }
        }
    }

    #[test]
    fn unscheduled_pods_have_no_host() {
        let e = node_name(&json!({"metadata": {"name": "p"}, "spec": {}})).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "pod p does not have a host assigned"));
        assert_eq!(node_name(&json!({"spec": {"nodeName": "n1"}})).unwrap(), "n1");
    }

    #[test]
    fn kubelet_endpoints_prefer_internal_ip() {
        let node = |addrs: Value, port: Value| json!({"status": {"addresses": addrs, "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}});
        let cases = [
            (
                node(
                    json!([{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}]),
                    json!(10251),
                ),
                Ok(("10.0.0.5", 10251)),
            ),
            (node(json!([{"type": "Hostname", "address": "n1"}]), json!(0)), Ok(("n1", 10250))),
            (node(json!([{"type": "InternalIP", "address": "10.0.0.5"}]), Value::Null), Ok(("10.0.0.5", 10250))),
            (node(json!([{"type": "ExternalIP", "address": "1.2.3.4"}]), json!(1)), Err(500)),
            (json!({}), Err(500)),
        ];
        for (n, want) in cases {
            let got = kubelet_endpoint(&n).map_err(|e| e.code);
            assert_eq!(got.as_ref().map(|(h, p)| (h.as_str(), *p)).map_err(|c| *c), want, "{n}");
        }
    }

    #[test]
    fn kubelet_queries_carry_only_what_was_set() {
        let q =
            |stream, raw: &str| kubelet_query(stream, "p", &Params::parse(Some(raw))).map_err(|e| (e.code, e.message));
        type Case<'a> = (Stream, &'a str, Result<&'a str, (u16, &'a str)>);
        let cases: &[Case] = &[
            (Stream::Log, "", Ok("")),
            (Stream::Log, "container=c&follow=false&previous=0", Ok("")),
            (
                Stream::Log,
                "follow=true&previous=1&timestamps=true&tailLines=10&limitBytes=5&sinceSeconds=60",
                Ok("follow=true&limitBytes=5&previous=true&sinceSeconds=60&tailLines=10&timestamps=true"),
            ),
            (Stream::Log, "sinceTime=2024-01-02T03:04:05.5%2B01:00", Ok("sinceTime=2024-01-02T02%3A04%3A05Z")),
            (
                Stream::Log,
                "tailLines=-1",
                Err((422, "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0")),
            ),
            (
                Stream::Log,
                "limitBytes=0",
                Err((422, "PodLogOptions \"p\" is invalid: limitBytes: Invalid value: 0: must be greater than 0")),
            ),
            (
                Stream::Log,
                "sinceSeconds=5&sinceTime=2024-01-02T03:04:05Z",
                Err((422, "PodLogOptions \"p\" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified")),
            ),
            (Stream::Log, "tailLines=x", Err((400, "tailLines: invalid integer value \"x\""))),
            (Stream::Log, "follow=maybe", Err((400, "follow: invalid boolean value \"maybe\""))),
            (
                Stream::Exec,
                "command=sh&command=-c&command=echo+hi&stdin=true&stdout=true&stderr=false&tty=true&container=c",
                Ok("command=sh&command=-c&command=echo+hi&input=1&output=1&tty=1"),
            ),
            (Stream::Attach, "stdout=1&stderr=1&command=ignored", Ok("error=1&output=1")),
            (Stream::PortForward, "ports=8080&ports=9090", Ok("port=8080%2C9090")),
            (Stream::PortForward, "port=80,81", Ok("port=80%2C81")),
            (Stream::PortForward, "ports=http", Err((400, "invalid port \"http\""))),
        ];
        for (stream, raw, want) in cases {
            let got = q(*stream, raw);
            let want = want.map(str::to_string).map_err(|(c, m)| (c, m.to_string()));
            assert_eq!(got, want, "{stream:?} {raw}");
        }
    }

    #[test]
    fn kubelet_paths_follow_the_kubelet_api() {
        assert_eq!(kubelet_path(Stream::Log, "ns", "p", "c", "follow=true"), "/containerLogs/ns/p/c?follow=true");
        assert_eq!(kubelet_path(Stream::Exec, "ns", "p", "c", ""), "/exec/ns/p/c");
        assert_eq!(kubelet_path(Stream::Attach, "ns", "p", "c", "output=1"), "/attach/ns/p/c?output=1");
        assert_eq!(kubelet_path(Stream::PortForward, "ns", "p", "", "port=80"), "/portForward/ns/p?port=80");
    }
}
