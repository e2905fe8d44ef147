#!/bin/sh
# /init of the eventfsd test guest (busybox sh, runs as PID 1).
#
# Kernel command line (set by scripts/run-guest.sh):
#   eventfsd.mode=test|demo|shell|native|bench|bench-native   what to do (default: shell)
#   eventfsd.reboot=0|1      test/native: after the suite, `reboot -f` once and run the
#                            after-reboot checks on the second boot (needs /dev/vda)
#   eventfsd.cpsleep=SEC     how long to sit still after a CHECKPOINT marker (default 5)
#   eventfsd.idle=SEC        bench: sit idle this long after the mount and after drop_caches,
#                            then CHECKPOINT idle-after-mount / after-idle (default 0: neither)
#   eventfsd.tests=a,b       only run guest tests whose name contains one of these words
#   eventfsd.timeout=SEC     per-test timeout (default 150)
#   eventfsd.tag=TAG         virtio-fs tag to mount (default: tracefs)
#   eventfsd.reps=N          bench/bench-native: repetitions of each workload (default 3)
#   eventfsd.preps=N         bench/bench-native: repetitions of the parallel run (default 2)
#   eventfsd.records=skip:WHY bench: report the records workloads as not run, for reason WHY
#
# test/demo/shell: mount -t virtiofs tracefs /sys/kernel/tracing (served by eventfsd).
# native:          mount the guest kernel's own tracefs there instead, to validate the
#                  guest tests against the real thing.
# bench:           run the benchmark workloads of scripts/bench.sh against the virtio-fs
#                  mount; bench-native: the same against the guest's own tracefs. Results:
#   @@EVENTFSD BENCH info key=value ...@@
#   @@EVENTFSD BENCH sample w=<workload> rep=<n> us=<microseconds> n=<entries> err=<failures>@@
#   @@EVENTFSD BENCH-DONE@@
#
# Everything is reported on the serial console with markers the host greps for:
#   @@EVENTFSD BOOT <n> mode=<mode> kernel=<release>@@
#   @@EVENTFSD CHECKPOINT <name>@@      (then the guest sleeps, not touching the mount)
#   @@EVENTFSD RESULT PASS|FAIL|SKIP <test>@@
#   @@EVENTFSD PART boot=1 passed=N failed=M skipped=K@@   (before the reboot)
#   @@EVENTFSD REBOOT@@
#   @@EVENTFSD SUITE passed=N failed=M@@ (totals over both boots; the last line)
#   @@EVENTFSD SKIPPED K@@
#   @@EVENTFSD ERROR <text>@@
#   @@EVENTFSD DEMO-DONE@@
#
# The boot counter (and the first boot's counts) live in the first sector of /dev/vda,
# a small zeroed raw disk that run-guest.sh creates for every QEMU run.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
export TERM=${TERM:-vt100}
TRACING=/sys/kernel/tracing
DISK=/dev/vda
MODDIR=/lib/modules/eventfsd

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# In case the initramfs had no /dev/console node, re-open stdio on the console now.
[ -t 1 ] || exec </dev/console >/dev/console 2>&1

