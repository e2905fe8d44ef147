#!/bin/sh
# description: event enable file
# Checks: echo 0/1 > events/sched/sched_switch/enable reads back 0/1; a bad value (2) is
# rejected with EINVAL and leaves the state alone.
. /guest-tests/_lib.sh
desc "event enable: write 1/0, read back; reject bad values"
f=events/sched/sched_switch/enable
expect_write_ok 0 $f
expect_eq "$f after 0" 0 "$(cat $f 2>&1)"
expect_write_ok 1 $f
expect_eq "$f after 1" 1 "$(cat $f 2>&1)"
try_write 2 $f
if [ "$W_RC" -ne 0 ]; then ok "echo 2 > $f fails"; else fail "echo 2 > $f fails: it succeeded"; fi
case "$W_ERR" in *"Invalid argument"*) ok "echo 2 > $f gives EINVAL" ;; *) fail "echo 2 > $f gives EINVAL: error was '$(show "$W_ERR")'" ;; esac
expect_eq "$f still 1 after a rejected write" 1 "$(cat $f 2>&1)"
expect_write_ok 0 $f
expect_eq "$f after 0 again" 0 "$(cat $f 2>&1)"
finish
