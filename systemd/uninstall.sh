#!/usr/bin/env bash
# Removes edge from this machine (or from a root tree with --root): stops and disables the units,
# removes binaries, units and config, and -- on a live machine -- everything the agent created:
# leftover container processes and cgroups named edge*, mounts under /var/lib/edge and /run/edge,
# the cni0 and flannel.1 links, the edge-proxy nftables tables, and the data directories.
# Every step tolerates its object being absent, so running it twice is harmless.
# install.sh copies this script to /usr/local/bin/edge-uninstall.sh.
set -euo pipefail

prog=${0##*/}
usage_error() {
    printf '%s: %s (see --help)\n' "$prog" "$*" >&2
    exit 2
}

ROOT="" live=1 root_given=0
while (($#)); do
    case $1 in
        -h | --help)
            echo "usage: $prog [--root DIR]"
            exit 0 ;;
        --root=*) ROOT=${1#*=} root_given=1; shift ;;
        --root)
            (($# >= 2)) || usage_error "--root needs a value"
            ROOT=$2 root_given=1
            shift 2 ;;
        *) usage_error "unknown argument: $1" ;;
    esac
done
if ((root_given)); then
    [[ -n $ROOT && -d $ROOT ]] || usage_error "--root '$ROOT' is not a directory"
    ROOT=$(cd "$ROOT" && pwd)
    [[ $ROOT != / ]] || ROOT=""
    live=0
elif ((EUID != 0)); then
    printf '%s: error: uninstalling from this machine needs root (or use --root DIR)\n' "$prog" >&2
    exit 1
fi

units=(edge-agent.service edge-server.service)
have() { command -v "$1" >/dev/null 2>&1; }

if ((live)) && have systemctl; then
    for u in "${units[@]}"; do
        systemctl stop "$u" 2>/dev/null || true
        systemctl disable "$u" 2>/dev/null || true
    done
fi

# KillMode=process leaves containers running after the unit stops: kill what is still inside
# cgroups named edge* (the units' own and the agent's pod cgroups), then remove those cgroups
# deepest first (a cgroup can only be removed once it has no children and no processes).
remove_cgroups() {
    [[ -d /sys/fs/cgroup ]] || return 0
    local top dir pid
    while IFS= read -r -d '' top; do
        while IFS= read -r -d '' dir; do
            [[ -r $dir/cgroup.procs ]] || continue
            while read -r pid; do
                kill -KILL "$pid" 2>/dev/null || true
            done <"$dir/cgroup.procs"
        done < <(find "$top" -type d -print0 2>/dev/null)
        # Give the kernel a moment to reap the killed tasks before rmdir.
        sleep 0.2
        find "$top" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done < <(find /sys/fs/cgroup -mindepth 1 -type d -name 'edge*' -prune -print0 2>/dev/null)
}

# Deepest mount points first; /proc/self/mounts escapes blanks as octal (\040).
unmount_edge() {
    local m
    awk '{ print $2 }' /proc/self/mounts | while IFS= read -r m; do
        m=$(printf '%b' "$m")
        case $m in
            /var/lib/edge | /var/lib/edge/* | /run/edge | /run/edge/*) printf '%s\t%s\n' "${#m}" "$m" ;;
        esac
    done | sort -rn | cut -f2- | while IFS= read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
}

if ((live)); then
    remove_cgroups
    unmount_edge
    if have ip; then
        for link in cni0 flannel.1; do
            if ip link show "$link" >/dev/null 2>&1; then ip link del "$link" || true; fi
        done
    fi
    if have nft; then
        for family in inet ip ip6; do
            if nft list table "$family" edge-proxy >/dev/null 2>&1; then
                nft delete table "$family" edge-proxy || true
            fi
        done
    fi
fi

for u in "${units[@]}"; do
    rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/$u" "$ROOT/etc/systemd/system/$u"
    rm -rf "$ROOT/etc/systemd/system/$u.d"
done
rm -f "$ROOT/usr/local/bin/edge-server" "$ROOT/usr/local/bin/edge-agent" \
    "$ROOT/etc/default/edge-server" "$ROOT/etc/default/edge-agent" \
    "$ROOT/etc/modules-load.d/edge.conf"
rm -rf "$ROOT/etc/edge" "$ROOT/var/lib/edge" "$ROOT/run/edge"
if ((live)) && have systemctl; then
    systemctl daemon-reload 2>/dev/null || true
    systemctl reset-failed "${units[@]}" 2>/dev/null || true
fi
# Last, so that a failure above leaves a way to retry.
rm -f "$ROOT/usr/local/bin/edge-uninstall.sh"
echo "$prog: edge removed${ROOT:+ from $ROOT}"
