#!/usr/bin/env bash
# scale-bench.sh - what each additional guest costs the host: N eventfsd daemons side by side.
#
# For each source (catalog, host), N daemons are started one after the other, each serving its
# own `--mount DIR` through /dev/fuse (the host plays the guest: no QEMU) with its own stats
# file, and stay up together. Measured, per daemon and summed over its two processes (the
# sandbox's supervising parent and the serving child, pid 1 of its pid namespace):
#   start-up       exec to the mount answering `stat DIR/events/sched/enable` (polled every ms)
#   host kernel    MemAvailable, Slab, KernelStack, PageTables (/proc/meminfo) and the
#                  tracefs_inode_cache, dentry, inode_cache and fuse_inode slabs (active objects
#                  x object size, /proc/slabinfo) before the first daemon, after each start,
#                  after all started, after every client's walk, after the trace and after the
#                  stop; the host source's ring buffers (its instance's buffer_total_size_kb,
#                  and ring_buffer_bytes of its stats file); page tables and threads
#   clients        per daemon a full walk (`find DIR/events | wc -l`), then a short trace on all
#                  of them (enable events/sched/sched_switch, 0.5 s, one page of `trace`, disable;
#                  for the host source that is its private instance only)
#   memory         Private_Clean + Private_Dirty, Pss and Rss from /proc/PID/smaps_rollup after
#                  the start and after the walk
#   idle CPU       over --idle seconds after the clients: on-CPU time from
#                  /proc/PID/task/*/schedstat (ns) and utime + stime from /proc/PID/stat (ticks)
# Then every daemon gets SIGTERM (by pid) and the script checks that no process, mount or
# tracefs instance of theirs is left (leftovers are removed, reported, and fail the run).
#
# Output: a table per additional guest, both sources and the targets of issue 15 side by side
# with PASS/MISS (a benchmark: a miss never fails the run), by scripts/scale-report.py. With
# --out the numbers as JSON; with --write the "Scale" section of BENCHMARKS.md and its plot
# (docs/scale-bench.svg). Re-render a saved run: scripts/scale-report.py FILE.json
# --markdown BENCHMARKS.md --svg docs/scale-bench.svg.
#
# Usage: scripts/scale-bench.sh [--daemons N] [--sources catalog,host] [--idle SEC] [--out FILE]
#                               [--write] [--no-build] [--no-stats-file] [--tracefs DIR]
#                               [--keep-logs DIR] [--note TEXT]
#   --daemons N      daemons per source, side by side (default 50)
#   --sources LIST   catalog,host (default both, in that order)
#   --idle SEC       idle CPU window after the clients (default 10)
#   --out FILE       also write the results as JSON to FILE
#   --write          rewrite BENCHMARKS.md's Scale section and docs/scale-bench.svg
#   --no-build       use the existing binary (default: cargo build --release -p eventfsd)
#   --no-stats-file  run the daemons without --stats-file (its rewrite every 500 ms is idle CPU)
#   --tracefs DIR    host tracefs (default: the first in /proc/mounts, else a private mount)
#   --keep-logs DIR  keep the raw results, daemon logs and stats files in DIR
#   --note TEXT      a sentence for BENCHMARKS.md after the header (e.g. "Baseline: ...")
# Environment: EVENTFSD_BIN (the eventfsd binary to measure; implies --no-build),
# CARGO_TARGET_DIR (where cargo builds; default target/).
# Needs root (/dev/fuse mounts, the host source, /proc/slabinfo). Never touches the host's
# top-level tracing state (checked before/after) and leaves nothing behind: daemons are stopped
# by pid, their mounts, instances, temp files and a tracefs this script mounted are removed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
N=50
SOURCES=catalog,host
IDLE=10
OUT=""
WRITE=0
BUILD=1
STATS=1
TRACEFS=""
KEEP=""
NOTE=""
[ -n "${EVENTFSD_BIN:-}" ] && BUILD=0
START_TIMEOUT=30 # seconds for one daemon to answer
WALK_TIMEOUT=300 # seconds for one client's find

while [ $# -gt 0 ]; do
    case "$1" in
        --daemons) N=$2; shift 2 ;;
        --sources) SOURCES=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --write) WRITE=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --no-stats-file) STATS=0; shift ;;
        --tracefs) TRACEFS=$2; shift 2 ;;
        --keep-logs) KEEP=$2; shift 2 ;;
        --note) NOTE=$2; shift 2 ;;
        -h | --help) sed -n '2,48p' "$0"; exit 0 ;;
        *) echo "scale-bench: unknown argument: $1" >&2; exit 2 ;;
    esac
