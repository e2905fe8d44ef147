#!/usr/bin/env bash
# fuzz-smoke.sh - builds every cargo-fuzz target in fuzz/ and runs each for a bounded time,
# starting from the committed seed corpus (fuzz/corpus/<target>/seed-*). Fails on the first
# crash, panic, timeout (hang) or out-of-memory; the reproducer is left in fuzz/artifacts/.
#
# Usage: scripts/fuzz-smoke.sh [TARGET...]        (default: every target)
# Environment:
#   EVENTFSD_FUZZ_SECONDS   seconds per target (default 60)
#   EVENTFSD_FUZZ_KEEP      directory to keep the grown corpora in (default: a temp dir,
#                           removed at the end; the committed corpus is never modified)
# Exit status: 0 all targets ran clean (each ran inputs), 1 a target failed or ran no input,
# 77 skipped (cargo-fuzz could not be installed: this is NOT a pass).
#
# cargo-fuzz needs nightly-only compiler flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1. Targets run one at a time (one libFuzzer process, one core).
set -uo pipefail
cd "$(dirname "$0")/.."

SECS=${EVENTFSD_FUZZ_SECONDS:-60}
TARGETS=(fuse_requests filter_parser trigger_parser probe_parser catalog_loader policy_parser)
[ $# -gt 0 ] && TARGETS=("$@")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    if ! cargo install cargo-fuzz --locked >/tmp/fuzz-smoke-install.$$.log 2>&1; then
        tail -5 /tmp/fuzz-smoke-install.$$.log
        rm -f /tmp/fuzz-smoke-install.$$.log
        echo "fuzz-smoke: SKIPPED: cargo-fuzz could not be installed"
        exit 77
    fi
    rm -f /tmp/fuzz-smoke-install.$$.log
fi

export RUSTC_BOOTSTRAP=1
echo "fuzz-smoke: building ${TARGETS[*]} ($(cargo fuzz --version))"
# -a: debug assertions (overflow checks) on, as in the unit tests. Builds every target.
if ! cargo fuzz build -a >"${TMPDIR:-/tmp}/fuzz-smoke-build.$$.log" 2>&1; then
    tail -40 "${TMPDIR:-/tmp}/fuzz-smoke-build.$$.log"
    rm -f "${TMPDIR:-/tmp}/fuzz-smoke-build.$$.log"
    echo "fuzz-smoke: FAILED to build the fuzz targets"
    exit 1
fi
rm -f "${TMPDIR:-/tmp}/fuzz-smoke-build.$$.log"

WORK=${EVENTFSD_FUZZ_KEEP:-}
CLEANUP=0
if [ -z "$WORK" ]; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-fuzz.XXXXXX")
    CLEANUP=1
fi
FAILED=()
for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/$t" fuzz/artifacts/"$t"
    log="$WORK/$t.log"
    echo "fuzz-smoke: $t for ${SECS}s"
    # New inputs go to $WORK/$t (first corpus dir); the seeds are only read.
    cargo fuzz run -a "$t" "$WORK/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb' "$log" |
        sed "s/^/  $t: /"
    # A target that ran no input proves nothing: that is a failure too.
    units=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*\([0-9]*\).*/\1/p' "$log" | tail -n1)
    if [ $rc -eq 0 ] && [ "${units:-0}" -eq 0 ]; then
        echo "fuzz-smoke: $t ran no input (no stat::number_of_executed_units in its log)"
        rc=1
    fi
    if [ $rc -ne 0 ]; then
        echo "fuzz-smoke: $t FAILED (exit $rc); last lines of its log:"
        grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -40
        FAILED+=("$t")
    fi
done
[ $CLEANUP = 1 ] && rm -rf "$WORK"

if [ ${#FAILED[@]} -gt 0 ]; then
    echo "fuzz-smoke: FAILED: ${FAILED[*]} (reproducers in fuzz/artifacts/)"
    exit 1
fi
echo "fuzz-smoke: ${#TARGETS[@]} targets ran ${SECS}s each without a finding"
echo "${#TARGETS[@]} passed, 0 failed"
