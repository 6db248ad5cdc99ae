#!/usr/bin/env bash
# Runs the cross-built binaries' `--version` under qemu-user, proving they load and start on the
# target architecture. Usage: cross/qemu-smoke.sh TARGET [--release]
# Checks target/TARGET/{debug,release}/edge-server (required) and edge-agent (when built).
set -euo pipefail

prog=${0##*/}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage_error() {
    printf '%s: %s\nusage: %s TARGET [--release]\n' "$prog" "$*" "$prog" >&2
    exit 2
}
die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 1
}

(($#)) || usage_error "TARGET is required"
target=$1
profile=debug
case ${2:-} in
    "") ;;
    --release) profile=release ;;
    *) usage_error "unknown argument: $2" ;;
esac
(($# <= 2)) || usage_error "too many arguments"

# glibc binaries need the target's dynamic loader and libc: -L points qemu at Debian's cross sysroot.
case $target in
    aarch64-unknown-linux-gnu) qemu=(qemu-aarch64-static -L /usr/aarch64-linux-gnu) elf="ARM aarch64" ;;
    armv7-unknown-linux-gnueabihf) qemu=(qemu-arm-static -L /usr/arm-linux-gnueabihf) elf="ARM, EABI5" ;;
    aarch64-unknown-linux-musl) qemu=(qemu-aarch64-static) elf="ARM aarch64" ;;
    *) usage_error "unsupported target '$target'" ;;
esac
command -v "${qemu[0]}" >/dev/null || die "${qemu[0]} not found: apt-get install -y qemu-user-static"
[[ ${#qemu[@]} -eq 1 || -d ${qemu[2]} ]] ||
    die "${qemu[2]} missing: install the cross libc (see cross/apt-packages.txt)"

dir=$repo/target/$target/$profile
[[ -f $dir/edge-server ]] || die "$dir/edge-server not built: run cross/build.sh $target${2:+ $2}"
failed=0
for b in edge-server edge-agent; do
    f=$dir/$b
    [[ -f $f ]] || continue
    if [[ $(file -b "$f") != *"$elf"* ]]; then
        echo "FAIL $b: not a $target binary: $(file -b "$f")"
        failed=1
        continue
    fi
    if out=$("${qemu[@]}" "$f" --version 2>&1) && [[ $out == "$b "[0-9]* ]]; then
        echo "ok   $b --version under ${qemu[0]}: $out"
    else
        echo "FAIL $b --version under ${qemu[0]}: $out"
        failed=1
    fi
done
exit "$failed"
