#!/usr/bin/env bash
# Installs edge on this machine, or into a root tree with --root (an image being prepared, a test):
# the binaries into /usr/local/bin, the units into /etc/systemd/system, the first-boot config into
# /etc/edge/config.yaml and /etc/default/edge-<role>, and enables the unit of the chosen role.
# Secrets (the join token) go only into /etc/default/edge-<role>, mode 0600; config.yaml holds
# flags that are safe to read.
set -euo pipefail

prog=${0##*/}
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    cat <<EOF
usage: $prog [--root DIR] [--role server|agent] [--server URL] [--token T] [--node-name N]
             [--bin-dir DIR] [--start]
  --root DIR      install into DIR instead of / (no systemctl; the enable symlink is made directly)
  --role ROLE     server (control plane, also runs an agent) or agent (default: agent)
  --server URL    https://HOST:6443 of the server (agent only, required)
  --token T       join token (required for agents; servers generate one when absent)
  --node-name N   node name (default: the hostname)
  --bin-dir DIR   where edge-server / edge-agent are (default: $script_dir/../target/release)
  --start         also (re)start the unit (not with --root)
EOF
}

# One line on stderr, exit 2: the caller gave us something we cannot use.
usage_error() {
    printf '%s: %s (see --help)\n' "$prog" "$*" >&2
    exit 2
}
die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 1
}

ROOT="" ROLE=agent SERVER="" TOKEN="" NODE_NAME="" BIN_DIR="$script_dir/../target/release" START=0
while (($#)); do
    arg=$1 val=""
    shift
    case $arg in
        -h | --help) usage; exit 0 ;;
        --start) START=1; continue ;;
        --root=* | --role=* | --server=* | --token=* | --node-name=* | --bin-dir=*)
            val=${arg#*=} arg=${arg%%=*} ;;
        --root | --role | --server | --token | --node-name | --bin-dir)
            (($#)) || usage_error "$arg needs a value"
            val=$1
            shift ;;
        *) usage_error "unknown argument: $arg" ;;
    esac
    [[ -n $val ]] || usage_error "$arg needs a non-empty value"
    case $arg in
        --root) ROOT=$val ;;
        --role) ROLE=$val ;;
        --server) SERVER=$val ;;
        --token) TOKEN=$val ;;
        --node-name) NODE_NAME=$val ;;
        --bin-dir) BIN_DIR=$val ;;
    esac
done

case $ROLE in
    server | agent) ;;
    *) usage_error "--role must be server or agent, not '$ROLE'" ;;
esac
if [[ $ROLE == agent ]]; then
    [[ -n $SERVER ]] || usage_error "--role agent needs --server https://HOST:6443"
    [[ -n $TOKEN ]] || usage_error "--role agent needs --token (the server's join token)"
elif [[ -n $SERVER ]]; then
    usage_error "--server applies to --role agent only"
fi
# These values end up in YAML and in a systemd EnvironmentFile: refuse anything needing quoting.
url_re='^https://[][A-Za-z0-9.:@%_~/-]+$'
[[ -z $SERVER || $SERVER =~ $url_re ]] ||
    usage_error "--server must look like https://HOST:6443, not '$SERVER'"
[[ -z $TOKEN || $TOKEN =~ ^[A-Za-z0-9._:+/=@-]+$ ]] ||
    usage_error "--token may only contain letters, digits and ._:+/=@-"
