//! Pulls from a real `docker-registry` (Debian's distribution 2.8) started per test on a free
//! loopback port, with images built from the host's busybox and pushed through the distribution API.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::sync::Arc;

use edge_images::gc::{self, GcOptions};
use edge_images::import::import_dir;
use edge_images::pull::{PullAttemptError, PullError};
use edge_images::registry::RegistryError;
use edge_images::snapshots::{flatten, overlay_lowerdir, prepare_snapshots};
use edge_images::testing::{
    compress, docker_archive, index, nginx_image, oci_layout_archive, Compression, ImageBuilder, LayerBuilder, Pusher,
    TestRegistry,
};
use edge_images::{ContentStore, DockerConfig, Platform, PullPolicy, Puller, RegistriesConfig};

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

fn arm64() -> Platform {
    Platform::parse("linux/arm64").unwrap()
}

fn mirror_config(reg: &TestRegistry) -> RegistriesConfig {
    RegistriesConfig::parse(format!("mirrors:\n  docker.io:\n    endpoint:\n      - \"{}\"\n", reg.url()).as_bytes())
        .unwrap()
}

/// nginx for amd64 plus an arm64 variant that differs by a marker file.
fn nginx_index() -> edge_images::testing::BuiltIndex {
    let arm = ImageBuilder::new(arm64())
        .layer(LayerBuilder::new().busybox().finish(), Compression::Gzip)
        .layer(LayerBuilder::new().file("arch", 0o644, b"arm64").finish(), Compression::None)
        .entrypoint(&["/bin/busybox", "httpd", "-f", "-p", "80"])
        .build();
    index(vec![nginx_image(amd64()), arm])
}

fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn pull_nginx_through_docker_io_mirror() {
    let work = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(work.path()).unwrap();
    let idx = nginx_index();
    Pusher::new(&reg.url()).push_index("library/nginx", "1.7.9", &idx).await.unwrap();

    let store = Arc::new(ContentStore::open(work.path().join("store")).unwrap());
    let puller = Puller::new(store.clone(), mirror_config(&reg), amd64());
    let rec = puller.pull("nginx:1.7.9", &[]).await.unwrap();
    assert_eq!(rec.name, "docker.io/library/nginx:1.7.9");
    assert_eq!(rec.target, idx.digest, "the tag resolves to the index");
    assert_eq!(rec.manifest, idx.images[0].manifest_digest, "amd64 manifest chosen");
    assert_eq!(rec.repo_digest(), format!("docker.io/library/nginx@{}", idx.digest));
    let cfg = store.image_config(&rec).unwrap();
    assert_eq!(cfg.config.entrypoint.as_deref().unwrap(), ["/bin/busybox", "httpd", "-f", "-p", "80"]);
    assert_eq!(cfg.config.working_dir.as_deref(), Some("/usr/share/nginx/html"));
    assert!(cfg.config.env.as_ref().unwrap().iter().any(|e| e == "NGINX_VERSION=1.7.9"));

    let rootfs = work.path().join("rootfs");
    flatten(&store, &rec, &rootfs).unwrap();
    let out = std::process::Command::new(rootfs.join("bin/busybox")).args(["echo", "served"]).output().unwrap();
    assert_eq!(out.stdout, b"served\n");
    assert_eq!(fs::read_link(rootfs.join("bin/httpd")).unwrap(), Path::new("busybox"));
    assert!(fs::read_to_string(rootfs.join("usr/share/nginx/html/index.html")).unwrap().contains("Welcome to nginx!"));
    if rustix_is_root() {
        let snaps = puller.prepare(&rec).await.unwrap();
        assert_eq!(snaps.len(), 1);
        assert!(snaps[0].join("bin/busybox").is_file());
        assert_eq!(overlay_lowerdir(&snaps), snaps[0].display().to_string());
    }

    // Another node architecture gets the other manifest from the same tag.
    let store2 = Arc::new(ContentStore::open(work.path().join("store-arm")).unwrap());
    let rec = Puller::new(store2.clone(), mirror_config(&reg), arm64()).pull("nginx:1.7.9", &[]).await.unwrap();
    assert_eq!(rec.manifest, idx.images[1].manifest_digest);
    let rootfs = work.path().join("rootfs-arm");
    flatten(&store2, &rec, &rootfs).unwrap();
    assert_eq!(fs::read(rootfs.join("arch")).unwrap(), b"arm64");
    // No arm/v7 (or compatible) entry: a clear error.
    let err = Puller::new(store2, mirror_config(&reg), Platform::parse("linux/s390x").unwrap())
        .pull("nginx:1.7.9", &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no manifest for platform linux/s390x"), "{err}");
}

fn rustix_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .split_whitespace()
        .nth(2)
        == Some("0")
}

