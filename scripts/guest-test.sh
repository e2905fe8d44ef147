#!/usr/bin/env bash
# guest-test.sh - end-to-end test: eventfsd serving a QEMU guest over vhost-user virtio-fs.
#
# Builds eventfsd and the raw reader (cargo build --release -p eventfsd -p tracefs-raw),
# prepares the guest
# (scripts/prepare-guest.sh), starts
#   eventfsd --socket-path $TMP/eventfsd.sock --stats-file $TMP/stats.json --log-level info
# boots the guest in test mode (scripts/run-guest.sh) and follows its serial log:
#   * guest RESULT markers are counted (the guest-tests/NN-*.sh scripts plus the init's own
#     mount / after-drop-caches / after-reboot checks);
#   * at CHECKPOINT baseline the daemon's "materialised_nodes" is read from the stats file,
#     at CHECKPOINT after-drop-caches it must come back to at most baseline + 64;
#   * the guest reboots once (new FUSE INIT without DESTROY): the daemon must survive it;
#   * a missing SUITE line (hang, timeout), fewer results than expected, or the daemon
#     exiting all fail the run.
# The last line is "N passed, M failed"; the exit status is 0 only when M is 0.
#
# Usage: scripts/guest-test.sh [--no-build] [--kvm] [--timeout SEC] [--tests WORDS]
#                              [--keep-logs DIR] [--quiet]
#   --no-build       do not run cargo (use the existing binary)
#   --kvm            boot with KVM instead of TCG (also EVENTFSD_KVM=1)
#   --timeout SEC    hard timeout for QEMU (default: $EVENTFSD_TIMEOUT or 900)
#   --tests WORDS    only run guest tests whose names contain one of WORDS (a,b,c); the
#                    others are reported as SKIP
#   --keep-logs DIR  copy the serial log, daemon log and stats file to DIR at the end
#   --quiet          show only markers and failures from the guest, not every "ok:" line
# Environment: EVENTFSD_BIN (daemon binary; implies --no-build), EVENTFSD_ARGS (extra daemon
# arguments), EVENTFSD_NODES_SLACK (allowed growth over the baseline, default 64).
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
TIMEOUT=${EVENTFSD_TIMEOUT:-900}
TESTS=""
KEEP=""
QUIET=0
SLACK=${EVENTFSD_NODES_SLACK:-64}
read -r -a EXTRA_ARGS <<<"${EVENTFSD_ARGS:-}"
# The guest's vCPUs; the daemon serves exactly as many per_cpu/cpuN directories unless
# EVENTFSD_ARGS says otherwise. The host source gets one vCPU per host CPU, so that each guest
# CPU is one host CPU and per-CPU time order holds (folding several host CPUs onto one guest
# CPU is tested by crates/eventfsd/tests/host_source.rs); the catalog source one vCPU.
GUEST_CPUS=1
# The guest scripts learn the source (eventfsd.source=, EVENTFSD_SOURCE): the host source's
# policy refuses what the catalog's simulated kernel accepts.
SOURCE=catalog
case " ${EXTRA_ARGS[*]} " in
    *" --source host "* | *" --source=host "*) GUEST_CPUS=$(nproc); SOURCE=host ;;
esac
case " ${EXTRA_ARGS[*]} " in
    *" --cpus"*) ;;
    *) EXTRA_ARGS+=(--cpus "$GUEST_CPUS") ;;
esac

while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0; shift ;;
        --kvm) KVM_ARGS=(--kvm); shift ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --tests) TESTS=$2; shift 2 ;;
        --keep-logs) KEEP=$2; shift 2 ;;
        --quiet) QUIET=1; shift ;;
        -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "guest-test: unknown argument: $1" >&2; exit 2 ;;
    esac
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-guest-test.XXXXXX")
SOCK=$TMP/eventfsd.sock
STATS=$TMP/stats.json
LOG=$TMP/serial.log
DLOG=$TMP/daemon.log
DPID=""
RUNPID=""


