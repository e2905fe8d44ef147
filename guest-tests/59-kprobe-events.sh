#!/bin/sh
# description: kprobes: kprobe_events, their listings, formats, errors and records
# Needs a kernel with kprobes: the guest kernel natively, or eventfsd serving its catalog
# (crates/eventfs-core/catalog/debian-6.1.evcat). Checks: kprobes and kretprobes are listed in
# the kernel's form (generated names, the default maxactive), get events/kprobes/NAME with the
# kernel's format; refused commands give the kernel's errno and error_log entry with its caret;
# dynamic_events hands uprobe places to the uprobe parser; a probe appended to an event shares
# it; removal and truncation. Over eventfsd only (natively an armed kprobe soft-locks the TCG
# guest): enabled kprobes record `NAME: (vfs_read+0x0/0x40)` lines and count in kprobe_profile.
. /guest-tests/_lib.sh
desc "kprobe_events"
if [ ! -e kprobe_events ]; then
    echo "  SKIP: no kprobe_events (a kernel without kprobes)"
    exit 77
fi
echo >kprobe_events
# error CMD ERRNO-TEXT [MESSAGE CARET]: a kprobe_events write the kernel refuses.
error() {
    expect_refused "$1" kprobe_events "$2" "${3:+trace_kprobe: error: $3}" "${4:-}"
}
expect_write_ok 'p:myk vfs_read' kprobe_events
echo 'p vfs_read' >>kprobe_events
echo 'r vfs_read' >>kprobe_events
echo 'r:myr vfs_read $retval' >>kprobe_events
echo 'r100:mx vfs_write' >>kprobe_events
echo 'p:ret2 vfs_write%return' >>kprobe_events
echo 'p:mem vfs_read +0(%di):u64 +8(+0(%si)):string a=$arg2:symbol' >>kprobe_events
echo 'p:grp.ev vfs_read' >>kprobe_events
expect_eq "kprobe_events lists them as the kernel does" "p:kprobes/myk vfs_read
p:kprobes/p_vfs_read_0 vfs_read
r10:kprobes/r_vfs_read_0 vfs_read
r10:kprobes/myr vfs_read arg1=\$retval
r100:kprobes/mx vfs_write
r10:kprobes/ret2 vfs_write
p:kprobes/mem vfs_read arg1=+0(%di):u64 arg2=+8(+0(%si)):string a=\$arg2:symbol
p:grp/ev vfs_read" "$(cat kprobe_events)"
expect_eq "dynamic_events lists the same" "$(cat kprobe_events)" "$(cat dynamic_events)"
expect_eq "an event directory has the probe files" "enable filter format hist id trigger" "$(ls events/kprobes/myk | tr '\n' ' ' | sed 's/ $//')"
expect_eq "a kprobe's fields" "	field:unsigned long __probe_ip;	offset:8;	size:8;	signed:0;" "$(grep 'field:.*__probe' events/kprobes/myk/format)"
expect_eq "a kprobe's print fmt" 'print fmt: "(%lx)", REC->__probe_ip' "$(grep '^print fmt' events/kprobes/myk/format)"
expect_eq "a kretprobe's print fmt" 'print fmt: "(%lx <- %lx) arg1=0x%Lx", REC->__probe_func, REC->__probe_ret_ip, REC->arg1' "$(grep '^print fmt' events/kprobes/myr/format)"
expect_eq "argument types" 'print fmt: "(%lx) arg1=%Lu arg2=\"%s\" a=%pS", REC->__probe_ip, REC->arg1, __get_str(arg2), REC->a' "$(grep '^print fmt' events/kprobes/mem/format)"
id=$(cat events/kprobes/myk/id)
if grep -q "^ID: $id\$" events/kprobes/myk/format; then ok "id $id matches the format"; else fail "id $id matches the format"; fi
if grep -qx 'kprobes:myk' available_events; then ok "in available_events"; else fail "in available_events"; fi
expect_eq "kprobe_profile lists each probe" "myk 0 0" "$(grep -w myk kprobe_profile | awk '{ print $1, $2, $3 }')"

