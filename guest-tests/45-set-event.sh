#!/bin/sh
# description: set_event and the enable files agree both ways
# Checks: `echo sys:ev >> set_event` enables the event (enable reads 1) and set_event lists it;
# `!sys:ev` disables it; `echo sys:* > set_event` (O_TRUNC) clears the list, then enables the
# whole system (system enable reads 1); enabling through an enable file shows in set_event;
# an unknown event is rejected; available_events lists system:event lines.
. /guest-tests/_lib.sh
desc "set_event <-> enable files, O_TRUNC clears, available_events"
ev=events/sched/sched_switch
expect_write_ok "" set_event
expect_eq "set_event empty after truncate" "" "$(cat set_event 2>&1)"
echo sched:sched_switch >> set_event
expect_eq "enable after sched:sched_switch >> set_event" 1 "$(cat $ev/enable 2>&1)"
expect_eq "set_event lists sched:sched_switch" "sched:sched_switch" "$(cat set_event 2>&1)"
echo '!sched:sched_switch' >> set_event
expect_eq "enable after !sched:sched_switch" 0 "$(cat $ev/enable 2>&1)"
expect_write_ok 1 events/sched/sched_wakeup/enable
expect_eq "set_event shows an event enabled through its enable file" "sched:sched_wakeup" "$(cat set_event 2>&1)"
expect_write_ok 'sched:*' set_event
expect_eq "system enable after sched:*" 1 "$(cat events/sched/enable 2>&1)"
n_sched=$(ls -d events/sched/*/ | wc -l)
expect_eq "set_event lists every sched event" "$n_sched" "$(grep -c '^sched:' set_event)"
try_write no_such_system:no_such_event set_event
if [ "$W_RC" -ne 0 ]; then ok "unknown event rejected"; else fail "unknown event rejected: write succeeded"; fi
expect_eq "the truncating open cleared set_event" "" "$(cat set_event 2>&1)"
if grep -qx 'sched:sched_switch' available_events; then ok "available_events lists sched:sched_switch"; else fail "available_events lists sched:sched_switch"; fi
expect_write_ok 0 events/enable
finish
