#!/bin/sh
# description: a perfetto-style reader parses per_cpu/cpuN/trace_pipe_raw pages
# Checks: tracefs-rawread (an independent parser: header_page and the event formats read
# from the tree, nothing from eventfsd) opens every per_cpu/cpuN/trace_pipe_raw with
# O_NONBLOCK, reads one page per CPU every 100 ms and decodes every page; the records it
# decodes are exactly the ones `trace` showed just before (same count; each one's time stamp,
# CPU and fields found in a `trace` line); afterwards the buffer is empty (the pages were
# consumed) and a non-blocking read gives EAGAIN.
. /guest-tests/_lib.sh
desc "perfetto-style raw reader against trace"
need_command tracefs-rawread
expect_write_ok 0 tracing_on
expect_write_ok "" trace
expect_write_ok 1 events/sched/sched_switch/enable
expect_write_ok 1 events/sched/sched_wakeup/enable
expect_write_ok 1 tracing_on
sleep 2
expect_write_ok 0 tracing_on
cat trace >"$TMPD/trace.txt"
text=$(grep -vc '^#' "$TMPD/trace.txt")
if tracefs-rawread --event sched/sched_switch --event sched/sched_wakeup \
    --idle-rounds 3 --max-ms 30000 . >"$TMPD/raw.txt" 2>"$TMPD/raw.err"; then
    ok "every page decodes ($(cat "$TMPD/raw.err"))"
else
    fail "every page decodes: $(show "$(cat "$TMPD/raw.err")")"
fi
raw=$(grep -c '^cpu=' "$TMPD/raw.txt")
if [ "$raw" -gt 0 ] && [ "$raw" = "$text" ]; then
    ok "as many records in the pages as lines in trace ($raw)"
else
    fail "as many records in the pages as lines in trace: $raw records, $text lines"
fi
expect_eq "no lost events reported" 0 "$(grep -c '^missed' "$TMPD/raw.txt")"
# Each decoded record must be a line of `trace`: same CPU, time stamp and field values.
missing=$(awk '
    NR == FNR { lines[NR] = $0; n = NR; next }
    /^cpu=/ {
        delete v
        # A word without "=" continues the value before it: task names may hold spaces
        # ("opt cgu.15", a rustc thread on the host).
        for (i = 1; i <= NF; i++) {
            if (index($i, "=")) { split($i, kv, "="); key = kv[1]; v[key] = substr($i, length(key) + 2) }
            else v[key] = v[key] " " $i
        }
        cpu = sprintf("[%03d]", v["cpu"])
        if (v["event"] == "sched_switch")
            want = " " v["ts"] ": sched_switch: prev_comm=" v["prev_comm"] " prev_pid=" v["prev_pid"] " "
        else
            want = " " v["ts"] ": sched_wakeup: comm=" v["comm"] " pid=" v["pid"] " prio=" v["prio"] " "
        found = 0
        for (i = 1; i <= n; i++)
            if (index(lines[i], want) && index(lines[i], cpu)) { found = 1; break }
        if (!found) { bad++; if (bad <= 3) print "missing: " $0 > "/dev/stderr" }
    }
    END { print bad + 0 }' "$TMPD/trace.txt" "$TMPD/raw.txt" 2>"$TMPD/missing.txt")
expect_eq "every decoded record is a trace line with the same values" 0 "$missing"
[ "$missing" = 0 ] || cat "$TMPD/missing.txt"
expect_eq "the pages were consumed: trace is empty" 0 "$(grep -vc '^#' trace)"
tracefs-rawread --expect-idle --idle-rounds 2 . >"$TMPD/idle.txt" 2>"$TMPD/idle.err"
expect_eq "O_NONBLOCK reads of the empty CPUs are EAGAIN" \
    "0 pages, 0 records, $((2 * $(ls -d per_cpu/cpu* | wc -l))) EAGAIN, 0 EOF" \
    "$(sed 's/^tracefs-rawread: //' "$TMPD/idle.err")"
expect_write_ok 0 events/sched/sched_switch/enable
expect_write_ok 0 events/sched/sched_wakeup/enable
expect_write_ok 1 tracing_on
finish
