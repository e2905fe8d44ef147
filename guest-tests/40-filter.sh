#!/bin/sh
# description: event and system filters
# Checks: a filter reads "none" when unset; `echo 'prev_pid == 0' > filter` is accepted and
# read back; `echo 0 > filter` clears it; a filter on an unknown field is rejected: echo
# exits non-zero with EINVAL ("Invalid argument"); a system filter (events/sched/filter)
# reaches the events that have the field, and clears again.
. /guest-tests/_lib.sh
desc "filters: accepted, cleared, rejected with EINVAL, system filter fan-out"
f=events/sched/sched_switch/filter
expect_write_ok 0 $f
expect_eq "$f unset" none "$(cat $f 2>&1)"
expect_write_ok 'prev_pid == 0' $f
expect_eq "$f after setting it" 'prev_pid == 0' "$(cat $f 2>&1)"
expect_write_ok 0 $f
expect_eq "$f after echo 0" none "$(cat $f 2>&1)"

try_write 'no_such_field == 1' $f
if [ "$W_RC" -ne 0 ]; then ok "bad filter: echo exits non-zero ($W_RC)"; else fail "bad filter 'no_such_field == 1' must fail: echo succeeded"; fi
case "$W_ERR" in
    *"Invalid argument"*) ok "bad filter: EINVAL ($(show "$W_ERR"))" ;;
    *) fail "bad filter: expected 'Invalid argument', got '$(show "$W_ERR")'" ;;
esac
expect_write_ok 0 $f
expect_eq "$f after clearing the rejected filter" none "$(cat $f 2>&1)"

s=events/sched/filter
expect_write_ok 'common_pid == 1' $s
# Reading a system filter: the filter text, or (as the 6.1 kernel does once the filter has
# been pushed down to the events) the "### global filter ###" help block.
sys_filter_reads() { # expected-text
    _v=$(cat $s 2>&1)
    if [ "$(echo "$_v" | tail -n1)" = "$1" ]; then
        ok "$s reads '$1'"
    elif [ "$(echo "$_v" | head -n1)" = "### global filter ###" ]; then
        ok "$s reads the '### global filter ###' help block"
    else
        fail "$s reads '$1' or the global filter help: got '$(show "$_v")'"
    fi
}
sys_filter_reads 'common_pid == 1'
expect_eq "$f after the system filter" 'common_pid == 1' "$(cat $f 2>&1)"
expect_write_ok 0 $s
sys_filter_reads none
expect_eq "$f after the system filter was cleared" none "$(cat $f 2>&1)"
finish
