#!/bin/sh
# description: Debian's trace-cmd 3.1.6 (libtracefs 1.6.4) traces through the tree
# Checks, with the tree stacked over the guest's tracefs by eventfsd-mount (libtracefs accepts
# only a tracefs line in /proc/mounts): `list -e` lists available_events; `stat` runs;
# `record -e sched:sched_switch -e sched:sched_wakeup sleep 2` (per-CPU recorders splicing
# trace_pipe_raw) writes a trace.dat whose `report` has both events with plausible fields,
# as many records as the per-CPU stats saved in trace.dat count (read + still buffered); `record --nosplice` (plain reads)
# works too; `stream` prints records live and stops on SIGINT; `reset` clears a filter and an
# enable and turns tracing back on. (`record -B` is 18-trace-cmd-instance.sh.)
# Native: the same commands against the guest kernel's own tracefs.
. /guest-tests/_lib.sh
desc "trace-cmd list, stat, record, report, stream, reset"
need_command trace-cmd
T=/sys/kernel/tracing
stack_for_libtracefs

n=$(trace-cmd list -e 2>&1 | wc -l)
expect_eq "list -e lists available_events" "$(wc -l <$T/available_events)" "$n"
if trace-cmd stat >stat.txt 2>&1; then ok "stat runs"; else fail "stat runs: $(show "$(tail -3 stat.txt)")"; fi

cpus=$(ls -d $T/per_cpu/cpu* | wc -l)
t0=$(cut -d' ' -f1 /proc/uptime)
lap() { echo "  # $1 at $(awk -v a="$t0" '{ printf "%.1f", $1 - a }' /proc/uptime)s"; }
# report_checks FILE WHAT: both events, plausible fields, CPUs in range, time ordered per CPU
report_checks() {
    sw=$(grep -c 'sched_switch:.* ==> ' "$1")
    wk=$(grep -c 'sched_wakeup:' "$1")
    if [ "$sw" -ge 3 ] && [ "$wk" -ge 3 ]; then
        ok "$2: sched_switch and sched_wakeup records ($sw, $wk)"
    else
        fail "$2: sched_switch and sched_wakeup records ($sw, $wk): $(show "$(head -5 "$1")")"
    fi
    # `COMM-PID [CPU] TS: sched_switch: PREV:PID [PRIO] STATE ==> NEXT:PID [PRIO]`
    bad=$(awk -v cpus="$cpus" '
        / sched_switch: / {
            if ($0 !~ /sched_switch: +[^ ]+:[0-9]+ \[[0-9]+\] [A-Za-z+|]+ ==> [^ ]+:[0-9]+ \[[0-9]+\]/) { why("fields"); next }
        }
        / sched_(switch|wakeup): / {
            if (match($0, /\[[0-9][0-9][0-9]\]/) == 0) { why("no CPU"); next }
            cpu = substr($0, RSTART + 1, 3) + 0
            if (cpu >= cpus) { why("CPU out of range"); next }
            if (match($0, /[0-9]+\.[0-9]+: /) == 0) { why("no time stamp"); next }
            ts = substr($0, RSTART, RLENGTH - 2) + 0
            if (ts < last[cpu]) why("time goes back")
            last[cpu] = ts
        }
        function why(reason) { bad++; if (bad <= 3) print reason ": " $0 > "/dev/stderr" }
        END { print bad + 0 }' "$1" 2>"$TMPD/bad.txt")
    expect_eq "$2: fields, CPUs (< $cpus) and per-CPU time order plausible" 0 "$bad"
    [ "$bad" = 0 ] || cat "$TMPD/bad.txt"
}
# The per-CPU stats trace-cmd saved in trace.dat after tracing stopped and before its last
# flush: the records read so far plus those still in the buffer are every record.
read_events() {
    trace-cmd report --stat 2>&1 | awk '/^read events:/ { n += $3 } /^entries:/ { n += $2 } END { print n + 0 }'
}

lap record
if trace-cmd record -e sched:sched_switch -e sched:sched_wakeup sleep 2 >record.log 2>&1; then
    ok "record exits 0"
else
    fail "record exits 0: $(show "$(tail -3 record.log)")"
fi
read=$(read_events)
if trace-cmd report >report.txt 2>report.err; then ok "report reads trace.dat"; else fail "report: $(show "$(tail -3 report.err)")"; fi
report_checks report.txt record
records=$(grep -c ' sched_\(switch\|wakeup\): ' report.txt)
expect_eq "report has every record the saved per-CPU stats count (read + entries)" "$read" "$records"
[ "$read" = "$records" ] || trace-cmd report --stat 2>&1 | tail -25

lap "record --nosplice"
rm -f trace.dat
if trace-cmd record --nosplice -e sched:sched_switch -e sched:sched_wakeup sleep 2 >record2.log 2>&1 &&
    trace-cmd report >report2.txt 2>&1; then
    ok "record --nosplice and report"
else
    fail "record --nosplice and report: $(show "$(tail -3 record2.log)")"
fi
report_checks report2.txt "record --nosplice"

lap stream
# trace-cmd installs its SIGINT handler before it forks the per-CPU recorders, and a child
# forked after the signal exits at once and leaves the parent polling forever: send SIGINT
# only once a recorder runs (reading every format first takes a while under TCG).
trace-cmd stream -e sched:sched_switch >stream.txt 2>&1 &
sp=$!
i=0
while [ -z "$(ps -o ppid,comm | awk -v p=$sp '$1 == p && $2 == "trace-cmd"')" ] && [ $i -lt 600 ]; do
    sleep 0.2
    i=$((i + 1))
done
sleep 3
kill -INT $sp
i=0
while kill -0 $sp 2>/dev/null && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
if kill -0 $sp 2>/dev/null; then
    fail "stream stops on SIGINT"
    kill -9 $sp
else
    ok "stream stops on SIGINT"
fi
n=$(grep -c 'sched_switch:' stream.txt)
if [ "$n" -ge 1 ]; then ok "stream prints records ($n)"; else fail "stream prints records: $(show "$(head -5 stream.txt)")"; fi

lap reset
echo 'prev_pid != 0' >$T/events/sched/sched_switch/filter
echo 1 >$T/events/sched/sched_switch/enable
echo 0 >$T/tracing_on
if trace-cmd reset >reset.log 2>&1; then ok "reset exits 0"; else fail "reset exits 0: $(show "$(tail -3 reset.log)")"; fi
expect_eq "reset clears the filter" none "$(cat $T/events/sched/sched_switch/filter)"
expect_eq "reset disables the event" 0 "$(cat $T/events/sched/sched_switch/enable)"
expect_eq "reset turns tracing on" 1 "$(cat $T/tracing_on)"

echo 0 >$T/events/enable
echo >$T/trace
unstack_for_libtracefs
finish
