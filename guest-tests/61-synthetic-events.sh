#!/bin/sh
# description: synthetic events: synthetic_events and s: in dynamic_events
# Needs a kernel with synthetic events: the guest kernel natively, or eventfsd serving its
# catalog (crates/eventfs-core/catalog/debian-6.1.evcat). Checks: definitions are listed in the
# kernel's form (in synthetic_events and, prefixed, in dynamic_events), get
# events/synthetic/NAME with the kernel's format (8-byte slots, 256 for a fixed string); refused
# commands give the kernel's errno and error_log entry with its caret; `!NAME` and `-:NAME`
# remove (EBUSY while enabled, ENOENT when absent); truncation removes every one.
. /guest-tests/_lib.sh
desc "synthetic_events"
if [ ! -e synthetic_events ]; then
    echo "  SKIP: no synthetic_events (a kernel without synthetic events)"
    exit 77
fi
echo >synthetic_events
# error CMD FILE ERRNO-TEXT [MESSAGE CARET]: a write the kernel refuses.
error() {
    expect_refused "$1" "$2" "$3" "${4:+synthetic_events: error: $4}" "${5:-}"
}
expect_write_ok 'wakeup_latency u64 lat; pid_t pid; char comm[16]; char fn[]' synthetic_events
echo 'ev2 u64 lat pid_t pid unsigned int x; s8 a; unsigned char b; bool c; long d; unsigned long e; gfp_t g; char[8] h; int i; u16 j; s64 k' >>synthetic_events
echo 's:synthetic/dev1 u64 a; char s[]' >>dynamic_events
expect_eq "synthetic_events lists them as the kernel does" "wakeup_latency	u64 lat; pid_t pid; char[16] comm; char[] fn
ev2	u64 lat; pid_t pid; unsigned int x; s8 a; unsigned char b; bool c; long d; unsigned long e; gfp_t g; char[8] h; int i; u16 j; s64 k
dev1	u64 a; char[] s" "$(cat synthetic_events)"
expect_eq "dynamic_events lists them with s:synthetic/" "s:synthetic/wakeup_latency	u64 lat; pid_t pid; char[16] comm; char[] fn" "$(head -1 dynamic_events)"
expect_eq "an event directory has the event files" "enable filter format hist id trigger" "$(ls events/synthetic/wakeup_latency | tr '\n' ' ' | sed 's/ $//')"
expect_eq "the fields' layout" "	field:u64 lat;	offset:8;	size:8;	signed:0;
	field:pid_t pid;	offset:16;	size:4;	signed:1;
	field:char comm[];	offset:24;	size:16;	signed:1;
	field:__data_loc char[] fn;	offset:280;	size:8;	signed:1;" "$(grep 'field:' events/synthetic/wakeup_latency/format | grep -v common_)"
expect_eq "the print fmt" 'print fmt: "lat=%llu, pid=%d, comm=%s, fn=%s", REC->lat, REC->pid, REC->comm, __get_str(fn)' "$(grep '^print fmt' events/synthetic/wakeup_latency/format)"
expect_eq "every type's conversion" 'print fmt: "lat=%llu, pid=%d, x=%u, a=%d, b=%u, c=%d, d=%ld, e=%lu, g=%x, h=%s, i=%d, j=%u, k=%lld", REC->lat, REC->pid, REC->x, REC->a, REC->b, REC->c, REC->d, REC->e, REC->g, REC->h, REC->i, REC->j, REC->k' "$(grep '^print fmt' events/synthetic/ev2/format)"
expect_eq "a fixed string takes 256 bytes" "	field:int i;	offset:336;	size:4;	signed:1;" "$(grep 'field:int i;' events/synthetic/ev2/format)"
id=$(cat events/synthetic/ev2/id)
if grep -q "^ID: $id\$" events/synthetic/ev2/format; then ok "id $id matches the format"; else fail "id $id matches the format"; fi
if grep -qx 'synthetic:dev1' available_events; then ok "in available_events"; else fail "in available_events"; fi

form='Command must be of the form: <name> field[;field] ...'
error 'myevent' synthetic_events 'Invalid argument' "$form" 0
error 'myevent; u64 a' synthetic_events 'Invalid argument' "$form" 0
error 'myevent u64' synthetic_events 'Invalid argument' "$form" 0
error 'mye;vent char str[]' synthetic_events 'Invalid argument' "$form" 0
error 'myevent ^chr arg' synthetic_events 'Invalid argument' 'Invalid type' 8
error 'myevent char str; ^int' synthetic_events 'Invalid argument' 'Invalid field' 18
error 'myevent char str[257]' synthetic_events 'Invalid argument' 'Invalid array specification' 13
error 'wakeup_latency u64 lat' synthetic_events 'File exists' 'Event already exists' 0
error '9bad u64 a' synthetic_events 'Invalid argument' 'Illegal name' 0
error 'ev3 unsigned x' synthetic_events 'Invalid argument' 'Incomplete type' 4
error 'ev4 u64 x[4]' synthetic_events 'Invalid argument' 'Invalid type' 4
error 'ev5 char str[abc]' synthetic_events 'Invalid argument' 'Invalid array specification' 9
error 's:junk/myevent char str[' dynamic_events 'Invalid argument' 'Command must be of the form: s or -:[synthetic/]<name> field[;field] ...' 0
error 's:dev3' dynamic_events 'Invalid argument' "$form" 0
error '!nosuch' synthetic_events 'No such file or directory' '' ''
expect_eq "nothing refused was made" 3 "$(grep -c . synthetic_events)"

echo 's:dev2 u32 b' >>dynamic_events
echo 1 >events/synthetic/dev2/enable
error '!dev2' synthetic_events 'Device or resource busy' '' ''
error '-:dev2' dynamic_events 'Device or resource busy' '' ''
echo 0 >events/synthetic/dev2/enable
echo '!dev2' >>synthetic_events && ok "!dev2 removes it" || fail "!dev2 removes it"
expect_absent events/synthetic/dev2 "its directory is gone"
echo '-:synthetic/dev1' >>dynamic_events && ok "-:synthetic/dev1 removes it" || fail "-:synthetic/dev1 removes it"
error '-:dev1' dynamic_events 'No such file or directory' '' ''
echo '!ev2 u64 junk' >>synthetic_events && ok "words after !NAME are ignored" || fail "words after !NAME are ignored"
expect_eq "what is left" "wakeup_latency	u64 lat; pid_t pid; char[16] comm; char[] fn" "$(cat synthetic_events)"
expect_write_ok "" synthetic_events
expect_eq "truncation removes every one" "" "$(cat synthetic_events)"
expect_absent events/synthetic "and the synthetic group"
finish
