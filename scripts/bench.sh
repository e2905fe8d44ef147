#!/usr/bin/env bash
# bench.sh - eventfsd against virtiofsd and against the guest's own tracefs: speed and memory.
#
# One run, one machine, one guest kernel (the Debian 6.1 test guest under QEMU), the same guest
# workloads (scripts/guest-init.sh, mode `bench`) against:
#   eventfsd-catalog  eventfsd serving its embedded catalog (a snapshot of this machine's tracefs)
#   eventfsd-host     eventfsd --source host (a private instance of the host tracefs)
#   virtiofsd         virtiofsd from crates.io, --cache=never, sharing a private instance
#                     directory of the host tracefs (instances/eventfsd-bench-<pid>)
#   native            the guest kernel's own tracefs (no virtio-fs at all)
# Workloads (median and spread over the repetitions): cold find over events/ (right after the
# mount, then after drop_caches), warm find, cat of every format, reading every id, 1000
# toggles of one event's enable, ls -l of the largest system directory, 4 guest processes
# each running find + cat of every format, and records per second from enabling sched_switch and
# sched_wakeup to parsed records, through trace_pipe_raw (decoded pages) and text trace_pipe
# (the guest has 2 vCPUs; the daemons serve --cpus 2; the catalog fires both at 20000/s).
# Daemon side: RSS, PSS, open fds, threads, page tables and host kernel memory (each daemon in a
# memory cgroup of its own) after start, after the mount, after the guest then sat idle for
# --idle seconds, after the full find + cat, after drop_caches in the guest and after the guest
# sat idle again; host slab use (dentry, tracefs_inode_cache) before, at the peak and after.
#
# Output: a markdown table (stdout and BENCHMARKS.md), a chart of the per-entry times
# (docs/bench.png), the README's footprint and summary blocks, and key=value lines (stdout,
# and bench-results.txt in --keep-logs). Every number comes from this one run (commit, machine
# and load recorded with it); a run in which any workload operation failed, or a configuration
# did not run, writes nothing and exits 1 (scripts/bench-report.py).
#
# Usage: scripts/bench.sh [--reps N] [--preps N] [--only a,b] [--no-build] [--kvm]
#                         [--keep-logs DIR] [--no-write] [--timeout SEC]
#   --reps N         repetitions of each workload (default 3)
#   --preps N        repetitions of the 4-process run (default 1; ~150 s each for virtiofsd)
#   --only LIST      configurations to run: catalog,host,virtiofsd,native (default all)
#   --no-build       use the existing target/release/eventfsd
#   --kvm            boot the guest with KVM instead of TCG
#   --keep-logs DIR  keep serial logs, daemon logs, stats files and the raw results in DIR
#   --no-write       print only; do not rewrite BENCHMARKS.md and docs/bench.png
#   --timeout SEC    per-guest QEMU timeout (default 900)
#   --idle SEC       how long the guest sits idle after the mount and after the workloads before
#                    a memory sample (default 35: longer than the 30 s after which eventfsd's
#                    request workers leave)
# Environment: EVENTFSD_BIN (the eventfsd binary to measure; implies --no-build).
# Needs root (virtiofsd, the host source, tracefs instances, /proc/PID/smaps_rollup).
# Leaves nothing behind: daemons and QEMU are stopped by pid, the tracefs instance is removed,
# a tracefs mounted by this script is unmounted.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
EVENTFSD=${EVENTFSD_BIN:-$REPO/target/release/eventfsd}
VIRTIOFSD_ROOT=$REPO/.cache/virtiofsd
VIRTIOFSD=$VIRTIOFSD_ROOT/bin/virtiofsd
REPS=3
PREPS=1
ONLY=catalog,host,virtiofsd,native
BUILD=1
[ -n "${EVENTFSD_BIN:-}" ] && BUILD=0
KVM_ARGS=()
[ "${EVENTFSD_KVM:-0}" = 1 ] && KVM_ARGS=(--kvm)
KEEP=""
WRITE=1
TIMEOUT=900
IDLE=35

while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift 2 ;;
        --preps) PREPS=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --kvm) KVM_ARGS=(--kvm); shift ;;
        --keep-logs) KEEP=$2; shift 2 ;;
        --no-write) WRITE=0; shift ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        -h | --help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "bench: unknown argument: $1" >&2; exit 2 ;;
    esac
