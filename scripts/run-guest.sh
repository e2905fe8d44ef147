#!/usr/bin/env bash
# run-guest.sh - boot the eventfsd test guest under QEMU.
#
# Usage: scripts/run-guest.sh [options]
#   --mode test|demo|shell|native|bench|bench-native   guest mode (default: shell). `native`
#                         and `bench-native` boot without the vhost-user-fs device and mount
#                         the guest kernel's own tracefs; bench* run scripts/bench.sh's workloads.
#   --socket PATH         eventfsd's vhost-user socket (default: $EVENTFSD_SOCKET or
#                         /tmp/eventfsd.sock); not used in native mode
#   --log FILE            write the serial console to FILE (default: this terminal)
#   --kvm                 use KVM instead of TCG (also EVENTFSD_KVM=1); nested KVM hangs on
#                         some hosts, so TCG is the default
#   --timeout SEC         hard timeout, QEMU is killed after it (default: $EVENTFSD_TIMEOUT
#                         or 900); exit status 124 then
#   --no-reboot-test      test/native: skip the reboot cycle (QEMU gets -no-reboot)
#   --tests WORDS         only run guest tests whose names contain one of WORDS (a,b,c)
#   --cpsleep SEC         guest pause after each CHECKPOINT marker (default 5)
#   --pidfile FILE        write QEMU's pid to FILE
#   --append ARGS         extra kernel command line arguments
#   --smp N / --mem SIZE  guest CPUs (default 1) and memory (default 1G)
# Needs scripts/prepare-guest.sh to have run (it is not called from here).
# Exit status: QEMU's, or for test/native with --log: 0 only if the guest printed a SUITE
# line with failed=0; 124 on timeout.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${EVENTFSD_CACHE_DIR:-$REPO/.cache/guest}
KERNEL=$CACHE/kernel/vmlinuz
INITRD=$CACHE/initramfs.cpio.gz
QEMU=${EVENTFSD_QEMU:-qemu-system-x86_64}

MODE=shell
SOCK=${EVENTFSD_SOCKET:-/tmp/eventfsd.sock}
LOG=""
KVM=${EVENTFSD_KVM:-0}
TIMEOUT=${EVENTFSD_TIMEOUT:-900}
REBOOT_TEST=1
TESTS=""
CPSLEEP=5
PIDFILE=""
APPEND=""
SMP=1
MEM=1G

while [ $# -gt 0 ]; do
    case "$1" in
        --mode) MODE=$2; shift 2 ;;
        --socket) SOCK=$2; shift 2 ;;
        --log) LOG=$2; shift 2 ;;
        --kvm) KVM=1; shift ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --no-reboot-test) REBOOT_TEST=0; shift ;;
        --tests) TESTS=$2; shift 2 ;;
        --cpsleep) CPSLEEP=$2; shift 2 ;;
        --pidfile) PIDFILE=$2; shift 2 ;;
        --append) APPEND=$2; shift 2 ;;
        --smp) SMP=$2; shift 2 ;;
        --mem) MEM=$2; shift 2 ;;
        -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "run-guest: unknown argument: $1" >&2; exit 2 ;;
    esac
done

case "$MODE" in
    test | demo | shell | native | bench | bench-native) ;;
    *) echo "run-guest: bad --mode $MODE (test|demo|shell|native|bench|bench-native)" >&2; exit 2 ;;
esac
for f in "$KERNEL" "$INITRD"; do
    [ -s "$f" ] || { echo "run-guest: $f missing; run scripts/prepare-guest.sh" >&2; exit 2; }
done
VIRTIOFS=1
case "$MODE" in native | bench-native) VIRTIOFS=0 ;; esac
if [ "$VIRTIOFS" = 1 ] && [ ! -S "$SOCK" ]; then
    echo "run-guest: warning: no socket at $SOCK (is eventfsd running?); QEMU will fail to connect" >&2
fi

