//! Test support shared with the agent's end-to-end tests (feature `testing`): building layer
//! tarballs and images from the host's static busybox (Debian `busybox-static`), an `nginx:1.7.9`
//! stand-in that serves HTTP on :80, a local `docker-registry` process (Debian `docker-registry`),
//! pushing through the distribution API, and airgap archives (OCI layout and `docker save`).

#![allow(clippy::unwrap_used)]

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use hyper::Method;

pub use crate::compression::Compression;
use crate::digest::Digest;
use crate::http::{read_body, resolve, HttpClient};
use crate::manifest::{self, ContainerConfig, Descriptor, ImageConfigFile, ImageManifest, Index, RootFs};
use crate::platform::Platform;
use crate::registries::TlsConfig;

/// Where Debian's busybox-static puts the binary.
pub const HOST_BUSYBOX: &str = "/bin/busybox";
/// Applets linked next to busybox in test images.
pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "httpd", "wget", "env", "true", "false", "mkdir", "rm", "touch", "ps", "kill",
    "id", "hostname", "nslookup", "grep", "head", "date", "nc", "test",
];

/// Builds an uncompressed layer tarball entry by entry.
pub struct LayerBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> Self {
        LayerBuilder { b: tar::Builder::new(Vec::new()) }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.b.append_data(&mut h, path, io::empty()).unwrap();
        self
    }

    pub fn file(self, path: &str, mode: u32, contents: &[u8]) -> Self {
        self.file_owned(path, mode, 0, 0, contents)
    }

    pub fn file_owned(mut self, path: &str, mode: u32, uid: u64, gid: u64, contents: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, contents.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.b.append_data(&mut h, path, contents).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    /// An OCI whiteout deleting `path` from lower layers.
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() { format!(".wh.{name}") } else { format!("{dir}/.wh.{name}") };
        self.file(&wh, 0o644, b"")
    }

    /// Marks `dir` opaque: lower layers' contents of it are hidden.
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{}/.wh..wh..opq", dir.trim_end_matches('/')), 0o644, b"")
    }

    /// A regular file whose name is written verbatim (e.g. `../escape`), bypassing the tar crate's
    /// own path checks: for testing that unpacking rejects it.
    pub fn raw_file(mut self, raw_name: &str, contents: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, contents.len() as u64);
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..raw_name.len()].copy_from_slice(raw_name.as_bytes());
        h.set_cksum();
        self.b.append(&h, contents).unwrap();
        self
    }

    /// The host's busybox at /bin/busybox plus applet symlinks in /bin.
    pub fn busybox(self) -> Self {
        let bin = std::fs::read(HOST_BUSYBOX)
            .unwrap_or_else(|e| panic!("{HOST_BUSYBOX}: {e} (apt-get install busybox-static)"));
        let mut s = self.dir("bin", 0o755).file("bin/busybox", 0o755, &bin);
        for a in APPLETS {
            s = s.symlink(&format!("bin/{a}"), "busybox");
        }
        s
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest),
    }
}

#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: Digest,
    pub media_type: String,
    pub data: Vec<u8>,
    /// The uncompressed tar of a layer (what `docker save` stores).
    pub tar: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub platform: Platform,
    pub media_type: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub layers: Vec<Blob>,
}

impl BuiltImage {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.manifest_digest.clone(),
            size: self.manifest.len() as u64,
            platform: Some(self.platform.clone()),
            annotations: Default::default(),
            urls: vec![],
        }
    }
}

/// Builds an image (config + manifest) from layers.
pub struct ImageBuilder {
    platform: Platform,
    config: ContainerConfig,
    layers: Vec<(Vec<u8>, Compression)>,
    docker: bool,
}

