#!/usr/bin/env bash
# Docker-free cross build, the path CI uses: the Rust std for the target from rustup, Debian's
# cross gcc as C compiler (for rusqlite's bundled SQLite) and linker, qemu-user as the runner for
# `cargo test`/`cargo run`. Usage:
#   cross/build.sh TARGET [--release] [-- CARGO_ARGS...]
# Default CARGO_ARGS: build -p edge-server (and -p edge-agent once the workspace has it).
# Tests of the pure crates under qemu:  cross/build.sh TARGET -- test -p edge-proto
# Exit status 77 with one "SKIPPED: ..." line means the machine lacks the target's Rust std and
# cannot fetch it (an infrastructure gap, not a build failure).
set -euo pipefail

prog=${0##*/}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { echo "usage: $prog TARGET [--release] [-- CARGO_ARGS...]"; }
usage_error() {
    printf '%s: %s\n' "$prog" "$*" >&2
    usage >&2
    exit 2
}
die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 1
}

(($#)) || usage_error "TARGET is required"
[[ $1 != -h && $1 != --help ]] || { usage; exit 0; }
target=$1
shift
release=()
while (($#)); do
    case $1 in
        --release) release=(--release); shift ;;
        --) shift; break ;;
        *) usage_error "unknown argument: $1" ;;
    esac
done
cargo_args=("$@")
if ((${#cargo_args[@]} == 0)); then
    cargo_args=(build -p edge-server)
    [[ ! -f $repo/agent/Cargo.toml ]] || cargo_args+=(-p edge-agent)
fi

# Per target: the C compiler (cc-rs), the linker, the Debian package holding both, and the
# qemu-user runner with the sysroot its dynamic loader is found in.
case $target in
    aarch64-unknown-linux-gnu)
        cc=aarch64-linux-gnu-gcc linker=$cc pkg=gcc-aarch64-linux-gnu
        runner="qemu-aarch64-static -L /usr/aarch64-linux-gnu" ;;
    armv7-unknown-linux-gnueabihf)
        cc=arm-linux-gnueabihf-gcc linker=$cc pkg=gcc-arm-linux-gnueabihf
        runner="qemu-arm-static -L /usr/arm-linux-gnueabihf" ;;
    aarch64-unknown-linux-musl)
        # rust-lld links the static binary against the musl that ships with the Rust target.
        # SQLite's C is best compiled by a musl cross gcc (musl.cc, musl-cross-make) when one is
        # on PATH. Debian has none for aarch64, so otherwise Debian's glibc cross gcc compiles it
        # with SQLITE_DISABLE_LFS: glibc's headers would redirect open/pread/fcntl/stat... to
        # their *64 names (_FILE_OFFSET_BITS=64), which musl's libc.a does not define, and on
        # LP64 aarch64 the plain calls and the structs they take are the kernel's layout in both
        # libcs. Proven with SQLite 3.46 (WAL file database) under qemu; see cross/README.md.
        linker=rust-lld pkg=gcc-aarch64-linux-gnu runner="qemu-aarch64-static"
        if command -v aarch64-linux-musl-gcc >/dev/null; then
            cc=aarch64-linux-musl-gcc
        else
            cc=aarch64-linux-gnu-gcc
            export LIBSQLITE3_FLAGS="${LIBSQLITE3_FLAGS:+$LIBSQLITE3_FLAGS }-DSQLITE_DISABLE_LFS"
            echo "$prog: no aarch64-linux-musl-gcc; compiling SQLite with $cc and -DSQLITE_DISABLE_LFS" >&2
        fi ;;
    *) usage_error "unsupported target '$target' (aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf, aarch64-unknown-linux-musl)" ;;
esac

command -v "$cc" >/dev/null || die "$cc not found: apt-get install -y $pkg (see cross/apt-packages.txt)"

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    if ! rustup target add "$target" >/dev/null 2>&1; then
        echo "SKIPPED: cannot install the Rust std for $target (rustup target add failed; offline?)"
        exit 77
    fi
fi

triple_env=${target//-/_}
triple_var=$(tr 'a-z-' 'A-Z_' <<<"$target")
export "CC_$triple_env=$cc"
export "CARGO_TARGET_${triple_var}_LINKER=$linker"
if [[ $linker != rust-lld ]]; then
    export "AR_$triple_env=${cc%-gcc}-ar"
fi
if command -v "${runner%% *}" >/dev/null; then
    export "CARGO_TARGET_${triple_var}_RUNNER=$runner"
fi

cd "$repo"
echo "+ cargo ${cargo_args[*]} --target $target ${release[*]}"
cargo "${cargo_args[@]}" --target "$target" "${release[@]}"

if [[ ${cargo_args[0]} == build ]]; then
    profile=debug
    ((${#release[@]} == 0)) || profile=release
    for b in edge-server edge-agent; do
        f=$repo/target/$target/$profile/$b
        [[ -f $f ]] || continue
        printf '%s: %s bytes (%s)\n' "${f#"$repo"/}" "$(stat -c %s "$f")" "$(file -b "$f" | cut -d, -f1-2)"
    done
fi
