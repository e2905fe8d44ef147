#!/bin/sh
# description: the snapshot buffer: snapshot, per_cpu/cpuN/snapshot and snapshot_raw, the trigger
# Needs a kernel with snapshots (a top-level `snapshot` file): the guest kernel natively, or
# eventfsd serving its catalog (crates/eventfs-core/catalog/debian-6.1.evcat). Checks: the
# files and their modes (also in an instance); the freed and allocated texts; echo 1 swaps the
# main buffer into the snapshot, echo 2 clears it, echo 0 frees it, other numbers only clear,
# non-numbers are EINVAL; the per-CPU files (their own commands; like Debian's kernel, without
# CONFIG_RING_BUFFER_ALLOW_SWAP, they neither free nor swap); snapshot_raw gives a page and
# consumes it; the snapshot trigger allocates the buffer and swaps when its event fires.
. /guest-tests/_lib.sh
desc "snapshot buffer"
if [ ! -e snapshot ]; then
    echo "  SKIP: no snapshot file: the kernel has no CONFIG_TRACER_SNAPSHOT"
    exit 77
fi
fork=events/sched/sched_process_fork
# The snapshot trigger's event: forks by this shell (natively) or the simulation's (2/s).
work() {
    /bin/true
    sleep 0.2
    is_native || sleep 1.5
}
# the text without its `#` lines
body() { grep -v '^#' "$1"; }
freed="# tracer: nop|#|#|# * Snapshot is freed *|#|# Snapshot commands:|# echo 0 > snapshot : Clears and frees snapshot buffer|# echo 1 > snapshot : Allocates snapshot buffer, if not already allocated.|#                      Takes a snapshot of the main buffer.|# echo 2 > snapshot : Clears snapshot buffer (but does not allocate or free)|#                      (Doesn't have to be '2' works with any number that|#                       is not a '0' or '1')|"
allocated=$(echo "$freed" | sed 's/Snapshot is freed/Snapshot is allocated/')
cpu_allocated="# tracer: nop|#|#|# * Snapshot is allocated *|#|# Snapshot commands:|# echo 0 > snapshot : Invalid for per_cpu snapshot file.|# echo 1 > snapshot : Not supported with this kernel.|#                     Must use main snapshot file to allocate.|# echo 2 > snapshot : Clears this cpu's snapshot buffer (but does not allocate)|#                      (Doesn't have to be '2' works with any number that|#                       is not a '0' or '1')|"
text() { tr '\n' '|' <"$1"; }

expect_mode snapshot 640
expect_mode per_cpu/cpu0/snapshot 640
expect_mode per_cpu/cpu0/snapshot_raw 440
expect_eq "the trigger help lists snapshot" "# traceon traceoff snapshot stacktrace enable_event disable_event enable_hist disable_hist hist" \
    "$(sed -n 2p $fork/trigger)"
echo 0 >snapshot
expect_eq "freed: the commands" "$freed" "$(text snapshot)"
echo >trace
expect_write_ok 1 snapshot
expect_eq "allocated, empty: the commands" "$allocated" "$(text snapshot)"
expect_eq "per_cpu/cpu0/snapshot, empty: its own commands" "$cpu_allocated" "$(text per_cpu/cpu0/snapshot)"
echo snapshot-marker-57 >trace_marker
expect_write_ok 1 snapshot
expect_eq "the marker moved into the snapshot" "1" "$(body snapshot | grep -c 'tracing_mark_write: snapshot-marker-57$')"
expect_eq "the snapshot's header counts it" "1" "$(grep -c '^# entries-in-buffer/entries-written: 1/1 ' snapshot)"
expect_eq "and left the main buffer" "0" "$(body trace | grep -c snapshot-marker-57)"
cpu=""
for d in per_cpu/cpu*; do
    if body $d/snapshot | grep -q snapshot-marker-57; then cpu=$d; fi
done
if [ -n "$cpu" ]; then ok "one CPU's snapshot file has it ($cpu)"; else fail "one CPU's snapshot file has it"; fi
for v in 0 1; do
    try_write $v per_cpu/cpu0/snapshot
    expect_eq "a per-CPU snapshot file cannot take $v" "1 sh: write error: Invalid argument" "$W_RC $W_ERR"
done
echo snapshot-marker-57b >trace_marker
expect_write_ok 1 snapshot
expect_eq "a second swap brings the previous snapshot back" "1" "$(body trace | grep -c 'snapshot-marker-57$')"
expect_eq "and takes the new one" "1" "$(body snapshot | grep -c 'snapshot-marker-57b$')"
for d in per_cpu/cpu*; do
    if body $d/snapshot | grep -q snapshot-marker-57b; then cpu=$d; fi
done
[ -n "$cpu" ] && expect_eq "$cpu/snapshot_raw gives a page" "4096" \
    "$(dd if=$cpu/snapshot_raw bs=4096 count=1 2>/dev/null | wc -c)"
expect_eq "which it consumed" "0" "$(body snapshot | grep -c 'snapshot-marker-57b$')"
expect_write_ok 2 snapshot
expect_eq "2 clears it" "$allocated" "$(text snapshot)"
expect_write_ok 0 snapshot
expect_eq "0 frees it" "$freed" "$(text snapshot)"
expect_write_ok 5 snapshot
expect_eq "another number only clears: still freed" "$freed" "$(text snapshot)"
for bad in abc ''; do
    try_write "$bad" snapshot
    expect_eq "'$bad' is not a number" "1 sh: write error: Invalid argument" "$W_RC $W_ERR"
done

# the trigger allocates the buffer, and its event swaps (the marker was written before it)
echo >trace
echo snapshot-marker-57c >trace_marker
expect_write_ok 'snapshot:1' $fork/trigger
work
expect_eq "the trigger fired once" "snapshot:count=0" "$(cat $fork/trigger)"
expect_eq "its swap took the marker" "1" "$(body snapshot | grep -c 'snapshot-marker-57c$')"
expect_eq "out of the main buffer" "0" "$(body trace | grep -c 'snapshot-marker-57c$')"
echo '!snapshot' >$fork/trigger
expect_eq "the trigger removed" "# Available triggers:" "$(head -1 $fork/trigger)"
expect_eq "the buffer stays allocated after it" "# * Snapshot is allocated *" "$(echo 2 >snapshot; sed -n 4p snapshot)"
echo 0 >snapshot

mkdir instances/snap57
expect_mode instances/snap57/snapshot 640
expect_exists instances/snap57/per_cpu/cpu0/snapshot_raw
expect_eq "an instance's snapshot is its own" "$freed" "$(text instances/snap57/snapshot)"
rmdir instances/snap57
finish
