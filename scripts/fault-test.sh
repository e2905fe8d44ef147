#!/usr/bin/env bash
# fault-test.sh - fault injection with real QEMU guests against one eventfsd.
#
#   1. qemu-kill    QEMU is killed with SIGKILL while the guest runs the find/inode tests; a new
#                   QEMU then runs a test subset (with its reboot cycle) against the SAME daemon.
#   2. hard-reset   system_reset from the QEMU monitor in the middle of the guest's traffic
#                   (no umount, no DESTROY); the guest boots again and mounts (INIT without
#                   DESTROY) and runs the after-reboot checks.
#   3. daemon-kill  eventfsd is killed with SIGKILL while the guest is up and restarted; QEMU
#                   is started with chardev reconnect=1 first (and without it if that QEMU
#                   cannot). What the guest sees is reported; the pass criteria are that the
#                   restarted daemon runs and serves the next guest.
# After each: the daemon must still run (1, 2), answer the next guest, and its materialised
# nodes must be back near the baseline once the guest is gone.
#
# Usage: scripts/fault-test.sh [--no-build] [--kvm] [--only 1,2,3] [--keep-logs DIR]
# Every QEMU run is bounded (EVENTFSD_FAULT_TIMEOUT, default 300 s); every process started
# here is stopped by pid at the end; the temp dir is removed. Exit status 0 when 1 and 2 pass
# and 3 ran without a daemon crash.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
CACHE=${EVENTFSD_CACHE_DIR:-$REPO/.cache/guest}
EVENTFSD=${EVENTFSD_BIN:-$REPO/target/release/eventfsd}
QEMU=${EVENTFSD_QEMU:-qemu-system-x86_64}
TIMEOUT=${EVENTFSD_FAULT_TIMEOUT:-300}
BUILD=1
KVM=${EVENTFSD_KVM:-0}
ONLY="1,2,3"
KEEP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0; shift ;;
        --kvm) KVM=1; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --keep-logs) KEEP=$2; shift 2 ;;
        -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "fault-test: unknown argument: $1" >&2; exit 2 ;;
    esac
done

if [ "$BUILD" = 1 ]; then
    (cd "$REPO" && cargo build --release -p eventfsd) || exit 1
fi
if [ ! -s "$CACHE/kernel/vmlinuz" ] || [ ! -s "$CACHE/initramfs.cpio.gz" ]; then
    "$REPO/scripts/prepare-guest.sh" || exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-fault-test.XXXXXX")
SOCK=$TMP/eventfsd.sock
STATS=$TMP/stats.json
DLOG=$TMP/eventfsd.log
DPID=""
QPID=""
PASS=0
FAIL=0
REPORT=()

note() { echo "fault-test: $*"; }
ok() { PASS=$((PASS + 1)); REPORT+=("PASS $*"); note "PASS $*"; }
bad() { FAIL=$((FAIL + 1)); REPORT+=("FAIL $*"); note "FAIL $*"; }
info() { REPORT+=("INFO $*"); note "INFO $*"; }


cleanup() {
    stop_pid "$QPID"
    stop_pid "$DPID"
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP" && cp -a "$TMP"/. "$KEEP"/ 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_daemon() {
    rm -f "$SOCK"
    "$EVENTFSD" --socket-path "$SOCK" --stats-file "$STATS" --log-level info >>"$DLOG" 2>&1 &
    DPID=$!
    for _ in $(seq 1 100); do [ -S "$SOCK" ] && return 0; sleep 0.1; done
    bad "eventfsd did not create its socket"
    return 1
}

field() { # name: a number from the stats file
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$STATS" 2>/dev/null | head -n1
}

stats_line() {
    sleep 1 # the stats file is rewritten every 500 ms
    echo "materialised=$(field materialised_nodes) requests=$(field requests) errors=$(field errors)" \
        "sessions=$(field sessions) connections=$(field connections) chains=$(field chains)" \
        "unanswerable=$(field unanswerable_chains) stale=$(field stale_completions)"
}

wait_for_log() { # file pattern seconds
    local end=$(($(date +%s) + $3))
    while [ "$(date +%s)" -lt "$end" ]; do
        grep -aq -- "$2" "$1" 2>/dev/null && return 0
        [ -n "$QPID" ] && ! kill -0 "$QPID" 2>/dev/null && return 1
        sleep 0.2
    done
    return 1
}