done

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-bench.XXXXXX")
RESULTS=$TMP/results.txt
: >"$RESULTS"
DPID=""
RUNPID=""
INSTANCE_DIR=""
OWN_TRACEFS=""
KMEM_CG=""
T_START=$EPOCHREALTIME


cleanup() {
    local qpid=""
    [ -s "$TMP/qemu.pid" ] && qpid=$(cat "$TMP/qemu.pid" 2>/dev/null)
    stop_pid "$RUNPID" run-guest.sh
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill -9 "$qpid" 2>/dev/null; fi
    stop_pid "$DPID" daemon
    kmem_cgroup_remove
    if [ -n "$INSTANCE_DIR" ] && [ -d "$INSTANCE_DIR" ]; then
        rmdir "$INSTANCE_DIR" 2>/dev/null || say "could not remove $INSTANCE_DIR"
    fi
    if [ -n "$OWN_TRACEFS" ]; then
        umount "$OWN_TRACEFS" 2>/dev/null || umount -l "$OWN_TRACEFS" 2>/dev/null
        rmdir "$OWN_TRACEFS" 2>/dev/null
    fi
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP" && cp -rf "$TMP"/. "$KEEP/" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT
trap 'exit 143' TERM

want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

# ---- 1. prerequisites ---------------------------------------------------------------------
need_pkgs=()
dpkg -s qemu-system-x86 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
# the chart needs matplotlib: Debian's python3-matplotlib, for /usr/bin/python3
PY=python3
python3 -c 'import matplotlib' 2>/dev/null || PY=/usr/bin/python3
$PY -c 'import matplotlib' 2>/dev/null || { PY=/usr/bin/python3; need_pkgs+=(python3-matplotlib); }
if want virtiofsd && [ ! -x "$VIRTIOFSD" ]; then
    for p in libseccomp-dev libcap-ng-dev; do dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p"); done
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
    say "apt-get install ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >"$TMP/apt.log" 2>&1 ||
        die "apt-get install ${need_pkgs[*]} failed (see $TMP/apt.log)"
fi
if [ "$BUILD" = 1 ]; then
    say "cargo build --release -p eventfsd"
    (cd "$REPO" && cargo build --release -p eventfsd >"$TMP/build.log" 2>&1) ||
        { tail -n 20 "$TMP/build.log" >&2; die "cargo build failed"; }
fi
[ -x "$EVENTFSD" ] || die "$EVENTFSD missing (build it, or drop --no-build)"
if want virtiofsd && [ ! -x "$VIRTIOFSD" ]; then
    say "cargo install virtiofsd --root $VIRTIOFSD_ROOT (a few minutes, once)"
    cargo install --locked virtiofsd --root "$VIRTIOFSD_ROOT" >"$TMP/virtiofsd-install.log" 2>&1 ||
        { tail -n 20 "$TMP/virtiofsd-install.log" >&2; die "cargo install virtiofsd failed"; }
fi
"$REPO/scripts/prepare-guest.sh" --quiet >"$TMP/prepare.log" 2>&1 ||
    { tail -n 20 "$TMP/prepare.log" >&2; die "scripts/prepare-guest.sh failed"; }

# the host tracefs: the first one mounted, else a private mount of our own
TRACEFS=$(awk '$3 == "tracefs" { print $2; exit }' /proc/mounts)
if [ -z "$TRACEFS" ] && { want host || want virtiofsd; }; then
    OWN_TRACEFS=$TMP/tracefs
    mkdir -p "$OWN_TRACEFS"
    if mount -t tracefs nodev "$OWN_TRACEFS" 2>/dev/null; then
        TRACEFS=$OWN_TRACEFS
    else
        rmdir "$OWN_TRACEFS"
        OWN_TRACEFS=""
    fi
fi

res() { echo "$*" >>"$RESULTS"; }

# ---- 2. host-side sampling ------------------------------------------------------------------
pid_tree() { # pid -> the pid and all its descendants
    local p=$1 c
    echo "$p"
    for c in $(pgrep -P "$p" 2>/dev/null); do pid_tree "$c"; done
}
mem_sample() { # config checkpoint: RSS/PSS (kB), fds, threads and page tables over the daemon's processes
    # guest_*: the part of RSS/PSS that is mapped guest RAM (QEMU's memfd, shared with QEMU:
    # the descriptor buffers the daemon has touched), not the daemon's own memory.
    local cfg=$1 cp=$2 rss=0 pss=0 grss=0 gpss=0 fds=0 ticks=0 threads=0 pte=0 p r s g f t n nodes=""
    [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null || return 0
    for p in $(pid_tree "$DPID"); do
        r=$(awk '/^Rss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null)
        s=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null)
        g=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { guest = ($6 ~ /memfd:/) }
                 guest && /^Rss:/ { r += $2 } guest && /^Pss:/ { s += $2 }
                 END { printf "%d %d", r, s }' "/proc/$p/smaps" 2>/dev/null)
        f=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
        ticks=$((ticks + ${t:-0}))
        # each thread has a kernel stack; page tables also map the guest RAM the daemon touched
        n=$(awk '$1 == "Threads:" { t = $2 } $1 == "VmPTE:" { p = $2 } END { print t + 0, p + 0 }' "/proc/$p/status" 2>/dev/null)
        threads=$((threads + ${n% *}))
        pte=$((pte + ${n#* }))
        rss=$((rss + ${r:-0}))
        pss=$((pss + ${s:-0}))
        grss=$((grss + ${g% *}))
        gpss=$((gpss + ${g#* }))
        fds=$((fds + f))
    done
    if [ -r "$TMP/$cfg.stats.json" ]; then
        nodes=$(sed -n 's/.*"materialised_nodes": *\([0-9]*\).*/\1/p' "$TMP/$cfg.stats.json" | head -n1)
        cp -f "$TMP/$cfg.stats.json" "$TMP/$cfg.stats.$cp.json" 2>/dev/null
    fi
    local kmem
    kmem=$(kmem_kb)
    res "$cfg mem cp=$cp rss_kb=$rss pss_kb=$pss guest_rss_kb=$grss guest_pss_kb=$gpss fds=$fds threads=$threads pte_kb=$pte cpu_ms=$((ticks * 1000 / $(getconf CLK_TCK)))${nodes:+ nodes=$nodes}${kmem:+ kmem_kb=$kmem}"
}
# The host kernel memory a daemon costs (its page tables, kernel stacks and the kernel objects
# it made: slab, sockets, pipes) is charged to its memory cgroup: each daemon runs in one of its
# own, made here and removed after it (cgroup v1's memory.kmem, or v2's memory.stat `kernel`).
kmem_cgroup_make() { # config -> KMEM_CG (empty if no memory cgroup can be made)
    local base
    KMEM_CG=""
    if [ -r /sys/fs/cgroup/memory/memory.kmem.usage_in_bytes ]; then
        base=/sys/fs/cgroup/memory
    elif grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
        base=/sys/fs/cgroup
    else
        return 0
    fi
    mkdir "$base/eventfsd-bench-$$-$1" 2>/dev/null && KMEM_CG=$base/eventfsd-bench-$$-$1
}
kmem_cgroup_remove() {
    [ -n "$KMEM_CG" ] || return 0
    # Empty once the daemon has exited; a charge still held (a cached dentry) does not matter.
    rmdir "$KMEM_CG" 2>/dev/null || say "could not remove $KMEM_CG"
    KMEM_CG=""
}
kmem_kb() { # -> the daemon cgroup's host kernel memory in KiB (empty if none)
    [ -n "$KMEM_CG" ] || return 0
    if [ -r "$KMEM_CG/memory.kmem.usage_in_bytes" ]; then
        echo $(($(cat "$KMEM_CG/memory.kmem.usage_in_bytes") / 1024))
    else
        awk '$1 == "kernel" { print int($2 / 1024) }' "$KMEM_CG/memory.stat"
    fi
}
in_kmem_cgroup() { # command... : becomes it (exec), inside KMEM_CG if there is one; call it
    # in a subshell, whose pid is then the daemon's
    if [ -n "$KMEM_CG" ]; then
        exec sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$KMEM_CG" "$@"
    else
        exec "$@"
    fi
}

slab_sample() { # config when
    [ -r /proc/slabinfo ] || return 0
    local line
    line=$(awk '$1 == "dentry" || $1 == "tracefs_inode_cache" || $1 == "eventfs_inode" {
            printf " %s_objs=%d %s_kb=%d", $1, $2, $1, $2 * $4 / 1024 }' /proc/slabinfo)
    res "$1 slab when=$2$line"
}

# ---- 3. one configuration --------------------------------------------------------------------
wait_socket() { # socket
    local i
    for i in $(seq 1 300); do
        [ -S "$1" ] && return 0
        kill -0 "$DPID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

run_config() { # config
    local cfg=$1 sock=$TMP/$1.sock log=$TMP/$1.serial.log dlog=$TMP/$1.daemon.log mode=bench
    local done_lines=0 total line m t0 rc
    say "---- $cfg"
    slab_sample "$cfg" before
    DPID=""
    case "$cfg" in
        eventfsd-catalog)
            # The two events the records phase enables fire at 20000/s each (a throughput
            # test, not the built-in profile's idle guest).
            printf 'sched:sched_switch 20000\nsched:sched_wakeup 20000\n' >"$TMP/rates"
            kmem_cgroup_make "$cfg"
            (in_kmem_cgroup "$EVENTFSD" --socket-path "$sock" --stats-file "$TMP/$cfg.stats.json" \
                --log-level warn --exit-on-disconnect --cpus 2 --rate-profile "$TMP/rates") >"$dlog" 2>&1 &
            DPID=$!
            ;;
        eventfsd-host)
            kmem_cgroup_make "$cfg"
            (in_kmem_cgroup "$EVENTFSD" --socket-path "$sock" --stats-file "$TMP/$cfg.stats.json" \
                --log-level warn --exit-on-disconnect --cpus 2 --source host --tracefs "$TRACEFS" \
                --snapshot-dir "$TMP/snapshots") >"$dlog" 2>&1 &
            DPID=$!
            ;;
        virtiofsd)
            INSTANCE_DIR=$TRACEFS/instances/eventfsd-bench-$$
            mkdir "$INSTANCE_DIR" || { res "$cfg unavailable reason=mkdir_${INSTANCE_DIR##*/}_failed"; INSTANCE_DIR=""; return; }
            kmem_cgroup_make "$cfg"
            (in_kmem_cgroup "$VIRTIOFSD" --socket-path "$sock" --shared-dir "$INSTANCE_DIR" \
                --cache never --sandbox none --log-level error) >"$dlog" 2>&1 &
            DPID=$!
            ;;
        native) mode=bench-native ;;
    esac
    # virtiofsd reads every file with preadv2 at the request's offset, and trace_pipe and
    # trace_pipe_raw are not seekable: each read fails with ESPIPE (`cat: read error: Illegal
    # seek` in the guest), so there is nothing to time.
    local records=""
    [ "$cfg" = virtiofsd ] &&
        records=" eventfsd.records=skip:virtiofsd_reads_at_an_offset_(preadv2),_trace_pipe(_raw)_is_not_seekable:_ESPIPE"
    if [ "$mode" = bench ] && ! wait_socket "$sock"; then
        res "$cfg unavailable reason=daemon_did_not_start:$(tail -n1 "$dlog" | tr ' =' '__' | cut -c1-120)"
        stop_pid "$DPID"
        DPID=""
        return
    fi
    sleep 0.5
    mem_sample "$cfg" start
    res "meta load_at_${cfg//-/_}=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
    t0=$EPOCHREALTIME
    "$REPO/scripts/run-guest.sh" --mode "$mode" --socket "$sock" --log "$log" --pidfile "$TMP/qemu.pid" \
        --timeout "$TIMEOUT" --no-reboot-test --smp 2 --cpsleep 4 "${KVM_ARGS[@]}" \
        --append "eventfsd.reps=$REPS eventfsd.preps=$PREPS eventfsd.idle=$IDLE$records" >"$TMP/$cfg.run-guest.log" 2>&1 &
    RUNPID=$!
    : >"$log"
    handle() {
        case "$1" in
            "CHECKPOINT bench-start") sleep 1.2; mem_sample "$cfg" after-mount ;;
            "CHECKPOINT idle-after-mount") sleep 1.2; mem_sample "$cfg" idle-after-mount ;;
            "CHECKPOINT after-find-cat") sleep 1.2; mem_sample "$cfg" after-find-cat; slab_sample "$cfg" peak ;;
            "CHECKPOINT after-drop-caches") sleep 2.5; mem_sample "$cfg" after-drop-caches ;;
            "CHECKPOINT after-idle") sleep 1.2; mem_sample "$cfg" after-idle ;;
            "BENCH "*) res "$cfg ${1#BENCH }" ;; # samples, info, workloads skipped by design
            "ERROR "*) say "$cfg guest: $1" ;;
        esac
    }
    while :; do
        total=$(wc -l <"$log" 2>/dev/null || echo 0)
        if [ "$total" -gt "$done_lines" ]; then
            while IFS= read -r line; do
                line=${line//$'\r'/}
                if [[ $line =~ @@EVENTFSD\ ([^@]*)@@ ]]; then
                    m=${BASH_REMATCH[1]}
                    case "$m" in "BENCH sample"*) ;; *) say "$cfg guest: $m" ;; esac
                    handle "$m"
                fi
            done < <(sed -n "$((done_lines + 1)),${total}p" "$log")
            done_lines=$total
        fi
        kill -0 "$RUNPID" 2>/dev/null || break
        sleep 0.2
    done
    wait "$RUNPID"
    rc=$?
    RUNPID=""
    grep -q '@@EVENTFSD BENCH-DONE@@' "$log" ||
        res "$cfg incomplete reason=no_BENCH-DONE_(run-guest_status_$rc)"
    res "$cfg wall seconds=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
    stop_pid "$DPID" "$cfg"
    DPID=""
    kmem_cgroup_remove
    if [ -n "$INSTANCE_DIR" ]; then
        rmdir "$INSTANCE_DIR" 2>/dev/null || say "could not remove $INSTANCE_DIR"
        INSTANCE_DIR=""
    fi
    sleep 0.5
    slab_sample "$cfg" after
}