MODE=shell
REBOOT=0
CPSLEEP=5
IDLE=0
TESTS=""
SOURCE=""
TEST_TIMEOUT=150
TAG=tracefs
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        eventfsd.mode=*) MODE=${arg#*=} ;;
        eventfsd.reboot=*) REBOOT=${arg#*=} ;;
        eventfsd.cpsleep=*) CPSLEEP=${arg#*=} ;;
        eventfsd.idle=*) IDLE=${arg#*=} ;;
        eventfsd.tests=*) TESTS=${arg#*=} ;;
        eventfsd.timeout=*) TEST_TIMEOUT=${arg#*=} ;;
        eventfsd.tag=*) TAG=${arg#*=} ;;
        eventfsd.source=*) SOURCE=${arg#*=} ;;
    esac
done
REPS=3
PREPS=2
RECORDS_WORKLOADS="raw text"
RECORDS_SKIP=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        eventfsd.reps=*) REPS=${arg#*=} ;;
        eventfsd.preps=*) PREPS=${arg#*=} ;;
        eventfsd.records=skip:*) RECORDS_WORKLOADS=""; RECORDS_SKIP=${arg#*skip:} ;;
    esac
done
NATIVE=0
[ "$MODE" = native ] && NATIVE=1
[ "$MODE" = bench-native ] && NATIVE=1

marker() { echo "@@EVENTFSD $*@@"; }
log() { echo "init: $*"; }

# seconds since boot with two decimals
now() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

die_off() {
    # Never let PID 1 exit (that panics the kernel); power off instead.
    sync
    poweroff -f
    while :; do sleep 60; done
}

for m in $(cat $MODDIR/ORDER 2>/dev/null); do
    [ -e "$MODDIR/$m.ko" ] || continue
    insmod "$MODDIR/$m.ko" || log "insmod $m failed"
done

wait_for() { # path tenths
    _n=0
    while [ ! -e "$1" ] && [ "$_n" -lt "$2" ]; do
        sleep 0.1
        _n=$((_n + 1))
    done
    [ -e "$1" ]
}

# ---- boot counter ---------------------------------------------------------
BOOT=0
PASSED=0
FAILED=0
SKIPPED=0
HAVE_DISK=0
if [ "$MODE" = test ] || [ "$MODE" = native ]; then
    if wait_for $DISK 50; then HAVE_DISK=1; fi
fi
read_state() { dd if=$DISK bs=512 count=1 2>/dev/null | tr -d '\000' | head -n1; }
write_state() {
    printf '%s\n' "$*" | dd of=$DISK bs=512 count=1 conv=sync,fsync 2>/dev/null
    sync
}
state_field() { # state name
    echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
if [ "$HAVE_DISK" = 1 ]; then
    STATE=$(read_state)
    case "$STATE" in
        "EVFS "*)
            BOOT=$(state_field "$STATE" boot)
            PASSED=$(state_field "$STATE" passed)
            FAILED=$(state_field "$STATE" failed)
            SKIPPED=$(state_field "$STATE" skipped)
            ;;
    esac
    BOOT=$((${BOOT:-0} + 1))
    PASSED=${PASSED:-0}
    FAILED=${FAILED:-0}
    SKIPPED=${SKIPPED:-0}
    # Count this boot before doing anything that could crash, so a crash loop ends.
    write_state "EVFS boot=$BOOT passed=$PASSED failed=$FAILED skipped=$SKIPPED"
else
    BOOT=1
    REBOOT=0
fi
marker "BOOT $BOOT mode=$MODE kernel=$(uname -r) uptime=$(now)"

# ---- mounting -------------------------------------------------------------
mount_tracing() {
    mkdir -p $TRACING 2>/dev/null
    if [ "$NATIVE" = 1 ]; then
        mount -t tracefs nodev $TRACING
        return
    fi
    _n=0
    while :; do
        if mount -t virtiofs "$TAG" $TRACING; then
            return 0
        fi
        _n=$((_n + 1))
        [ "$_n" -ge 10 ] && return 1
        log "mount -t virtiofs $TAG failed, retrying"
        sleep 1
    done
}

result() { # PASS|FAIL|SKIP name [reason]
    case "$1" in
        PASS) PASSED=$((PASSED + 1)) ;;
        FAIL) FAILED=$((FAILED + 1)) ;;
        SKIP) SKIPPED=$((SKIPPED + 1)) ;;
    esac
    [ -n "$3" ] && log "$2: $3"
    marker "RESULT $1 $2"
}

checkpoint() {
    cd /
    marker "CHECKPOINT $1"
    sleep "$CPSLEEP"
}

selected() { # test name
    [ -z "$TESTS" ] && return 0
    for _w in $(echo "$TESTS" | tr ',' ' '); do
        case "$1" in *"$_w"*) return 0 ;; esac
    done
    return 1
}