done

say() { echo "scale-bench: $*" >&2; }
die() { say "$*"; exit 1; }
[[ $N =~ ^[1-9][0-9]*$ ]] || die "--daemons wants a positive number, not '$N'"
[[ $IDLE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--idle wants seconds, not '$IDLE'"
for s in ${SOURCES//,/ }; do
    case "$s" in catalog | host) ;; *) die "--sources: unknown source '$s' (catalog, host)" ;; esac
done
[ "$(id -u)" = 0 ] || die "needs root (/dev/fuse mounts, the host source, /proc/slabinfo)"
[ -e /dev/fuse ] || die "no /dev/fuse"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-scale.XXXXXX")
RESULTS=$TMP/results.txt
: >"$RESULTS"
OWN_TRACEFS=""
PIDS=()     # the daemons' pids (the sandbox parents: the ones to signal)
CHILDREN=() # their serving children, as found after the start
SLEEP_FD="" # a pipe nobody writes: `read -t` on it sleeps without a fork
T_START=$EPOCHREALTIME

# Every daemon still running gets SIGTERM, then (after 10 s) SIGKILL, by pid; its mount is
# detached if the daemon did not, its instance removed if it did not. Returns the leftovers.
stop_all() {
    local p i g left=() t
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 1 100); do
        left=()
        for p in "${PIDS[@]}" "${CHILDREN[@]}"; do
            [ -n "$p" ] && kill -0 "$p" 2>/dev/null && left+=("$p")
        done
        [ ${#left[@]} -eq 0 ] && break
        sleep 0.1 # not nap: in a trap, with a signal pending, `read -t` returns at once
    done
    for p in "${left[@]}"; do
        say "pid $p did not stop on SIGTERM; killing it"
        kill -KILL "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    LEFTOVER_PROCS=${#left[@]}
    LEFTOVER_MOUNTS=0
    LEFTOVER_INSTANCES=0
    while read -r t; do
        [ -n "$t" ] || continue
        say "mount $t left behind; detaching it"
        LEFTOVER_MOUNTS=$((LEFTOVER_MOUNTS + 1))
        umount -l "$t" 2>/dev/null || say "could not detach $t"
    done < <(awk -v tmp="$TMP/mnt/" 'index($2, tmp) == 1 { print $2 }' /proc/mounts)
    if [ -n "$TRACEFS" ]; then
        for p in "${PIDS[@]}"; do
            i=$TRACEFS/instances/eventfsd-$p
            [ -d "$i" ] || continue
            say "instance $i left behind; removing it"
            LEFTOVER_INSTANCES=$((LEFTOVER_INSTANCES + 1))
            # a guest-made instance of ours (eventfsd-PID.NAME) first, then ours
            for g in "$i".*; do [ -d "$g" ] && { rmdir "$g" 2>/dev/null || say "could not remove $g"; }; done
            rmdir "$i" 2>/dev/null || say "could not remove $i"
        done
    fi
    PIDS=()
    CHILDREN=()
}

cleanup() {
    local rc=$?
    [ "$BASHPID" = "$$" ] || exit "$rc" # a subshell never cleans up: the script does
    trap - EXIT INT TERM
    [ ${#PIDS[@]} -gt 0 ] && stop_all
    if [ -n "$OWN_TRACEFS" ]; then
        umount "$OWN_TRACEFS" 2>/dev/null || umount -l "$OWN_TRACEFS" 2>/dev/null || say "could not unmount $OWN_TRACEFS"
    fi
    if [ -n "$KEEP" ]; then
        { mkdir -p "$KEEP" && cp -rf "$TMP/results.txt" "$TMP/log" "$TMP/stats" "$KEEP/"; } 2>/dev/null || true
    fi
    # the mount points are empty directories by now; never recurse into a live mount
    if awk -v tmp="$TMP/" 'index($2, tmp) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        say "a mount under $TMP is still there; leaving $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap '[ "$BASHPID" = "$$" ] && say interrupted; exit 130' INT
trap 'exit 143' TERM
exec {SLEEP_FD}<> <(:)
nap() { read -rt "$1" -u "$SLEEP_FD" || true; }
# now: NOW = the time in microseconds (no fork: the start-up poll runs it every millisecond)
now() { NOW=${EPOCHREALTIME//[!0-9]/}; }
res() { echo "$*" >>"$RESULTS"; }
want() { case ",$SOURCES," in *",$1,"*) return 0 ;; esac; return 1; }

# ---- 1. binary, tracefs ----------------------------------------------------------------------
EVENTFSD=${EVENTFSD_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/eventfsd}
if [ "$BUILD" = 1 ]; then
    say "cargo build --release -p eventfsd"
    (cd "$REPO" && cargo build --release -p eventfsd >"$TMP/build.log" 2>&1) ||
        { tail -n 20 "$TMP/build.log" >&2; die "cargo build failed"; }
fi
[ -x "$EVENTFSD" ] || die "$EVENTFSD missing (build it, or drop --no-build)"
# A private copy: a cargo build elsewhere into the same target dir cannot swap it mid-run.
cp "$EVENTFSD" "$TMP/eventfsd"
BIN=$TMP/eventfsd
# A binary built from this checkout names it, NUL-terminated (its debug info's compilation
# directory).
BIN_FROM_REPO=no
LC_ALL=C grep -qaP "(?<=\x00)\Q$REPO\E(?=\x00)" "$BIN" 2>/dev/null && BIN_FROM_REPO=yes
[ "$BIN_FROM_REPO" = yes ] || [ -n "${EVENTFSD_BIN:-}" ] ||
    say "warning: $EVENTFSD does not name $REPO: built from another checkout into the same target dir?"

if want host; then
    if [ -z "$TRACEFS" ]; then
        TRACEFS=$(awk '$3 == "tracefs" { print $2; exit }' /proc/mounts)
    fi
    if [ -z "$TRACEFS" ]; then
        mkdir "$TMP/tracefs"
        if mount -t tracefs nodev "$TMP/tracefs" 2>/dev/null; then
            OWN_TRACEFS=$TMP/tracefs
            TRACEFS=$OWN_TRACEFS
        else
            rmdir "$TMP/tracefs"
        fi
    fi
    [ -n "$TRACEFS" ] && [ -d "$TRACEFS/instances" ] || TRACEFS=""
fi

# The host's top-level tracing state, to show that the run left it as it was.
TOP_FILES="tracing_on current_tracer buffer_size_kb trace_clock set_event set_event_pid tracing_cpumask trace_options"
top_state() {
    [ -n "$TRACEFS" ] || return 0
    local f
    for f in $TOP_FILES; do echo "== $f"; cat "$TRACEFS/$f" 2>/dev/null || true; done | md5sum | cut -c1-12
}

# ---- 2. host-side sampling ---------------------------------------------------------------------
SLABS="tracefs_inode_cache dentry inode_cache fuse_inode"
# host_sample SOURCE WHEN: machine-wide memory figures, one line
host_sample() {
    local line c f
    # vmstat's drop_slab/drop_pagecache count writes to /proc/sys/vm/drop_caches (someone else's:
    # the fusedev tests write it), which free the very slabs measured here
    line=$(awk -v want=" $SLABS " '
        FILENAME == "/proc/meminfo" {
            if ($1 ~ /^(MemAvailable|Slab|SUnreclaim|KernelStack|PageTables):$/) {
                k = tolower(substr($1, 1, length($1) - 1)); printf " %s_kb=%d", k, $2
            }
            next
        }
        FILENAME == "/proc/vmstat" {
            if ($1 ~ /^(drop_slab|drop_pagecache|pgsteal_kswapd|pgsteal_direct)$/) printf " vm_%s=%d", $1, $2
            next
        }
        index(want, " " $1 " ") { printf " slab_%s_objs=%d slab_%s_bytes=%d", $1, $2, $1, $2 * $4 }
    ' /proc/meminfo /proc/vmstat /proc/slabinfo 2>/dev/null) || true
    # a cache merged away from /proc/slabinfo: its sysfs directory, if any
    for c in $SLABS; do
        case "$line" in *" slab_${c}_objs="*) continue ;; esac
        f=/sys/kernel/slab/$c
        if [ ! -r "$f/objects" ] || [ ! -r "$f/object_size" ]; then continue; fi
        line+=" slab_${c}_objs=$(cut -d' ' -f1 "$f/objects") slab_${c}_bytes=$(($(cut -d' ' -f1 "$f/objects") * $(cat "$f/object_size")))"
    done
    res "$1 host when=$2$line"
}

# slab_growth SOURCE WHEN: the slab caches that grew most since before the first daemon
slab_growth() {
    [ -s "$TMP/slabinfo.before" ] || return 0
    awk 'FNR == NR { if (FNR > 2) b[$1] = $2 * $4; next }
         FNR > 2 && $2 * $4 - b[$1] > 0 { print $1, $2 * $4 - b[$1] }' "$TMP/slabinfo.before" /proc/slabinfo 2>/dev/null |
        sort -k2,2nr | head -n 8 | while read -r name bytes; do
            res "$1 slabtop when=$2 name=$name bytes=$bytes"
        done || true
}

# daemon_mem SOURCE WHEN I PID CHILD: Rss/Pss/private (kB) of both processes from smaps_rollup;
# their page tables (VmPTE) and threads (each has a kernel stack) from /proc/PID/status
daemon_mem() {
    local line
    line=$(awk -v parent="/proc/$4/" '
        { who = (index(FILENAME, parent) == 1) ? "parent" : "child" }
        $1 == "Rss:" { rss[who] += $2 } $1 == "Pss:" { pss[who] += $2 }
        $1 == "Private_Clean:" || $1 == "Private_Dirty:" { priv[who] += $2 }
        $1 == "VmPTE:" { pte += $2 } $1 == "Threads:" { threads += $2 }
        END {
            printf "rss_kb=%d pss_kb=%d private_kb=%d parent_private_kb=%d child_private_kb=%d parent_pss_kb=%d child_pss_kb=%d pte_kb=%d threads=%d",
                rss["parent"] + rss["child"], pss["parent"] + pss["child"], priv["parent"] + priv["child"],
                priv["parent"], priv["child"], pss["parent"], pss["child"], pte, threads
        }' "/proc/$4/smaps_rollup" "/proc/$4/status" ${5:+"/proc/$5/smaps_rollup" "/proc/$5/status"} 2>/dev/null) || true
    res "$1 mem when=$2 i=$3 $line"
}

# cpu_sample: "pid ticks ns" for every process given (utime+stime; on-CPU ns over its threads)
cpu_sample() {
    local p f files=()
    for p in "$@"; do
        [ -n "$p" ] || continue
        files+=("/proc/$p/stat")
        for f in /proc/"$p"/task/*/schedstat; do files+=("$f"); done
    done
    awk '
        FILENAME ~ /\/stat$/ { split(FILENAME, a, "/"); s = $0; sub(/^.*\) /, "", s); split(s, f, " ");
                               ticks[a[3]] = f[12] + f[13]; seen[a[3]] = 1; next }
        FILENAME ~ /schedstat$/ { split(FILENAME, a, "/"); ns[a[3]] += $1 }
        END { for (p in seen) printf "%s %d %d\n", p, ticks[p], ns[p] }
    ' "${files[@]}" 2>/dev/null || true
}

stat_figure() { # STATS_FILE KEY: a number from the daemon's JSON stats file
    [ -r "$1" ] || return 0
    sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1" 2>/dev/null | head -n1
}

# ---- 3. one source ------------------------------------------------------------------------------
run_source() { # source
    local src=$1 i dir pid child f t0 t1 ms started=0 reason="" args n rc bytes
    local -a dirs=() children=()
    say "---- $src: $N daemons"
    mkdir -p "$TMP/mnt" "$TMP/stats" "$TMP/log"
    res "$src load_before=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
    host_sample "$src" before
    cat /proc/slabinfo >"$TMP/slabinfo.before" 2>/dev/null || true
    for i in $(seq 1 "$N"); do
        dir=$TMP/mnt/$src-$i
        mkdir "$dir"
        args=(--mount "$dir" --log-level warn)
        [ "$STATS" = 1 ] && args+=(--stats-file "$TMP/stats/$src-$i.json")
        [ "$src" = host ] && args+=(--source host --tracefs "$TRACEFS" --snapshot-dir "$TMP/snapshots")
        now; t0=$NOW
        "$BIN" "${args[@]}" >"$TMP/log/$src-$i.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        CHILDREN+=("")
        until [ -e "$dir/events/sched/enable" ]; do
            if ! kill -0 "$pid" 2>/dev/null; then
                reason="daemon $i exited: $(tail -n1 "$TMP/log/$src-$i.log")"
                break
            fi
            now
            if [ $((NOW - t0)) -gt $((START_TIMEOUT * 1000000)) ]; then
                reason="daemon $i did not answer within ${START_TIMEOUT} s: $(tail -n1 "$TMP/log/$src-$i.log")"
                break
            fi
            nap 0.001
        done
        now; t1=$NOW
        [ -z "$reason" ] || break
        child=""
        for f in /proc/"$pid"/task/*/children; do # read, not cat: no fork
            if [ -z "$child" ]; then { read -r child _ <"$f" || true; } 2>/dev/null; fi
        done
        CHILDREN[${#CHILDREN[@]} - 1]=$child
        dirs+=("$dir")
        children+=("$child")
        started=$i
        printf -v ms '%d.%03d' $(((t1 - t0) / 1000)) $(((t1 - t0) % 1000))
        res "$src start i=$i ms=$ms pid=$pid child=${child:-none}"
        host_sample "$src" "started-$i"
    done
    if [ -n "$reason" ]; then
        say "$src: $reason; going on with the $started that started"
        res "$src limit started=$started reason=${reason// /_}"
    fi
    res "$src daemons requested=$N started=$started"
    if [ "$started" -eq 0 ]; then
        stop_all
        res "$src stop leftover_procs=$LEFTOVER_PROCS leftover_mounts=$LEFTOVER_MOUNTS leftover_instances=$LEFTOVER_INSTANCES"
        return
    fi
    nap 1 # one stats-file period and a bit: every stats file written since the start
    host_sample "$src" all-started
    slab_growth "$src" all-started
    for i in $(seq 1 "$started"); do
        daemon_mem_i "$src" after-start "$i"
        res "$src ring when=after-start i=$i bytes=$(stat_figure "$TMP/stats/$src-$i.json" ring_buffer_bytes) instance_kb=$(instance_kb "$src" "$i")"
    done

    say "$src: a full walk per daemon"
    for i in $(seq 1 "$started"); do
        now; t0=$NOW
        if n=$(timeout "$WALK_TIMEOUT" find "${dirs[i - 1]}/events" 2>>"$TMP/log/$src-walk.err" | wc -l); then rc=0; else rc=$?; fi
        now; t1=$NOW
        res "$src walk i=$i entries=$n ms=$(((t1 - t0) / 1000)) rc=$rc"
    done
    host_sample "$src" after-walk
    for i in $(seq 1 "$started"); do daemon_mem_i "$src" after-walk "$i"; done

    say "$src: a short trace per daemon (sched_switch, 0.5 s, one page)"
    for i in $(seq 1 "$started"); do
        { echo 1 >"${dirs[i - 1]}/events/sched/sched_switch/enable"; } 2>>"$TMP/log/$src-trace.err" ||
            res "$src trace_error i=$i step=enable"
    done
    nap 0.5
    for i in $(seq 1 "$started"); do
        if bytes=$(head -c 4096 "${dirs[i - 1]}/trace" 2>>"$TMP/log/$src-trace.err" | wc -c); then rc=0; else rc=$?; fi
        res "$src trace i=$i bytes=$bytes rc=$rc"
    done
    for i in $(seq 1 "$started"); do
        { echo 0 >"${dirs[i - 1]}/events/sched/sched_switch/enable"; } 2>>"$TMP/log/$src-trace.err" ||
            res "$src trace_error i=$i step=disable"
    done
    nap 1
    host_sample "$src" after-trace
    for i in $(seq 1 "$started"); do
        res "$src ring when=after-trace i=$i bytes=$(stat_figure "$TMP/stats/$src-$i.json" ring_buffer_bytes) instance_kb=$(instance_kb "$src" "$i")"
    done

    say "$src: idle CPU over $IDLE s"
    cpu_sample "${PIDS[@]}" "${CHILDREN[@]}" >"$TMP/cpu0"
    now; t0=$NOW
    nap "$IDLE"
    cpu_sample "${PIDS[@]}" "${CHILDREN[@]}" >"$TMP/cpu1"
    now; t1=$NOW
    for i in $(seq 1 "$started"); do
        awk -v src="$src" -v i="$i" -v p="${PIDS[i - 1]}" -v c="${children[i - 1]}" -v us=$((t1 - t0)) '
            FNR == NR { t0[$1] = $2; n0[$1] = $3; next }
            $1 == p || $1 == c { dt += $2 - t0[$1]; dn += $3 - n0[$1] }
            END { printf "%s cpu i=%d window_us=%d ticks=%d ns=%d\n", src, i, us, dt, dn }
        ' "$TMP/cpu0" "$TMP/cpu1" >>"$RESULTS"
    done
    for i in $(seq 1 "$started"); do
        res "$src stats i=$i private_bytes=$(stat_figure "$TMP/stats/$src-$i.json" private_bytes) pss_bytes=$(stat_figure "$TMP/stats/$src-$i.json" pss_bytes)"
    done

    say "$src: stopping the daemons"
    now; t0=$NOW
    stop_all
    now; t1=$NOW
    res "$src stop ms=$(((t1 - t0) / 1000)) leftover_procs=$LEFTOVER_PROCS leftover_mounts=$LEFTOVER_MOUNTS leftover_instances=$LEFTOVER_INSTANCES"
    nap 1
    host_sample "$src" after-stop
    # rmdir, never rm -r: a mount point still mounted stays (and is reported) rather than emptied
    rmdir "$TMP"/mnt/*/ "$TMP/mnt" 2>/dev/null || say "could not remove every mount point under $TMP/mnt"
}

# instance_kb SOURCE I: what the kernel says the i-th host daemon's instance buffers take (a read)
instance_kb() {
    [ "$1" = host ] || return 0
    cat "$TRACEFS/instances/eventfsd-${PIDS[$2 - 1]}/buffer_total_size_kb" 2>/dev/null || true
}

# daemon_mem_i SOURCE WHEN I: daemon_mem for the i-th daemon of this source
daemon_mem_i() { daemon_mem "$1" "$2" "$3" "${PIDS[$3 - 1]}" "${CHILDREN[$3 - 1]}"; }

# ---- 4. run ---------------------------------------------------------------------------------------
code_rev=$(cd "$REPO" && git log -1 --format=%h -- crates Cargo.toml Cargo.lock 2>/dev/null || echo unknown)
[ -n "$(cd "$REPO" && git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ] && code_rev+=-dirty
res "meta date=$(date -u +%Y-%m-%dT%H:%MZ)"
res "meta host_kernel=$(uname -r)"
res "meta cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//; s/ /_/g')"
res "meta cpus=$(nproc)"
res "meta mem_gb=$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
res "meta eventfsd=$(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo unknown)"
res "meta daemon_code=$code_rev"
[ -n "${EVENTFSD_BIN:-}" ] && res "meta binary=${EVENTFSD_BIN// /_}"
res "meta binary_sha256=$(sha256sum "$BIN" | cut -c1-16) binary_from_checkout=$BIN_FROM_REPO"
res "meta daemons=$N idle_s=$IDLE sources=$SOURCES stats_file=$([ "$STATS" = 1 ] && echo yes || echo no) clk_tck=$(getconf CLK_TCK)"
res "meta load_before=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
res "meta tracefs=${TRACEFS:-none}"
TOP_BEFORE=$(top_state)

for s in ${SOURCES//,/ }; do
    if [ "$s" = host ] && [ -z "$TRACEFS" ]; then
        res "host unavailable reason=no_host_tracefs"
        continue
    fi
    run_source "$s"
    nap 2 # let the host settle between sources
done
TOP_AFTER=$(top_state)
res "meta top_level_unchanged=$([ "$TOP_BEFORE" = "$TOP_AFTER" ] && echo yes || echo NO)"
[ "$TOP_BEFORE" = "$TOP_AFTER" ] ||
    say "the host's top-level tracing state changed during the run (this script writes none of it: someone else?)"
res "meta load_after=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
res "meta total_seconds=$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')"

# ---- 5. report -------------------------------------------------------------------------------------
REPORT_ARGS=("$RESULTS")
[ -n "$OUT" ] && REPORT_ARGS+=(--out "$OUT")
[ "$WRITE" = 1 ] && REPORT_ARGS+=(--markdown "$REPO/BENCHMARKS.md" --svg "$REPO/docs/scale-bench.svg")
[ -n "$NOTE" ] && REPORT_ARGS+=(--note "$NOTE")
python3 "$REPO/scripts/scale-report.py" "${REPORT_ARGS[@]}"