# ---- 4. run ------------------------------------------------------------------------------------
res "meta date=$(date -u +%Y-%m-%dT%H:%MZ)"
res "meta host_kernel=$(uname -r)"
res "meta cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//; s/ /_/g')"
res "meta cpus=$(nproc)"
res "meta mem_gb=$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
res "meta qemu=$(qemu-system-x86_64 --version | head -n1 | awk '{ print $4 }')"
res "meta accel=$([ ${#KVM_ARGS[@]} -gt 0 ] && echo kvm || echo tcg)"
res "meta idle=$IDLE"
res "meta eventfsd=$(cd "$REPO" && git describe --always --dirty 2>/dev/null)"
[ -x "$VIRTIOFSD" ] && res "meta virtiofsd=$("$VIRTIOFSD" --version 2>/dev/null | awk '{ print $NF }')"
res "meta fuse_backend_rs=$(sed -n '/^name = "fuse-backend-rs"/{n;s/version = "\(.*\)"/\1/p}' "$REPO/Cargo.lock")"
res "meta guest_kernel=$(cat "$REPO/.cache/guest/kernel/KVER" 2>/dev/null)_($(cat "$REPO/.cache/guest/kernel/VERSION" 2>/dev/null))"
res "meta reps=$REPS preps=$PREPS"
res "meta load_before=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
res "meta tracefs=${TRACEFS:-none}"

