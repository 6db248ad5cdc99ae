//! Layer unpacking against the real filesystem: overlay whiteouts checked by mounting overlayfs,
//! flattening, ownership and modes, and path traversal attempts.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use edge_images::testing::{compress, Compression, LayerBuilder};
use edge_images::unpack::{apply_layer_blob, apply_tar, Mode, Options, UnpackError};
use edge_images::Digest;

fn is_root() -> bool {
    rustix_euid() == 0
}

fn rustix_euid() -> u32 {
    // The effective uid is the second field of the "Uid:" line.
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn lower_layer() -> Vec<u8> {
    LayerBuilder::new()
        .busybox()
        .dir("etc", 0o755)
        .file("etc/config", 0o600, b"lower")
        .file("etc/keep", 0o644, b"kept")
        .dir("data", 0o750)
        .file("data/a", 0o644, b"a")
        .dir("data/sub", 0o755)
        .file("data/sub/b", 0o644, b"b")
        .file_owned("home-file", 0o640, 1000, 1001, b"owned")
        .hardlink("bin/busybox-link", "bin/busybox")
        .finish()
}

fn upper_layer() -> Vec<u8> {
    // data/c comes before the opaque marker on purpose: the marker must not delete it.
    LayerBuilder::new()
        .dir("etc", 0o755)
        .whiteout("etc/config")
        .dir("data", 0o750)
        .file("data/c", 0o644, b"c")
        .opaque("data")
        .file("data/d", 0o644, b"d")
        .finish()
}

fn apply(layer: &[u8], root: &Path, mode: Mode) -> Result<Digest, UnpackError> {
    apply_layer_blob(layer, root, Some(&Digest::of(layer)), Options::new(mode))
}

#[test]
fn flatten_applies_whiteouts_and_opaque_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    apply(&lower_layer(), root, Mode::Apply).unwrap();
    apply(&upper_layer(), root, Mode::Apply).unwrap();
    assert!(!root.join("etc/config").exists(), "whiteout deletes the lower file");
    assert_eq!(fs::read(root.join("etc/keep")).unwrap(), b"kept");
    let mut data: Vec<String> = fs::read_dir(root.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    data.sort();
    assert_eq!(data, ["c", "d"], "opaque dir hides lower entries but keeps this layer's");
    assert_eq!(fs::metadata(root.join("data")).unwrap().permissions().mode() & 0o7777, 0o750);
    assert!(!root.join(".wh.config").exists() && !root.join("etc/.wh.config").exists());

    let out = Command::new(root.join("bin/sh")).args(["-c", "echo hello from busybox"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from busybox\n");
    assert_eq!(fs::read_link(root.join("bin/httpd")).unwrap(), Path::new("busybox"));
    assert_eq!(fs::metadata(root.join("bin/busybox")).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(fs::metadata(root.join("etc/keep")).unwrap().mtime(), 1_600_000_000);
    let a = fs::metadata(root.join("bin/busybox")).unwrap();
    let b = fs::metadata(root.join("bin/busybox-link")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hardlink shares the inode");
    let owned = fs::metadata(root.join("home-file")).unwrap();
    assert_eq!(owned.permissions().mode() & 0o777, 0o640);
    if is_root() {
        assert_eq!((owned.uid(), owned.gid()), (1000, 1001));
    }
}

#[test]
fn overlay_snapshots_mount_as_the_flattened_tree() {
    if !is_root() {
        eprintln!("SKIPPED: overlay whiteouts need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (l1, l2, mnt, upper, work) = (
        dir.path().join("l1"),
        dir.path().join("l2"),
        dir.path().join("mnt"),
        dir.path().join("u"),
        dir.path().join("w"),
    );
    for d in [&l1, &l2, &mnt, &upper, &work] {
        fs::create_dir(d).unwrap();
    }
    apply(&lower_layer(), &l1, Mode::Overlay).unwrap();
    apply(&upper_layer(), &l2, Mode::Overlay).unwrap();
    let wh = fs::symlink_metadata(l2.join("etc/config")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "whiteout is a 0/0 char device");
    let out =
        Command::new("getfattr").args(["--only-values", "-n", "trusted.overlay.opaque"]).arg(l2.join("data")).output();
    if let Ok(out) = out {
        if out.status.success() {
            assert_eq!(out.stdout, b"y");
        }
    }
    let opts =
        format!("lowerdir={}:{},upperdir={},workdir={}", l2.display(), l1.display(), upper.display(), work.display());
    let st = Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&mnt).status().unwrap();
    assert!(st.success(), "mount overlay");
    let check = || {
        assert!(!mnt.join("etc/config").exists(), "whited out");
        assert!(mnt.join("etc/keep").exists());
        let mut data: Vec<String> = fs::read_dir(mnt.join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        data.sort();
        assert_eq!(data, ["c", "d"], "opaque dir");
        let out = Command::new(mnt.join("bin/busybox")).args(["echo", "ok"]).output().unwrap();
        assert_eq!(out.stdout, b"ok\n");
    };
    let res = std::panic::catch_unwind(check);
    let _ = Command::new("umount").arg(&mnt).status();
    res.unwrap();
}

#[test]
fn compressed_layers_and_diff_id_checks() {
    let tar = LayerBuilder::new().dir("x", 0o755).file("x/y", 0o644, b"payload").finish();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let blob = compress(&tar, c);
        let got = apply_layer_blob(&blob[..], dir.path(), Some(&Digest::of(&tar)), Options::new(Mode::Apply)).unwrap();
        assert_eq!(got, Digest::of(&tar), "{c:?}");
        assert_eq!(fs::read(dir.path().join("x/y")).unwrap(), b"payload", "{c:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let err = apply_layer_blob(
        &compress(&tar, Compression::Gzip)[..],
        dir.path(),
        Some(&Digest::of(b"other")),
        Options::new(Mode::Apply),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
}

#[test]
fn traversal_is_rejected_or_contained() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("dotdot entry", LayerBuilder::new().raw_file("../victim", b"x").finish(), true),
        ("nested dotdot", LayerBuilder::new().raw_file("a/../../victim", b"x").finish(), true),
        ("hardlink out", LayerBuilder::new().hardlink("h", "../../../../etc/passwd").finish(), true),
        ("hardlink to missing", LayerBuilder::new().hardlink("h", "etc/passwd").finish(), true),
        // Absolute and relative symlinks pointing out are followed as if the root were `/`.
        (
            "absolute symlink dir",
            LayerBuilder::new()
                .symlink("evil", outside.path().to_str().unwrap())
                .file("evil/victim", 0o644, b"x")
                .finish(),
            false,
        ),
        (
            "relative symlink dir",
            LayerBuilder::new().symlink("evil", "../../../../../..").file("evil/victim", 0o644, b"x").finish(),
            false,
        ),
        (
            "symlink loop",
            LayerBuilder::new().symlink("a", "b").symlink("b", "a").file("a/x", 0o644, b"x").finish(),
            true,
        ),
    ];
    for (name, layer, must_fail) in cases {
        let root = tempfile::tempdir().unwrap();
        let res = apply_tar(&layer[..], root.path(), Options::new(Mode::Apply));
        assert_eq!(res.is_err(), must_fail, "{name}: {res:?}");
        assert!(!victim.exists(), "{name}: wrote outside the root");
    }
    let root = tempfile::tempdir().unwrap();
    let abs = LayerBuilder::new().symlink("evil", "/").file("evil/inside", 0o644, b"x").finish();
    apply_tar(&abs[..], root.path(), Options::new(Mode::Apply)).unwrap();
    assert!(root.path().join("inside").exists(), "an absolute symlink resolves to the layer root");
}
