//! The OCI distribution API (v2) against one endpoint: authenticated GETs (anonymous, basic, or
//! bearer token obtained on a 401 challenge), manifest fetches with media-type negotiation, and blob
//! downloads streamed into the content store and verified by digest and size.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Response, StatusCode};

use crate::auth::{basic_header, fetch_token, parse_challenge, AuthError, Challenge};
use crate::digest::{Digest, DigestError};
use crate::http::{next_chunk, read_body, HttpClient, HttpError};
use crate::manifest::{Descriptor, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES};
use crate::registries::{Credentials, Endpoint};
use crate::store::{ContentStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{url}: {source}")]
    Http { url: String, source: HttpError },
    #[error("{url}: not found")]
    NotFound { url: String },
    #[error("{url}: unauthorized ({detail})")]
    Unauthorized { url: String, detail: String },
    #[error("{url}: registry answered {status}: {body}")]
    Status { url: String, status: StatusCode, body: String },
    #[error("authenticating: {0}")]
    Auth(#[from] AuthError),
    #[error("content from {url} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { url: String, expected: Digest, actual: Digest },
    #[error("registry sent an invalid digest: {0}")]
    BadDigest(#[from] DigestError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// Whether trying the next endpoint could help (everything except local storage failures).
    pub fn is_endpoint_failure(&self) -> bool {
        !matches!(self, RegistryError::Store(StoreError::Io { .. }))
    }
}

/// A conversation with one endpoint for one repository; remembers the Authorization it earned.
pub struct Session<'a> {
    http: &'a HttpClient,
    pub endpoint: Endpoint,
    authorization: Mutex<Option<HeaderValue>>,
}

impl<'a> Session<'a> {
    pub fn new(http: &'a HttpClient, endpoint: Endpoint) -> Self {
        Session { http, endpoint, authorization: Mutex::new(None) }
    }

    fn current_auth(&self) -> Option<HeaderValue> {
        self.authorization.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// GET `<api_root>/<repository>/<path>`, answering one auth challenge if the registry sends one.
    pub async fn get(&self, path: &str, accept: Option<&str>) -> Result<Response<Incoming>, RegistryError> {
        let url = self.endpoint.url(path);
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(ACCEPT, HeaderValue::from_str(a).unwrap_or(HeaderValue::from_static("*/*")));
        }
        let mut tried_auth = false;
        loop {
            let mut h = headers.clone();
            if let Some(a) = self.current_auth() {
                h.insert(AUTHORIZATION, a);
            }
            let resp = self
                .http
                .send(Method::GET, &url, h, Bytes::new(), &self.endpoint.tls)
                .await
                .map_err(|source| RegistryError::Http { url: url.clone(), source })?;
            match resp.status() {
                s if s.is_success() => return Ok(resp),
                StatusCode::UNAUTHORIZED if !tried_auth => {
                    tried_auth = true;
                    let challenge = resp
                        .headers()
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(parse_challenge);
                    let auth = self.answer(challenge, &url).await?;
                    *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(auth);
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let body = read_body(resp.into_body(), 4096).await.unwrap_or_default();
                    return Err(RegistryError::Unauthorized {
                        url,
                        detail: String::from_utf8_lossy(&body).trim().chars().take(200).collect(),
                    });
                }
                StatusCode::NOT_FOUND => return Err(RegistryError::NotFound { url }),
                status => {
                    let body = read_body(resp.into_body(), 4096).await.unwrap_or_default();
                    return Err(RegistryError::Status {
                        url,
                        status,
                        body: String::from_utf8_lossy(&body).trim().chars().take(200).collect(),
                    });
                }
            }
        }
    }

    async fn answer(&self, challenge: Option<Challenge>, url: &str) -> Result<HeaderValue, RegistryError> {
        let creds = self.endpoint.credentials.as_ref();
        match challenge {
            Some(Challenge::Bearer { realm, service, scope }) => {
                let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", self.endpoint.repository));
                // The realm is usually another host (auth.docker.io): only a same-host realm inherits
                // the endpoint's TLS settings.
                let same_host = realm.contains(&format!("://{}/", self.endpoint.authority));
                let default_tls = Default::default();
                let tls = if same_host { &self.endpoint.tls } else { &default_tls };
                let token = fetch_token(self.http, &realm, service.as_deref(), &scope, creds, tls).await?;
                tracing::debug!(realm, scope, "obtained registry token");
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| RegistryError::Unauthorized {
                    url: url.into(),
                    detail: "token is not a valid header".into(),
                })
            }
            Some(Challenge::Basic) => match creds {
                Some(Credentials::Basic { username, password }) => Ok(basic_header(username, password)),
                Some(Credentials::IdentityToken { .. }) => Err(RegistryError::Unauthorized {
                    url: url.into(),
                    detail: "identity token needs a bearer realm".into(),
                }),
                None => Err(RegistryError::Unauthorized { url: url.into(), detail: "credentials required".into() }),
            },
            None => Err(RegistryError::Unauthorized {
                url: url.into(),
                detail: "no usable WWW-Authenticate challenge".into(),
            }),
        }
    }

    /// Fetches a manifest by tag or digest. Returns (content type, body, digest of body); when
    /// `expected` is given (pinned digest or index entry) the body must hash to it.
    pub async fn fetch_manifest(
        &self,
        object: &str,
        expected: Option<&Digest>,
    ) -> Result<(String, Vec<u8>, Digest), RegistryError> {
        let path = format!("manifests/{object}");
        let resp = self.get(&path, Some(MANIFEST_ACCEPT)).await?;
        let url = self.endpoint.url(&path);
        let ct = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let header_digest =
            resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = read_body(resp.into_body(), MAX_MANIFEST_BYTES)
            .await
            .map_err(|source| RegistryError::Http { url: url.clone(), source })?;
        let actual = Digest::of(&body);
        let expected = match (expected, header_digest) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(h)) => Digest::parse(&h).ok(),
            (None, None) => None,
        };
        if let Some(e) = expected {
            if e != actual {
                return Err(RegistryError::DigestMismatch { url, expected: e, actual });
            }
        }
        Ok((ct, body, actual))
    }

    /// Fetches a small blob (config) into memory, verified.
    pub async fn fetch_small_blob(&self, desc: &Descriptor) -> Result<Vec<u8>, RegistryError> {
        let path = format!("blobs/{}", desc.digest);
        let resp = self.get(&path, None).await?;
        let url = self.endpoint.url(&path);
        let body = read_body(resp.into_body(), MAX_MANIFEST_BYTES.max(desc.size as usize))
            .await
            .map_err(|source| RegistryError::Http { url: url.clone(), source })?;
        let actual = Digest::of(&body);
        if actual != desc.digest {
            return Err(RegistryError::DigestMismatch { url, expected: desc.digest.clone(), actual });
        }
        Ok(body)
    }

    /// Streams a blob into the content store; it lands under its digest only if digest and size match.
    pub async fn fetch_blob(&self, desc: &Descriptor, store: &ContentStore) -> Result<(), RegistryError> {
        let path = format!("blobs/{}", desc.digest);
        let url = self.endpoint.url(&path);
        let started = Instant::now();
        let mut body = self.get(&path, None).await?.into_body();
        let mut ingest = store.ingest()?;
        let mut last_log = Instant::now();
        while let Some(chunk) =
            next_chunk(&mut body).await.map_err(|source| RegistryError::Http { url: url.clone(), source })?
        {
            ingest.write(&chunk)?;
            if ingest.len() > desc.size {
                break; // longer than announced: fails the size check below without reading on
            }
            if last_log.elapsed() > Duration::from_secs(5) {
                last_log = Instant::now();
                tracing::info!(digest = %desc.digest, downloaded = ingest.len(), total = desc.size, "pulling layer");
            }
        }
        let bytes = ingest.len();
        match ingest.commit(&desc.digest, Some(desc.size)) {
            Ok(_) => {}
            Err(StoreError::DigestMismatch { expected, actual }) => {
                return Err(RegistryError::DigestMismatch { url, expected, actual })
            }
            Err(e) => return Err(e.into()),
        }
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(digest = %desc.digest, bytes, elapsed_ms = (secs * 1000.0) as u64, endpoint = %self.endpoint.authority, "pulled blob");
        Ok(())
    }
}
