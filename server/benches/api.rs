//! API server benchmark: `cargo bench -p edge-server --bench api`.
//!
//! Starts the real edge-server binary and prints, each beside a baseline measured in the same run:
//! create/get/list throughput over one keep-alive TLS connection (baseline: a raw rusqlite insert
//! loop with the same durability settings, the ceiling for any SQLite-backed server), watch latency,
//! server RSS idle / with 1000 / with 10k objects, bytes written to the data dir while idle, and the
//! stripped binary size. `EDGE_BENCH_IDLE_SECS` sets the idle window (default 60; the figure
//! is for 600). Targets are goals, reported, never asserted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};

struct Server {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_edge-server"))
            .args(["--disable-agent", "--bind-address", "127.0.0.1", "--https-listen-port", &port.to_string()])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--write-kubeconfig")
            .arg(dir.path().join("kubeconfig"))
            .arg("--config")
            .arg(dir.path().join("none.yaml"))
            .env("EDGE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start edge-server");
        let s = Server { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !s.dir.path().join("data/tls/admin.key").exists()
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Bytes the process has caused to be written to storage (page-cache writes included on flush).
    fn write_bytes(&self) -> u64 {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).unwrap_or_default();
        io.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

struct Conn {
    send: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(server: &Server) -> Conn {
        let tls = server.data().join("tls");
        let read = |f: &str| std::fs::read(tls.join(f)).expect("pki file");
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&read("ca.crt")) {
            roots.add(c.expect("ca")).expect("add ca");
        }
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&read("admin.crt")).map(|c| c.expect("cert")).collect();
        let key = PrivateKeyDer::from_pem_slice(&read("admin.key")).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .expect("client auth");
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("tls");
        let (send, conn) = http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(conn);
        Conn { send }
    }

    async fn request(&mut self, method: &str, path: &str, body: Vec<u8>) -> (u16, Bytes) {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "localhost")
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let resp = self.send.send_request(req).await.expect("send");
        let code = resp.status().as_u16();
        (code, resp.into_body().collect().await.expect("body").to_bytes())
    }
}

fn configmap(i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i}"), "labels": {"bench": "yes"}},
        "data": {"key": "value", "n": i.to_string()},
    }))
    .expect("json")
}