# QEMU like scripts/run-guest.sh (test mode), plus a monitor socket and optional chardev
# options; runs in the background, pid in QPID.
start_qemu() { # log tests reboot(0|1) chardev-extra
    local log=$1 tests=$2 reboot=$3 extra=$4 disk
    disk=$(mktemp "$TMP/disk.XXXXXX")
    truncate -s 1M "$disk"
    local accel=(-accel tcg)
    [ "$KVM" = 1 ] && accel=(-accel kvm -cpu host)
    local noreboot=(-no-reboot)
    [ "$reboot" = 1 ] && noreboot=()
    rm -f "$TMP/mon.sock"
    "$QEMU" "${accel[@]}" -m 1G -smp 1 -nodefaults -no-user-config -display none \
        -object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem \
        -chardev "socket,id=vfs0,path=$SOCK$extra" \
        -device vhost-user-fs-pci,chardev=vfs0,tag=tracefs,queue-size=1024 \
        -drive "file=$disk,format=raw,if=virtio,cache=writeback" \
        -kernel "$CACHE/kernel/vmlinuz" -initrd "$CACHE/initramfs.cpio.gz" \
        -append "console=ttyS0 quiet eventfsd.mode=test eventfsd.reboot=$reboot eventfsd.cpsleep=1 eventfsd.tests=$tests panic=-1" \
        "${noreboot[@]}" -serial "file:$log" -monitor "unix:$TMP/mon.sock,server,nowait" \
        </dev/null >>"$TMP/qemu.err" 2>&1 &
    QPID=$!
}

wait_qemu() { # seconds: wait for QEMU to exit; kill it after the timeout (returns 124)
    local end=$(($(date +%s) + $1))
    while kill -0 "$QPID" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$end" ]; then
            stop_pid "$QPID"
            QPID=""
            return 124
        fi
        sleep 0.5
    done
    wait "$QPID" 2>/dev/null
    QPID=""
    return 0
}

monitor() { # command
    python3 - "$TMP/mon.sock" "$1" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.3)
s.sendall((sys.argv[2] + "\n").encode())
time.sleep(0.5)
s.close()
EOF
}

suite_of() { grep -ao '@@EVENTFSD SUITE [^@]*@@' "$1" | tail -n1; }
results_of() { grep -ao '@@EVENTFSD RESULT [A-Z]* [^@]*@@' "$1" | sed 's/@@EVENTFSD RESULT \(.*\)@@/\1/' | tr '\n' ' '; }

selected() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

start_daemon || exit 1
note "eventfsd pid $DPID, socket $SOCK, logs in $TMP"

# ---- 1. QEMU killed with SIGKILL mid-traffic, then a new QEMU ------------------------------
if selected 1; then
    note "1. qemu-kill: guest runs 60-find/70-inodes; QEMU gets SIGKILL during 60-find"
    start_qemu "$TMP/f1a.log" "60,70" 0 ""
    if wait_for_log "$TMP/f1a.log" "---- 60-find" "$TIMEOUT"; then
        sleep 2
        kill -9 "$QPID" 2>/dev/null
        wait "$QPID" 2>/dev/null
        QPID=""
        info "qemu-kill: SIGKILL during 60-find; daemon stats: $(stats_line)"
        if kill -0 "$DPID" 2>/dev/null; then ok "qemu-kill: daemon survived"; else bad "qemu-kill: daemon died"; fi
        start_qemu "$TMP/f1b.log" "10,20,40,60,70" 1 ""
        wait_qemu "$TIMEOUT"
        s=$(suite_of "$TMP/f1b.log")
        case "$s" in
            *" failed=0@@") ok "qemu-kill: next QEMU on the same daemon: $s" ;;
            *) bad "qemu-kill: next QEMU: ${s:-no SUITE line}; results: $(results_of "$TMP/f1b.log")" ;;
        esac
        info "qemu-kill: after the second guest: $(stats_line)"
    else
        bad "qemu-kill: the guest never reached 60-find"
        stop_pid "$QPID"; QPID=""
    fi
    m=$(field materialised_nodes)
    if [ -n "$m" ] && [ "$m" -le 64 ]; then ok "qemu-kill: materialised_nodes=$m with no guest"; else bad "qemu-kill: materialised_nodes=${m:-?} with no guest"; fi
