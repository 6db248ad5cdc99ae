//! Runs the packaging test scripts; each prints what it checked and exits non-zero on a failure.
//! They need root and the packages in images/apt-packages.txt and systemd/apt-packages.txt
//! (`.ci/run` installs them).

use std::path::Path;
use std::process::Command;

fn run(script: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash").arg(root.join(script)).current_dir(&root).output().expect("run test script");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sd_image_tool() {
    run("images/test.sh");
}

#[test]
fn systemd_units_and_install_scripts() {
    run("systemd/test.sh");
}
