//! The atomic writer on a temporary directory: layout, swaps, removals, no-op writes and modes.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use edge_projection::atomic_writer::{AtomicWriter, WriteError};
use edge_projection::volumes::File;

fn payload(list: &[(&str, &str, u32)]) -> BTreeMap<String, File> {
    list.iter().map(|(p, d, m)| (p.to_string(), File { data: d.as_bytes().to_vec(), mode: *m })).collect()
}

fn link(path: &Path) -> PathBuf {
    fs::read_link(path).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Names in the directory, sorted, with timestamped directories shown as `..<ts>`.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|n| if is_timestamp_dir(&n) { "..<ts>".to_string() } else { n })
        .collect();
    names.sort();
    names
}

/// `..YYYY_MM_DD_HH_MM_SS.<digits>`
fn is_timestamp_dir(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("..") else { return false };
    let Some((stamp, suffix)) = rest.split_once('.') else { return false };
    let parts: Vec<&str> = stamp.split('_').collect();
    let widths = [4, 2, 2, 2, 2, 2];
    parts.len() == 6
        && parts.iter().zip(widths).all(|(p, w)| p.len() == w && p.bytes().all(|b| b.is_ascii_digit()))
        && !suffix.is_empty()
        && suffix.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn first_write_lays_out_data_dir_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("vol");
    let writer = AtomicWriter::new(target.clone());
    let changed =
        writer.write(&payload(&[("a", "one", 0o644), ("dir/b", "two", 0o600), ("dir/sub/c", "three", 0o755)])).unwrap();
    assert!(changed);

    assert_eq!(listing(&target), ["..<ts>", "..data", "a", "dir"]);
    let ts = link(&target.join("..data"));
    assert!(is_timestamp_dir(&ts.to_string_lossy()), "{ts:?}");
    assert_eq!(link(&target.join("a")), Path::new("..data/a"));
    assert_eq!(link(&target.join("dir")), Path::new("..data/dir"));
    assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "one");
    assert_eq!(fs::read_to_string(target.join("dir/b")).unwrap(), "two");
    assert_eq!(fs::read_to_string(target.join("dir/sub/c")).unwrap(), "three");
    assert_eq!(mode(&target.join("a")), 0o644);
    assert_eq!(mode(&target.join("dir/b")), 0o600);
    assert_eq!(mode(&target.join("dir/sub/c")), 0o755);
    assert_eq!(mode(&target.join(&ts)), 0o755);
    assert_eq!(mode(&target.join("dir/sub")), 0o755);
    assert_eq!(mode(&target), 0o777);
}

#[test]
fn update_swaps_data_and_open_files_keep_old_content() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().to_path_buf();
    let writer = AtomicWriter::new(target.clone());
    writer.write(&payload(&[("a", "old", 0o644), ("gone", "bye", 0o644), ("dir/x", "x", 0o644)])).unwrap();
    let old_ts = link(&target.join("..data"));
    let mut old_file = fs::File::open(target.join("a")).unwrap();

    let changed = writer.write(&payload(&[("a", "new", 0o644), ("dir/y", "y", 0o644)])).unwrap();
    assert!(changed);

    let new_ts = link(&target.join("..data"));
    assert_ne!(old_ts, new_ts);
    assert!(!target.join(&old_ts).exists(), "old timestamped dir removed");
    let mut seen = String::new();
    old_file.read_to_string(&mut seen).unwrap();
    assert_eq!(seen, "old");
    assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "new");
    // A removed key disappears, link and all; so does a removed file inside a kept directory.
    assert!(fs::symlink_metadata(target.join("gone")).is_err());
    assert!(!target.join("dir/x").exists());
    assert_eq!(fs::read_to_string(target.join("dir/y")).unwrap(), "y");
    assert_eq!(listing(&target), ["..<ts>", "..data", "a", "dir"]);
}

#[test]
fn unchanged_payload_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().to_path_buf();
    let writer = AtomicWriter::new(target.clone());
    let files = payload(&[("a", "same", 0o644), ("dir/b", "same too", 0o600)]);
    assert!(writer.write(&files).unwrap());
    let ts = link(&target.join("..data"));
    let data_mtime = fs::symlink_metadata(target.join("..data")).unwrap().modified().unwrap();
    let file_mtime = fs::metadata(target.join("a")).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));

    assert!(!writer.write(&files).unwrap());
    assert_eq!(link(&target.join("..data")), ts);
    assert_eq!(fs::symlink_metadata(target.join("..data")).unwrap().modified().unwrap(), data_mtime);
    assert_eq!(fs::metadata(target.join("a")).unwrap().modified().unwrap(), file_mtime);
    assert_eq!(listing(&target), ["..<ts>", "..data", "a", "dir"]);
}

#[test]
fn missing_user_visible_link_is_restored_without_a_swap() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().to_path_buf();
    let writer = AtomicWriter::new(target.clone());
    let files = payload(&[("a", "1", 0o644)]);
    writer.write(&files).unwrap();
    let ts = link(&target.join("..data"));
    fs::remove_file(target.join("a")).unwrap();

    assert!(writer.write(&files).unwrap());
    assert_eq!(link(&target.join("..data")), ts);
    assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "1");
}

#[test]
fn modes_ignore_the_umask_and_a_stale_tmp_link_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().to_path_buf();
    std::os::unix::fs::symlink("..nowhere", target.join("..data_tmp")).unwrap();
    let writer = AtomicWriter::new(target.clone());
    writer.write(&payload(&[("rw", "x", 0o666), ("exec", "#!/bin/sh", 0o777)])).unwrap();
    assert_eq!(mode(&target.join("rw")), 0o666);
    assert_eq!(mode(&target.join("exec")), 0o777);
    assert!(fs::symlink_metadata(target.join("..data_tmp")).is_err());
}

#[test]
fn invalid_paths_write_nothing() {
    for bad in ["../escape", "/abs", "..data/x", "a/../../b", ""] {
        let tmp = tempfile::tempdir().unwrap();
        let writer = AtomicWriter::new(tmp.path().to_path_buf());
        let result = writer.write(&payload(&[("ok", "1", 0o644), (bad, "2", 0o644)]));
        assert!(matches!(result, Err(WriteError::InvalidPath(_))), "{bad:?}: {result:?}");
        assert!(listing(tmp.path()).is_empty(), "{bad:?}");
    }
}

#[test]
fn emptied_payload_removes_every_visible_name() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().to_path_buf();
    let writer = AtomicWriter::new(target.clone());
    writer.write(&payload(&[("a", "1", 0o644), ("d/b", "2", 0o644)])).unwrap();
    assert!(writer.write(&BTreeMap::new()).unwrap());
    assert_eq!(listing(&target), ["..<ts>", "..data"]);
}

#[test]
fn dangling_or_foreign_data_link_is_replaced_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("vol");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&target).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("keep"), "precious").unwrap();
    std::os::unix::fs::symlink("../outside", target.join("..data")).unwrap();

    let writer = AtomicWriter::new(target.clone());
    assert!(writer.write(&payload(&[("a", "1", 0o644)])).unwrap());
    assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "precious");
    assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "1");

    // ..data pointing at a timestamped directory that is gone.
    let ts = link(&target.join("..data"));
    fs::remove_dir_all(target.join(&ts)).unwrap();
    assert!(writer.write(&payload(&[("a", "2", 0o644)])).unwrap());
    assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "2");
}
