#!/bin/sh
# description: trace-cmd record -B NAME traces in an instance it creates and removes
# Checks: `trace-cmd record -B evtb -e sched:sched_switch sleep 2` (mkdir instances/evtb, the
# instance's per-CPU trace_pipe_raw, rmdir at the end) gives a report with the instance's
# records, and the instance is gone afterwards. With the host source the instance is a host
# instance beside the daemon's.
. /guest-tests/_lib.sh
desc "trace-cmd record -B"
need_command trace-cmd
T=/sys/kernel/tracing
stack_for_libtracefs
if trace-cmd record -B evtb -e sched:sched_switch sleep 2 >record.log 2>&1 &&
    trace-cmd report >report.txt 2>&1; then
    ok "record -B evtb and report"
else
    fail "record -B evtb and report: $(show "$(tail -3 record.log)")"
fi
n=$(grep -c 'sched_switch:' report.txt)
if [ "$n" -ge 1 ]; then ok "record -B: instance records ($n)"; else fail "record -B: instance records: $(show "$(head -5 report.txt)")"; fi
expect_absent $T/instances/evtb "record -B removes its instance"

unstack_for_libtracefs
finish