/// The ceiling: the same rows written straight to SQLite, one transaction each, same pragmas.
fn rusqlite_inserts(n: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = rusqlite::Connection::open(dir.path().join("raw.db")).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE objects (resource TEXT, namespace TEXT, name TEXT, rv INTEGER, data BLOB, PRIMARY KEY (resource, namespace, name)) WITHOUT ROWID;",
    )
    .expect("schema");
    let started = Instant::now();
    for i in 0..n {
        let tx = conn.unchecked_transaction().expect("tx");
        tx.execute(
            "INSERT INTO objects VALUES ('configmaps', 'default', ?1, ?2, ?3)",
            rusqlite::params![format!("cm-{i}"), i as i64, configmap(i)],
        )
        .expect("insert");
        tx.commit().expect("commit");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn row(what: &str, value: String, baseline: String, note: &str) {
    println!("{what:<44} {value:>16} {baseline:>22}  {note}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let idle_secs: u64 = std::env::var("EDGE_BENCH_IDLE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let n_create = 2000;

    let raw = rusqlite_inserts(n_create);
    let server = Server::start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = server.rss_kib();
    let mut conn = Conn::open(&server).await;

    let started = Instant::now();
    for i in 0..n_create {
        let (code, _) = conn.request("POST", "/api/v1/namespaces/default/configmaps", configmap(i)).await;
        assert_eq!(code, 201);
    }
    let creates = n_create as f64 / started.elapsed().as_secs_f64();

    let n_get = 5000;
    let started = Instant::now();
    for i in 0..n_get {
        let (code, _) =
            conn.request("GET", &format!("/api/v1/namespaces/default/configmaps/cm-{}", i % n_create), vec![]).await;
        assert_eq!(code, 200);
    }
    let gets = n_get as f64 / started.elapsed().as_secs_f64();

    let n_list = 20;
    let started = Instant::now();
    for _ in 0..n_list {
        let (code, body) = conn.request("GET", "/api/v1/namespaces/default/configmaps", vec![]).await;
        assert_eq!(code, 200);
        assert!(body.len() > n_create * 100);
    }
    let list_ms = started.elapsed().as_secs_f64() * 1000.0 / n_list as f64;

    // Watch latency: time from a create's response to its event on an open watch.
    let mut watch_conn = Conn::open(&server).await;
    let req = hyper::Request::builder()
        .uri("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=999999999")
        .header("Host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("watch request");
    let rev: i64 = {
        let (_, body) = conn.request("GET", "/api/v1/namespaces/default/configmaps?limit=1", vec![]).await;
        let v: serde_json::Value = serde_json::from_slice(&body).expect("list json");
        v["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).expect("rv")
    };
    let req = {
        let (mut parts, body) = req.into_parts();
        parts.uri =
            format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rev}").parse().expect("uri");
        hyper::Request::from_parts(parts, body)
    };
    let resp = watch_conn.send.send_request(req).await.expect("watch");
    let mut body = resp.into_body();
    let mut latencies = Vec::new();
    for i in 0..200 {
        let sent = Instant::now();
        let (code, _) = conn.request("POST", "/api/v1/namespaces/default/configmaps", configmap(100_000 + i)).await;
        assert_eq!(code, 201);
        loop {
            let frame = body.frame().await.expect("watch open").expect("frame");
            if frame.data_ref().is_some_and(|d| d.ends_with(b"\n")) {
                break;
            }
        }
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];

    // RSS with ~1000 and ~10k objects (the 2200 above plus more).
    let rss_2k = server.rss_kib();
    for i in n_create..10_000 {
        let (code, _) = conn.request("POST", "/api/v1/namespaces/default/configmaps", configmap(i)).await;
        assert_eq!(code, 201);
    }
    let rss_10k = server.rss_kib();

    // Idle writes on a separate fresh server (nothing to checkpoint from the load above).
    drop(conn);
    drop(watch_conn);
    drop(server);
    let idle = Server::start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_fresh = idle.rss_kib();
    let (dir_before, io_before) = (dir_bytes(&idle.data()), idle.write_bytes());
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let (dir_after, io_after) = (dir_bytes(&idle.data()), idle.write_bytes());
    let per_hour = |b: u64| b as f64 * 3600.0 / idle_secs as f64;
    let binary = std::fs::metadata(env!("CARGO_BIN_EXE_edge-server")).map(|m| m.len()).unwrap_or(0);

    println!(
        "\nedge-server API benchmark ({} cores, profile of this build)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    row("what", "measured".into(), "baseline".into(), "");
    row(
        "JSON creates, one keep-alive conn",
        format!("{creates:.0}/s"),
        format!("rusqlite {raw:.0}/s"),
        &format!("{:.2}x of raw; goal >= 1200/s", creates / raw),
    );
    row("gets, one keep-alive conn", format!("{gets:.0}/s"), "-".into(), "");
    row(&format!("list of {} configmaps", n_create), format!("{list_ms:.1} ms"), "-".into(), "");
    row(
        "watch latency create->event p50 / p99",
        format!("{:.2}/{:.2} ms", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3),
        "-".into(),
        "",
    );
    row("RSS idle (fresh start)", format!("{} KiB", rss_idle.max(rss_fresh)), "-".into(), "goal < 20 MB");
    row("RSS with ~2.2k objects", format!("{rss_2k} KiB"), "-".into(), "goal < 30 MB at 1000");
    row("RSS with ~10k objects", format!("{rss_10k} KiB"), "-".into(), "");
    row(
        &format!("data dir growth idle {idle_secs}s -> per hour"),
        format!("{:.0} B/h", per_hour(dir_after.saturating_sub(dir_before))),
        "-".into(),
        "goal < 1 MB/h",
    );
    row(
        &format!("process write_bytes idle {idle_secs}s -> per hour"),
        format!("{:.0} B/h", per_hour(io_after.saturating_sub(io_before))),
        "-".into(),
        "",
    );
    row(
        "binary size (this profile)",
        format!("{:.1} MB", binary as f64 / 1e6),
        "-".into(),
        "goal < 20 MB stripped release",
    );
}
