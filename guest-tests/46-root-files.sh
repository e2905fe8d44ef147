#!/bin/sh
# description: root control files: tracing_on, trace_clock, buffer_size_kb, options, error_log
# Checks: tracing_on toggles; trace_clock selects a listed clock (shown in brackets) and
# rejects an unknown one; buffer_size_kb takes a size; options/overwrite and trace_options are
# two views of one flag; a rejected filter leaves an entry in error_log, and writing to
# error_log clears it; current_tracer is nop.
. /guest-tests/_lib.sh
desc "tracing_on, trace_clock, buffer_size_kb, options/trace_options, error_log"
expect_write_ok 0 tracing_on
expect_eq "tracing_on after 0" 0 "$(cat tracing_on 2>&1)"
expect_write_ok 1 tracing_on
expect_eq "tracing_on after 1" 1 "$(cat tracing_on 2>&1)"
expect_eq "current_tracer" nop "$(cat current_tracer 2>&1)"
expect_write_ok global trace_clock
case "$(cat trace_clock)" in *"[global]"*) ok "trace_clock shows [global]" ;; *) fail "trace_clock shows [global]: $(cat trace_clock)" ;; esac
try_write sundial trace_clock
if [ "$W_RC" -ne 0 ]; then ok "unknown clock rejected"; else fail "unknown clock rejected"; fi
expect_write_ok local trace_clock
expect_write_ok 64 buffer_size_kb
# The kernel rounds the size up to whole sub-buffers (64 reads back as 67 on 6.1).
kb=$(cat buffer_size_kb 2>&1 | cut -d' ' -f1)
if [ "$kb" -ge 64 ] 2>/dev/null && [ "$kb" -lt 128 ]; then ok "buffer_size_kb after 64 is $kb"; else fail "buffer_size_kb after 64: '$kb'"; fi
expect_write_ok nooverwrite trace_options
expect_eq "options/overwrite after nooverwrite" 0 "$(cat options/overwrite 2>&1)"
expect_write_ok 1 options/overwrite
if grep -qx overwrite trace_options; then ok "trace_options shows overwrite"; else fail "trace_options shows overwrite"; fi
expect_write_ok "" error_log
try_write 'no_such_field == 1' events/sched/sched_switch/filter
if grep -q 'Field not found' error_log; then ok "filter error is in error_log"; else fail "filter error is in error_log: '$(show "$(cat error_log)")'"; fi
expect_write_ok 0 events/sched/sched_switch/filter
expect_write_ok "" error_log
expect_eq "error_log cleared" "" "$(cat error_log 2>&1)"
finish