cleanup() {
    local qpid=""
    [ -s "$TMP/qemu.pid" ] && qpid=$(cat "$TMP/qemu.pid" 2>/dev/null)
    stop_pid "$RUNPID" run-guest.sh
    # run-guest.sh stops QEMU itself; this only matters if it was killed hard
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill -9 "$qpid" 2>/dev/null; fi
    if grep -q " $TMP/oracle-tracefs " /proc/mounts 2>/dev/null; then
        rmdir "$TMP/oracle-tracefs/instances/evtest-oracle-$$" 2>/dev/null
        umount -l "$TMP/oracle-tracefs"
    fi
    stop_pid "$DPID" eventfsd
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP" && cp -f "$LOG" "$DLOG" "$STATS" "$KEEP/" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "guest-test: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.1f", b - a }'; }

H_PASS=0
H_FAIL=0
FAILED_NAMES=()
hpass() { H_PASS=$((H_PASS + 1)); echo "host: PASS $1${2:+ ($2)}"; }
hfail() { H_FAIL=$((H_FAIL + 1)); FAILED_NAMES+=("host:$1"); echo "host: FAIL $1${2:+: $2}"; }

G_PASS=0
G_FAIL=0
G_SKIP=0
summary_and_exit() {
    local p=$((G_PASS + H_PASS)) f=$((G_FAIL + H_FAIL))
    echo
    echo "==== eventfsd guest test summary ===="
    echo "guest results: $G_PASS passed, $G_FAIL failed, $G_SKIP skipped; host checks: $H_PASS passed, $H_FAIL failed"
    [ ${#FAILED_NAMES[@]} -gt 0 ] && echo "failed: ${FAILED_NAMES[*]}"
    [ -n "${BOOT_TIME:-}" ] && echo "boot time (QEMU start to init): ${BOOT_TIME}s"
    [ -n "${SUITE_TIME:-}" ] && echo "suite wall time (first boot to SUITE line, incl. reboot and checkpoint pauses): ${SUITE_TIME}s"
    [ -n "${TESTS_TIME:-}" ] && echo "guest test scripts (first boot, without pauses): ${TESTS_TIME}s"
    [ -n "${TOTAL_TIME:-}" ] && echo "guest run wall time: ${TOTAL_TIME}s"
    [ -n "${NODES_INFO:-}" ] && echo "materialised_nodes: $NODES_INFO"
    echo "$p passed, $f failed, $G_SKIP skipped"
    [ "$f" -eq 0 ]
    exit $?
}

daemon_alive() { [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; }

read_nodes() { # prints materialised_nodes from the stats file, or nothing
    [ -r "$STATS" ] || return 0
    sed -n 's/.*"materialised_nodes"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$STATS" 2>/dev/null | head -n1
}

# ---- 1. build -----------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
    echo "guest-test: cargo build --release -p eventfsd -p tracefs-raw"
    if (cd "$REPO" && cargo build --release -p eventfsd -p tracefs-raw); then
        hpass build
    else
        hfail build "cargo build --release -p eventfsd -p tracefs-raw failed"
        summary_and_exit
    fi
fi
if [ ! -x "$EVENTFSD" ]; then
    hfail daemon-binary "$EVENTFSD not found"
    summary_and_exit
fi

# ---- 2. expected find count, from an oracle that is not the daemon -------------------
# Catalog source: the catalog image read by scripts/catalog-entries.py (its own parser).
# Host source: `find events` over a fresh private instance of this machine's tracefs, in a
# private tracefs mount (the host's top level is not touched), without what the policy hides
# (the default or --policy's `events.hidden`). No oracle is a failure.
oracle_catalog() {
    local catalog="" prev=""
    for a in "${EXTRA_ARGS[@]}"; do
        [ "$prev" = --catalog ] && catalog=$a
        case "$a" in --catalog=*) catalog=${a#--catalog=} ;; esac
        prev=$a
    done
    python3 "$REPO/scripts/catalog-entries.py" ${catalog:+"$catalog"}
}
# The policy's hidden systems and events (docs/policy.example.toml is the default policy,
# written out), as an alternation for grep -E.
hidden_by_policy() {
    local policy="$REPO/docs/policy.example.toml" prev=""
    for a in "${EXTRA_ARGS[@]}"; do
        [ "$prev" = --policy ] && policy=$a
        case "$a" in --policy=*) policy=${a#--policy=} ;; esac
        prev=$a
    done
    python3 - "$policy" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    events = tomllib.load(f).get("events", {})
print("|".join(events.get("hidden", [])))
PY
}
oracle_host() {
    local top=$TMP/oracle-tracefs inst n="" hidden
    hidden=$(hidden_by_policy) || return 1
    mkdir -p "$top"
    mount -t tracefs nodev "$top" || return 1
    inst=$top/instances/evtest-oracle-$$
    if mkdir "$inst"; then
        n=$(find "$inst/events" 2>/dev/null |
            grep -Ev "^$inst/events/(${hidden:-^})(/|\$)" | wc -l)
        rmdir "$inst"
    fi
    umount "$top"
    rmdir "$top"
    [ -n "$n" ] && [ "$n" -gt 0 ] && echo "$n"
}
case " ${EXTRA_ARGS[*]} " in
    *" --source host "* | *" --source=host "*) ORACLE=host ;;
    *) ORACLE=catalog ;;
esac
EXPECTED_ENV=$TMP/expected.env
if n=$(oracle_$ORACLE) && [ -n "$n" ]; then
    echo "EXPECTED_EVENTS_ENTRIES=$n" >"$EXPECTED_ENV"
    echo "guest-test: oracle ($ORACLE): find events should list $n entries"
else
    hfail expected-entries "no $ORACLE oracle for the find count"
    summary_and_exit
fi

# ---- 3. guest image ----------------------------------------------------------------
if ! "$REPO/scripts/prepare-guest.sh" --quiet --expected-env "$EXPECTED_ENV"; then
    hfail prepare-guest "scripts/prepare-guest.sh failed"
    summary_and_exit
fi
NSCRIPTS=$(ls "$REPO"/guest-tests/[0-9][0-9]-*.sh 2>/dev/null | wc -l)
# scripts + init's mount + 3 after-drop-caches checks + 3 after-reboot checks
EXPECTED_RESULTS=$((NSCRIPTS + 7))

# ---- 4. daemon -----------------------------------------------------------------------
echo "guest-test: starting $EVENTFSD --socket-path $SOCK --stats-file $STATS --log-level info ${EXTRA_ARGS[*]}"
# The host source's shared snapshot goes to this run's directory, not /run/eventfsd.
if [ "$SOURCE" = host ]; then
    EXTRA_ARGS+=(--snapshot-dir "$TMP/snapshots")
fi
"$EVENTFSD" --socket-path "$SOCK" --stats-file "$STATS" --log-level info "${EXTRA_ARGS[@]}" >"$DLOG" 2>&1 &
DPID=$!
for _ in $(seq 1 300); do
    [ -S "$SOCK" ] && break
    daemon_alive || break
    sleep 0.1
done
if [ -S "$SOCK" ] && daemon_alive; then
    hpass daemon-start "socket $SOCK, pid $DPID"
else
    hfail daemon-start "no socket at $SOCK after 30 s (daemon $(daemon_alive && echo running || echo exited))"
    sed 's/^/  daemon| /' "$DLOG" | tail -n20
    summary_and_exit
fi

# ---- 5. guest --------------------------------------------------------------------------
RUN_ARGS=(--mode test --socket "$SOCK" --log "$LOG" --pidfile "$TMP/qemu.pid" --timeout "$TIMEOUT" --smp "$GUEST_CPUS" "${KVM_ARGS[@]}")
[ -n "$TESTS" ] && RUN_ARGS+=(--tests "$TESTS")
RUN_ARGS+=(--append "eventfsd.source=$SOURCE")
T_QEMU=$(now)
: >"$LOG"
"$REPO/scripts/run-guest.sh" "${RUN_ARGS[@]}" &
RUNPID=$!

BASELINE=""
AFTER=""
PEAK=0
SUITE_SEEN=""
BOOTS=0
T_BOOT1=""
REBOOT_SEEN=0
ALIVE_AFTER_REBOOT=""
ERRORS=()

note_peak() {
    local v
    v=$(read_nodes)
    [ -n "$v" ] && [ "$v" -gt "$PEAK" ] && PEAK=$v
}

handle_marker() { # marker text without @@EVENTFSD and @@
    local m=$1 v i
    case "$m" in
        "BOOT "*)
            BOOTS=$((BOOTS + 1))
            if [ "$BOOTS" = 1 ]; then
                T_BOOT1=$(now)
                BOOT_TIME=$(since "$T_QEMU" "$T_BOOT1")
            fi
            ;;
        "RESULT PASS "*) G_PASS=$((G_PASS + 1)); note_peak ;;
        "RESULT FAIL "*) G_FAIL=$((G_FAIL + 1)); FAILED_NAMES+=("${m#RESULT FAIL }"); note_peak ;;
        "RESULT SKIP "*) G_SKIP=$((G_SKIP + 1)) ;;
        "REBOOT") REBOOT_SEEN=1 ;;
        "PLAN "*) T_PLAN=$(now) ;;
        "CHECKPOINT baseline")
            # let the daemon rewrite its stats (every <= 500 ms) after the mount's lookups
            sleep 1.2
            for i in $(seq 1 10); do
                v=$(read_nodes)
                [ -n "$v" ] && break
                sleep 0.2
            done
            BASELINE=$v
            if [ -n "$BASELINE" ]; then
                hpass stats-baseline "materialised_nodes=$BASELINE"
            else
                hfail stats-baseline "no \"materialised_nodes\" in $STATS"
                [ -r "$STATS" ] && head -c 300 "$STATS" && echo
            fi
            ;;
        "CHECKPOINT after-drop-caches")
            [ -n "${T_PLAN:-}" ] && TESTS_TIME=$(since "$T_PLAN")
            # FORGETs arrive asynchronously: watch for up to ~3.5 s, keep the lowest value
            AFTER=""
            for i in $(seq 1 14); do
                sleep 0.25
                v=$(read_nodes)
                [ -n "$v" ] || continue
                if [ -z "$AFTER" ] || [ "$v" -lt "$AFTER" ]; then AFTER=$v; fi
                [ -n "$BASELINE" ] && [ "$i" -ge 3 ] && [ "$AFTER" -le $((BASELINE + SLACK)) ] && break
            done
            NODES_INFO="baseline ${BASELINE:-?}, peak seen ${PEAK}, after drop_caches ${AFTER:-?} (limit baseline+$SLACK)"
            if [ -z "$BASELINE" ] || [ -z "$AFTER" ]; then
                hfail nodes-after-drop-caches "could not read materialised_nodes (baseline '${BASELINE}', after '${AFTER}')"
            elif [ "$AFTER" -le $((BASELINE + SLACK)) ]; then
                hpass nodes-after-drop-caches "$NODES_INFO"
            else
                hfail nodes-after-drop-caches "$NODES_INFO"
            fi
            ;;
        "SUITE "*)
            SUITE_SEEN=$m
            SUITE_TIME=$(since "${T_BOOT1:-$T_QEMU}")
            if [ "$BOOTS" -ge 2 ]; then
                if daemon_alive; then ALIVE_AFTER_REBOOT=yes; else ALIVE_AFTER_REBOOT=no; fi
            fi
            ;;
        "ERROR "*) ERRORS+=("${m#ERROR }") ;;
    esac
}

