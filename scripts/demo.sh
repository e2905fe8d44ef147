#!/usr/bin/env bash
# demo.sh - see eventfsd work in two minutes.
#
# Builds eventfsd, prepares the guest image, starts eventfsd with its embedded event
# catalog, boots a QEMU guest that mounts it with `mount -t virtiofs tracefs
# /sys/kernel/tracing` and runs a short ftrace session there (list the event systems, show
# sched_switch's format, enable it, set a filter and a trigger, show the state), echoing
# every command before running it. Then everything is stopped again.
#
# Usage: scripts/demo.sh [--no-build] [--kvm] [--raw]
#   --no-build  use the existing target/release/eventfsd
#   --kvm       use KVM instead of TCG (also EVENTFSD_KVM=1)
#   --raw       show the whole serial console (kernel messages and markers too)
# Environment: EVENTFSD_BIN (daemon binary; implies --no-build), EVENTFSD_ARGS (extra
# daemon arguments), EVENTFSD_TIMEOUT (default 600 s).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
BUILD=1
EVENTFSD=${EVENTFSD_BIN:-}
[ -n "$EVENTFSD" ] && BUILD=0
[ -n "$EVENTFSD" ] || EVENTFSD=$REPO/target/release/eventfsd
KVM_ARGS=()
[ "${EVENTFSD_KVM:-0}" = 1 ] && KVM_ARGS=(--kvm)
RAW=0
read -r -a EXTRA_ARGS <<<"${EVENTFSD_ARGS:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0; shift ;;
        --kvm) KVM_ARGS=(--kvm); shift ;;
        --raw) RAW=1; shift ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "demo: unknown argument: $1" >&2; exit 2 ;;
    esac
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-demo.XXXXXX")
SOCK=$TMP/eventfsd.sock
LOG=$TMP/serial.log
DLOG=$TMP/daemon.log
DPID=""
RUNPID=""
cleanup() {
    stop_pid "$RUNPID" # run-guest.sh stops its QEMU on the way out
    stop_pid "$DPID"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT
trap 'exit 143' TERM

step() { if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }

if [ "$BUILD" = 1 ]; then
    step "building eventfsd (cargo build --release -p eventfsd)"
    (cd "$REPO" && cargo build --release -p eventfsd) || { echo "demo: build failed" >&2; exit 1; }
fi
[ -x "$EVENTFSD" ] || { echo "demo: $EVENTFSD not found" >&2; exit 1; }

step "preparing the guest (Debian kernel + busybox initramfs, cached in .cache/guest)"
"$REPO/scripts/prepare-guest.sh" --quiet || { echo "demo: prepare-guest.sh failed" >&2; exit 1; }

step "starting eventfsd --socket-path $SOCK (embedded catalog)"
"$EVENTFSD" --socket-path "$SOCK" --log-level info "${EXTRA_ARGS[@]}" >"$DLOG" 2>&1 &
DPID=$!
for _ in $(seq 1 300); do
    [ -S "$SOCK" ] && break
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.1
done
if [ ! -S "$SOCK" ]; then
    echo "demo: eventfsd did not create $SOCK; its log:" >&2
    cat "$DLOG" >&2
    exit 1
fi

step "booting the guest (QEMU, $([ ${#KVM_ARGS[@]} -gt 0 ] && echo KVM || echo TCG: about 5-10 s))"
"$REPO/scripts/run-guest.sh" --mode demo --socket "$SOCK" --log "$LOG" \
    --timeout "${EVENTFSD_TIMEOUT:-600}" "${KVM_ARGS[@]}" 2>"$TMP/run-guest.err" &
RUNPID=$!

# Follow the serial log until QEMU is gone.
DONE_LINES=0
SHOWING=$RAW
show_new() {
    local total line
    total=$(wc -l <"$LOG" 2>/dev/null || echo 0)
    [ "$total" -gt "$DONE_LINES" ] || return 0
    while IFS= read -r line; do
        line=${line//$'\r'/}
        if [ "$RAW" = 1 ]; then
            echo "$line"
            continue
        fi
        case "$line" in
            *"=== eventfsd demo"*) SHOWING=1 ;;
            *"@@EVENTFSD DEMO-DONE@@"*) SHOWING=0 ;;
            *"@@EVENTFSD ERROR"*) echo "demo: guest error: $line" ;;
        esac
        case "$line" in
            "@@EVENTFSD"*) ;;
            *) [ "$SHOWING" = 1 ] && echo "$line" ;;
        esac
    done < <(sed -n "$((DONE_LINES + 1)),${total}p" "$LOG")
    DONE_LINES=$total
}
while kill -0 "$RUNPID" 2>/dev/null; do
    show_new
    sleep 0.2
done
wait "$RUNPID"
RC=$?
RUNPID=""
show_new
if ! grep -q '@@EVENTFSD DEMO-DONE@@' "$LOG"; then
    echo "demo: the guest did not finish the demo (run-guest.sh exit status $RC); last console lines:" >&2
    tail -n 20 "$LOG" | tr -d '\r' >&2
    cat "$TMP/run-guest.err" >&2
    RC=1
else
    RC=0
fi
step "stopping eventfsd"
stop_pid "$DPID"
DPID=""
echo "demo: done (daemon log had $(wc -l <"$DLOG") lines)"
exit $RC