run_test() { # script
    _name=$(basename "$1" .sh)
    echo "---- $_name"
    _t0=$(now)
    (cd $TRACING && EVENTFSD_NATIVE=$NATIVE EVENTFSD_MODE=$MODE EVENTFSD_SOURCE=$SOURCE T_NAME=$_name \
        exec timeout -s KILL "$TEST_TIMEOUT" sh "$1")
    _rc=$?
    _dt=$(elapsed "$_t0")
    case $_rc in
        0) result PASS "$_name" "ok in ${_dt}s" ;;
        77) result SKIP "$_name" "skipped in ${_dt}s" ;;
        137 | 143 | 124) result FAIL "$_name" "killed after ${TEST_TIMEOUT}s timeout (hung?)" ;;
        *) result FAIL "$_name" "exit status $_rc after ${_dt}s" ;;
    esac
}

# checks after a reboot (or after drop_caches): mount works, ls events, a format reads right
fresh_checks() { # prefix
    if grep -q " $TRACING " /proc/mounts && [ -d $TRACING/events ]; then
        result PASS "$1-mount"
    else
        result FAIL "$1-mount" "$TRACING/events missing; mounts: $(grep tracing /proc/mounts)"
    fi
    _ls=$(ls $TRACING/events 2>&1)
    if [ $? -eq 0 ] && echo "$_ls" | grep -qx sched; then
        result PASS "$1-ls-events"
    else
        result FAIL "$1-ls-events" "ls events gave: $(echo "$_ls" | head -n5)"
    fi
    _ev=$TRACING/events/sched/sched_switch
    _l1=$(head -n1 $_ev/format 2>&1)
    _l2=$(sed -n 2p $_ev/format 2>&1)
    _id=$(cat $_ev/id 2>&1)
    if [ "$_l1" = "name: sched_switch" ] && [ "$_l2" = "ID: $_id" ] &&
        grep -q '^print fmt: ' $_ev/format; then
        result PASS "$1-format"
    else
        result FAIL "$1-format" "format starts '$_l1' / '$_l2', id '$_id'"
    fi
}

finish_suite() {
    cd /
    [ "$NATIVE" = 1 ] || umount $TRACING 2>/dev/null || log "umount $TRACING failed"
    marker "SKIPPED $SKIPPED"
    marker "SUITE passed=$PASSED failed=$FAILED"
    die_off
}

run_suite() {
    _s0=$(now)
    if ! mount_tracing; then
        result FAIL mount "could not mount the tracefs at $TRACING"
        finish_suite
    fi
    result PASS mount
    checkpoint baseline
    _plan=0
    for t in /guest-tests/[0-9][0-9]-*.sh; do
        [ -e "$t" ] && _plan=$((_plan + 1))
    done
    marker "PLAN boot=$BOOT scripts=$_plan"
    for t in /guest-tests/[0-9][0-9]-*.sh; do
        [ -e "$t" ] || continue
        if selected "$(basename "$t" .sh)"; then
            run_test "$t"
        else
            result SKIP "$(basename "$t" .sh)" "not selected by eventfsd.tests=$TESTS"
        fi
    done
    cd /
    sync
    echo 3 >/proc/sys/vm/drop_caches
    checkpoint after-drop-caches
    fresh_checks after-drop-caches
    log "suite (boot $BOOT) took $(elapsed "$_s0")s"
}

# ---- demo -----------------------------------------------------------------
demo_cmd() {
    echo
    echo "guest:/sys/kernel/tracing# $*"
    eval "$*" 2>&1
}

