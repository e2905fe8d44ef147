#!/bin/sh
# description: event triggers
# Checks: a fresh trigger file shows the "# Available triggers:" help; `echo traceoff >
# trigger` lists "traceoff:unlimited" and puts the event in soft mode (`enable` reads 0*);
# `echo '!traceoff' > trigger` removes it again and soft mode ends.
. /guest-tests/_lib.sh
desc "triggers: add traceoff, list it, remove it with !traceoff"
t=events/sched/sched_switch/trigger
expect_eq "$t first line when empty" "# Available triggers:" "$(head -n1 $t 2>&1)"
expect_write_ok traceoff $t
if grep -qx 'traceoff:unlimited' $t; then ok "$t lists traceoff:unlimited"; else fail "$t lists traceoff:unlimited: got '$(show "$(cat $t 2>&1)")'"; fi
# A trigger on a disabled event puts it in soft mode: the kernel shows `0*`.
expect_eq "enable while a trigger is set (soft mode)" "0*" "$(cat events/sched/sched_switch/enable 2>&1)"
expect_write_ok '!traceoff' $t
if grep -q '^traceoff' $t; then fail "traceoff gone after !traceoff: got '$(show "$(cat $t 2>&1)")'"; else ok "traceoff gone after !traceoff"; fi
expect_eq "$t first line after removal" "# Available triggers:" "$(head -n1 $t 2>&1)"
expect_eq "enable after the trigger is gone (soft mode off)" "0" "$(cat events/sched/sched_switch/enable 2>&1)"
finish
