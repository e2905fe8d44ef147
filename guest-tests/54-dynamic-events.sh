#!/bin/sh
# description: dynamic events: uprobes and event probes
# Checks (also against the guest kernel's own tracefs, --mode native): a uprobe written to
# uprobe_events is listed in the kernel's form, gets events/uprobes/NAME with its format and
# an id, and shows in available_events; a bad offset is refused and logged in error_log; an
# event probe on sched_switch made through dynamic_events records one entry per switch with the
# switch's prev_pid; `-:NAME` removes, a second time ENOENT; truncating uprobe_events empties it.
. /guest-tests/_lib.sh
desc "uprobe_events and dynamic_events"
echo >uprobe_events
expect_write_ok 'p:myprobe /bin/sh:0x10 a=%ax' uprobe_events
expect_eq "uprobe_events lists it" "p:uprobes/myprobe /bin/sh:0x0000000000000010 a=%ax" "$(cat uprobe_events)"
expect_exists events/uprobes/myprobe/enable
expect_eq "its format's first line" "name: myprobe" "$(head -1 events/uprobes/myprobe/format)"
if grep -q 'field:unsigned long __probe_ip;' events/uprobes/myprobe/format; then ok "format has __probe_ip"; else fail "format has __probe_ip: $(show "$(cat events/uprobes/myprobe/format)")"; fi
expect_eq "print fmt" 'print fmt: "(%lx) a=0x%Lx", REC->__probe_ip, REC->a' "$(grep '^print fmt' events/uprobes/myprobe/format)"
id=$(cat events/uprobes/myprobe/id)
if grep -q "^ID: $id\$" events/uprobes/myprobe/format; then ok "id $id matches the format"; else fail "id $id matches the format"; fi
if grep -qx 'uprobes:myprobe' available_events; then ok "in available_events"; else fail "in available_events"; fi
echo >error_log
# `>>`: a truncating open would remove every uprobe first.
if echo 'p /bin/sh:10a' >>uprobe_events 2>/dev/null; then fail "a bad offset is refused: accepted"; else ok "a bad offset is refused"; fi
expect_eq "the uprobe is still there" 1 "$(grep -c myprobe uprobe_events)"
if grep -q 'trace_uprobe: error: Invalid uprobe offset' error_log; then ok "error_log names the bad offset"; else fail "error_log names the bad offset: $(show "$(cat error_log)")"; fi
# `>>` again: truncating dynamic_events removes every dynamic event, uprobes included.
echo 'e:myep sched.sched_switch prev=$prev_pid:s32' >>dynamic_events && ok "the event probe is made" || fail "the event probe is made"
expect_eq "the uprobe survived" 1 "$(grep -c myprobe dynamic_events)"
if grep -qx 'e:eprobes/myep sched.sched_switch prev=$prev_pid:s32' dynamic_events; then ok "dynamic_events lists the event probe"; else fail "dynamic_events lists the event probe: $(show "$(cat dynamic_events)")"; fi
if grep -q '^e:' uprobe_events; then fail "uprobe_events lists only uprobes"; else ok "uprobe_events lists only uprobes"; fi
echo >trace
echo 1 >events/eprobes/myep/enable
echo 1 >events/sched/sched_switch/enable
sleep 0.05
echo 0 >events/sched/sched_switch/enable
echo 0 >events/eprobes/myep/enable
# Each probe entry follows its switch and carries the switch's prev_pid (entries before the
# first recorded switch fired while only the probe was enabled).
bad=$(grep -v '^#' trace | awk '/ sched_switch: / { split($0, a, "prev_pid="); split(a[2], b, " "); want = b[1]; next }
    / myep: / && want != "" { split($0, a, "prev="); if (a[2] + 0 != want + 0) bad++; n++; want = "" } END { print (n > 0 ? bad + 0 : "none") }')
expect_eq "probe entries carry their switch's prev_pid" 0 "$bad"
[ "$bad" = 0 ] || grep -v '^#' trace | head -6
if grep -q ' myep: (sched.sched_switch) prev=' trace; then ok "probe entries read (sched.sched_switch) prev=N"; else fail "probe entries read (sched.sched_switch) prev=N: $(show "$(grep myep trace | head -2)")"; fi
echo '-:eprobes/myep' >>dynamic_events && ok "-:eprobes/myep removes it" || fail "-:eprobes/myep removes it"
expect_absent events/eprobes/myep "the event probe's directory is gone"
echo '-:myprobe' >>uprobe_events && ok "-:myprobe removes it" || fail "-:myprobe removes it"
expect_absent events/uprobes/myprobe "the uprobe's directory is gone"
echo '-:myprobe' >>uprobe_events 2>/dev/null && fail "removing it twice fails" || ok "removing it twice fails"
expect_write_ok 'p /bin/sh:0x20' uprobe_events
expect_eq "a generated name" "p:uprobes/p_sh_0x20 /bin/sh:0x0000000000000020" "$(cat uprobe_events)"
expect_write_ok "" uprobe_events
expect_eq "uprobe_events emptied by truncation" "" "$(cat uprobe_events)"
echo >trace
finish