[[ -z $NODE_NAME || ($NODE_NAME =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ && ${#NODE_NAME} -le 253) ]] ||
    usage_error "--node-name must be a lowercase DNS name, not '$NODE_NAME'"

if [[ -n $ROOT ]]; then
    [[ -d $ROOT ]] || usage_error "--root $ROOT is not a directory"
    ROOT=$(cd "$ROOT" && pwd)
    [[ $ROOT != / ]] || ROOT=""
    ((START == 0)) || usage_error "--start cannot be used with --root"
else
    ((EUID == 0)) || die "installing onto this machine needs root (or use --root DIR)"
fi

[[ -d $BIN_DIR ]] || usage_error "--bin-dir $BIN_DIR is not a directory"
[[ -f $BIN_DIR/edge-$ROLE ]] || die "$BIN_DIR/edge-$ROLE not found (build it, or pass --bin-dir)"
binaries=()
for b in edge-server edge-agent; do
    if [[ -f $BIN_DIR/$b ]]; then binaries+=("$b"); fi
done

# The systemd version of the target decides whether the backoff drop-in is understood (>= 254).
target_systemd_version() {
    if [[ -z $ROOT ]]; then
        systemctl --version 2>/dev/null | awk 'NR == 1 { print $2 + 0 }'
        return
    fi
    local f
    for f in "$ROOT"/usr/lib/systemd/libsystemd-shared-*.so "$ROOT"/usr/lib/*/systemd/libsystemd-shared-*.so \
        "$ROOT"/lib/systemd/libsystemd-shared-*.so; do
        [[ -e $f ]] || continue
        f=${f##*/libsystemd-shared-}
        echo "${f%%[!0-9]*}"
        return
    done
    echo 0
}

render_config() {
    echo "# Written by edge install.sh. Same keys as the command-line flags; EDGE_* variables in"
    echo "# /etc/default/edge-$ROLE override these, and flags override both."
    [[ -z $SERVER ]] || printf 'server: "%s"\n' "$SERVER"
    [[ -z $NODE_NAME ]] || printf 'node-name: "%s"\n' "$NODE_NAME"
}
render_env() {
    echo "# Written by edge install.sh; read by edge-$ROLE.service. Holds the join token: keep 0600."
    [[ -z $SERVER ]] || printf 'EDGE_URL=%s\n' "$SERVER"
    [[ -z $TOKEN ]] || printf 'EDGE_TOKEN=%s\n' "$TOKEN"
}

install -d -m 0755 "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system/multi-user.target.wants" \
    "$ROOT/etc/edge" "$ROOT/etc/default"
sd_version=$(target_systemd_version)
for b in "${binaries[@]}"; do
    install -m 0755 "$BIN_DIR/$b" "$ROOT/usr/local/bin/$b"
    install -m 0644 "$script_dir/$b.service" "$ROOT/etc/systemd/system/$b.service"
    if ((${sd_version:-0} >= 254)); then
        install -d -m 0755 "$ROOT/etc/systemd/system/$b.service.d"
        install -m 0644 "$script_dir/edge-backoff.conf" "$ROOT/etc/systemd/system/$b.service.d/backoff.conf"
    fi
done
install -m 0755 "$script_dir/uninstall.sh" "$ROOT/usr/local/bin/edge-uninstall.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
render_config >"$tmp/config.yaml"
render_env >"$tmp/env"
install -m 0644 "$tmp/config.yaml" "$ROOT/etc/edge/config.yaml"
install -m 0600 "$tmp/env" "$ROOT/etc/default/edge-$ROLE"

# Only one role runs per board: the server already embeds an agent.
other=edge-server
if [[ $ROLE == server ]]; then other=edge-agent; fi
if [[ -n $ROOT ]]; then
    # What `systemctl enable` would do, without needing systemd to understand the tree.
    ln -sfn "/etc/systemd/system/edge-$ROLE.service" \
        "$ROOT/etc/systemd/system/multi-user.target.wants/edge-$ROLE.service"
    rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/$other.service"
    echo "$prog: installed edge-$ROLE into $ROOT (enabled)"
else
    systemctl daemon-reload
    if systemctl is-enabled --quiet "$other.service" 2>/dev/null; then
        systemctl disable --now "$other.service"
    fi
    systemctl enable "edge-$ROLE.service"
    if ((START)); then
        systemctl restart "edge-$ROLE.service"
        echo "$prog: edge-$ROLE installed, enabled and started"
    else
        echo "$prog: edge-$ROLE installed and enabled; start it with: systemctl start edge-$ROLE"
    fi
fi