run_demo() {
    if ! mount_tracing; then
        marker "ERROR could not mount virtio-fs tag $TAG"
        die_off
    fi
    cd $TRACING || die_off
    echo
    echo "=== eventfsd demo: an ftrace session on a tracefs served over virtio-fs ==="
    demo_cmd "grep $TRACING /proc/mounts"
    demo_cmd "ls"
    demo_cmd "ls events | head -n 20"
    demo_cmd "ls events | wc -l"
    demo_cmd "ls events/sched"
    demo_cmd "ls -l events/sched/sched_switch"
    demo_cmd "cat events/sched/sched_switch/format"
    demo_cmd "cat events/sched/sched_switch/enable"
    demo_cmd "echo 1 > events/sched/sched_switch/enable"
    demo_cmd "cat events/sched/sched_switch/enable"
    demo_cmd "cat events/sched/enable"
    demo_cmd "echo 'prev_prio < 100' > events/sched/sched_switch/filter"
    demo_cmd "cat events/sched/sched_switch/filter"
    demo_cmd "echo 'no_such_field == 1' > events/sched/sched_switch/filter || echo \"rejected (exit status \$?)\""
    demo_cmd "cat error_log"
    demo_cmd "echo 'prev_prio < 100' > events/sched/sched_switch/filter  # a rejected filter left the event unfiltered"
    demo_cmd "echo > trace  # drop what was recorded unfiltered"
    demo_cmd "sleep 1; grep -v '^#' trace | head -n 5"
    demo_cmd "echo 'hello from the guest' > trace_marker"
    demo_cmd "grep tracing_mark_write trace"
    demo_cmd "cat set_event"
    demo_cmd "echo traceoff > events/sched/sched_switch/trigger"
    demo_cmd "cat events/sched/sched_switch/trigger"
    demo_cmd "cat tracing_on  # a sched_switch has fired since: the trigger turned tracing off"
    demo_cmd "echo '!traceoff' > events/sched/sched_switch/trigger"
    demo_cmd "echo 1 > tracing_on"
    demo_cmd "echo 1 > events/sched/enable"
    demo_cmd "cat events/sched/enable"
    demo_cmd "echo 0 > events/sched/enable"
    demo_cmd "echo 0 > events/sched/sched_switch/filter"
    demo_cmd "echo 'p:myprobe /bin/sh:0x10 a=%ax' >> uprobe_events"
    demo_cmd "cat uprobe_events"
    demo_cmd "grep '^print fmt' events/uprobes/myprobe/format"
    demo_cmd "echo '-:myprobe' >> uprobe_events; cat uprobe_events"
    demo_cmd "mkdir instances/mine && ls instances/mine && rmdir instances/mine"
    demo_cmd "find events | wc -l"
    echo
    echo "=== demo done ==="
    cd /
    umount $TRACING 2>/dev/null
    marker "DEMO-DONE"
    die_off
}

# ---- bench ----------------------------------------------------------------
# Microsecond timer without forking: "now at N nsecs" (CLOCK_MONOTONIC), the third line of
# /proc/timer_list, read with the shell's own `read`. Fallback: busybox `adjtimex` (read-only
# without options), which prints the time of day with microseconds (busybox `date` has no %N,
# /proc/uptime only 10 ms steps). us_now sets NOW, us_since sets US (minus the timer's cost).
if { read -r _l && read -r _l && read -r _a _b _ns _l; } </proc/timer_list 2>/dev/null &&
    [ "$_a $_b" = "now at" ]; then
    TIMER=timer_list
    us_now() {
        { read -r _l && read -r _l && read -r _a _b _ns _l; } </proc/timer_list
        NOW=$((_ns / 1000))
    }
else
    TIMER=adjtimex
    us_now() { NOW=$(adjtimex | awk '/tv_sec/ { s = $2 } /tv_usec/ { u = $2 } END { printf "%d%06d\n", s, u }'); }
