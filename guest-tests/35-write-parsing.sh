#!/bin/sh
# description: writes are read as the kernel reads them; the host source's policy holds
# Checks, against every source and the guest kernel's own tracefs: `01` and `+1` are 1 to an
# enable file (kstrtoul), ` 1` is not a number, and a trigger split by spaces is not an
# enable_event. Against the host source (EVENTFSD_SOURCE=host) also the safe default policy:
# address-leaking options, tracers other than nop, stacktrace triggers, hidden systems and
# oversized buffers are refused, however the write is spelled.
. /guest-tests/_lib.sh
desc "write parsing as the kernel's, and the host policy against a hostile guest"
f=events/sched/sched_switch/enable
for one in 01 +1 0001; do
    expect_write_ok "$one" $f
    expect_eq "'$one' > $f reads back 1" 1 "$(cat $f 2>&1)"
    expect_write_ok 0 $f
done
try_write " 1" $f
case "$W_ERR" in *"Invalid argument"*) ok "' 1' > $f gives EINVAL" ;; *) fail "' 1' > $f gives EINVAL: rc $W_RC, '$(show "$W_ERR")'" ;; esac
expect_eq "$f still 0" 0 "$(cat $f 2>&1)"
t=events/sched/sched_switch/trigger
try_write "enable_event sched sched_wakeup" $t
if [ "$W_RC" -ne 0 ]; then ok "a trigger with spaces for ':' is refused"; else fail "a trigger with spaces for ':' is refused: accepted"; fi
set_triggers=$(grep -v '^#' $t)
case "$set_triggers" in *enable_event*) fail "no enable_event trigger is set: $(show "$set_triggers")" ;; *) ok "no enable_event trigger is set" ;; esac

if [ "${EVENTFSD_SOURCE:-}" = host ]; then
    # refused WHAT COMMAND...: the write fails (what was written is checked after each)
    refused() {
        _what=$1
        shift
        if _err=$( { "$@"; } 2>&1); then
            fail "$_what is refused: it succeeded"
        else
            ok "$_what is refused ($(show "$_err"))"
        fi
    }
    refused "sym-addr through trace_options" sh -c 'echo sym-addr > trace_options'
    refused "nohash-ptr through trace_options" sh -c 'echo nohash-ptr > trace_options'
    refused "sym-addr through options/" sh -c 'echo 1 > options/sym-addr'
    expect_eq "options/sym-addr still 0" 0 "$(cat options/sym-addr 2>&1)"
    refused "the function tracer" sh -c 'echo function > current_tracer'
    expect_eq "current_tracer" nop "$(cat current_tracer)"
    expect_eq "available_tracers offers only nop" nop "$(cat available_tracers)"
    refused "the stacktrace trigger" sh -c "echo stacktrace > $t"
    refused "buffer_size_kb 99999999 ended by a NUL" sh -c "printf '99999999\\000' > buffer_size_kb"
    case "$(cat buffer_size_kb)" in 9999*) fail "buffer_size_kb unchanged: $(cat buffer_size_kb)" ;; *) ok "buffer_size_kb unchanged" ;; esac
    refused "enable 01 on a hidden system" sh -c 'echo 01 > events/kvm/enable'
    # Turning an instrumentation option off is harmless (trace-cmd does it before recording);
    # turning it on is not.
    expect_write_ok 0 options/function-trace
    refused "function-trace on" sh -c 'echo 1 > options/function-trace'
    refused "hash-ptr off" sh -c 'echo 0 > options/hash-ptr'
    expect_absent events/kvm "kvm (other VMs' exits) is hidden"
    expect_absent events/printk "printk (the host's kernel log) is hidden"
    expect_absent kprobe_events "kprobe_events (the host's top level) is hidden"
else
    skip "host policy checks: only against the host source (EVENTFSD_SOURCE=${EVENTFSD_SOURCE:-native})"
fi
finish