DISK=""
QPID=""
cleanup() {
    if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
        kill "$QPID" 2>/dev/null
        for _ in $(seq 1 20); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$QPID" 2>/dev/null
        wait "$QPID" 2>/dev/null
    fi
    [ -n "$DISK" ] && rm -f "$DISK"
    [ -n "$PIDFILE" ] && rm -f "$PIDFILE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# small raw disk for the guest's boot counter (zeroed: first boot)
DISK=$(mktemp "${TMPDIR:-/tmp}/eventfsd-bootdisk.XXXXXX")
truncate -s 1M "$DISK"

REBOOT_ARG=0
NO_REBOOT=(-no-reboot)
if { [ "$MODE" = test ] || [ "$MODE" = native ]; } && [ "$REBOOT_TEST" = 1 ]; then
    REBOOT_ARG=1
    NO_REBOOT=()
fi

if [ "$KVM" = 1 ]; then ACCEL=(-accel kvm -cpu host); else ACCEL=(-accel tcg); fi

CMDLINE="console=ttyS0 quiet eventfsd.mode=$MODE eventfsd.reboot=$REBOOT_ARG eventfsd.cpsleep=$CPSLEEP panic=-1"
[ -n "$TESTS" ] && CMDLINE="$CMDLINE eventfsd.tests=$TESTS"
[ -n "$APPEND" ] && CMDLINE="$CMDLINE $APPEND"

ARGS=("$QEMU" "${ACCEL[@]}" -m "$MEM" -smp "$SMP" -nodefaults -no-user-config -display none)
if [ "$VIRTIOFS" = 1 ]; then
    # shellcheck disable=SC2054 # commas belong to QEMU option values
    ARGS+=(-object "memory-backend-memfd,id=mem,size=$MEM,share=on" -numa node,memdev=mem
        -chardev "socket,id=vfs0,path=$SOCK"
        -device vhost-user-fs-pci,chardev=vfs0,tag=tracefs,queue-size=1024)
fi
ARGS+=(-drive "file=$DISK,format=raw,if=virtio,cache=writeback"
    -kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE" "${NO_REBOOT[@]}")
if [ -n "$LOG" ]; then
    : >"$LOG"
    ARGS+=(-serial "file:$LOG" -monitor none)
else
    ARGS+=(-serial mon:stdio)
fi

echo "run-guest: mode=$MODE accel=$([ "$KVM" = 1 ] && echo kvm || echo tcg) timeout=${TIMEOUT}s${LOG:+ log=$LOG}" >&2
T0=$(date +%s)
if [ -n "$LOG" ]; then
    "${ARGS[@]}" </dev/null &
else
    "${ARGS[@]}" <&0 &
fi
QPID=$!
[ -n "$PIDFILE" ] && echo "$QPID" >"$PIDFILE"

TIMED_OUT=0
DEADLINE=$((T0 + TIMEOUT))
while kill -0 "$QPID" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$DEADLINE" ]; then
        echo "run-guest: timeout after ${TIMEOUT}s, killing QEMU (pid $QPID)" >&2
        TIMED_OUT=1
        kill "$QPID" 2>/dev/null
        sleep 1
        kill -9 "$QPID" 2>/dev/null
        break
    fi
    sleep 0.2
done
wait "$QPID"
RC=$?
QPID=""
echo "run-guest: QEMU exited with status $RC after $(($(date +%s) - T0))s" >&2
[ "$TIMED_OUT" = 1 ] && exit 124

if [ -n "$LOG" ] && { [ "$MODE" = test ] || [ "$MODE" = native ]; }; then
    SUITE=$(grep -ao '@@EVENTFSD SUITE [^@]*@@' "$LOG" | tail -n1)
    if [ -z "$SUITE" ]; then
        echo "run-guest: no SUITE line in $LOG" >&2
        exit 1
    fi
    echo "run-guest: $SUITE" >&2
    case "$SUITE" in *" failed=0@@") exit 0 ;; *) exit 1 ;; esac
fi
exit "$RC"