#[tokio::test]
async fn multi_layer_image_with_whiteouts_zstd_and_policies() {
    let work = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(work.path()).unwrap();
    let base = LayerBuilder::new()
        .busybox()
        .dir("etc", 0o755)
        .file("etc/motd", 0o644, b"hello")
        .dir("cache", 0o755)
        .file("cache/old", 0o644, b"old")
        .finish();
    let upper = LayerBuilder::new()
        .dir("etc", 0o755)
        .whiteout("etc/motd")
        .dir("cache", 0o755)
        .opaque("cache")
        .file("cache/new", 0o644, b"new")
        .finish();
    let plain = LayerBuilder::new().file("version", 0o644, b"3").finish();
    let img = ImageBuilder::new(amd64())
        .docker_media_types()
        .layer(base, Compression::Gzip)
        .layer(upper, Compression::Zstd)
        .layer(plain, Compression::None)
        .cmd(&["/bin/sh"])
        .build();
    let repo = "edge/tools";
    Pusher::new(&reg.url()).push_image(repo, Some("v3"), &img).await.unwrap();
    let image = format!("{}/{repo}:v3", reg.host());

    let store = Arc::new(ContentStore::open(work.path().join("store")).unwrap());
    // No registries.yaml: a loopback registry is spoken to over plain HTTP.
    let puller = Puller::new(store.clone(), RegistriesConfig::default(), amd64());
    let never = puller.ensure(&image, PullPolicy::Never, &[]).await.unwrap_err();
    assert!(matches!(never, PullError::NeverPull(_)), "{never}");
    let rec = puller.ensure(&image, PullPolicy::IfNotPresent, &[]).await.unwrap();
    assert_eq!(rec.manifest, img.manifest_digest);
    assert_eq!(rec.layers.len(), 3);
    let rootfs = work.path().join("rootfs");
    flatten(&store, &rec, &rootfs).unwrap();
    assert!(!rootfs.join("etc/motd").exists());
    assert_eq!(ls(&rootfs.join("cache")), ["new"]);
    assert_eq!(fs::read(rootfs.join("version")).unwrap(), b"3");

    // By digest, too.
    let by_digest = format!("{}/{repo}@{}", reg.host(), img.manifest_digest);
    assert_eq!(puller.pull(&by_digest, &[]).await.unwrap().manifest, img.manifest_digest);

    // With the registry gone, IfNotPresent and Never are served from the store; Always fails.
    drop(reg);
    assert_eq!(puller.ensure(&image, PullPolicy::IfNotPresent, &[]).await.unwrap().config, img.config_digest);
    assert_eq!(puller.ensure(&image, PullPolicy::Never, &[]).await.unwrap().config, img.config_digest);
    assert!(puller.ensure(&image, PullPolicy::Always, &[]).await.is_err());
}

