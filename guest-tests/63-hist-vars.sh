#!/bin/sh
# description: how histograms find each other's variables (Linux 6.1's rules)
# Needs histograms: the guest kernel natively, or eventfsd serving its catalog
# (crates/eventfs-core/catalog/debian-6.1.evcat). Checks: a $NAME of the trigger's own
# variable that holds one field reads as that field; one computed by an expression reads as
# its first operand when defined before (6.1 cuts the expression's text as it parses it), and
# is looked up elsewhere, and missing, when defined after; a histogram reads the variables of
# another on its own event,
# which is then busy; a variable name is new on its event (again, paused, another trigger);
# a name two events define needs SYSTEM.EVENT.$NAME, unless an onmatch() names its event;
# microsecond and other units do not mix in an expression. Each refusal with the kernel's
# error_log entries and caret. Opening trigger with O_TRUNC removes the event's
# histograms, unless another reads one of them.
. /guest-tests/_lib.sh
desc "histogram variable references"
need_files "histograms" events/sched/sched_switch/hist
waking=events/sched/sched_waking
switch=events/sched/sched_switch
fork=events/sched/sched_process_fork
refused() { # trigger-file trigger entries caret
    expect_refused "$2" "$1" 'Invalid argument' "$3" "$4"
}
add() { # trigger-file trigger: appended (`>` would open with O_TRUNC)
    W_ERR=$( { echo "$2" >>"$1"; } 2>&1)
    expect_eq "'$2' is added" "" "$W_ERR"
}
expect_listed() { # what trigger-file text: the file lists a trigger holding text
    case "$(cat "$2")" in
    *"$3"*) ok "$1" ;;
    *) fail "$1: $(show "$(cat "$2")")" ;;
    esac
}
remove() { # trigger-file trigger...
    _f=$1
    shift
    for _t in "$@"; do echo "!$_t" >>"$_f" 2>/dev/null; done
}
own='hist:keys=next_pid:a=common_timestamp.usecs,b=$a'
p_switch='hist:keys=next_pid:p=next_prio'
q_switch='hist:keys=next_pid:q=$p+1'
p_waking='hist:keys=pid:p=prio'
ts_waking='hist:keys=pid:ts0=common_timestamp'
ts_fork='hist:keys=child_pid:ts0=common_timestamp'
lat='hist:keys=next_pid:lat=common_timestamp-$ts0'
qualified='hist:keys=next_pid:lat=common_timestamp-sched.sched_waking.$ts0'
matched='hist:keys=prev_pid:l3=common_timestamp-$ts0:onmatch(sched.sched_waking).lat3($l3)'
cut='hist:keys=prev_pid:c=next_prio*2+prev_prio,d=$c'
cleanup() {
    remove $switch/trigger "$own" "$cut" "$q_switch" "$p_switch" "$lat" "$qualified" "$matched"
    remove $waking/trigger "$p_waking" "$ts_waking"
    remove $fork/trigger "$ts_fork"
    echo '!lat3 u64 lat' >>synthetic_events 2>/dev/null
}
cleanup

# The own variable a holds one field: $a is that field (no reference), printed as such.
add $switch/trigger "$own"
expect_listed "\$a reads as the field a holds" $switch/trigger ':a=common_timestamp.usecs,b=common_timestamp.usecs:'
remove $switch/trigger "$own"
add $switch/trigger "$cut"
expect_listed "\$c of an expression defined before reads as its first operand" $switch/trigger ':c=next_prio*2+prev_prio,d=next_prio:'
remove $switch/trigger "$cut"
refused $switch/trigger 'hist:keys=common_pid:e=$f,f=next_prio-1' "hist:sched:sched_switch: error: Couldn't find variable
hist:sched:sched_switch: error: Couldn't find field" 24

# Another histogram of the same event.
add $switch/trigger "$p_switch"
add $switch/trigger "$q_switch"
W_ERR=$( { echo "!$p_switch" >>$switch/trigger; } 2>&1)
expect_eq "a histogram another of its event reads is busy" "sh: write error: Device or resource busy" "$W_ERR"
remove $switch/trigger "$q_switch"
# A variable name is new on its event; the caret under the first occurrence of its text.
refused $switch/trigger "$p_switch" "hist:sched:sched_switch: error: Variable already defined" 15
refused $switch/trigger "$p_switch:pause" "hist:sched:sched_switch: error: Variable already defined" 15
refused $switch/trigger 'hist:keys=prev_pid:p=prev_prio' "hist:sched:sched_switch: error: Variable already defined" 10
add $waking/trigger "$p_waking"
remove $switch/trigger "$p_switch"
remove $waking/trigger "$p_waking"

# Units: a microsecond operand with one that is not, caret at the start.
add $waking/trigger "$ts_waking"
refused $switch/trigger 'hist:keys=next_pid:lat=common_timestamp.usecs-$ts0' "hist:sched:sched_switch: error: Timestamp units in expression don't match" 0
refused $switch/trigger 'hist:keys=next_pid:x=common_timestamp.usecs/1000' "hist:sched:sched_switch: error: Timestamp units in expression don't match" 0
add $switch/trigger "$lat"
remove $switch/trigger "$lat"

# Two events define ts0: the plain name is not unique, the qualified one is found.
add $fork/trigger "$ts_fork"
refused $switch/trigger "$lat" "hist:sched:sched_switch: error: Variable name not unique, need to use fully qualified name (subsys.event.var) for variable
hist:sched:sched_switch: error: Couldn't find variable
hist:sched:sched_switch: error: Couldn't find field" 41
add $switch/trigger "$qualified"
expect_listed "a qualified reference reads back as \$SYSTEM.EVENT.NAME" $switch/trigger ':lat=common_timestamp-$sched.sched_waking.ts0:'
remove $switch/trigger "$qualified"
refused $switch/trigger 'hist:keys=common_pid:l4=common_timestamp-sched.sched_switch.$ts0' "hist:sched:sched_switch: error: Couldn't find variable
hist:sched:sched_switch: error: Couldn't find field" 61
# The event an onmatch() names is looked at first.
echo 'lat3 u64 lat' >>synthetic_events
add $switch/trigger "$matched"
# O_TRUNC: the waking histogram is read (busy), so all of the event's stay; the switch ones
# are not, and go, while its other triggers stay.
echo 'hist:keys=common_pid' >$waking/trigger
expect_eq "O_TRUNC keeps the histograms of an event another reads" 2 "$(grep -c '^hist:' $waking/trigger)"
echo 'traceoff:1 if prev_pid < 0' >>$switch/trigger
echo 'hist:keys=common_pid' >$switch/trigger
expect_eq "O_TRUNC removes the histograms nobody reads, not the other triggers" \
    "traceoff:count=1 if prev_pid < 0|hist:keys=common_pid:vals=hitcount:sort=hitcount:size=2048 [active]|" \
    "$(grep -v '^#' $switch/trigger | tr '\n' '|')"
echo '!traceoff:1 if prev_pid < 0' >>$switch/trigger
echo '!hist:keys=common_pid' >>$switch/trigger
echo '!hist:keys=common_pid' >>$waking/trigger
cleanup
expect_eq "every trigger went again" "" "$(grep -v '^#' $switch/trigger $waking/trigger $fork/trigger)"
finish