handle_line() {
    local line=${1%$'\r'}
    line=${line//$'\r'/}
    if [[ $line =~ @@EVENTFSD\ ([^@]*)@@ ]]; then
        echo "guest| $line"
        handle_marker "${BASH_REMATCH[1]}"
    elif [ "$QUIET" = 0 ] || [[ $line == *FAIL* || $line == *SKIP* || $line == init:* || $line == "# "* ]]; then
        echo "guest| $line"
    fi
}

DONE_LINES=0
process_log() {
    local total
    total=$(wc -l <"$LOG" 2>/dev/null || echo 0)
    [ "$total" -gt "$DONE_LINES" ] || return 0
    while IFS= read -r l; do
        handle_line "$l"
    done < <(sed -n "$((DONE_LINES + 1)),${total}p" "$LOG")
    DONE_LINES=$total
}

while kill -0 "$RUNPID" 2>/dev/null; do
    process_log
    sleep 0.2
done
wait "$RUNPID"
RUN_RC=$?
RUNPID=""
process_log
# a last line without a newline
if [ -s "$LOG" ] && [ "$(tail -c1 "$LOG" | od -An -c | tr -d ' ')" != '\n' ]; then
    handle_line "$(tail -n1 "$LOG")"
fi
TOTAL_TIME=$(since "$T_QEMU")

# ---- 6. verdict ----------------------------------------------------------------------
if [ -n "$SUITE_SEEN" ]; then
    hpass suite-complete "$SUITE_SEEN"
    sp=$(echo "$SUITE_SEEN" | sed -n 's/.*passed=\([0-9]*\).*/\1/p')
    sf=$(echo "$SUITE_SEEN" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
    if [ "$sp" = "$G_PASS" ] && [ "$sf" = "$G_FAIL" ]; then
        hpass suite-counts-match "host counted $G_PASS passed, $G_FAIL failed"
    else
        hfail suite-counts-match "guest says passed=$sp failed=$sf, host counted $G_PASS/$G_FAIL"
    fi
else
    case $RUN_RC in
        124) hfail suite-complete "no SUITE line: QEMU hit the ${TIMEOUT}s timeout (guest hung?)" ;;
        *) hfail suite-complete "no SUITE line (run-guest.sh exit status $RUN_RC)" ;;
    esac
    echo "guest-test: last serial lines:"
    tail -n 15 "$LOG" | tr -d '\r' | sed 's/^/  serial| /'
