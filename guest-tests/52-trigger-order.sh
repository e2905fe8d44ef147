#!/bin/sh
# description: triggers act at once, in the kernel's order around their event
# Checks (also against the guest kernel's own tracefs, --mode native; the catalog source
# follows what 6.18 does in a private instance): a traceoff trigger has turned tracing off
# before the next command and the event that fired it is the one record in the buffer; a
# traceon:1 trigger turns tracing on and its event is recorded; a stacktrace trigger's
# <stack trace> entry follows its event; an enable_event trigger soft-enables its target,
# which then shows 1* and records; a counted trigger counts down.
. /guest-tests/_lib.sh
desc "trigger effects and order"
sw=events/sched/sched_switch
wk=events/sched/sched_wakeup
body() { grep -v '^#' trace; }
reset() { echo 0 >$sw/enable; echo 0 >$wk/enable; echo 1 >tracing_on; echo >trace; }
# A trigger fires also while its event is not enabled (soft mode), so each check arms it
# with tracing off or the event on, and then lets the event happen.
reset
echo 0 >tracing_on
echo 1 >$sw/enable
expect_write_ok traceoff $sw/trigger
echo >trace
echo 1 >tracing_on
sleep 0.05
expect_eq "tracing_on after the traceoff trigger fired" 0 "$(cat tracing_on)"
expect_eq "the event that fired traceoff is the one record" 1 "$(body | grep -c ' sched_switch: ')"
echo '!traceoff' >$sw/trigger
reset
echo 0 >tracing_on
expect_write_ok traceon:1 $sw/trigger
echo 1 >$sw/enable
sleep 0.05
echo 0 >$sw/enable
expect_eq "tracing_on after the traceon trigger fired" 1 "$(cat tracing_on)"
n=$(body | grep -c ' sched_switch: ')
if [ "$n" -gt 0 ]; then ok "records after traceon, the firing one included ($n)"; else fail "records after traceon: none"; fi
if grep -q '^traceon:count=0' $sw/trigger; then ok "traceon:1 counted down to 0"; else fail "traceon:1 counted down to 0: $(show "$(grep -v '^#' $sw/trigger)")"; fi
echo '!traceon' >$sw/trigger
reset
echo 1 >$sw/enable
expect_write_ok stacktrace:1 $sw/trigger
sleep 0.05
echo 0 >$sw/enable
prev=$(body | grep -B1 '<stack trace>' | head -1)
next=$(body | grep -A1 '<stack trace>' | sed -n 2p)
case "$prev" in *" sched_switch: "*) ok "a stack entry follows its sched_switch" ;; *) fail "a stack entry follows its sched_switch: before it '$(show "$prev")'" ;; esac
case "$next" in " => "*) ok "stack frames follow <stack trace>" ;; *) fail "stack frames follow <stack trace>: '$(show "$next")'" ;; esac
expect_eq "one stack entry for stacktrace:1" 1 "$(body | grep -c '<stack trace>')"
echo '!stacktrace' >$sw/trigger
reset
# On an event that practically never fires, the trigger only arms its target.
expect_write_ok 'enable_event:sched:sched_wakeup' events/oom/mark_victim/trigger
expect_eq "the target is soft-disabled while its trigger has not fired" "0*" "$(cat $wk/enable)"
echo '!enable_event:sched:sched_wakeup' >events/oom/mark_victim/trigger
expect_eq "the target leaves soft mode with the trigger" "0" "$(cat $wk/enable)"
expect_write_ok 'enable_event:sched:sched_wakeup:1' $sw/trigger
echo 1 >$sw/enable
sleep 0.1
echo 0 >$sw/enable
expect_eq "the target is enabled, still in soft mode" "1*" "$(cat $wk/enable)"
n=$(body | grep -c ' sched_wakeup: ')
if [ "$n" -gt 0 ]; then ok "the soft-enabled target records ($n)"; else fail "the soft-enabled target records: none"; fi
echo '!enable_event:sched:sched_wakeup:1' >$sw/trigger
expect_eq "the target keeps its state after the trigger is removed" "1" "$(cat $wk/enable)"
reset
finish
