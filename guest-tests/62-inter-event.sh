#!/bin/sh
# description: inter-event histograms: variables, onmatch().trace() and synthetic events
# Needs histograms and synthetic events: the guest kernel natively, or eventfsd serving its
# catalog (crates/eventfs-core/catalog/debian-6.1.evcat). The kernel documentation's wakeup
# latency: sched_waking saves a timestamp per pid, sched_switch subtracts it when that pid is
# switched in and generates wakeup_latency; then an onmax that saves fields and one that
# takes snapshots. Checks: the triggers read back in the kernel's
# normalised form; wakeup_latency records appear with a latency, the pid and the comm; the
# switch histogram counts only switches that matched a waking; references to a missing
# variable or synthetic event, and a wrong parameter count, are refused with the kernel's
# error_log entry; the triggers and the event go again.
. /guest-tests/_lib.sh
desc "inter-event histograms"
need_files "synthetic events or histograms" synthetic_events events/sched/sched_switch/hist
waking=events/sched/sched_waking
switch=events/sched/sched_switch
error() { # trigger message caret
    expect_refused "$1" $switch/trigger 'Invalid argument' "hist:sched:sched_switch: error: $2" "$3"
}
cleanup() {
    [ -e events/synthetic/wakeup_latency ] && echo 0 >events/synthetic/wakeup_latency/enable
    echo '!hist:keys=next_pid:wakeup_lat=common_timestamp.usecs-$ts0:onmatch(sched.sched_waking).wakeup_latency($wakeup_lat,next_pid,next_comm)' >>$switch/trigger 2>/dev/null
    echo '!hist:keys=pid:ts0=common_timestamp.usecs' >>$waking/trigger 2>/dev/null
    echo >synthetic_events
    echo >trace
}
cleanup
expect_write_ok 'wakeup_latency u64 lat; pid_t pid; char comm[16]' synthetic_events
expect_write_ok 'hist:keys=pid:ts0=common_timestamp.usecs' $waking/trigger
expect_write_ok 'hist:keys=next_pid:wakeup_lat=common_timestamp.usecs-$ts0:onmatch(sched.sched_waking).wakeup_latency($wakeup_lat,next_pid,next_comm)' $switch/trigger
expect_eq "the waking trigger reads back" 'hist:keys=pid:vals=hitcount:ts0=common_timestamp.usecs:sort=hitcount:size=2048:clock=global [active]' "$(cat $waking/trigger)"
expect_eq "the switch trigger reads back" 'hist:keys=next_pid:vals=hitcount:wakeup_lat=common_timestamp.usecs-$ts0:sort=hitcount:size=2048:clock=global:onmatch(sched.sched_waking).wakeup_latency($wakeup_lat,next_pid,next_comm) [active]' "$(cat $switch/trigger)"
expect_synth_records wakeup_latency 'lat=[0-9]+ pid=[0-9]+ comm=[^ ]+' 'lat=N pid=N comm=NAME'
hits=$(sed -n 's/^    Hits: //p' $switch/hist)
if [ "$hits" -ge "$n" ] && [ "$n" -gt 0 ]; then ok "the switch histogram counted the matched switches ($hits)"; else fail "the switch histogram counted the matched switches: $hits for $n events"; fi

# A missing variable is logged twice, as a variable and then as a field.
error 'hist:keys=next_pid:lat2=common_timestamp.usecs-$nosuch62' "Couldn't find variable
hist:sched:sched_switch: error: Couldn't find field" 48
error 'hist:keys=next_pid:onmatch(sched.sched_waking).nosynth62(next_pid)' "Couldn't find synthetic event" 47
error 'hist:keys=next_pid:onmatch(sched.sched_waking).wakeup_latency($nosuch62,next_pid,next_comm)' "Couldn't find param" 63
# Parameters are checked in order, then counted.
error 'hist:keys=next_pid:onmatch(sched.sched_waking).wakeup_latency(next_pid)' "Param type doesn't match synthetic event field type" 10
error 'hist:keys=next_pid:onmatch(sched.sched_waking).wakeup_latency($ts0,next_pid)' "Param count doesn't match synthetic event field count" 47

W_ERR=$( { echo '!hist:keys=pid:ts0=common_timestamp.usecs' >>$waking/trigger; } 2>&1)
expect_eq "a histogram whose variable another reads is busy" "sh: write error: Device or resource busy" "$W_ERR"
W_ERR=$( { echo >synthetic_events; } 2>&1)
case "$W_ERR" in
*"Device or resource busy") ok "a synthetic event an action uses is busy" ;;
*) fail "a synthetic event an action uses is busy: $(show "$W_ERR")" ;;
esac
cleanup
# onmax: per entry, the largest value of a variable and the fields saved when it was seen.
onmax='hist:keys=next_pid:prio=next_prio:onmax($prio).save(next_comm,prev_pid)'
expect_write_ok "$onmax" $switch/trigger
expect_eq "an onmax trigger reads back" 'hist:keys=next_pid:vals=hitcount:prio=next_prio:sort=hitcount:size=2048:onmax($prio).save(next_comm,prev_pid) [active]' "$(cat $switch/trigger)"
sleep 0.3
cat $switch/hist >"$TMPD/hist"
echo "!$onmax" >>$switch/trigger
n=$(grep -c '^{' "$TMPD/hist")
m=$(grep -c '^	max: ' "$TMPD/hist")
if [ "$n" -gt 0 ] && [ "$m" = "$n" ]; then ok "each entry has its max line ($n)"; else fail "each entry has its max line: $n entries, $m max lines"; fi
bad=$(grep '^	max: ' "$TMPD/hist" | grep -Ev '^	max: {1,10}[0-9]+  next_comm: .{32}  prev_pid: {1,10}[0-9]+$' | head -1)
expect_eq "max lines read 'max: N  next_comm: COMM  prev_pid: N'" "" "$bad"
# onmax().snapshot(): no per-entry block; the hist file tells the last snapshot's value and key.
snapact='hist:keys=next_pid:p=next_prio:onmax($p).snapshot()'
expect_write_ok "$snapact" $switch/trigger
sleep 0.3
cat $switch/hist >"$TMPD/hist"
echo "!$snapact" >>$switch/trigger
echo 0 >snapshot
if grep -qx 'Snapshot taken (see tracing/snapshot).  Details:' "$TMPD/hist"; then ok "the hist file tells of the snapshot"; else fail "the hist file tells of the snapshot: $(show "$(tail -8 "$TMPD/hist")")"; fi
expect_eq "with its value and key" 1 "$(grep -Ec '^	triggering value \{ onmax\(\$p\) \}: {1,10}[0-9]+	triggered by event with key: \{ next_pid: {1,10}[0-9]+ \}$' "$TMPD/hist")"
expect_eq "and no per-entry block" 0 "$(grep -c '^	max:' "$TMPD/hist")"
expect_eq "the triggers go" "# Available triggers:" "$(head -1 $switch/trigger)"
expect_eq "and the synthetic event" "" "$(cat synthetic_events)"
finish
