//! Registry authentication: parsing `WWW-Authenticate` challenges and fetching bearer tokens from
//! the token realm (docker's token protocol, with basic credentials or an OAuth2 refresh token).

use base64::Engine as _;
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use serde::Deserialize;

use crate::http::{read_body, HttpClient, HttpError};
use crate::registries::{Credentials, TlsConfig};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token request to {realm}: {source}")]
    Http { realm: String, source: HttpError },
    #[error("token request to {realm} answered {status}: {body}")]
    Status { realm: String, status: StatusCode, body: String },
    #[error("token response from {realm} has no token")]
    NoToken { realm: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
    Basic,
}

/// Parses one `WWW-Authenticate` value: `Bearer realm="..",service="..",scope=".."` or `Basic ...`.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
            Some(Challenge::Bearer { realm: get("realm")?, service: get("service"), scope: get("scope") })
        }
        _ => None,
    }
}

/// `k=v` pairs separated by commas; values may be quoted and then contain commas and `\"`.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            val = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_string();
        }
        out.push((key.trim().to_string(), val));
    }
    out
}

pub fn basic_header(username: &str, password: &str) -> HeaderValue {
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    HeaderValue::from_str(&format!("Basic {enc}")).unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Fetches a bearer token for `scope` (falling back to the challenge's own scope).
pub async fn fetch_token(
    http: &HttpClient,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    credentials: Option<&Credentials>,
    tls: &TlsConfig,
) -> Result<String, AuthError> {
    let mut headers = HeaderMap::new();
    let (method, url, body) = match credentials {
        Some(Credentials::IdentityToken { token, .. }) => {
            // OAuth2 refresh-token grant, as containerd does for identity tokens.
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
            let mut form = format!(
                "grant_type=refresh_token&client_id=edge&refresh_token={}&scope={}",
                urlencode(token),
                urlencode(scope)
            );
            if let Some(s) = service {
                form.push_str(&format!("&service={}", urlencode(s)));
            }
            (Method::POST, realm.to_string(), Bytes::from(form))
        }
        other => {
            if let Some(Credentials::Basic { username, password }) = other {
                headers.insert(AUTHORIZATION, basic_header(username, password));
            }
            let mut url = format!("{realm}{}scope={}", if realm.contains('?') { '&' } else { '?' }, urlencode(scope));
            if let Some(s) = service {
                url.push_str(&format!("&service={}", urlencode(s)));
            }
            (Method::GET, url, Bytes::new())
        }
    };
    let err = |source| AuthError::Http { realm: realm.to_string(), source };
    let resp = http.send(method, &url, headers, body, tls).await.map_err(err)?;
    let status = resp.status();
    let body = read_body(resp.into_body(), 1 << 20).await.map_err(err)?;
    if !status.is_success() {
        return Err(AuthError::Status {
            realm: realm.to_string(),
            status,
            body: String::from_utf8_lossy(&body).chars().take(200).collect(),
        });
    }
    #[derive(Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        token: String,
        #[serde(default)]
        access_token: String,
    }
    let t: TokenResponse =
        serde_json::from_slice(&body).map_err(|_| AuthError::NoToken { realm: realm.to_string() })?;
    let token = if t.token.is_empty() { t.access_token } else { t.token };
    if token.is_empty() {
        return Err(AuthError::NoToken { realm: realm.to_string() });
    }
    Ok(token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn challenge_table() {
        let cases = [
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
                Some(Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                    scope: Some("repository:library/nginx:pull".into()),
                }),
            ),
            (
                r#"Bearer realm="https://r/token", scope="repository:a/b:pull,push""#,
                Some(Challenge::Bearer {
                    realm: "https://r/token".into(),
                    service: None,
                    scope: Some("repository:a/b:pull,push".into()),
                }),
            ),
            (
                r#"bearer realm=https://r/t,service=s"#,
                Some(Challenge::Bearer { realm: "https://r/t".into(), service: Some("s".into()), scope: None }),
            ),
            (r#"Basic realm="basic-realm""#, Some(Challenge::Basic)),
            (r#"Bearer service="no realm""#, None),
            ("Negotiate", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_challenge(input), want, "{input}");
        }
        assert_eq!(urlencode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
    }
}
