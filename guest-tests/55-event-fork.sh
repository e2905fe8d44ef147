#!/bin/sh
# description: options/event-fork: the pid list follows the forks of the listed tasks
# Checks (also against the guest kernel's own tracefs, --mode native): with event-fork off,
# set_event_pid keeps only the shell while it forks; with event-fork on, the children of the
# listed shell join the list.
. /guest-tests/_lib.sh
desc "event-fork"
echo 0 >options/event-fork
echo $$ >set_event_pid
sh -c ':'
sleep 0.5
expect_eq "event-fork off: the list keeps only the shell" "$$" "$(cat set_event_pid)"
expect_write_ok 1 options/event-fork
sh -c 'sleep 2' &
child=$!
sleep 1
n=$(cat set_event_pid | wc -l)
if [ "$n" -gt 1 ]; then ok "event-fork on: the shell's children joined the list ($n pids)"; else fail "event-fork on: the shell's children joined the list: $(show "$(cat set_event_pid)")"; fi
if grep -qx "$$" set_event_pid; then ok "the shell is still listed"; else fail "the shell is still listed"; fi
wait $child
echo 0 >options/event-fork
echo >set_event_pid
expect_eq "set_event_pid emptied" "" "$(cat set_event_pid)"
finish
