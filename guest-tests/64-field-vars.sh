#!/bin/sh
# description: field variables: an action's parameter that is a field of another event
# Needs histograms and synthetic events: the guest kernel natively, or eventfsd serving its
# catalog (crates/eventfs-core/catalog/debian-6.1.evcat). A parameter SYSTEM.EVENT.FIELD of
# another event (or, for onmatch(), a FIELD the firing event lacks) is held by a histogram
# the kernel makes on that event with the keys and filter of the first histogram there whose
# keys match: listed in its trigger file, busy while the histogram that made it exists,
# removed with it. Checks: its listing; the generated events carry the field; the 6.1 log of
# a plain field's failed look on the firing event; onmax() cannot reach another event by a
# plain field; a two-part name is refused with nothing logged.
. /guest-tests/_lib.sh
desc "field variables"
need_files "synthetic events or histograms" synthetic_events events/sched/sched_switch/hist
waking=events/sched/sched_waking
switch=events/sched/sched_switch
ts0='hist:keys=pid:ts0=common_timestamp.usecs'
lat='hist:keys=next_pid:lat=common_timestamp.usecs-$ts0:onmatch(sched.sched_waking).wl64($lat,next_pid,sched.sched_waking.prio)'
plain='hist:keys=next_pid:lat=common_timestamp.usecs-$ts0:onmatch(sched.sched_waking).wl64($lat,next_pid,prio)'
hidden='hist:keys=pid:vals=hitcount:synthetic_prio=prio:sort=hitcount:size=2048 [active]'
cleanup() {
    [ -e events/synthetic/wl64 ] && echo 0 >events/synthetic/wl64/enable
    for t in "$lat" "$plain"; do echo "!$t" >>$switch/trigger 2>/dev/null; done
    echo "!$ts0" >>$waking/trigger 2>/dev/null
    echo '!wl64 u64 lat; pid_t pid; int prio' >>synthetic_events 2>/dev/null
    echo >trace
}
cleanup
echo 'wl64 u64 lat; pid_t pid; int prio' >>synthetic_events
echo "$ts0" >>$waking/trigger
echo >error_log
W_ERR=$( { echo "$lat" >>$switch/trigger; } 2>&1)
expect_eq "a qualified field of the matched event is a parameter" "" "$W_ERR"
expect_eq "nothing is logged" "" "$(cat error_log)"
expect_eq "its histogram is listed on that event, after the one it copied" \
    "hist:keys=pid:vals=hitcount:ts0=common_timestamp.usecs:sort=hitcount:size=2048:clock=global [active]|$hidden|" \
    "$(grep -v '^#' $waking/trigger | tr '\n' '|')"
W_ERR=$( { echo '!hist:keys=pid:synthetic_prio=prio' >>$waking/trigger; } 2>&1)
expect_eq "it is busy while the histogram that made it exists" "sh: write error: Device or resource busy" "$W_ERR"
expect_synth_records wl64 'lat=[0-9]+ pid=[0-9]+ prio=[0-9]+' 'lat=N pid=N prio=N'
echo "!$lat" >>$switch/trigger
expect_eq "it goes with the histogram that made it" \
    "hist:keys=pid:vals=hitcount:ts0=common_timestamp.usecs:sort=hitcount:size=2048:clock=global [active]|" \
    "$(grep -v '^#' $waking/trigger | tr '\n' '|')"

# A plain field the firing event lacks: 6.1 logs its look there, then finds it on the matched
# event; the command succeeds.
echo >error_log
W_ERR=$( { echo "$plain" >>$switch/trigger; } 2>&1)
expect_eq "a plain field of the matched event is a parameter" "" "$W_ERR"
expect_eq "6.1 logs the failed look on the firing event" \
    "hist:sched:sched_switch: error: Couldn't find field|hist:sched:sched_switch: error: Couldn't parse field variable|" \
    "$(sed -n 's/^\[ *[0-9.]*\] //p' error_log | tr '\n' '|')"
expect_eq "its histogram is listed" "$hidden" "$(grep -v '^#' $waking/trigger | tail -1)"
echo "!$plain" >>$switch/trigger

# onmax() has no matched event: a plain field of another event is not found there.
expect_refused 'hist:keys=next_pid:p=2*next_prio:onmax($p).wl64($p,next_pid,prio)' $switch/trigger 'Invalid argument' \
    "hist:sched:sched_switch: error: Couldn't find field
hist:sched:sched_switch: error: Couldn't parse field variable" 28
# Two parts name nothing: refused, nothing logged.
expect_refused 'hist:keys=next_pid:onmatch(sched.sched_waking).wl64($ts0,next_pid,waking.prio)' $switch/trigger 'Invalid argument' "" ""
expect_eq "a two-part parameter logs nothing" "" "$(cat error_log)"
cleanup
expect_eq "every trigger went again" "" "$(grep -v '^#' $switch/trigger $waking/trigger)"
finish
