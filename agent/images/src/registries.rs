//! Where to pull from and with which credentials: k3s's `registries.yaml` (mirrors with endpoints and
//! rewrites, per-host auth and TLS) and Kubernetes imagePullSecrets (`.dockerconfigjson`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::reference::{Reference, DOCKER_HUB};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing registries.yaml: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("parsing docker config json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid endpoint {0:?}: expected http(s)://host[:port][/path]")]
    Endpoint(String),
    #[error("unsupported rewrite pattern {0:?}: only literals, '^', '$' and '(.*)' groups")]
    Rewrite(String),
    #[error("invalid base64 in auth field for {0}")]
    AuthField(String),
}

/// `/etc/edge/registries.yaml`, k3s's format.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RegistriesConfig {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct HostConfig {
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`, as in docker's config.json.
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub identity_token: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// What to authenticate with against one registry host.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token realm.
    IdentityToken {
        username: String,
        token: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets into logs.
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken { username, .. } => write!(f, "IdentityToken({username}, ***)"),
        }
    }
}

impl AuthConfig {
    pub fn credentials(&self, host: &str) -> Result<Option<Credentials>, ConfigError> {
        let (mut username, mut password) = (self.username.clone(), self.password.clone());
        if !self.auth.is_empty() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(self.auth.trim())
                .map_err(|_| ConfigError::AuthField(host.to_string()))?;
            let s = String::from_utf8(raw).map_err(|_| ConfigError::AuthField(host.to_string()))?;
            let (u, p) = s.split_once(':').ok_or_else(|| ConfigError::AuthField(host.to_string()))?;
            (username, password) = (u.to_string(), p.to_string());
        }
        Ok(if !self.identity_token.is_empty() {
            Some(Credentials::IdentityToken { username, token: self.identity_token.clone() })
        } else if !username.is_empty() || !password.is_empty() {
            Some(Credentials::Basic { username, password })
        } else {
            None
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// One place to try for a reference: a mirror or the registry itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// `host[:port]`, also the key for `configs`.
    pub authority: String,
    /// Everything before `/<repository>/...`, normally `/v2`.
    pub api_root: String,
    /// Repository path on this endpoint (after rewrites).
    pub repository: String,
    pub is_mirror: bool,
    pub tls: TlsConfig,
    pub credentials: Option<Credentials>,
}

impl Endpoint {
    pub fn url(&self, path: &str) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}{}/{}/{}", self.authority, self.api_root, self.repository, path)
    }
    pub fn host(&self) -> &str {
        host_of(&self.authority)
    }
}

fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split(']').next().map(|h| &h[1..]).unwrap_or(authority);
    }
    authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority)
}

impl RegistriesConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(&bytes),
            // No file is the common case: no mirrors, no credentials.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Self::default());
        }
        let cfg: RegistriesConfig = serde_yaml::from_slice(bytes)?;
        for m in cfg.mirrors.values() {
            for e in &m.endpoint {
                parse_endpoint(e)?;
            }
            for pattern in m.rewrite.keys() {
                Rewrite::compile(pattern, "")?;
            }
        }
        Ok(cfg)
    }

    /// The endpoints to try for `reference`, in order: the mirrors of its registry (or of `*`), then
    /// the registry's own default endpoint. `secrets` are imagePullSecrets: they apply to endpoints
    /// whose host has no credentials in `configs` (k3s: configs win for the hosts they name).
    pub fn endpoints(&self, reference: &Reference, secrets: &[DockerConfig]) -> Result<Vec<Endpoint>, ConfigError> {
        let registry = reference.registry();
        let mirror = self.mirrors.get(registry).or_else(|| self.mirrors.get("*"));
        let mut out = Vec::new();
        if let Some(m) = mirror {
            let rewrites: Vec<Rewrite> =
                m.rewrite.iter().map(|(p, r)| Rewrite::compile(p, r)).collect::<Result<_, _>>()?;
            let repository = rewrites
                .iter()
                .find_map(|r| r.apply(reference.repository()))
                .unwrap_or_else(|| reference.repository().to_string());
            for e in &m.endpoint {
                let (scheme, authority, api_root) = parse_endpoint(e)?;
                out.push(Endpoint {
                    scheme,
                    authority,
                    api_root,
                    repository: repository.clone(),
                    is_mirror: true,
                    tls: TlsConfig::default(),
                    credentials: None,
                });
            }
        }
        let (scheme, authority) = default_endpoint(registry);
        let default = Endpoint {
            scheme,
            authority,
            api_root: "/v2".into(),
            repository: reference.repository().into(),
            is_mirror: false,
            tls: TlsConfig::default(),
            credentials: None,
        };
        if !out.contains(&default) {
            out.push(default);
        }
        for e in &mut out {
            let cfg = self.configs.get(&e.authority).or_else(|| self.configs.get(e.host())).or_else(|| {
                // Config keys written as URLs or for the registry name of the mirrored host.
                self.configs
                    .iter()
                    .find(|(k, _)| parse_endpoint(k).map(|(_, a, _)| a == e.authority).unwrap_or(false))
                    .map(|(_, v)| v)
            });
            // `configs: {docker.io: ...}` names the registry rather than its API host.
            let cfg = cfg.or_else(|| if e.is_mirror { None } else { self.configs.get(registry) });
            if let Some(cfg) = cfg {
                e.tls = cfg.tls.clone().unwrap_or_default();
                if let Some(auth) = &cfg.auth {
                    e.credentials = auth.credentials(&e.authority)?;
                }
            }
            if e.credentials.is_none() {
                let host_for_secrets = if e.is_mirror { e.authority.clone() } else { registry.to_string() };
                e.credentials = secrets.iter().find_map(|s| s.lookup(&host_for_secrets, &e.repository));
            }
        }
        Ok(out)
    }
}

/// Docker Hub's API lives on registry-1.docker.io; loopback registries speak plain HTTP as docker
/// treats 127.0.0.0/8 and localhost as insecure registries by default.
fn default_endpoint(registry: &str) -> (Scheme, String) {
    if registry == DOCKER_HUB {
        return (Scheme::Https, "registry-1.docker.io".into());
    }
    let host = host_of(registry);
    let loopback = host == "localhost" || host.starts_with("127.") || host == "::1";
    (if loopback { Scheme::Http } else { Scheme::Https }, registry.to_string())
}

fn parse_endpoint(e: &str) -> Result<(Scheme, String, String), ConfigError> {
    let (scheme, rest) = if let Some(r) = e.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if let Some(r) = e.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if e.contains("://") {
        return Err(ConfigError::Endpoint(e.to_string()));
    } else {
        (Scheme::Https, e)
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
        return Err(ConfigError::Endpoint(e.to_string()));
    }
    // containerd: an endpoint path is the API root; `/v2` is appended unless already there.
    let api_root = if path.ends_with("/v2") { path.to_string() } else { format!("{path}/v2") };
    Ok((scheme, authority.to_string(), api_root))
}

/// A k3s rewrite rule. Real rules are of the form `^prefix/(.*)` → `other/$1`; this supports literal
/// text, anchors and `(.*)` capture groups, which is all they use, without a regex engine.
#[derive(Clone, Debug)]
struct Rewrite {
    parts: Vec<Part>,
    anchored_start: bool,
    anchored_end: bool,
    replacement: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Lit(String),
    Any,
}

impl Rewrite {
    fn compile(pattern: &str, replacement: &str) -> Result<Self, ConfigError> {
        let mut p = pattern;
        let anchored_start = p.starts_with('^');
        if anchored_start {
            p = &p[1..];
        }
        let anchored_end = p.ends_with('$') && !p.ends_with("\\$");
        if anchored_end {
            p = &p[..p.len() - 1];
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = p.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '(' => {
                    let group: String = chars.by_ref().take(3).collect();
                    if group != ".*)" {
                        return Err(ConfigError::Rewrite(pattern.to_string()));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Any);
                }
                '\\' => match chars.next() {
                    Some(n) if "./-_^$()[]*+?".contains(n) => lit.push(n),
                    _ => return Err(ConfigError::Rewrite(pattern.to_string())),
                },
                '.' | '*' | '+' | '?' | '[' | ']' | '{' | '}' | '|' | ')' | '^' | '$' => {
                    return Err(ConfigError::Rewrite(pattern.to_string()))
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Rewrite { parts, anchored_start, anchored_end, replacement: replacement.to_string() })
    }

    fn apply(&self, input: &str) -> Option<String> {
        let starts: Vec<usize> = if self.anchored_start {
            vec![0]
        } else {
            (0..=input.len()).filter(|i| input.is_char_boundary(*i)).collect()
        };
        for start in starts {
            let mut groups = Vec::new();
            if let Some(end) = self.match_at(&self.parts, input, start, &mut groups) {
                let mut out = String::new();
                out.push_str(&input[..start]);
                let mut rep = self.replacement.chars().peekable();
                while let Some(c) = rep.next() {
                    if c == '$' {
                        if let Some(d) = rep.peek().and_then(|d| d.to_digit(10)) {
                            rep.next();
                            if d >= 1 {
                                out.push_str(groups.get(d as usize - 1).map(String::as_str).unwrap_or(""));
                            }
                            continue;
                        }
                    }
                    out.push(c);
                }
                out.push_str(&input[end..]);
                return Some(out);
            }
        }
        None
    }

    fn match_at(&self, parts: &[Part], input: &str, pos: usize, groups: &mut Vec<String>) -> Option<usize> {
        match parts.split_first() {
            None => (!self.anchored_end || pos == input.len()).then_some(pos),
            Some((Part::Lit(l), rest)) => {
                input[pos..].starts_with(l.as_str()).then_some(())?;
                self.match_at(rest, input, pos + l.len(), groups)
            }
            Some((Part::Any, rest)) => {
                // Greedy, like Go's regexp for `(.*)`.
                for end in (pos..=input.len()).rev().filter(|i| input.is_char_boundary(*i)) {
                    groups.push(input[pos..end].to_string());
                    if let Some(e) = self.match_at(rest, input, end, groups) {
                        return Some(e);
                    }
                    groups.pop();
                }
                None
            }
        }
    }
}

/// Contents of a `kubernetes.io/dockerconfigjson` (or legacy `dockercfg`) Secret.
#[derive(Clone, Debug, Default)]
pub struct DockerConfig {
    entries: Vec<(String, String, AuthConfig)>,
}

impl DockerConfig {
    /// Parses `{"auths": {"https://index.docker.io/v1/": {"auth": "..."}}}` or the legacy map form.
    pub fn parse(json: &[u8]) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(default)]
            username: String,
            #[serde(default)]
            password: String,
            #[serde(default)]
            auth: String,
            #[serde(default, alias = "identitytoken")]
            identity_token: String,
        }
        let v: serde_json::Value = serde_json::from_slice(json)?;
        let map = match v.get("auths") {
            Some(a) => a.clone(),
            None => v,
        };
        let map: BTreeMap<String, Entry> = serde_json::from_value(map)?;
        let entries = map
            .into_iter()
            .map(|(key, e)| {
                let (host, path) = normalize_cred_key(&key);
                (
                    host,
                    path,
                    AuthConfig {
                        username: e.username,
                        password: e.password,
                        auth: e.auth,
                        identity_token: e.identity_token,
                    },
                )
            })
            .collect();
        Ok(DockerConfig { entries })
    }

    /// Credentials for a registry host and repository, most specific key first (as kubelet's
    /// credential provider orders them). Wildcards (`*.example.com`) match one label each.
    pub fn lookup(&self, registry: &str, repository: &str) -> Option<Credentials> {
        let registry = normalize_cred_key(registry).0;
        let mut matches: Vec<&(String, String, AuthConfig)> = self
            .entries
            .iter()
            .filter(|(host, path, _)| {
                host_matches(host, &registry)
                    && (path.is_empty() || repository == path || repository.starts_with(&format!("{path}/")))
            })
            .collect();
        matches.sort_by_key(|(host, path, _)| (std::cmp::Reverse(path.len()), host.contains('*')));
        matches.into_iter().find_map(|(h, _, a)| a.credentials(h).ok().flatten())
    }
}

fn normalize_cred_key(key: &str) -> (String, String) {
    let k = key.trim_start_matches("https://").trim_start_matches("http://");
    let (host, path) = k.split_once('/').unwrap_or((k, ""));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        h => h,
    };
    let path = path.trim_end_matches('/');
    let path = if matches!(path, "v1" | "v2") { "" } else { path };
    (host.to_ascii_lowercase(), path.to_string())
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let (p_host, p_port) = pattern.split_once(':').map(|(h, p)| (h, Some(p))).unwrap_or((pattern, None));
    let (h_host, h_port) = host.split_once(':').map(|(h, p)| (h, Some(p))).unwrap_or((host, None));
    if p_port != h_port {
        return false;
    }
    let pl: Vec<&str> = p_host.split('.').collect();
    let hl: Vec<&str> = h_host.split('.').collect();
    pl.len() == hl.len() && pl.iter().zip(&hl).all(|(p, h)| *p == "*" || p == h)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn endpoints_mirrors_then_default() {
        let cfg = RegistriesConfig::parse(
            br#"
mirrors:
  docker.io:
    endpoint: ["http://10.0.0.1:5000", "https://mirror.example.com/prefix"]
  "*":
    endpoint: ["https://all.example.com"]
configs:
  "10.0.0.1:5000":
    auth: {username: u, password: p}
  "registry-1.docker.io":
    auth: {auth: "aHViOnNlY3JldA=="}
  mirror.example.com:
    tls: {insecure_skip_verify: true}
"#,
        )
        .unwrap();
        let eps = cfg.endpoints(&r("nginx:1.7.9"), &[]).unwrap();
        let urls: Vec<String> = eps.iter().map(|e| e.url("manifests/1.7.9")).collect();
        assert_eq!(
            urls,
            [
                "http://10.0.0.1:5000/v2/library/nginx/manifests/1.7.9",
                "https://mirror.example.com/prefix/v2/library/nginx/manifests/1.7.9",
                "https://registry-1.docker.io/v2/library/nginx/manifests/1.7.9",
            ]
        );
        assert_eq!(eps[0].credentials, Some(Credentials::Basic { username: "u".into(), password: "p".into() }));
        assert!(eps[1].tls.insecure_skip_verify && eps[1].credentials.is_none());
        assert_eq!(eps[2].credentials, Some(Credentials::Basic { username: "hub".into(), password: "secret".into() }));
        let eps = cfg.endpoints(&r("quay.io/a/b"), &[]).unwrap();
        let urls: Vec<String> = eps.iter().map(|e| e.url("blobs/x")).collect();
        assert_eq!(urls, ["https://all.example.com/v2/a/b/blobs/x", "https://quay.io/v2/a/b/blobs/x"]);
        let eps = RegistriesConfig::default().endpoints(&r("127.0.0.1:5000/x"), &[]).unwrap();
        assert_eq!(eps[0].url("manifests/latest"), "http://127.0.0.1:5000/v2/x/manifests/latest");
    }

    #[test]
    fn rewrite_table() {
        let cases = [
            (
                "^rancher/(.*)",
                "mirrorproject/rancher-images/$1",
                "rancher/pause",
                Some("mirrorproject/rancher-images/pause"),
            ),
            ("^rancher/(.*)", "x/$1", "library/rancher/pause", None),
            ("library/(.*)", "lib/$1", "a/library/b", Some("a/lib/b")),
            ("^(.*)/(.*)$", "$2/$1", "a/b", Some("b/a")),
            ("^a\\.b$", "c", "a.b", Some("c")),
        ];
        for (pattern, rep, input, want) in cases {
            assert_eq!(Rewrite::compile(pattern, rep).unwrap().apply(input).as_deref(), want, "{pattern} on {input}");
        }
        for bad in ["^a+b", "[abc]", "(foo)"] {
            assert!(Rewrite::compile(bad, "").is_err(), "{bad}");
        }
        let cfg = RegistriesConfig::parse(b"mirrors:\n  docker.io:\n    endpoint: [\"http://m:5000\"]\n    rewrite:\n      \"^library/(.*)\": \"hub/$1\"\n").unwrap();
        let eps = cfg.endpoints(&r("nginx"), &[]).unwrap();
        assert_eq!(eps[0].repository, "hub/nginx");
        assert_eq!(eps[1].repository, "library/nginx", "rewrites apply to mirrors only");
    }

    #[test]
    fn docker_config_lookup_table() {
        let cfg = DockerConfig::parse(
            br#"{"auths": {
              "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
              "reg.example.com:5000": {"username": "a", "password": "pa"},
              "reg.example.com:5000/team": {"username": "t", "password": "pt"},
              "*.wild.example.com": {"username": "w", "password": "pw"},
              "tok.example.com": {"identitytoken": "refresh"}
            }}"#,
        )
        .unwrap();
        let basic = |u: &str, p: &str| Some(Credentials::Basic { username: u.into(), password: p.into() });
        let cases = [
            ("docker.io", "library/nginx", basic("hub", "hubpw")),
            ("reg.example.com:5000", "other/x", basic("a", "pa")),
            ("reg.example.com:5000", "team/x", basic("t", "pt")),
            ("reg.example.com", "team/x", None),
            ("a.wild.example.com", "x", basic("w", "pw")),
            ("a.b.wild.example.com", "x", None),
            (
                "tok.example.com",
                "x",
                Some(Credentials::IdentityToken { username: String::new(), token: "refresh".into() }),
            ),
        ];
        for (host, repo, want) in cases {
            assert_eq!(cfg.lookup(host, repo), want, "{host}/{repo}");
        }
        let legacy = DockerConfig::parse(br#"{"quay.io": {"auth": "dTpw"}}"#).unwrap();
        assert_eq!(legacy.lookup("quay.io", "a/b"), basic("u", "p"));
        // Pull secrets reach the registry's own endpoint but not a mirror host.
        let reg = RegistriesConfig::parse(b"mirrors:\n  docker.io:\n    endpoint: [\"http://m:5000\"]\n").unwrap();
        let eps = reg.endpoints(&r("nginx"), &[cfg]).unwrap();
        assert_eq!((eps[0].credentials.clone(), eps[1].credentials.clone()), (None, basic("hub", "hubpw")));
    }
}