/// Finds a blob's data file in the registry's filesystem storage.
fn registry_blob(work: &Path, digest: &edge_images::Digest) -> std::path::PathBuf {
    let hex = digest.hex();
    work.join("registry-storage/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
}

#[tokio::test]
async fn corrupted_content_is_rejected() {
    let work = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(work.path()).unwrap();
    let img = nginx_image(amd64());
    Pusher::new(&reg.url()).push_image("corrupt/layer", Some("v1"), &img).await.unwrap();
    // The registry serves what its storage holds without re-hashing: flip bytes in the layer.
    let layer = &img.layers[0];
    let mut bad = compress(&LayerBuilder::new().file("evil", 0o644, b"x").finish(), Compression::Gzip);
    bad.resize(layer.data.len(), 0);
    fs::write(registry_blob(work.path(), &layer.digest), &bad).unwrap();

    let store_dir = work.path().join("store");
    let store = Arc::new(ContentStore::open(&store_dir).unwrap());
    let puller = Puller::new(store.clone(), RegistriesConfig::default(), amd64());
    let err = puller.pull(&format!("{}/corrupt/layer:v1", reg.host()), &[]).await.unwrap_err();
    let attempts = err.attempts();
    assert_eq!(attempts.len(), 1, "{err}");
    assert!(
        matches!(&attempts[0].1, PullAttemptError::Registry(RegistryError::DigestMismatch { expected, .. }) if expected == &layer.digest),
        "{err}"
    );
    assert!(!store.has_blob(&layer.digest), "a mismatching blob never lands in the store");
    assert_eq!(fs::read_dir(store_dir.join("ingest")).unwrap().count(), 0, "nor lingers in ingest");
    assert_eq!(store.images().unwrap(), vec![]);

    // A tampered manifest is caught against the registry's digest header / the pinned digest.
    let img2 = ImageBuilder::new(amd64())
        .layer(LayerBuilder::new().file("f", 0o644, b"1").finish(), Compression::None)
        .build();
    Pusher::new(&reg.url()).push_image("corrupt/manifest", Some("v1"), &img2).await.unwrap();
    // Still valid JSON (the registry parses what it serves), but different bytes.
    let mut tampered = img2.manifest.clone();
    tampered.push(b' ');
    fs::write(registry_blob(work.path(), &img2.manifest_digest), &tampered).unwrap();
    for r in [
        format!("{}/corrupt/manifest:v1", reg.host()),
        format!("{}/corrupt/manifest@{}", reg.host(), img2.manifest_digest),
    ] {
        let err = puller.pull(&r, &[]).await.unwrap_err();
        assert!(
            matches!(&err.attempts()[0].1, PullAttemptError::Registry(RegistryError::DigestMismatch { .. })),
            "{r}: {err}"
        );
    }
}

#[tokio::test]
async fn basic_auth_from_registries_yaml_and_pull_secrets() {
    let work = tempfile::tempdir().unwrap();
    // bcrypt("s3cret", cost 4): distribution's htpasswd accepts bcrypt only.
    let reg = TestRegistry::start_with(
        work.path(),
        Some("edge:$2a$04$3Ion9rsn9xeNUoegJ8vQ7uAZHiiNDSq.LSdxIqLrq4Ct2dsXzySrC"),
    )
    .unwrap();
    let img = nginx_image(amd64());
    Pusher::new(&reg.url()).with_basic_auth("edge", "s3cret").push_image("private/app", Some("1"), &img).await.unwrap();
    let image = format!("{}/private/app:1", reg.host());
    let store = Arc::new(ContentStore::open(work.path().join("store")).unwrap());

    let anonymous =
        Puller::new(store.clone(), RegistriesConfig::default(), amd64()).pull(&image, &[]).await.unwrap_err();
    assert!(
        matches!(&anonymous.attempts()[0].1, PullAttemptError::Registry(RegistryError::Unauthorized { .. })),
        "{anonymous}"
    );

    let wrong = DockerConfig::parse(
        format!(r#"{{"auths":{{"{}":{{"username":"edge","password":"nope"}}}}}}"#, reg.host()).as_bytes(),
    )
    .unwrap();
    assert!(Puller::new(store.clone(), RegistriesConfig::default(), amd64()).pull(&image, &[wrong]).await.is_err());

    let secret = DockerConfig::parse(
        format!(r#"{{"auths":{{"http://{}":{{"auth":"ZWRnZTpzM2NyZXQ="}}}}}}"#, reg.host()).as_bytes(),
    )
    .unwrap();
    let rec = Puller::new(store.clone(), RegistriesConfig::default(), amd64()).pull(&image, &[secret]).await.unwrap();
    assert_eq!(rec.manifest, img.manifest_digest);

    let yaml = format!("configs:\n  \"{}\":\n    auth:\n      username: edge\n      password: s3cret\n", reg.host());
    let store2 = Arc::new(ContentStore::open(work.path().join("store2")).unwrap());
    let rec = Puller::new(store2, RegistriesConfig::parse(yaml.as_bytes()).unwrap(), amd64())
        .pull(&image, &[])
        .await
        .unwrap();
    assert_eq!(rec.config, img.config_digest);
}

#[tokio::test]
async fn mirror_failure_falls_back_to_next_endpoint() {
    let work = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(work.path()).unwrap();
    fs::create_dir(work.path().join("empty")).unwrap();
    let empty = TestRegistry::start(&work.path().join("empty")).unwrap();
    Pusher::new(&reg.url()).push_index("library/nginx", "1.7.9", &nginx_index()).await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let yaml = format!(
        "mirrors:\n  docker.io:\n    endpoint: [\"http://{closed}\", \"{}\", \"{}\"]\n",
        empty.url(),
        reg.url()
    );
    let store = Arc::new(ContentStore::open(work.path().join("store")).unwrap());
    let rec = Puller::new(store, RegistriesConfig::parse(yaml.as_bytes()).unwrap(), amd64())
        .pull("nginx:1.7.9", &[])
        .await
        .unwrap();
    assert_eq!(rec.name, "docker.io/library/nginx:1.7.9");
}

#[test]
fn airgap_import_and_gc() {
    let work = tempfile::tempdir().unwrap();
    let images_dir = work.path().join("images");
    fs::create_dir(&images_dir).unwrap();
    let idx = nginx_index();
    let tools = ImageBuilder::new(amd64())
        .layer(LayerBuilder::new().busybox().finish(), Compression::None)
        .layer(LayerBuilder::new().file("tool", 0o755, b"#!/bin/sh\necho tool\n").finish(), Compression::None)
        .docker_media_types()
        .build();
    fs::write(
        images_dir.join("nginx.tar.gz"),
        compress(&oci_layout_archive(&[("docker.io/library/nginx:1.7.9", &idx)]), Compression::Gzip),
    )
    .unwrap();
    fs::write(images_dir.join("tools.tar"), docker_archive(&[(&["tools:1", "example.com/team/tools:1"], &tools)]))
        .unwrap();
    fs::write(images_dir.join("broken.tar"), b"not a tar").unwrap();
    fs::write(images_dir.join("README"), b"ignored").unwrap();

    let store = ContentStore::open(work.path().join("store")).unwrap();
    let (imported, failures) = import_dir(&store, &images_dir, &amd64());
    let mut names: Vec<&str> = imported.iter().map(|i| i.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["docker.io/library/nginx:1.7.9", "docker.io/library/tools:1", "example.com/team/tools:1"]);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].0.ends_with("broken.tar"));

    let nginx = store.find_image("nginx:1.7.9").unwrap().unwrap();
    assert_eq!(
        (nginx.target.clone(), nginx.manifest.clone()),
        (idx.digest.clone(), idx.images[0].manifest_digest.clone())
    );
    let tools_rec = store.find_image("tools:1").unwrap().unwrap();
    assert_eq!(tools_rec.config, tools.config_digest);
    let rootfs = work.path().join("rootfs");
    flatten(&store, &tools_rec, &rootfs).unwrap();
    let out = std::process::Command::new(rootfs.join("bin/sh")).arg(rootfs.join("tool")).output().unwrap();
    assert_eq!(out.stdout, b"tool\n");
    let root = rustix_is_root();
    if root {
        prepare_snapshots(&store, &nginx).unwrap();
        prepare_snapshots(&store, &tools_rec).unwrap();
    }

    // GC: tools (both names) not in use; nginx in use. A stray blob is swept too.
    let stray = store.write_blob(b"stray", None).unwrap();
    let opts = GcOptions { target_bytes: Some(0), min_age: std::time::Duration::ZERO };
    let report = gc::collect(&store, &["docker.io/library/nginx:1.7.9".to_string()], &opts).unwrap();
    let mut removed = report.removed_images.clone();
    removed.sort();
    assert_eq!(removed, ["docker.io/library/tools:1", "example.com/team/tools:1"]);
    assert!(report.usage_after < report.usage_before);
    assert!(!store.has_blob(&stray));
    assert!(!store.has_blob(&tools.layers[1].digest), "tools' own layer is gone");
    assert!(!store.has_blob(&tools.config_digest));
    for b in nginx.blobs() {
        assert!(store.has_blob(b), "in-use image keeps {b}");
    }
    if root {
        assert!(!store.snapshot_dir(&tools_rec.layers[1].diff_id).exists(), "unreferenced snapshot removed");
        assert!(store.snapshot_dir(&nginx.layers[0].diff_id).exists());
    }
    let rootfs2 = work.path().join("rootfs2");
    flatten(&store, &nginx, &rootfs2).unwrap();
    assert!(rootfs2.join("bin/busybox").is_file());

    // Target already met: nothing is removed even when not in use.
    let report =
        gc::collect(&store, &[], &GcOptions { target_bytes: Some(u64::MAX), min_age: std::time::Duration::ZERO })
            .unwrap();
    assert!(report.removed_images.is_empty());
    assert!(store.find_image("nginx:1.7.9").unwrap().is_some());
    // Re-importing is idempotent.
    let (again, _) = import_dir(&store, &images_dir, &amd64());
    assert_eq!(again.len(), 3);
}