fi
us_since() { # start
    us_now
    US=$((NOW - $1 - ${TIMER_US:-0}))
    [ "$US" -ge 0 ] || US=0
}
sample() { # workload rep us n [errors]: one timed run of a workload and its failed operations
    marker "BENCH sample w=$1 rep=$2 us=$3 n=$4 err=${5:-0}"
    # the first failure in words, for the log (bench-report publishes no run with failures)
    if [ "${5:-0}" != 0 ] && [ -s /tmp/bench.err ]; then
        marker "BENCH error w=$1 rep=$2 first=$(head -n1 /tmp/bench.err | tr ' =@' '___' | cut -c1-160)"
    fi
}
# Each workload leaves its failures for count_errors, called after the timed part (counting
# forks `wc`, which would be timed too): a fast failure must not pass for speed.
count_errors() { # ERR = stderr lines of the last workload, at least 1 if it exited non-zero
    ERR=$(wc -l </tmp/bench.err)
    [ "$RC" -eq 0 ] || [ "$ERR" -gt 0 ] || ERR=1
}
bench_drop() { # forget every cached dentry and inode, then let the FORGETs drain
    cd /
    sync
    echo 3 >/proc/sys/vm/drop_caches
    sleep 1
    cd $TRACING
}
bench_find() { # [out]: find events
    find events >"${1:-/dev/null}" 2>/tmp/bench.err
    RC=$?
}
bench_catlist() { # list: cat every file of the list, many per process
    xargs cat <"$1" >/dev/null 2>/tmp/bench.err
    RC=$?
}
bench_toggles() { # enable-file: 1000 writes, alternating 1 and 0; failed writes go to stderr
    _i=0
    RC=0
    while [ "$_i" -lt 500 ]; do
        echo 1 >"$1" || RC=1
        echo 0 >"$1" || RC=1
        _i=$((_i + 1))
    done 2>/tmp/bench.err
}
bench_ls() { # dir: ls -l
    ls -l "$1" >/dev/null 2>/tmp/bench.err
    RC=$?
}
bench_mix() { # n list: one process of the parallel run: find + cat of every format
    find events >/dev/null 2>/tmp/bench.mix.$1.err || echo "find exit status $?" >>/tmp/bench.mix.$1.err
    xargs cat <"$2" >/dev/null 2>>/tmp/bench.mix.$1.err || echo "xargs exit status $?" >>/tmp/bench.mix.$1.err
}

# records: how many records a reader gets and parses per second, from the enable on: both
# sched events on, then WINDOW_MS of reading, then off, while `yes | head` ping-pongs through a
# pipe (context switches and wakeups for the kernels that record real ones). `raw` is the
# tracefs-rawread reader (every CPU's trace_pipe_raw, O_NONBLOCK, drained every 10 ms, every
# page decoded); `text` is trace_pipe read with cat and its lines parsed with awk.
RECORDS_WINDOW_MS=3000
bench_records() { # raw|text
    echo 0 >events/enable
    echo >trace
    rm -f /tmp/records.out
    yes | head -c 2000000000 >/dev/null &
    _load=$!
    us_now
    _t0=$NOW
    { echo 1 >events/sched/sched_switch/enable && echo 1 >events/sched/sched_wakeup/enable; } 2>/tmp/bench.err
    RC=$?
    if [ "$1" = raw ]; then
        tracefs-rawread --drain --interval-ms 10 --idle-rounds 1000000 --max-ms $RECORDS_WINDOW_MS \
            --event sched/sched_switch --event sched/sched_wakeup . >/tmp/records.out 2>>/tmp/bench.err
        _rc=$?
        grep -v '^tracefs-rawread: [0-9]* pages' /tmp/bench.err >/tmp/bench.err.2
        mv /tmp/bench.err.2 /tmp/bench.err
    else
        timeout -s INT $((RECORDS_WINDOW_MS / 1000)) cat trace_pipe >/tmp/records.txt 2>>/tmp/bench.err
        _rc=$?
        # 124/130: the window ended as planned
        [ "$_rc" = 124 ] || [ "$_rc" = 130 ] || [ "$_rc" = 143 ] && _rc=0
        awk '/ sched_(switch|wakeup): / { print "event=" $5 }' /tmp/records.txt >/tmp/records.out
    fi
    us_since "$_t0"
    kill $_load 2>/dev/null
    wait $_load 2>/dev/null
    { echo 0 >events/sched/sched_switch/enable && echo 0 >events/sched/sched_wakeup/enable; } 2>>/tmp/bench.err
    [ "$_rc" = 0 ] || RC=1
    NREC=$(grep -c 'event=' /tmp/records.out)
}

