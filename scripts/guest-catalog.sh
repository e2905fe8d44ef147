#!/usr/bin/env bash
# guest-catalog.sh - take the event catalog of the test guest's kernel (Debian's 6.1, built with
# hist triggers, snapshots and dynamic events, which this host's kernel lacks).
#
# Usage: scripts/guest-catalog.sh OUTPUT
# Needs scripts/prepare-guest.sh to have run. Boots the cached guest kernel once under TCG
# with the cached initramfs plus eventfs-snapshot and a one-shot /init that snapshots the
# guest's own tracefs onto a scratch disk, which this script then reads back.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${EVENTFSD_CACHE_DIR:-$REPO/.cache/guest}
OUT=${1:?usage: scripts/guest-catalog.sh OUTPUT}
for f in "$CACHE/kernel/vmlinuz" "$CACHE/initramfs.cpio.gz"; do
    [ -s "$f" ] || { echo "guest-catalog: $f missing; run scripts/prepare-guest.sh" >&2; exit 2; }
done

cargo build --release -q -p eventfs-core --bin eventfs-snapshot
WORK=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-guestcat.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/root"
(cd "$WORK/root" && gzip -dc "$CACHE/initramfs.cpio.gz" | cpio -id --quiet)
SNAP=$REPO/target/release/eventfs-snapshot
install -D -m 0755 "$SNAP" "$WORK/root/usr/bin/eventfs-snapshot"
for lib in $(ldd "$SNAP" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    [ -e "$WORK/root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$WORK/root$lib"
done
# The image goes to the scratch disk as "<length>\n" in the first sector, then the bytes.
cat >"$WORK/root/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/eventfsd/ORDER); do
    [ -e /lib/modules/eventfsd/$m.ko ] && insmod /lib/modules/eventfsd/$m.ko
done
n=0; while [ ! -e /dev/vda ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
mount -t tracefs nodev /sys/kernel/tracing
if eventfs-snapshot --tracefs /sys/kernel/tracing /tmp/cat.evcat; then
    printf '%s\n' "$(wc -c </tmp/cat.evcat)" | dd of=/dev/vda bs=512 count=1 conv=sync 2>/dev/null
    dd if=/tmp/cat.evcat of=/dev/vda bs=512 seek=1 conv=fsync 2>/dev/null
    echo "@@GUESTCAT DONE@@"
else
    echo "@@GUESTCAT FAILED@@"
fi
sync
poweroff -f
EOF
chmod 0755 "$WORK/root/init"
(cd "$WORK/root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    gzip -1 >"$WORK/initrd.gz"
truncate -s 16M "$WORK/disk"
timeout 300 qemu-system-x86_64 -accel tcg -m 1G -smp 1 -nodefaults -no-user-config -display none \
    -drive "file=$WORK/disk,format=raw,if=virtio" -kernel "$CACHE/kernel/vmlinuz" \
    -initrd "$WORK/initrd.gz" -append "console=ttyS0 quiet panic=-1" -no-reboot \
    -serial "file:$WORK/console" -monitor none </dev/null
grep -q '@@GUESTCAT DONE@@' "$WORK/console" || {
    cat "$WORK/console" >&2
    echo "guest-catalog: the guest did not write a catalog" >&2
    exit 1
}
LEN=$(head -c 512 "$WORK/disk" | tr -d '\000' | head -n1)
dd if="$WORK/disk" bs=512 skip=1 iflag=count_bytes count="$LEN" status=none >"$OUT"
echo "guest-catalog: $OUT ($LEN bytes, kernel $(cat "$CACHE/kernel/KVER"))"
