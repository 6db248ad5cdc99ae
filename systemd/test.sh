#!/usr/bin/env bash
# Tests install.sh / uninstall.sh against a scratch root and runs `systemd-analyze verify` on the
# installed units. Needs no running systemd. Prints one line per check; exits 1 if any failed.
# Uses the real edge-server from target/debug (or $EDGE_BIN_DIR) when built, else a stub.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

ok() { printf 'ok   %s\n' "$1"; }
bad() { printf 'FAIL %s\n' "$1"; failures=$((failures + 1)); }
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
# expect_error WHAT PATTERN CMD...: CMD must fail with exactly one stderr line matching PATTERN.
expect_error() {
    local what=$1 pattern=$2 rc=0
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    if ((rc == 0)); then
        bad "$what: succeeded"
    elif [[ $(wc -l <"$tmp/err") -ne 1 ]] || ! grep -Eq -- "$pattern" "$tmp/err"; then
        bad "$what: stderr was: $(cat "$tmp/err")"
    else
        ok "$what ($(cat "$tmp/err"))"
    fi
}
# quiet CMD...: run CMD, showing its output only when it fails.
quiet() {
    "$@" >"$tmp/quiet" 2>&1 || { cat "$tmp/quiet"; return 1; }
}
mode_of() { stat -c %a "$1"; }
link_of() { readlink "$1"; }

# Binaries: the real edge-server when built; edge-agent does not exist yet, so a stub stands in.
bins=$tmp/bin
mkdir -p "$bins"
real=${EDGE_BIN_DIR:-$repo/target/debug}/edge-server
if [[ -x $real ]]; then
    cp "$real" "$bins/edge-server"
    echo "using $real"
else
    printf '#!/bin/sh\necho "edge-server stub"\n' >"$bins/edge-server"
    echo "note: $real not built; using a stub edge-server"
fi
chmod 0755 "$bins/edge-server"
only_server=$tmp/only-server
mkdir -p "$only_server"
cp -p "$bins/edge-server" "$only_server/"
printf '#!/bin/sh\necho "edge-agent stub"\n' >"$bins/edge-agent"
chmod 0755 "$bins/edge-agent"

root=$tmp/root
mkdir -p "$root/etc" "$root/usr/local/bin"
echo keep >"$root/etc/hostname"
echo keep >"$root/usr/local/bin/other-tool"

# --- bad arguments: one clear line, exit non-zero, nothing written --------------------------
expect_error "unknown flag" "unknown argument: --bogus" "$here/install.sh" --root "$root" --bogus
expect_error "bad role" "--role must be server or agent" "$here/install.sh" --root "$root" --role worker
expect_error "flag without value" "--token needs a value" "$here/install.sh" --root "$root" --token
expect_error "agent without server" "needs --server" "$here/install.sh" --root "$root" --token t
expect_error "agent without token" "needs --token" \
    "$here/install.sh" --root "$root" --server https://10.0.0.1:6443
expect_error "server with --server" "--server applies to --role agent only" \
    "$here/install.sh" --root "$root" --role server --server https://10.0.0.1:6443 --bin-dir "$bins"
expect_error "token needing quotes" "--token may only contain" \
    "$here/install.sh" --root "$root" --role server --token 'a b' --bin-dir "$bins"
expect_error "missing root" "is not a directory" "$here/install.sh" --root "$tmp/nope" --role server
expect_error "agent binary absent" "edge-agent not found" "$here/install.sh" --root "$root" \
    --server https://10.0.0.1:6443 --token t --bin-dir "$only_server"
expect_error "uninstall unknown flag" "unknown argument: --all" "$here/uninstall.sh" --all
check "failed installs wrote nothing" test -z "$(find "$root" -name 'edge*')"

# --- server role with only edge-server available -----------------------------------------
check "install --role server" quiet "$here/install.sh" --root "$root" --role server \
    --token K10abc::server:s3cret --node-name pi-1 --bin-dir "$only_server"
check "server binary installed 0755" test "$(mode_of "$root/usr/local/bin/edge-server")" = 755
check "server binary is the given one" cmp -s "$only_server/edge-server" "$root/usr/local/bin/edge-server"
check "no agent binary when none given" test ! -e "$root/usr/local/bin/edge-agent"
check "server unit installed 0644" test "$(mode_of "$root/etc/systemd/system/edge-server.service")" = 644
check "server unit is the repo's" cmp -s "$here/edge-server.service" "$root/etc/systemd/system/edge-server.service"
check "server unit enabled" test "$(link_of "$root/etc/systemd/system/multi-user.target.wants/edge-server.service")" \
    = /etc/systemd/system/edge-server.service
