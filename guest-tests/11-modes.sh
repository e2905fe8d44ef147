#!/bin/sh
# description: file modes, types and sizes
# Checks (stat -c %a): events/enable 640, header_page/header_event 440, system enable/filter
# 640, event enable/filter/trigger 640, format/id 440, directories 755 (the real 6.1 tracefs
# uses 750 for directories: accepted in native mode). Control files report size 0 as in tracefs;
# eventfsd reports the real size of immutable files (format, id, header_*) so the guest can cache
# them, and that size must equal the bytes the daemon returns to uncached reads (tracefs reports
# 0 for them).
. /guest-tests/_lib.sh
desc "modes (0640/0440/0755) and sizes of tracefs files"

expect_mode events/enable 640
expect_mode events/header_page 440
expect_mode events/header_event 440
expect_mode events/sched/enable 640
expect_mode events/sched/filter 640
for f in enable filter trigger; do expect_mode events/sched/sched_switch/$f 640; done
for f in format id; do expect_mode events/sched/sched_switch/$f 440; done
for f in format id; do expect_mode events/ftrace/function/$f 440; done

dirmode=755
if is_native; then
    dirmode=750
    echo "  note: native 6.1 tracefs creates directories 0750 (eventfs in 6.6+ uses 0755)"
fi
for d in events events/sched events/sched/sched_switch events/ftrace events/ftrace/function; do
    expect_mode $d $dirmode
    if [ -d $d ]; then ok "$d is a directory"; else fail "$d is a directory: $(stat -c %F $d 2>&1)"; fi
done

for f in events/enable events/sched/enable events/sched/sched_switch/enable events/sched/sched_switch/filter; do
    expect_eq "size of control file $f is 0" 0 "$(stat -c %s $f 2>&1)"
    if [ -f $f ]; then ok "$f is a regular file"; else fail "$f is a regular file: $(stat -c %F $f 2>&1)"; fi
done

for f in events/header_page events/sched/sched_switch/format events/sched/sched_switch/id; do
    if is_native; then
        expect_eq "size of $f is 0" 0 "$(stat -c %s $f 2>&1)"
    else
        expect_eq "size of immutable $f equals its content" "$(read_uncached $f 4096 | wc -c | tr -d " ")" "$(stat -c %s $f 2>&1)"
    fi
    if [ -f $f ]; then ok "$f is a regular file"; else fail "$f is a regular file: $(stat -c %F $f 2>&1)"; fi
done
finish
