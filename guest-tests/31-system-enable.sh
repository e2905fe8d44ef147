#!/bin/sh
# description: system enable file
# Checks: events/sched/enable reads 0 with all off, X when mixed, 1 after `echo 1` (and every
# sched event then reads 1), 0 after `echo 0` (every sched event reads 0 again).
. /guest-tests/_lib.sh
desc "system enable: 0 / X (mixed) / 1, fan-out to the events"
sys=events/sched
all_events() { # expected -> prints the events whose enable differs
    for e in $sys/*/; do
        [ -f "${e}enable" ] || continue
        v=$(cat "${e}enable" 2>&1)
        [ "$v" = "$1" ] || echo "$(basename "$e")=$v"
    done | tr '\n' ' '
}
expect_write_ok 0 $sys/enable
expect_eq "$sys/enable with everything off" 0 "$(cat $sys/enable 2>&1)"
expect_eq "all sched events 0" "" "$(all_events 0)"
expect_write_ok 1 $sys/sched_switch/enable
expect_eq "$sys/enable with one event on (mixed)" X "$(cat $sys/enable 2>&1)"
expect_write_ok 1 $sys/enable
expect_eq "$sys/enable after echo 1" 1 "$(cat $sys/enable 2>&1)"
expect_eq "all sched events 1 after echo 1 > $sys/enable" "" "$(all_events 1)"
expect_write_ok 0 $sys/enable
expect_eq "$sys/enable after echo 0" 0 "$(cat $sys/enable 2>&1)"
expect_eq "all sched events 0 after echo 0 > $sys/enable" "" "$(all_events 0)"
finish