error 'p:bad1 no_such_function_59' 'No such file or directory' 'Invalid probed address or symbol' 7
error 'p:bad2 vfs_read+4 $arg1' 'Invalid argument' 'Invalid $-valiable specified' 18
error 'p:bad3 vfs_read $retval' 'Invalid argument' '$retval is not available on probe' 16
error 'r:bad4 vfs_read+4' 'Invalid argument' 'Retprobe address must be an function entry' 7
error 'p5:bad5 vfs_read' 'Invalid argument' 'Maxactive is not for kprobe' 1
error 'r5000:bad6 vfs_write' 'Invalid argument' 'Maxactive is too big' 1
error 'r0:bad7 vfs_write' 'Invalid argument' 'Invalid maxactive number' 1
error 'p:bad8 vfs_read%foo' 'Invalid argument' 'Invalid probed address suffix' 15
error 'p:bad9 vfs_read @no_such_symbol_59' 'No such file or directory' 'Invalid probed address or symbol' 7
error 'p:myk vfs_read' 'File exists' 'There is already the exact same probe event' 0
error 'p:x1 vfs_read $arg0' 'Invalid argument' 'Invalid argument number' 14
error 'p:x4 vfs_read %zz' 'Invalid argument' 'Invalid register name' 14
error 'p:x5 vfs_read @+10' 'Invalid argument' 'File offset is not available with kprobe' 14
error 'p:x6 vfs_read $stack99999' 'Invalid argument' 'Invalid stack number' 14
error 'p:x9 vfs_read a=$arg1:u7' 'Invalid argument' 'Unknown type is specified' 22
error 'p:x11 vfs_read+0x100000000' 'Invalid argument' 'Invalid probed address or symbol' 6
error 'p:x16 vfs_read a=%di a=%si' 'Invalid argument' 'This argument name is already used' 21
error 'p:x20 vfs_read+1' 'Invalid or incomplete multibyte or wide character' 'Probe point is not an instruction boundary' 6
error 'p:x24 vfs_read a=$stack:string' 'Invalid argument' 'String accepts only memory argument' 24
error 'p:9bad vfs_read' 'Invalid argument' 'Event name must follow the same rules as C identifiers' 2
error 'p:x18 /bin/sh:0x10' 'Invalid argument' '' ''
expect_eq "nothing refused was made" 8 "$(grep -c . kprobe_events)"

echo 'p:multi vfs_read' >>kprobe_events
echo 'p:multi vfs_write' >>kprobe_events
expect_eq "a second place joins the event" "2" "$(grep -c ':kprobes/multi ' kprobe_events)"
error 'p:multi vfs_open a=%di' 'File exists' 'Argument type or name is different from existing probe' 17
error 'r:multi vfs_open' 'File exists' 'Probe type is different from existing probe' 0
echo 'p:dk vfs_read' >>dynamic_events && echo 'p:du /bin/sh:0x10' >>dynamic_events
expect_eq "dynamic_events makes a kprobe" "p:kprobes/dk vfs_read" "$(grep ':kprobes/dk ' kprobe_events)"
expect_eq "and hands a uprobe place on" "p:uprobes/du /bin/sh:0x0000000000000010" "$(cat uprobe_events)"
echo '-:uprobes/du' >>dynamic_events

if skip_native "enabled kprobes record their calls (natively, arming one soft-locks the TCG guest)"; then :; else
    echo >trace
    echo 1 >events/kprobes/myk/enable
    echo 1 >events/kprobes/myr/enable
    sleep 0.3
    echo 0 >events/kprobes/myk/enable
    echo 0 >events/kprobes/myr/enable
    n=$(grep -c ' myk: (vfs_read+0x0/0x[0-9a-f]*)$' trace)
    if [ "$n" -gt 0 ]; then ok "kprobe lines read 'myk: (vfs_read+0x0/SIZE)' ($n)"; else fail "kprobe lines: $(show "$(grep myk trace | head -2)")"; fi
    if grep -qE ' myr: \([a-z_0-9.]+\+0x[0-9a-f]+/0x[0-9a-f]+ <- vfs_read\) arg1=0x[0-9a-f]+$' trace; then ok "kretprobe lines read 'myr: (caller+OFF/SIZE <- vfs_read) arg1=0x...'"; else fail "kretprobe lines: $(show "$(grep myr trace | head -2)")"; fi
    hits=$(grep -w myk kprobe_profile | awk '{ print $2 }')
    expect_eq "kprobe_profile counts the hits" "$n" "$hits"
    W_ERR=$( { echo 1 >events/kprobes/myk/enable; echo '-:myk' >>kprobe_events; } 2>&1)
    expect_eq "an enabled kprobe is busy" "sh: write error: Device or resource busy" "$W_ERR"
    echo 0 >events/kprobes/myk/enable
    echo >trace
fi

echo '-:myk' >>kprobe_events && ok "-:myk removes it" || fail "-:myk removes it"
expect_absent events/kprobes/myk "its directory is gone"
W_ERR=$( { echo '-:myk' >>kprobe_events; } 2>&1)
expect_eq "removing it twice is ENOENT" "sh: write error: No such file or directory" "$W_ERR"
echo '-:grp/ev' >>kprobe_events
expect_absent events/grp "a group goes with its last event"
expect_write_ok "" kprobe_events
expect_eq "truncation removes every kprobe" "" "$(cat kprobe_events)"
expect_absent events/kprobes "and the kprobes group"
echo >dynamic_events
finish
