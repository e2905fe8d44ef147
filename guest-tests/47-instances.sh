#!/bin/sh
# description: instances: mkdir/rmdir, own event state, EBUSY while open
# Checks: mkdir instances/t creates an instance with its own events/ and root files;
# enabling an event in it does not enable it at the top level; README (global only) is
# absent; rmdir fails with EBUSY while a file of the instance is open and succeeds after.
. /guest-tests/_lib.sh
desc "instances: own state, EBUSY while open, rmdir"
rmdir instances/t 2>/dev/null
if mkdir instances/t 2>/dev/null; then ok "mkdir instances/t"; else fail "mkdir instances/t"; finish; fi
expect_exists instances/t/events/sched/sched_switch/enable
expect_exists instances/t/trace
expect_absent instances/t/README "README is global only"
expect_write_ok 1 instances/t/events/sched/sched_switch/enable
expect_eq "instance event enabled" 1 "$(cat instances/t/events/sched/sched_switch/enable 2>&1)"
expect_eq "top-level event untouched" 0 "$(cat events/sched/sched_switch/enable 2>&1)"
exec 3<instances/t/tracing_on
err=$(rmdir instances/t 2>&1)
case "$err" in *busy*|*Busy*) ok "rmdir while open gives EBUSY" ;; *) fail "rmdir while open gives EBUSY: '$(show "$err")'" ;; esac
exec 3<&-
i=0
until rmdir instances/t 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 20 ] || break
    sleep 0.1
done
expect_absent instances/t "instance removed after close"
finish