impl ImageBuilder {
    pub fn new(platform: Platform) -> Self {
        ImageBuilder {
            platform,
            config: ContainerConfig {
                env: Some(vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()]),
                ..Default::default()
            },
            layers: vec![],
            docker: false,
        }
    }
    pub fn entrypoint(mut self, args: &[&str]) -> Self {
        self.config.entrypoint = Some(args.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn cmd(mut self, args: &[&str]) -> Self {
        self.config.cmd = Some(args.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn env(mut self, kv: &str) -> Self {
        self.config.env.get_or_insert_with(Vec::new).push(kv.to_string());
        self
    }
    pub fn working_dir(mut self, dir: &str) -> Self {
        self.config.working_dir = Some(dir.into());
        self
    }
    pub fn expose(mut self, port: &str) -> Self {
        self.config.exposed_ports.get_or_insert_with(Default::default).insert(port.into(), serde_json::json!({}));
        self
    }
    pub fn layer(mut self, tar: Vec<u8>, c: Compression) -> Self {
        self.layers.push((tar, c));
        self
    }
    /// Docker v2 media types instead of OCI ones.
    pub fn docker_media_types(mut self) -> Self {
        self.docker = true;
        self
    }

    pub fn build(self) -> BuiltImage {
        let layers: Vec<Blob> = self
            .layers
            .iter()
            .map(|(tar, c)| {
                let data = compress(tar, *c);
                let media_type = match (self.docker, c) {
                    (false, Compression::None) => manifest::OCI_LAYER,
                    (false, Compression::Gzip) => manifest::OCI_LAYER_GZIP,
                    (_, Compression::Zstd) => manifest::OCI_LAYER_ZSTD,
                    (true, Compression::None) => manifest::DOCKER_LAYER,
                    (true, Compression::Gzip) => manifest::DOCKER_LAYER_GZIP,
                };
                Blob { digest: Digest::of(&data), media_type: media_type.into(), data, tar: tar.clone() }
            })
            .collect();
        let cfg = ImageConfigFile {
            architecture: self.platform.architecture.clone(),
            os: self.platform.os.clone(),
            variant: self.platform.variant.clone(),
            config: self.config.clone(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: self.layers.iter().map(|(t, _)| Digest::of(t)).collect(),
            },
            created: Some("2020-09-13T12:26:40Z".into()),
        };
        let config = serde_json::to_vec(&cfg).unwrap();
        let config_digest = Digest::of(&config);
        let (media_type, config_type) = if self.docker {
            (manifest::DOCKER_MANIFEST, manifest::DOCKER_CONFIG)
        } else {
            (manifest::OCI_MANIFEST, manifest::OCI_CONFIG)
        };
        let m = ImageManifest {
            schema_version: 2,
            media_type: media_type.into(),
            config: Descriptor {
                media_type: config_type.into(),
                digest: config_digest.clone(),
                size: config.len() as u64,
                platform: None,
                annotations: Default::default(),
                urls: vec![],
            },
            layers: layers
                .iter()
                .map(|l| Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    size: l.data.len() as u64,
                    platform: None,
                    annotations: Default::default(),
                    urls: vec![],
                })
                .collect(),
            annotations: Default::default(),
        };
        let manifest = serde_json::to_vec(&m).unwrap();
        BuiltImage {
            platform: self.platform,
            media_type: media_type.into(),
            manifest_digest: Digest::of(&manifest),
            manifest,
            config,
            config_digest,
            layers,
        }
    }
}

#[derive(Clone, Debug)]
pub struct BuiltIndex {
    pub body: Vec<u8>,
    pub digest: Digest,
    pub images: Vec<BuiltImage>,
}

/// An OCI image index over several platform images.
pub fn index(images: Vec<BuiltImage>) -> BuiltIndex {
    let idx = Index {
        schema_version: 2,
        media_type: manifest::OCI_INDEX.into(),
        manifests: images.iter().map(BuiltImage::descriptor).collect(),
        annotations: Default::default(),
    };
    let body = serde_json::to_vec(&idx).unwrap();
    BuiltIndex { digest: Digest::of(&body), body, images }
}

/// The `nginx:1.7.9` stand-in: busybox serving `/usr/share/nginx/html` with `busybox httpd -f -p 80`.
pub fn nginx_image(platform: Platform) -> BuiltImage {
    let layer = LayerBuilder::new()
        .busybox()
        .dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        .file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")
        .dir("tmp", 0o1777)
        .dir("usr", 0o755)
        .dir("usr/share", 0o755)
        .dir("usr/share/nginx", 0o755)
        .dir("usr/share/nginx/html", 0o755)
        .file("usr/share/nginx/html/index.html", 0o644, b"<html><body><h1>Welcome to nginx!</h1></body></html>\n")
        .finish();
    ImageBuilder::new(platform)
        .layer(layer, Compression::Gzip)
        .entrypoint(&["/bin/busybox", "httpd", "-f", "-p", "80"])
        .working_dir("/usr/share/nginx/html")
        .expose("80/tcp")
        .env("NGINX_VERSION=1.7.9")
        .build()
}

/// A `docker-registry` (distribution 2.x) process on 127.0.0.1 with storage in `work_dir`, killed
/// (by its pid) on drop.
pub struct TestRegistry {
    pub addr: SocketAddr,
    child: Child,
}

impl TestRegistry {
    pub fn start(work_dir: &Path) -> io::Result<Self> {
        Self::start_with(work_dir, None)
    }

    /// With basic auth: `htpasswd_line` is `user:<bcrypt hash>` (distribution accepts bcrypt only).
    pub fn start_with(work_dir: &Path, htpasswd_line: Option<&str>) -> io::Result<Self> {
        Self::start_on(work_dir, htpasswd_line, std::net::Ipv4Addr::LOCALHOST)
    }

    /// On `ip` (an address of this network namespace), e.g. the host end of a test LAN so that
    /// nodes in other namespaces can pull from it.
    pub fn start_on(work_dir: &Path, htpasswd_line: Option<&str>, ip: std::net::Ipv4Addr) -> io::Result<Self> {
        let port = TcpListener::bind((ip, 0))?.local_addr()?.port();
        let storage = work_dir.join("registry-storage");
        std::fs::create_dir_all(&storage)?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {ip}:{port}\n",
            storage.display()
        );
        if let Some(line) = htpasswd_line {
            let path = work_dir.join("htpasswd");
            std::fs::write(&path, format!("{line}\n"))?;
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: edge-test\n    path: {}\n", path.display()));
        }
        let config_path = work_dir.join("registry.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(work_dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("docker-registry: {e} (apt-get install docker-registry)")))?;
        let mut reg = TestRegistry { addr: SocketAddr::from((ip, port)), child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers_as_registry(reg.addr) {
            let log = || std::fs::read_to_string(work_dir.join("registry.log")).unwrap_or_default();
            if let Some(status) = reg.child.try_wait()? {
                return Err(io::Error::other(format!("docker-registry exited ({status}): {}", log())));
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("docker-registry did not answer on {}: {}", reg.addr, log()),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(reg)
    }

    /// `127.0.0.1:<port>`, usable as a registry host in references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// True once `GET /v2/` gets distribution's answer. A bare TCP connect is not enough: while
/// nothing listens yet, a connect to a local address can pick the destination port as its own
/// source port and "succeed" by TCP simultaneous open with itself.
fn answers_as_registry(addr: SocketAddr) -> bool {
    use std::io::Read;
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    if conn.local_addr().ok() == Some(addr) {
        return false;
    }
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    if conn.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut head = Vec::new();
    let _ = conn.take(4096).read_to_end(&mut head);
    String::from_utf8_lossy(&head).to_ascii_lowercase().contains("docker-distribution-api-version")
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes through the distribution API: monolithic blob uploads (POST then PUT) and manifest PUTs.
pub struct Pusher {
    http: HttpClient,
    base: String,
    auth: Option<HeaderValue>,
}

impl Pusher {
    /// `base` is `http://host:port`.
    pub fn new(base: &str) -> Self {
        Pusher { http: HttpClient::new(), base: base.trim_end_matches('/').to_string(), auth: None }
    }

    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some(crate::auth::basic_header(user, password));
        self
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(hyper::StatusCode, HeaderMap, Vec<u8>), String> {
        let mut h = HeaderMap::new();
        if let Some(a) = &self.auth {
            h.insert(AUTHORIZATION, a.clone());
        }
        if let Some(ct) = content_type {
            h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        let resp = self
            .http
            .send(method, url, h, Bytes::from(body), &TlsConfig::default())
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = read_body(resp.into_body(), 1 << 20).await.map_err(|e| e.to_string())?;
        Ok((status, headers, body))
    }

    pub async fn push_blob(&self, repo: &str, digest: &Digest, data: &[u8]) -> Result<(), String> {
        let start = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let (status, headers, body) = self.send(Method::POST, &start, None, vec![]).await?;
        if status != hyper::StatusCode::ACCEPTED {
            return Err(format!("POST {start}: {status} {}", String::from_utf8_lossy(&body)));
        }
        let loc = headers.get(LOCATION).and_then(|v| v.to_str().ok()).ok_or("upload without Location")?;
        let loc = resolve(&start, loc).map_err(|e| e.to_string())?;
        let url = format!("{loc}{}digest={digest}", if loc.contains('?') { '&' } else { '?' });
        let (status, _, body) = self.send(Method::PUT, &url, Some("application/octet-stream"), data.to_vec()).await?;
        if status != hyper::StatusCode::CREATED {
            return Err(format!("PUT blob {digest}: {status} {}", String::from_utf8_lossy(&body)));
        }
        Ok(())
    }

    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<(), String> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let (status, _, resp) = self.send(Method::PUT, &url, Some(media_type), body.to_vec()).await?;
        if status != hyper::StatusCode::CREATED {
            return Err(format!("PUT manifest {reference}: {status} {}", String::from_utf8_lossy(&resp)));
        }
        Ok(())
    }

    /// Pushes config, layers and manifest; tags it when `tag` is given (else only by digest).
    pub async fn push_image(&self, repo: &str, tag: Option<&str>, image: &BuiltImage) -> Result<(), String> {
        self.push_blob(repo, &image.config_digest, &image.config).await?;
        for l in &image.layers {
            self.push_blob(repo, &l.digest, &l.data).await?;
        }
        let reference = tag.map(str::to_string).unwrap_or_else(|| image.manifest_digest.to_string());
        self.push_manifest(repo, &reference, &image.media_type, &image.manifest).await
    }

    pub async fn push_index(&self, repo: &str, tag: &str, index: &BuiltIndex) -> Result<(), String> {
        for img in &index.images {
            self.push_image(repo, None, img).await?;
        }
        self.push_manifest(repo, tag, manifest::OCI_INDEX, &index.body).await
    }
}

fn tar_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(1_600_000_000);
    b.append_data(&mut h, path, data).unwrap();
}

/// An OCI image layout tarball (what `ctr images export` / `docker save` ≥ 25 write) holding each
/// index under its name (`io.containerd.image.name` annotation).
pub fn oci_layout_archive(entries: &[(&str, &BuiltIndex)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    tar_file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut seen = std::collections::HashSet::new();
    let mut put = |b: &mut tar::Builder<Vec<u8>>, d: &Digest, data: &[u8]| {
        if seen.insert(d.clone()) {
            tar_file(b, &format!("blobs/sha256/{}", d.hex()), data);
        }
    };
    let mut manifests = Vec::new();
    for (name, idx) in entries {
        put(&mut b, &idx.digest, &idx.body);
        for img in &idx.images {
            put(&mut b, &img.manifest_digest, &img.manifest);
            put(&mut b, &img.config_digest, &img.config);
            for l in &img.layers {
                put(&mut b, &l.digest, &l.data);
            }
        }
        let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
        manifests.push(serde_json::json!({"mediaType": manifest::OCI_INDEX, "digest": idx.digest.to_string(), "size": idx.body.len(),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}}));
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": manifests});
    tar_file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    b.into_inner().unwrap()
}

/// A classic `docker save` archive: manifest.json, repositories, `<config hex>.json`, `<id>/layer.tar`.
pub fn docker_archive(entries: &[(&[&str], &BuiltImage)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut manifest = Vec::new();
    let mut repositories = serde_json::Map::new();
    for (tags, img) in entries {
        let cfg_name = format!("{}.json", img.config_digest.hex());
        tar_file(&mut b, &cfg_name, &img.config);
        let mut layer_paths = Vec::new();
        for l in &img.layers {
            let id = Digest::of(&l.tar);
            let p = format!("{}/layer.tar", id.hex());
            tar_file(&mut b, &p, &l.tar);
            layer_paths.push(p);
        }
        manifest.push(serde_json::json!({"Config": cfg_name, "RepoTags": tags, "Layers": layer_paths}));
        for t in tags.iter() {
            if let Some((repo, tag)) = t.rsplit_once(':') {
                let e = repositories.entry(repo.to_string()).or_insert_with(|| serde_json::json!({}));
                e[tag] = serde_json::Value::String(img.config_digest.hex().to_string());
            }
        }
    }
    tar_file(&mut b, "manifest.json", &serde_json::to_vec(&manifest).unwrap());
    tar_file(&mut b, "repositories", &serde_json::to_vec(&repositories).unwrap());
    b.into_inner().unwrap()
}

/// A fresh directory path under the system temp dir (callers remove it).
pub fn temp_path(prefix: &str) -> PathBuf {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()))
}