# The metadata core's own footprint (heap, per-node bytes, lookup cost) on this machine.
say "footprint (cargo run --release -p eventfs-core --example footprint)"
FOOTPRINT=$(cd "$REPO" && cargo run --release -q -p eventfs-core --example footprint 2>"$TMP/footprint.log") ||
    { tail -n 20 "$TMP/footprint.log" >&2; die "the footprint example failed"; }
res "footprint $(echo "$FOOTPRINT" | grep '=' | tr '\n' ' ')"

want catalog && run_config eventfsd-catalog
if want host; then
    if [ -z "$TRACEFS" ]; then
        res "eventfsd-host unavailable reason=no_host_tracefs"
    elif ! { "$EVENTFSD" --help 2>&1 || true; } | grep -- '--source' >/dev/null; then
        res "eventfsd-host unavailable reason=eventfsd_has_no_--source"
    else
        run_config eventfsd-host
    fi
fi
if want virtiofsd; then
    if [ -z "$TRACEFS" ]; then
        res "virtiofsd unavailable reason=no_host_tracefs"
    elif [ ! -x "$VIRTIOFSD" ]; then
        res "virtiofsd unavailable reason=not_installed"
    else
        run_config virtiofsd
    fi
fi
want native && run_config native
res "meta load_after=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
res "meta total_seconds=$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')"

# ---- 5. report ---------------------------------------------------------------------------------
REPORT_ARGS=("$RESULTS" --only "$ONLY")
[ "$WRITE" = 1 ] && REPORT_ARGS+=(--markdown "$REPO/BENCHMARKS.md" --png "$REPO/docs/bench.png" --readme "$REPO/README.md")
"$PY" "$REPO/scripts/bench-report.py" "${REPORT_ARGS[@]}"