fi
NRES=$((G_PASS + G_FAIL + G_SKIP))
if [ "$NRES" -ge "$EXPECTED_RESULTS" ]; then
    hpass result-count "$NRES results, expected $EXPECTED_RESULTS"
else
    hfail result-count "only $NRES guest results, expected $EXPECTED_RESULTS ($NSCRIPTS scripts + 7 init checks)"
fi
if [ "$REBOOT_SEEN" = 1 ] && [ "$BOOTS" -ge 2 ]; then
    hpass guest-rebooted "second boot reached"
else
    hfail guest-rebooted "reboot marker ${REBOOT_SEEN}, boots seen $BOOTS"
fi
case "$ALIVE_AFTER_REBOOT" in
    yes) hpass daemon-survived-reboot ;;
    no) hfail daemon-survived-reboot "eventfsd exited during the second boot" ;;
    *) hfail daemon-survived-reboot "the second boot never finished its suite" ;;
esac
[ -z "$BASELINE" ] || [ -n "$AFTER" ] || hfail nodes-after-drop-caches "CHECKPOINT after-drop-caches never seen"
[ -n "$BASELINE" ] || [ -n "$AFTER" ] || grep -q 'CHECKPOINT baseline' "$LOG" || hfail stats-baseline "CHECKPOINT baseline never seen"
for e in "${ERRORS[@]}"; do hfail guest-error "$e"; done
if daemon_alive; then
    hpass daemon-alive-at-end "pid $DPID"
else
    wait "$DPID" 2>/dev/null
    hfail daemon-alive-at-end "eventfsd exited (status $?)"
    DPID=""
fi
if grep -q 'panicked at' "$DLOG"; then
    hfail daemon-no-panic "$(grep -m1 'panicked at' "$DLOG")"
fi
echo "guest-test: daemon log (last lines):"
tail -n 8 "$DLOG" | sed 's/^/  daemon| /'
stop_pid "$DPID" eventfsd
DPID=""
summary_and_exit
