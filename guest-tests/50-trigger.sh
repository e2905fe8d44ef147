#!/bin/sh
# description: event triggers
# Checks: a fresh trigger file shows the "# Available triggers:" help; `echo traceoff >
# trigger` lists "traceoff:unlimited"; `echo '!traceoff' > trigger` removes it again.
. /guest-tests/_lib.sh
desc "triggers: add traceoff, list it, remove it with !traceoff"
t=events/sched/sched_switch/trigger
expect_eq "$t first line when empty" "# Available triggers:" "$(head -n1 $t 2>&1)"
expect_write_ok traceoff $t
if grep -qx 'traceoff:unlimited' $t; then ok "$t lists traceoff:unlimited"; else fail "$t lists traceoff:unlimited: got '$(show "$(cat $t 2>&1)")'"; fi
echo "  note: events/sched/sched_switch/enable reads '$(cat events/sched/sched_switch/enable 2>&1)' while a trigger is set (soft mode is 0*)"
expect_write_ok '!traceoff' $t
if grep -q '^traceoff' $t; then fail "traceoff gone after !traceoff: got '$(show "$(cat $t 2>&1)")'"; else ok "traceoff gone after !traceoff"; fi
expect_eq "$t first line after removal" "# Available triggers:" "$(head -n1 $t 2>&1)"
finish
