#!/bin/sh
# description: top-level events/enable
# Checks: events/enable reads 0 with all off, X when one event is on (the system reads X
# too), 1 after `echo 1 > events/enable` (every system enable reads 1), 0 after `echo 0`.
. /guest-tests/_lib.sh
desc "top-level events/enable: 0 / X / 1 and fan-out to every system"
systems() { # expected -> prints the systems whose enable differs
    for s in events/*/; do
        [ -f "${s}enable" ] || continue
        v=$(cat "${s}enable" 2>&1)
        [ "$v" = "$1" ] || echo "$(basename "$s")=$v"
    done | tr '\n' ' '
}
expect_write_ok 0 events/enable
expect_eq "events/enable all off" 0 "$(cat events/enable 2>&1)"
expect_eq "every system enable 0" "" "$(systems 0)"
expect_write_ok 1 events/sched/sched_switch/enable
expect_eq "events/enable with one event on" X "$(cat events/enable 2>&1)"
expect_eq "events/sched/enable with one event on" X "$(cat events/sched/enable 2>&1)"
expect_write_ok 1 events/enable
expect_eq "events/enable after echo 1" 1 "$(cat events/enable 2>&1)"
expect_eq "every system enable 1 after echo 1 > events/enable" "" "$(systems 1)"
expect_eq "an event in another system (events/irq/irq_handler_entry) is 1" 1 "$(cat events/irq/irq_handler_entry/enable 2>&1)"
expect_write_ok 0 events/enable
expect_eq "events/enable after echo 0" 0 "$(cat events/enable 2>&1)"
expect_eq "every system enable 0 after echo 0 > events/enable" "" "$(systems 0)"
expect_eq "events/sched/sched_switch/enable after echo 0 > events/enable" 0 "$(cat events/sched/sched_switch/enable 2>&1)"
finish