run_bench() {
    if ! mount_tracing; then
        marker "ERROR could not mount the tracefs at $TRACING"
        die_off
    fi
    cd $TRACING || die_off
    # timer overhead: the median of 5 empty intervals
    TIMER_US=0
    _o=""
    for _i in 1 2 3 4 5; do
        us_now
        us_since "$NOW"
        _o="$_o $US"
    done
    TIMER_US=$(echo $_o | tr ' ' '\n' | sort -n | sed -n 3p)
    checkpoint bench-start
    if [ "$IDLE" -gt 0 ]; then
        sleep "$IDLE"
        checkpoint idle-after-mount
    fi
    cd $TRACING || die_off

    # 1. cold find, right after the mount
    us_now
    _t=$NOW
    bench_find /tmp/find.out
    us_since "$_t"
    _us=$US
    count_errors
    cp /tmp/bench.err /tmp/find.err
    NENT=$(wc -l </tmp/find.out)
    sample cold_find 1 "$_us" "$NENT" "$ERR"
    grep '/format$' /tmp/find.out >/tmp/formats
    grep '/id$' /tmp/find.out >/tmp/ids
    NFMT=$(wc -l </tmp/formats)
    NID=$(wc -l </tmp/ids)
    # the largest system directory
    LARGEST=""
    LN=0
    for _s in events/*/; do
        _n=$(ls "$_s" | wc -l)
        if [ "$_n" -gt "$LN" ]; then LN=$_n; LARGEST=${_s%/}; fi
    done
    TOGGLE=events/sched/sched_switch/enable
    [ -e $TOGGLE ] || TOGGLE=$(grep '/enable$' /tmp/find.out | sed -n 200p)
    marker "BENCH info entries=$NENT formats=$NFMT ids=$NID largest=$LARGEST largest_n=$LN toggle=$TOGGLE timer=$TIMER timer_us=$TIMER_US find_errors=$(wc -l </tmp/find.err) reps=$REPS kernel=$(uname -r) cpus=$(nproc)"

    # 2. warm find (second and later passes)
    for _r in $(seq 1 "$REPS"); do
        us_now
        _t=$NOW
        bench_find
        us_since "$_t"
        count_errors
        sample warm_find "$_r" "$US" "$NENT" "$ERR"
    done
    # 3. cat of every format, 4. every id
    for _r in $(seq 1 "$REPS"); do
        us_now
        _t=$NOW
        bench_catlist /tmp/formats
        us_since "$_t"
        count_errors
        sample cat_formats "$_r" "$US" "$NFMT" "$ERR"
    done
    for _r in $(seq 1 "$REPS"); do
        us_now
        _t=$NOW
        bench_catlist /tmp/ids
        us_since "$_t"
        count_errors
        sample read_ids "$_r" "$US" "$NID" "$ERR"
    done
    # 5. 1000 toggles of one event's enable. Not against the guest's own tracefs: each toggle
    # patches kernel text, and under TCG with 2 vCPUs that stalls the guest for good.
    if [ "$NATIVE" = 1 ]; then
        marker "BENCH skipped w=enable_toggle reason=kernel_text_patching_stalls_a_TCG_guest_with_2_vCPUs"
    else
        for _r in $(seq 1 "$REPS"); do
            us_now
            _t=$NOW
            bench_toggles "$TOGGLE"
            us_since "$_t"
            count_errors
            sample enable_toggle "$_r" "$US" 1000 "$ERR"
        done
    fi
    # 6. listing the largest system directory (names, types and attributes)
    for _r in $(seq 1 "$REPS"); do
        us_now
        _t=$NOW
        bench_ls "$LARGEST"
        us_since "$_t"
        count_errors
        sample ls_largest "$_r" "$US" "$LN" "$ERR"
    done
    # 7. 4 processes at once, each a find + cat of every format
    for _r in $(seq 1 "$PREPS"); do
        us_now
        _t=$NOW
        rm -f /tmp/bench.mix.*.err
        bench_mix 1 /tmp/formats &
        bench_mix 2 /tmp/formats &
        bench_mix 3 /tmp/formats &
        bench_mix 4 /tmp/formats &
        wait
        us_since "$_t"
        ERR=$(cat /tmp/bench.mix.*.err 2>/dev/null | wc -l)
        sample parallel4 "$_r" "$US" $((4 * (NENT + NFMT))) "$ERR"
    done
    # 8. records per second through trace_pipe_raw (decoded pages) and trace_pipe (text)
    if [ -n "$RECORDS_SKIP" ]; then
        marker "BENCH skipped w=raw_records reason=$RECORDS_SKIP"
        marker "BENCH skipped w=text_records reason=$RECORDS_SKIP"
    fi
    for _w in $RECORDS_WORKLOADS; do
        for _r in $(seq 1 "$REPS"); do
            bench_records $_w
            _us=$US
            count_errors
            [ "$NREC" -gt 0 ] || ERR=$((ERR + 1))
            sample ${_w}_records "$_r" "$_us" "$NREC" "$ERR"
        done
    done
    checkpoint after-find-cat
    cd /
    sync
    echo 3 >/proc/sys/vm/drop_caches
    checkpoint after-drop-caches
    if [ "$IDLE" -gt 0 ]; then
        sleep "$IDLE"
        checkpoint after-idle
    fi
    cd $TRACING || die_off
    # 9. more cold finds, each after dropping the guest's dentry and inode caches
    for _r in $(seq 2 "$REPS"); do
        bench_drop
        us_now
        _t=$NOW
        bench_find
        us_since "$_t"
        count_errors
        sample cold_find "$_r" "$US" "$NENT" "$ERR"
    done
    cd /
    [ "$NATIVE" = 1 ] || umount $TRACING 2>/dev/null
    marker "BENCH-DONE"
    die_off
}

# ---- main -----------------------------------------------------------------
case "$MODE" in
    test | native)
        if [ "$BOOT" -eq 1 ]; then
            run_suite
            if [ "$REBOOT" = 1 ] && [ "$HAVE_DISK" = 1 ]; then
                write_state "EVFS boot=$BOOT passed=$PASSED failed=$FAILED skipped=$SKIPPED"
                marker "PART boot=$BOOT passed=$PASSED failed=$FAILED skipped=$SKIPPED"
                marker "REBOOT"
                # deliberately no umount: the daemon sees a new FUSE INIT without DESTROY
                sync
                reboot -f
                while :; do sleep 60; done
            fi
            finish_suite
        elif [ "$BOOT" -eq 2 ]; then
            if mount_tracing; then
                fresh_checks after-reboot
            else
                result FAIL after-reboot-mount "mount after reboot failed"
                result FAIL after-reboot-ls-events "not mounted"
                result FAIL after-reboot-format "not mounted"
            fi
            finish_suite
        else
            marker "ERROR unexpected boot number $BOOT (reboot loop?)"
            die_off
        fi
        ;;
    demo)
        run_demo
        ;;
    bench | bench-native)
        run_bench
        ;;
    shell)
        if mount_tracing; then
            log "tracefs (virtio-fs tag $TAG) mounted at $TRACING"
        else
            log "mounting virtio-fs tag $TAG failed; the shell runs without it"
        fi
        log "interactive shell; exit it (or Ctrl-D) to power off"
        cd $TRACING 2>/dev/null || cd /
        setsid cttyhack sh -l
        cd /
        umount $TRACING 2>/dev/null
        die_off
        ;;
    *)
        marker "ERROR unknown eventfsd.mode=$MODE"
        die_off
        ;;
esac
die_off