check "uninstall script installed" test -x "$root/usr/local/bin/edge-uninstall.sh"
check "no backoff drop-in for an unknown systemd" test ! -e "$root/etc/systemd/system/edge-server.service.d"
check "env file 0600" test "$(mode_of "$root/etc/default/edge-server")" = 600
check "env file has token" grep -qx 'EDGE_TOKEN=K10abc::server:s3cret' "$root/etc/default/edge-server"
check "env file has no URL for a server" test -z "$(grep '^EDGE_URL' "$root/etc/default/edge-server")"
check "config has node-name" grep -qx 'node-name: "pi-1"' "$root/etc/edge/config.yaml"
check "config keeps the token out" test -z "$(grep -i token "$root/etc/edge/config.yaml" | grep -v '^#')"
check "config has only keys edge-server knows" \
    test -z "$(grep -v '^#' "$root/etc/edge/config.yaml" | grep -v '^node-name:')"

# The real binary must accept the config file we wrote (it rejects unknown keys).
if [[ -x $real ]]; then
    check "edge-server parses the written config" \
        quiet "$root/usr/local/bin/edge-server" --config "$root/etc/edge/config.yaml" --version
fi

# --- agent role, both binaries, on a root whose systemd understands the backoff drop-in ------
mkdir -p "$root/usr/lib/aarch64-linux-gnu/systemd"
: >"$root/usr/lib/aarch64-linux-gnu/systemd/libsystemd-shared-257.so"
check "install --role agent" quiet "$here/install.sh" --root "$root" --server=https://10.0.0.1:6443 \
    --token K10abc::server:s3cret --bin-dir "$bins"
check "agent binary installed 0755" test "$(mode_of "$root/usr/local/bin/edge-agent")" = 755
check "agent unit enabled" test "$(link_of "$root/etc/systemd/system/multi-user.target.wants/edge-agent.service")" \
    = /etc/systemd/system/edge-agent.service
check "switching role disables the server unit" \
    test ! -e "$root/etc/systemd/system/multi-user.target.wants/edge-server.service"
check "agent env file 0600" test "$(mode_of "$root/etc/default/edge-agent")" = 600
check "agent env file has URL and token" test "$(grep -v '^#' "$root/etc/default/edge-agent")" \
    = $'EDGE_URL=https://10.0.0.1:6443\nEDGE_TOKEN=K10abc::server:s3cret'
check "agent config has server" grep -qx 'server: "https://10.0.0.1:6443"' "$root/etc/edge/config.yaml"
check "backoff drop-in for systemd 257" cmp -s "$here/edge-backoff.conf" \
    "$root/etc/systemd/system/edge-agent.service.d/backoff.conf"
rm -rf "$root/usr/lib/aarch64-linux-gnu"

# --- systemd-analyze verify: the scratch root plus the host's unit directory -------------------
# verify resolves ExecStart= inside --root and needs the targets the units refer to, which a
# scratch root lacks: copy the host's system units in beside ours (read-only use of the host).
if command -v systemd-analyze >/dev/null; then
    vroot=$tmp/verify-root
    mkdir -p "$vroot/usr/lib/systemd"
    cp -a "$root/." "$vroot/"
    cp -a /usr/lib/systemd/system "$vroot/usr/lib/systemd/"
    # The drop-in is installed only for systemd >= 254; an older verifier would rightly warn on it.
    if (($(systemd-analyze --version | awk 'NR == 1 { print $2 + 0 }') < 254)); then
        rm -rf "$vroot"/etc/systemd/system/edge-*.service.d
    fi
    for u in edge-server edge-agent; do
        rc=0
        systemd-analyze verify --root="$vroot" "/etc/systemd/system/$u.service" >"$tmp/verify" 2>&1 || rc=$?
        if ((rc == 0)) && [[ ! -s $tmp/verify ]]; then
            ok "systemd-analyze verify $u.service (no warnings)"
        else
            bad "systemd-analyze verify $u.service (rc $rc): $(cat "$tmp/verify")"
        fi
    done
    # The check must be able to fail: without the binary, verify has to complain.
    rm "$vroot/usr/local/bin/edge-agent"
    if systemd-analyze verify --root="$vroot" /etc/systemd/system/edge-agent.service >/dev/null 2>&1; then
        bad "verify notices a missing ExecStart binary"
    else
        ok "verify notices a missing ExecStart binary"
    fi
else
    echo "SKIPPED: systemd-analyze not installed"
fi

# --- uninstall --root leaves only what was there before ------------------------------------
check "uninstall --root" quiet "$here/uninstall.sh" --root "$root"
check "uninstall removed every edge file" test -z "$(find "$root" -name '*edge*' ! -type d)"
check "uninstall removed /etc/edge" test ! -e "$root/etc/edge"
check "uninstall kept unrelated files" test "$(cat "$root/etc/hostname" "$root/usr/local/bin/other-tool")" \
    = $'keep\nkeep'
check "uninstall is repeatable" quiet "$here/uninstall.sh" --root "$root"

if command -v shellcheck >/dev/null; then
    check "shellcheck" shellcheck "$here/install.sh" "$here/uninstall.sh" "$here/test.sh"
else
    echo "SKIPPED: shellcheck not installed"
fi

if ((failures)); then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all systemd checks passed"
