#!/bin/sh
# description: what the kernel did is in the buffer before the next command runs
# Checks (also against the guest kernel's own tracefs, --mode native): an event enabled for a
# few milliseconds has records in `trace` at once; after `echo 0 > enable` the buffer stops
# growing; records are in time order; events enabled together interleave; a trace_marker
# lands after the records of the commands before it.
. /guest-tests/_lib.sh
desc "time model: effects visible before the next command"
sw=events/sched/sched_switch
count() { grep -v '^#' trace | grep -c " $1: "; }
expect_write_ok 1 tracing_on
expect_write_ok "" trace
# A short window: no waiting loop, the records must already be there.
echo 1 >$sw/enable
sleep 0.02
echo 0 >$sw/enable
n=$(count sched_switch)
if [ "$n" -gt 0 ]; then ok "sched_switch records of a 20 ms window ($n)"; else fail "sched_switch records of a 20 ms window: none"; fi
sleep 0.3
expect_eq "no record after the event was disabled" "$n" "$(count sched_switch)"
# Two events enabled together: both fire, in one time-ordered buffer.
expect_write_ok "" trace
echo 'sched:sched_switch sched:sched_wakeup' >set_event
sleep 0.2
echo >set_event
sw_n=$(count sched_switch)
wk_n=$(count sched_wakeup)
if [ "$sw_n" -gt 0 ] && [ "$wk_n" -gt 0 ]; then ok "both events recorded ($sw_n, $wk_n)"; else fail "both events recorded: sched_switch $sw_n, sched_wakeup $wk_n"; fi
# The timestamp column (the field ending in ':' before the event name) never goes back.
if grep -v '^#' trace | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+:$/) { t = $i + 0; if (t < last) bad++; last = t; break } } END { exit bad > 0 }'; then
    ok "timestamps never go back"
else
    fail "timestamps never go back"
fi
# A marker written after a window comes after that window's records.
expect_write_ok "" trace
echo 1 >$sw/enable
sleep 0.05
echo "time-model-checkpoint" >trace_marker
echo 0 >$sw/enable
marker=$(grep -c 'tracing_mark_write: time-model-checkpoint' trace)
before=$(grep -v '^#' trace | sed '/time-model-checkpoint/,$d' | grep -c ' sched_switch: ')
if [ "$marker" = 1 ] && [ "$before" -gt 0 ]; then ok "marker after $before records of the window before it"; else fail "marker after the window's records: $marker markers, $before switches before it"; fi
expect_write_ok "" trace
finish
