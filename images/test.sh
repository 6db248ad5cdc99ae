#!/usr/bin/env bash
# Tests edge-image on synthetic images laid out like Raspberry Pi OS Lite (MBR; FAT32 boot
# partition at 4 MiB with config.txt and cmdline.txt; ext4 root), built here with sfdisk,
# mkfs.vfat --offset, mtools and mkfs.ext4 -E offset= -d. Reads every result back with debugfs and
# mtools. Prints one line per check; exits 1 if any failed. Needs no root except for the
# block-device check (skipped when mknod is not allowed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tool=$here/edge-image
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MTOOLS_SKIP_CHECK=1 DEBUGFS_PAGER=__none__
failures=0

for t in sfdisk mkfs.vfat mcopy mkfs.ext4 debugfs e2fsck fsck.vfat od sha256sum; do
    command -v "$t" >/dev/null || { echo "FAIL $t not installed (see images/apt-packages.txt)"; exit 1; }
done

ok() { printf 'ok   %s\n' "$1"; }
bad() { printf 'FAIL %s\n' "$1"; failures=$((failures + 1)); }
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
eq() { [[ $1 == "$2" ]] || { printf '     got:  %q\n     want: %q\n' "$1" "$2"; return 1; }; }

# Layout shared by all synthetic images: 64 MiB; FAT32 boot of 36 MiB (about the least FAT32
# allows with 512-byte clusters) at 4 MiB as on Raspberry Pi OS; ext4 root in the rest.
BOOT_START=8192 BOOT_SECTORS=73728 ROOT_START=81920
BOOT_OFF=$((BOOT_START * 512)) ROOT_OFF=$((ROOT_START * 512))
CMDLINE='console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait'

# make_image FILE VARIANT: base | nm | dhcpcd | gpt | no-cmdline | no-ext4 | fat-type | no-fat-fs
make_image() {
    local img=$1 variant=$2 rd=$tmp/rootdir-$2 boot=$tmp/bootdir
    rm -rf "$rd" "$boot"
    truncate -s 64M "$img"
    local label="label: dos" p1type=c
    [[ $variant != gpt ]] || label="label: gpt"
    [[ $variant != fat-type ]] || p1type=83
    if [[ $variant == gpt ]]; then
        printf '%s\nstart=%s, size=%s, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\nstart=%s, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' \
            "$label" "$BOOT_START" "$BOOT_SECTORS" "$ROOT_START" | sfdisk -q "$img"
    else
        printf '%s\nlabel-id: 0x6c586e13\nstart=%s, size=%s, type=%s\nstart=%s, type=83\n' \
            "$label" "$BOOT_START" "$BOOT_SECTORS" "$p1type" "$ROOT_START" | sfdisk -q "$img"
    fi
    if [[ $variant != no-fat-fs ]]; then
        # (mkfs.vfat warns that the file is larger than the file system: that is the point.)
        mkfs.vfat -F 32 -s 1 -n bootfs --offset "$BOOT_START" "$img" $((BOOT_SECTORS / 2)) >/dev/null 2>&1
        mkdir -p "$boot"
        printf '# For more options and information see\n# http://rpf.io/configtxt\ndtparam=audio=on\narm_64bit=1\n' \
            >"$boot/config.txt"
        printf '%s\n' "$CMDLINE" >"$boot/cmdline.txt"
        mcopy -i "$img@@$BOOT_OFF" "$boot/config.txt" ::/
        [[ $variant == no-cmdline ]] || mcopy -i "$img@@$BOOT_OFF" "$boot/cmdline.txt" ::/
    fi
    mkdir -p "$rd"/etc/systemd/system/multi-user.target.wants "$rd"/usr/local/bin "$rd"/boot/firmware \
        "$rd"/usr/lib/aarch64-linux-gnu/systemd "$rd"/lib/systemd/system "$rd"/var/lib
    echo raspberrypi >"$rd/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\n127.0.1.1\t\traspberrypi\n' \
        >"$rd/etc/hosts"
    ln -s /lib/systemd/system/ssh.service "$rd/etc/systemd/system/multi-user.target.wants/ssh.service"
    : >"$rd/lib/systemd/system/systemd-networkd.service"
    local sd=252
    case $variant in
        nm)
            mkdir -p "$rd/etc/NetworkManager/system-connections"
            printf '[main]\nplugins=ifupdown,keyfile\n' >"$rd/etc/NetworkManager/NetworkManager.conf"
            sd=257 ;;
        dhcpcd) printf 'hostname\nclientid\npersistent\noption rapid_commit\n' >"$rd/etc/dhcpcd.conf" ;;
    esac
    : >"$rd/usr/lib/aarch64-linux-gnu/systemd/libsystemd-shared-$sd.so"
    [[ $variant == no-ext4 ]] ||
        mkfs.ext4 -q -F -L rootfs -d "$rd" -E offset="$ROOT_OFF" "$img" 24M
}

