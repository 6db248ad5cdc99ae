//! The packaging tools are shell scripts (`images/edge-image`, `systemd/install.sh`,
//! `systemd/uninstall.sh`, `cross/build.sh`): they run on the machines that build SD cards, where
//! a Rust toolchain is not a given. This crate exists so that `cargo test --workspace` runs their
//! test scripts; it has no code of its own.
