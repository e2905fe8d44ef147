#!/bin/sh
# description: set_event_pid and set_event_notrace_pid follow the shell
# Checks (also against the guest kernel's own tracefs, --mode native): pids are read as
# kstrtoul reads them (0x10 is 16) and `>>` appends while `>` replaces; with the shell's pid
# in set_event_pid every recorded raw_syscalls:sys_enter comes from the shell; with it in
# set_event_notrace_pid none does.
. /guest-tests/_lib.sh
desc "pid filtering"
se=events/raw_syscalls/sys_enter
pids() { grep -v '^#' trace | awk '{ n = split($1, a, "-"); print a[n] }' | sort -u | tr '\n' ' '; }
expect_write_ok 0x10 set_event_pid
echo 010 >>set_event_pid
expect_eq "set_event_pid 0x10 >> 010" "8 16" "$(cat set_event_pid | sort -n | tr '\n' ' ' | sed 's/ $//')"
expect_write_ok "" set_event_pid
expect_eq "set_event_pid emptied by >" "" "$(cat set_event_pid)"
try_write "12 abc" set_event_pid
if [ "$W_RC" -ne 0 ]; then ok "a token that is no number is refused"; else fail "a token that is no number is refused: accepted"; fi
echo >set_event_pid
echo >trace
echo $$ >set_event_pid
echo 1 >$se/enable
: >/dev/null
sleep 0.05
echo 0 >$se/enable
echo >set_event_pid
expect_eq "sys_enter records come only from the shell" "$$ " "$(pids)"
echo >trace
echo $$ >set_event_notrace_pid
echo 1 >$se/enable
: >/dev/null
sleep 0.05
echo 0 >$se/enable
echo >set_event_notrace_pid
n=$(grep -v '^#' trace | grep -c -e "-$$ ")
got=$(grep -v '^#' trace | grep -c ' sys_enter: ')
expect_eq "no sys_enter record from the excluded shell" 0 "$n"
if [ "$got" -gt 0 ]; then ok "other tasks still record ($got)"; else fail "other tasks still record: none"; fi
echo >trace
finish