fi

# ---- 2. hard reset mid-traffic ---------------------------------------------------------
if selected 2; then
    note "2. hard-reset: system_reset during 60-find; the guest's second boot mounts again"
    start_qemu "$TMP/f2.log" "60,70" 1 ""
    if wait_for_log "$TMP/f2.log" "---- 60-find" "$TIMEOUT"; then
        sleep 2
        monitor system_reset
        info "hard-reset: system_reset sent; daemon stats: $(stats_line)"
        wait_qemu "$TIMEOUT"
        s=$(suite_of "$TMP/f2.log")
        boots=$(grep -ac '@@EVENTFSD BOOT' "$TMP/f2.log")
        case "$s" in
            *" failed=0@@") ok "hard-reset: guest booted $boots times, remounted: $s ($(results_of "$TMP/f2.log"))" ;;
            *) bad "hard-reset: ${s:-no SUITE line} after $boots boots; results: $(results_of "$TMP/f2.log")" ;;
        esac
        if kill -0 "$DPID" 2>/dev/null; then ok "hard-reset: daemon survived"; else bad "hard-reset: daemon died"; fi
        info "hard-reset: after: $(stats_line)"
    else
        bad "hard-reset: the guest never reached 60-find"
        stop_pid "$QPID"; QPID=""
    fi
fi

# ---- 3. eventfsd killed and restarted under a running guest ------------------------------
daemon_kill() { # chardev-extra label
    start_qemu "$TMP/f3$2.log" "60,70,20,10" 0 "$1"
    if ! wait_for_log "$TMP/f3$2.log" "---- 60-find" 120; then
        info "daemon-kill$2: the guest never reached 60-find; QEMU says: $(tail -n 2 "$TMP/qemu.err" | tr '\n' ' ')"
        stop_pid "$QPID"; QPID=""
        return 1
    fi
    sleep 2
    before=$(results_of "$TMP/f3$2.log")
    kill -9 "$DPID" 2>/dev/null
    wait "$DPID" 2>/dev/null
    DPID=""
    sleep 2
    start_daemon
    note "daemon-kill$2: restarted as pid $DPID"
    wait_qemu 90
    rc=$?
    after=$(results_of "$TMP/f3$2.log")
    s=$(suite_of "$TMP/f3$2.log")
    info "daemon-kill$2: results before the kill: [${before}]"
    info "daemon-kill$2: results at the end: [${after}] suite: ${s:-none}; QEMU $([ $rc = 124 ] && echo 'still running after 90 s (guest blocked), killed' || echo exited)"
    info "daemon-kill$2: QEMU says: $(grep -v '^$' "$TMP/qemu.err" | tail -n 2 | tr '\n' ' ')"
    info "daemon-kill$2: guest console tail: $(grep -av '^$' "$TMP/f3$2.log" | tail -n 4 | tr '\n' '|')"
    info "daemon-kill$2: new daemon's stats: $(stats_line)"
    if kill -0 "$DPID" 2>/dev/null; then ok "daemon-kill$2: restarted daemon still running"; else bad "daemon-kill$2: restarted daemon died"; fi
    # The restarted daemon must serve the next guest normally.
    start_qemu "$TMP/f3$2-next.log" "10,20" 0 ""
    wait_qemu "$TIMEOUT"
    s=$(suite_of "$TMP/f3$2-next.log")
    case "$s" in
        *" failed=0@@") ok "daemon-kill$2: next guest on the restarted daemon: $s" ;;
        *) bad "daemon-kill$2: next guest: ${s:-no SUITE line}" ;;
    esac
}
if selected 3; then
    note "3. daemon-kill: SIGKILL to eventfsd during 60-find, restart after 2 s"
    : >"$TMP/qemu.err"
    if ! daemon_kill ",reconnect=1" "-reconnect"; then
        info "daemon-kill: QEMU $("$QEMU" --version | head -n1 | sed 's/.*version //') cannot realize vhost-user-fs with reconnect=1 (the backend must be connected at device init); retrying without reconnect"
        daemon_kill "" ""
    fi
fi

echo
echo "fault-test summary:"
printf '  %s\n' "${REPORT[@]}"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
