#!/bin/sh
# description: guest/eventfsd-mount stacks the tree where libtracefs looks for it
# Checks: `eventfsd-mount tracefs DIR` on a fresh directory leaves /proc/mounts with a tracefs
# line for DIR followed by a virtiofs line for DIR; the first tracefs line for DIR is the one
# libtracefs takes, and DIR then resolves to the virtio-fs tree (FUSE's statfs magic, the
# same catalog as the main mount); a second call changes nothing; `-u` removes both layers; the
# README's /etc/fstab line (type eventfsd, through mount.eventfsd) stacks the same pair.
# Needs a virtio-fs device: eventfsd only.
. /guest-tests/_lib.sh
desc "discovery: guest tracefs under the virtio-fs tree at one path"
if is_native; then
    skip_native "needs eventfsd's virtio-fs device"
    finish
fi
# Outside $TMPD, which finish removes: never an rm -rf through a mount.
d=/tmp/discovery.$$
mkdir -p "$d"
eventfsd-mount tracefs "$d" 2>"$TMPD/err"
expect_eq "eventfsd-mount exits 0 without messages" "0 " "$? $(cat "$TMPD/err")"
types=$(awk -v d="$d" '$2 == d { printf "%s ", $3 }' /proc/mounts)
expect_eq "mounts at $d, in order" "tracefs virtiofs " "$types"
# libtracefs's rule: the first /proc/mounts line of type tracefs names the tracing dir.
found=$(awk -v d="$d" '$3 == "tracefs" && $2 == d { print $2; exit }' /proc/mounts)
expect_eq "the tracefs line libtracefs accepts names $d" "$d" "$found"
expect_eq "$d resolves to the virtio-fs tree (FUSE statfs magic)" "65735546" "$(stat -f -c %t "$d" 2>&1)"
# The guest's own tracefs (6.1) has fewer systems than the daemon's catalog: the top layer
# answers, not the tracefs underneath.
expect_eq "$d lists the daemon's systems" \
    "$(ls /sys/kernel/tracing/events | wc -l)" "$(ls "$d/events" | wc -l)"
eventfsd-mount tracefs "$d"
expect_eq "a second call adds no mount" "tracefs virtiofs " "$(awk -v d="$d" '$2 == d { printf "%s ", $3 }' /proc/mounts)"
# A plain virtio-fs mount (the README's first recipe) is replaced by the stacked one.
eventfsd-mount -u "$d"
mount -t virtiofs tracefs "$d"
eventfsd-mount tracefs "$d"
expect_eq "a plain virtio-fs mount becomes the stacked pair" "tracefs virtiofs " "$(awk -v d="$d" '$2 == d { printf "%s ", $3 }' /proc/mounts)"
eventfsd-mount -u "$d"
expect_eq "-u removes both layers" "" "$(awk -v d="$d" '$2 == d { printf "%s ", $3 }' /proc/mounts)"

# The README's /etc/fstab line: type "eventfsd" makes mount(8) run mount.eventfsd, which
# stacks the same pair.
fstab=$TMPD/fstab
printf 'tracefs %s eventfsd defaults,nofail 0 0\n' "$d" >"$fstab"
mount -T "$fstab" "$d" 2>"$TMPD/err"
expect_eq "mount by an fstab line of type eventfsd exits 0 quietly" "0 " "$? $(cat "$TMPD/err")"
expect_eq "the fstab line stacks tracefs and virtiofs" "tracefs virtiofs " "$(awk -v d="$d" '$2 == d { printf "%s ", $3 }' /proc/mounts)"
expect_eq "the fstab mount serves the tree" "$(ls /sys/kernel/tracing/events | wc -l)" "$(ls "$d/events" | wc -l)"
eventfsd-mount -u "$d"
# util-linux's mount hands the helper every option (busybox keeps flags such as ro to
# itself): they reach the virtio-fs mount.
mount.eventfsd tracefs "$d" -n -o ro,noatime
expect_eq "helper options reach the virtio-fs mount" "ro" \
    "$(awk -v d="$d" '$2 == d && $3 == "virtiofs" { split($4, o, ","); print o[1] }' /proc/mounts)"
eventfsd-mount -u "$d"
# mount -a mounts it the same way (what a boot does).
mount -a -T "$fstab" 2>"$TMPD/err"
expect_eq "mount -a with the fstab line" "tracefs virtiofs " "$(awk -v d="$d" '$2 == d { printf "%s ", $3 }' /proc/mounts)"
eventfsd-mount -u "$d"
# Only an empty directory is removed: anything still mounted keeps it (and is left alone).
rmdir "$d" 2>/dev/null
finish