# Readers of a finished image.
ext() { debugfs -R "$2" "$1?offset=$ROOT_OFF" 2>/dev/null; }
ext_mode() { ext "$1" "stat $2" | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p'; }
ext_owner() { ext "$1" "stat $2" | sed -n 's/^User: *\([0-9]*\) *Group: *\([0-9]*\).*/\1:\2/p'; }
ext_type() { ext "$1" "stat $2" | sed -n 's/.*Type: \([a-z]*\).*/\1/p'; }
ext_link() { ext "$1" "stat $2" | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p'; }
fat_cat() { mcopy -n -i "$1@@$BOOT_OFF" "::/$2" - 2>/dev/null; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# A whole-image consistency check: both file systems must pass fsck after our edits.
fsck_ok() {
    dd if="$1" of="$tmp/root.part" bs=512 skip="$ROOT_START" status=none
    dd if="$1" of="$tmp/boot.part" bs=512 skip="$BOOT_START" count="$BOOT_SECTORS" status=none
    if ! e2fsck -fn "$tmp/root.part" >"$tmp/fsck.log" 2>&1 || ! fsck.vfat -n "$tmp/boot.part" >>"$tmp/fsck.log" 2>&1; then
        cat "$tmp/fsck.log"
        return 1
    fi
}

# craft_elf FILE CLASS MACHINE: a bare 64-byte ELF header (enough for the e_machine check):
# e_ident (magic, class, little-endian, version 1), e_type EXEC, e_machine, e_version, zeros.
craft_elf() {
    local octal
    octal=$(printf '\\%03o' 127 69 76 70 "$2" 1 1 0 0 0 0 0 0 0 0 0 2 0 $(($3 & 255)) $(($3 >> 8)) 1 0 0 0)
    # shellcheck disable=SC2059 # the format is the octal escapes built above
    printf "$octal" >"$1"
    head -c 40 /dev/zero >>"$1"
    chmod 0755 "$1"
}

# --- stand-in binaries ---------------------------------------------------------------------
bins=$tmp/bin
mkdir -p "$bins"
if command -v aarch64-linux-gnu-gcc >/dev/null; then
    # A real (tiny, libc-free) aarch64 program: exit(0) through the syscall.
    printf 'void _start(void) { __asm__ volatile("mov x0, #0\\n mov x8, #93\\n svc #0"); }\n' >"$tmp/exit0.c"
    aarch64-linux-gnu-gcc -nostdlib -static -Os -o "$bins/edge-agent" "$tmp/exit0.c"
    echo "stand-in aarch64 binary: compiled with aarch64-linux-gnu-gcc"
    if command -v qemu-aarch64-static >/dev/null; then
        check "stand-in binary runs under qemu-aarch64" qemu-aarch64-static "$bins/edge-agent"
    fi
else
    craft_elf "$bins/edge-agent" 2 183
    echo "stand-in aarch64 binary: crafted ELF header (aarch64-linux-gnu-gcc not installed)"
fi
cp "$bins/edge-agent" "$bins/edge-server"
check "stand-in is ELF aarch64" eq "$(od -An -tu1 -j18 -N2 "$bins/edge-agent" | xargs)" "183 0"

x86=$tmp/x86
mkdir -p "$x86"
craft_elf "$x86/edge-agent" 2 62
check "crafted x86-64 header reads back" eq "$(od -An -tu1 -j4 -N1 "$x86/edge-agent" | xargs) \
$(od -An -tu1 -j18 -N2 "$x86/edge-agent" | xargs)" "2 62 0"
script=$tmp/script
mkdir -p "$script"
printf '#!/bin/sh\nexit 0\n' >"$script/edge-agent"
chmod 0755 "$script/edge-agent"

agent_args=(--role agent --server https://192.168.1.10:6443 --token K10abc::server:s3cret)

# --- refusals: a clear one-line error, and the file left byte-identical ----------------------
# refuse WHAT PATTERN FILE ARGS...: edge-image on FILE must fail with PATTERN and not change FILE.
refuse() {
    local what=$1 pattern=$2 file=$3 before="" after="" rc=0
    shift 3
    [[ ! -f $file ]] || before=$(sha "$file")
    "$tool" --image "$file" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    [[ ! -f $file ]] || after=$(sha "$file")
    if ((rc == 0)); then
        bad "$what: edge-image succeeded"
    elif [[ $(wc -l <"$tmp/err") -ne 1 ]] || ! grep -Eq -- "$pattern" "$tmp/err"; then
        bad "$what: stderr was: $(cat "$tmp/err")"
    elif [[ $before != "$after" ]]; then
        bad "$what: the image changed"
    else
        ok "$what ($(cat "$tmp/err"))"
    fi
}

make_image "$tmp/base.img" base
cp --sparse=always "$tmp/base.img" "$tmp/pristine.img"
refuse "missing file" "no such file" "$tmp/nope.img" --bin-dir "$bins" "${agent_args[@]}"
{ yes 'not an image' || true; } | head -c 1048576 >"$tmp/text.img"
refuse "non-image file" "has no partition table" "$tmp/text.img" --bin-dir "$bins" "${agent_args[@]}"
cp --sparse=always "$tmp/base.img" "$tmp/trunc.img"
truncate -s 50M "$tmp/trunc.img"
refuse "truncated image" "is truncated: partition 2 ends at byte 67108864 but the file has 52428800 bytes" \
    "$tmp/trunc.img" --bin-dir "$bins" "${agent_args[@]}"
refuse "x86-64 binary" "is an ELF for x86-64 \(64-bit\), not aarch64" "$tmp/base.img" --bin-dir "$x86" "${agent_args[@]}"
refuse "script instead of a binary" "is not an ELF binary" "$tmp/base.img" --bin-dir "$script" "${agent_args[@]}"
refuse "aarch64 binary for armv7" "is an ELF for aarch64 \(64-bit\), not armv7" "$tmp/base.img" \
    --bin-dir "$bins" --arch armv7 "${agent_args[@]}"
refuse "agent without --server" "needs --server" "$tmp/base.img" --bin-dir "$bins" --role agent --token t
refuse "unknown flag" "unknown argument: --flash" "$tmp/base.img" --bin-dir "$bins" "${agent_args[@]}" --flash
refuse "bad static ip" "--static-ip must be an IPv4 CIDR" "$tmp/base.img" --bin-dir "$bins" \
    "${agent_args[@]}" --static-ip 192.168.1.300/24 --gateway 192.168.1.1
big=$tmp/big
mkdir -p "$big"
craft_elf "$big/edge-agent" 2 183
truncate -s 40M "$big/edge-agent"
refuse "root file system too small" "root file system has [0-9]+ bytes free, needs about [0-9]+" "$tmp/base.img" \
    --bin-dir "$big" "${agent_args[@]}"
refuse "binary for the role missing" "edge-server not found" "$tmp/base.img" --bin-dir "$x86" --role server
for variant in gpt no-cmdline no-ext4 fat-type no-fat-fs; do
    make_image "$tmp/$variant.img" "$variant"
done
refuse "GPT image" "has a gpt partition table, not MBR" "$tmp/gpt.img" --bin-dir "$bins" "${agent_args[@]}"
refuse "no cmdline.txt" "boot partition has no cmdline.txt" "$tmp/no-cmdline.img" --bin-dir "$bins" "${agent_args[@]}"
refuse "no ext4 root" "partition 2 holds no ext4 file system" "$tmp/no-ext4.img" --bin-dir "$bins" "${agent_args[@]}"
refuse "partition 1 not FAT" "partition 1 has type 83, not a FAT boot partition" "$tmp/fat-type.img" \
    --bin-dir "$bins" "${agent_args[@]}"
refuse "no FAT file system" "partition 1 holds no readable FAT file system" "$tmp/no-fat-fs.img" \
    --bin-dir "$bins" "${agent_args[@]}"
if mknod "$tmp/blockdev" b 7 250 2>/dev/null; then
    refuse "block device" "is a block device" "$tmp/blockdev" --bin-dir "$bins" "${agent_args[@]}"
    ln -s "$tmp/blockdev" "$tmp/link-to-blockdev.img"
    refuse "symlink to a block device" "is a block device" "$tmp/link-to-blockdev.img" --bin-dir "$bins" "${agent_args[@]}"
else
    echo "SKIPPED: block-device refusal (mknod not permitted here)"
fi
check "refusals left the base image untouched" cmp -s "$tmp/base.img" "$tmp/pristine.img"

# --- agent image, systemd-networkd static address -------------------------------------------
img=$tmp/base.img
check "edge-image agent run" "$tool" --image "$img" --bin-dir "$bins" "${agent_args[@]}" --hostname node-1 \
    --static-ip 192.168.1.50/24 --gateway 192.168.1.1
for b in edge-agent edge-server; do
    check "$b present, 0755 root:root" eq "$(ext_mode "$img" /usr/local/bin/$b) $(ext_owner "$img" /usr/local/bin/$b)" \
        "0755 0:0"
    check "$b content intact" eq "$(ext "$img" "cat /usr/local/bin/$b" | sha256sum)" "$(sha256sum <"$bins/$b")"
    check "$b is ELF aarch64 in the image" \
        eq "$(ext "$img" "cat /usr/local/bin/$b" | od -An -tu1 -N20 | xargs | cut -d' ' -f1-5,19-20)" "127 69 76 70 2 183 0"
    check "$b.service is the repo's" eq "$(ext "$img" "cat /etc/systemd/system/$b.service")" \
        "$(cat "$here/../systemd/$b.service")"
done
wants=/etc/systemd/system/multi-user.target.wants
check "agent unit enabled" eq "$(ext_type "$img" $wants/edge-agent.service) $(ext_link "$img" $wants/edge-agent.service)" \
    "symlink /etc/systemd/system/edge-agent.service"
check "server unit not enabled on an agent" eq "$(ext_type "$img" $wants/edge-server.service)" ""
check "existing enablement kept" eq "$(ext_link "$img" $wants/ssh.service)" /lib/systemd/system/ssh.service
check "no backoff drop-in for systemd 252" eq "$(ext_type "$img" /etc/systemd/system/edge-agent.service.d)" ""
check "uninstall script present" eq "$(ext_mode "$img" /usr/local/bin/edge-uninstall.sh)" 0755
check "config.yaml" eq "$(ext "$img" "cat /etc/edge/config.yaml" | grep -v '^#')" \
    $'server: "https://192.168.1.10:6443"\nnode-name: "node-1"'
check "env file content" eq "$(ext "$img" "cat /etc/default/edge-agent" | grep -v '^#')" \
    $'EDGE_URL=https://192.168.1.10:6443\nEDGE_TOKEN=K10abc::server:s3cret'
check "env file 0600 root:root" eq "$(ext_mode "$img" /etc/default/edge-agent) $(ext_owner "$img" /etc/default/edge-agent)" \
    "0600 0:0"
check "/etc/edge is a root-owned 0755 dir" eq "$(ext_mode "$img" /etc/edge) $(ext_owner "$img" /etc/edge)" "0755 0:0"
check "modules-load.d/edge.conf" eq "$(ext "$img" "cat /etc/modules-load.d/edge.conf" | grep -v '^#')" \
    $'overlay\nbr_netfilter\nvxlan\nnf_tables'
check "hostname" eq "$(ext "$img" "cat /etc/hostname")" node-1
check "hosts maps 127.0.1.1 to the new name only" eq "$(ext "$img" "cat /etc/hosts")" \
    $'127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\n127.0.1.1\tnode-1'
check "networkd file" eq "$(ext "$img" "cat /etc/systemd/network/10-edge-eth0.network" | grep -v '^#')" \
    $'[Match]\nName=eth0\n\n[Network]\nAddress=192.168.1.50/24\nGateway=192.168.1.1\nDNS=192.168.1.1'
check "networkd enabled" eq "$(ext_link "$img" $wants/systemd-networkd.service)" /lib/systemd/system/systemd-networkd.service
cmdline=$(fat_cat "$img" cmdline.txt)
check "cmdline.txt: original line plus the cgroup flags" eq "$cmdline" "$CMDLINE cgroup_memory=1 cgroup_enable=memory"
check "cmdline.txt: one line" eq "$(fat_cat "$img" cmdline.txt | wc -l)" 1
check "cmdline.txt: each flag once" eq "$(grep -o 'cgroup_[a-z]*=[a-z0-9]*' <<<"$cmdline" | sort | uniq -c | xargs)" \
    "1 cgroup_enable=memory 1 cgroup_memory=1"
check "config.txt untouched" eq "$(fat_cat "$img" config.txt | tail -n1)" arm_64bit=1
check "file systems pass e2fsck -fn and fsck.vfat -n" fsck_ok "$img"
first=$(sha "$img")
check "second run says nothing changed" eq "$("$tool" --image "$img" --bin-dir "$bins" "${agent_args[@]}" \
    --hostname node-1 --static-ip 192.168.1.50/24 --gateway 192.168.1.1)" \
    "edge-image: $img already is an edge agent image; nothing changed"
check "second run leaves the image byte-identical" eq "$(sha "$img")" "$first"

# --- server image on a dhcpcd system; a rerun with a new address replaces, not appends ---------
make_image "$tmp/dhcpcd.img" dhcpcd
img=$tmp/dhcpcd.img
check "edge-image server run (dhcpcd)" "$tool" --image "$img" --bin-dir "$bins" --role server \
    --static-ip 10.0.0.5/24 --gateway 10.0.0.1 --dns 1.1.1.1
check "server unit enabled" eq "$(ext_link "$img" $wants/edge-server.service)" /etc/systemd/system/edge-server.service
check "server config has no agent keys" eq "$(ext "$img" "cat /etc/edge/config.yaml" | grep -v '^#')" ""
check "server env file without token" eq "$(ext "$img" "cat /etc/default/edge-server" | grep -v '^#')" ""
check "hostname untouched without --hostname" eq "$(ext "$img" "cat /etc/hostname")" raspberrypi
check "dhcpcd.conf block" eq "$(ext "$img" "cat /etc/dhcpcd.conf")" \
    $'hostname\nclientid\npersistent\noption rapid_commit\n# edge-image: begin\ninterface eth0\nstatic ip_address=10.0.0.5/24\nstatic routers=10.0.0.1\nstatic domain_name_servers=1.1.1.1\n# edge-image: end'
check "edge-image rerun with a new address" "$tool" --image "$img" --bin-dir "$bins" --role server \
    --static-ip 10.0.0.6/24 --gateway 10.0.0.1
check "dhcpcd.conf block replaced, not appended" eq \
    "$(ext "$img" "cat /etc/dhcpcd.conf" | grep -c -e 'edge-image: begin' -e 'ip_address=10.0.0.6/24' | xargs)" 2
check "no networkd file on a dhcpcd system" eq "$(ext_type "$img" /etc/systemd/network)" ""
check "switching to agent" "$tool" --image "$img" --bin-dir "$bins" "${agent_args[@]}" \
    --static-ip 10.0.0.6/24 --gateway 10.0.0.1
check "switching role disables the server unit" eq \
    "$(ext_type "$img" $wants/edge-server.service) $(ext_link "$img" $wants/edge-agent.service)" \
    " /etc/systemd/system/edge-agent.service"
check "file systems pass fsck after three runs" fsck_ok "$img"

# --- NetworkManager system with systemd 257; cmdline already has one flag, no newline ---------
make_image "$tmp/nm.img" nm
img=$tmp/nm.img
printf '%s cgroup_memory=1' "$CMDLINE" >"$tmp/cmdline.txt"
mcopy -o -i "$img@@$BOOT_OFF" "$tmp/cmdline.txt" ::/cmdline.txt
check "edge-image server run (NetworkManager)" "$tool" --image "$img" --bin-dir "$bins" --role server \
    --token K10abc::server:s3cret --hostname board --static-ip 192.168.7.2/24 --gateway 192.168.7.1
fat_cat "$img" cmdline.txt >"$tmp/cmdline.got"
printf '%s cgroup_memory=1 cgroup_enable=memory' "$CMDLINE" >"$tmp/cmdline.want"
check "cmdline.txt: only the missing flag added, no newline invented" cmp "$tmp/cmdline.got" "$tmp/cmdline.want"
check "cmdline.txt: each flag once" eq "$(fat_cat "$img" cmdline.txt | grep -o 'cgroup_[a-z]*=' | sort | uniq -c | xargs)" \
    "1 cgroup_enable= 1 cgroup_memory="
check "nmconnection 0600" eq "$(ext_mode "$img" /etc/NetworkManager/system-connections/edge-eth0.nmconnection)" 0600
check "nmconnection address" eq "$(ext "$img" "cat /etc/NetworkManager/system-connections/edge-eth0.nmconnection" |
    grep -e '^address1=' -e '^dns=' -e '^method=manual' | xargs)" "method=manual address1=192.168.7.2/24,192.168.7.1 dns=192.168.7.1;"
check "backoff drop-in for systemd 257" eq "$(ext "$img" "cat /etc/systemd/system/edge-server.service.d/backoff.conf")" \
    "$(cat "$here/../systemd/edge-backoff.conf")"
check "server env file has the token" eq "$(ext "$img" "cat /etc/default/edge-server" | grep -v '^#')" \
    "EDGE_TOKEN=K10abc::server:s3cret"
check "config.yaml holds node-name only" eq "$(ext "$img" "cat /etc/edge/config.yaml" | grep -v '^#')" 'node-name: "board"'
before=$(sha "$img")
"$tool" --image "$img" --bin-dir "$bins" --role server --token K10abc::server:s3cret --hostname board \
    --static-ip 192.168.7.2/24 --gateway 192.168.7.1 >/dev/null
check "NetworkManager image: second run byte-identical" eq "$(sha "$img")" "$before"
check "file systems pass fsck" fsck_ok "$img"

if command -v shellcheck >/dev/null; then
    check "shellcheck" shellcheck "$tool" "$here/test.sh"
else
    echo "SKIPPED: shellcheck not installed"
fi

if ((failures)); then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all image checks passed"
