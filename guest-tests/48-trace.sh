#!/bin/sh
# description: the trace buffer: trace, filters on records, trace_marker, trace_pipe, traceoff
# Checks: an enabled event shows up in `trace` as ftrace text lines; `echo > trace` clears it;
# with a filter on prev_pid every new line has prev_pid=0; a trace_marker write appears as
# tracing_mark_write; trace_pipe returns (and consumes) lines; a traceoff trigger on an event
# turns tracing_on to 0 once the event fires.
. /guest-tests/_lib.sh
desc "trace, filtered records, trace_marker, trace_pipe, traceoff trigger"
sw=events/sched/sched_switch
lines() { grep -v '^#' trace | grep -c " $1: "; }
# wait_lines EVENT: up to 10 s for at least one line (records arrive at the producer's rate)
wait_lines() {
    _i=0
    while [ "$(lines "$1")" -eq 0 ] && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
}
expect_write_ok 1 tracing_on
expect_write_ok "" trace
expect_write_ok 1 $sw/enable
wait_lines sched_switch
n=$(lines sched_switch)
if [ "$n" -gt 0 ]; then ok "sched_switch lines in trace ($n)"; else fail "sched_switch lines in trace: none"; fi
head -3 trace | grep -q '^# tracer: nop' && ok "trace header" || fail "trace header: $(head -1 trace)"
expect_write_ok 'prev_pid == 0' $sw/filter
expect_write_ok "" trace
wait_lines sched_switch
sleep 1
n=$(lines sched_switch)
bad=$(grep -v '^#' trace | grep ' sched_switch: ' | grep -vc ' prev_pid=0 ')
if [ "$n" -gt 0 ] && [ "$bad" -eq 0 ]; then ok "filter keeps only prev_pid=0 ($n lines)"; else fail "filter keeps only prev_pid=0: $n lines, $bad others"; fi
expect_write_ok 0 $sw/filter
expect_write_ok 0 $sw/enable
expect_write_ok "" trace
expect_write_ok "hello from the guest" trace_marker
if grep -q 'tracing_mark_write: hello from the guest' trace; then ok "trace_marker text in trace"; else fail "trace_marker text in trace"; fi
got=$(dd if=trace_pipe bs=65536 count=1 2>/dev/null)
case "$got" in *"hello from the guest"*) ok "trace_pipe returns the marker" ;; *) fail "trace_pipe returns the marker: '$(show "$got")'" ;; esac
wk=events/sched/sched_wakeup
expect_write_ok traceoff $wk/trigger
expect_write_ok 1 $wk/enable
i=0
while [ "$(cat tracing_on)" = 1 ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
expect_eq "tracing_on after the traceoff trigger fired" 0 "$(cat tracing_on)"
expect_write_ok 0 $wk/enable
expect_write_ok '!traceoff' $wk/trigger
expect_write_ok 1 tracing_on
expect_write_ok "" trace
finish
