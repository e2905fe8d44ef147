#!/bin/sh
# description: guest/eventfsd-mount stacks the tree where libtracefs looks for it
# Checks: `eventfsd-mount tracefs DIR` on a fresh directory leaves /proc/mounts with a tracefs
# line for DIR followed by a virtiofs line for DIR; the first tracefs line for DIR is the one
# libtracefs takes, and DIR then resolves to the virtio-fs tree (FUSE's statfs magic, the
# same catalog as the main mount); a second call changes nothing; `-u` removes both layers.
# Needs a virtio-fs device: eventfsd only.
. /guest-tests/_lib.sh
desc "discovery: guest tracefs under the virtio-fs tree at one path"
if is_native; then
    skip_native "needs eventfsd's virtio-fs device"
    finish
fi
d=$TMPD/tracing
mkdir -p "$d"
eventfsd-mount tracefs "$d" 2>"$TMPD/err"
expect_eq "eventfsd-mount exits 0 without messages" "0 " "$? $(cat "$TMPD/err")"
types=$(awk -v d="$d" '$2 == d { printf "%s ", $3 }' /proc/mounts)
expect_eq "mounts at $d, in order" "tracefs virtiofs " "$types"
# libtracefs's rule: the first /proc/mounts line of type tracefs names the tracing dir.
found=$(awk -v d="$d" '$3 == "tracefs" && $2 == d { print $2; exit }' /proc/mounts)
expect_eq "the tracefs line libtracefs accepts names $d" "$d" "$found"
expect_eq "$d resolves to the virtio-fs tree (FUSE statfs magic)" "65735546" "$(stat -f -c %t "$d" 2>&1)"
expect_eq "$d serves the same events as the main mount" \
    "$(ls /sys/kernel/tracing/events | wc -l)" "$(ls "$d/events" | wc -l)"
expect_eq "sched_switch/format is eventfsd's" \
    "$(cat /sys/kernel/tracing/events/sched/sched_switch/format)" "$(cat "$d/events/sched/sched_switch/format")"
eventfsd-mount tracefs "$d"
expect_eq "a second call adds no mount" "tracefs virtiofs " "$(awk -v d="$d" '$2 == d { printf "%s ", $3 }' /proc/mounts)"
eventfsd-mount -u "$d"
expect_eq "-u removes both layers" "" "$(awk -v d="$d" '$2 == d { printf "%s ", $3 }' /proc/mounts)"
eventfsd-mount -u "$d" 2>/dev/null # nothing left mounted under $TMPD, even after a failure
finish
