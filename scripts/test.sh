#!/usr/bin/env bash
# Sets up and runs every test: formatting, lints, the module import graph, unit and /dev/fuse
# integration tests, the guest suite (a real QEMU guest mounting eventfsd over virtio-fs, once
# per source), the Debian package's test install, then a short fuzz smoke. Run as root on a
# fresh machine.
#
# Nothing that did not run counts as passed. Tests whose prerequisite is missing (root,
# /dev/fuse, a mountable tracefs: crates/test-prereq) are counted as skipped, and so are
# ignored tests, guest checks that report SKIP and a fuzz smoke that could not run. The last
# line is "total: N passed, M failed, K skipped".
#
# EVENTFSD_REQUIRE_PREREQS=1 (the default when CI=true) makes every skip a failure: CI runs on
# a machine that has everything, so whatever it must run, it runs.
#
# Fuzz smoke (scripts/fuzz-smoke.sh): EVENTFSD_FUZZ_SECONDS per target (default 30; 0 turns the
# step off, which counts as one skip). It installs cargo-fuzz if needed (~1-3 min) and builds
# the targets (~2-4 min); with 6 targets x 30 s the step costs about 5-9 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ -z "${EVENTFSD_REQUIRE_PREREQS:-}" ]; then
    EVENTFSD_REQUIRE_PREREQS=0
    [ "${CI:-}" = true ] && EVENTFSD_REQUIRE_PREREQS=1
fi
export EVENTFSD_REQUIRE_PREREQS

# Everything is also written to a log so that the last line can sum up all the suites; tests
# that skip append a line to the skip log.
LOG=$(mktemp "${TMPDIR:-/tmp}/eventfsd-test.XXXXXX")
EVENTFSD_SKIP_LOG=$(mktemp "${TMPDIR:-/tmp}/eventfsd-skips.XXXXXX")
export EVENTFSD_SKIP_LOG
trap 'rm -f "$LOG" "$EVENTFSD_SKIP_LOG"' EXIT
exec > >(tee -a "$LOG") 2>&1

skip_step() { # reason: a step that did not run
    echo "SKIPPED-STEP $*" >>"$EVENTFSD_SKIP_LOG"
    step "SKIPPED: $* -- not a pass"
}

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "module imports (no cycle)"
python3 scripts/import-graph.py

# The fuzz targets are a workspace of their own: compile them here so that a change that breaks
# them fails even when the fuzz smoke is off.
step "fuzz targets compile"
cargo check --manifest-path fuzz/Cargo.toml --all-targets

step "cargo test (prerequisites required: $EVENTFSD_REQUIRE_PREREQS)"
cargo test --workspace

step "guest tests (catalog source)"
scripts/guest-test.sh

# The guest scripts also run against the guest kernel's own tracefs, where they pass too: they
# test ftrace, not eventfsd's idea of it (checks that are about eventfsd alone skip there).
# Left out: 31-system-enable and 32-top-enable (a whole system's or every event's text
# patching at once can stall a TCG guest with 2 vCPUs).
step "guest tests against the guest kernel's own tracefs (--mode native)"
scripts/native-check.sh 10,11,15,16,17,18,20,30,35,40,45,46,47,48,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,70,80,90

# The guest kernel's own catalog (Debian's 6.1, crates/eventfs-core/catalog/debian-6.1.evcat)
# has hist files, snapshots and a readable function list, which the embedded 6.18 catalog
# lacks: their scripts run over it.
step "guest tests (catalog source, the guest kernel's catalog)"
EVENTFSD_ARGS="--catalog crates/eventfs-core/catalog/debian-6.1.evcat" scripts/guest-test.sh \
    --no-build --tests 56,57,58,59,61,62,63,64

# The host source serves a private instance of this machine's tracefs. One script is left out
# here: 32-top-enable turns on every host event at once (a load test of the host, not of
# eventfsd). Instances the guest makes are host instances beside the daemon's.
step "guest tests (host source)"
EVENTFSD_ARGS="--source host" scripts/guest-test.sh --no-build \
    --tests 10,11,15,16,17,18,20,30,31,35,40,45,46,47,48,50,51,60,70,80,90

# The Debian package, built from the binary the guest tests used and test-installed into a
# scratch root (never the host's). Its tools: dpkg-shlibdeps (dpkg-dev), systemd-analyze and
# systemd-socket-activate (systemd).
step "Debian package (scripts/package-test.sh)"
need=()
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v systemd-analyze >/dev/null && command -v systemd-socket-activate >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" ||
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"; }
fi
scripts/package-test.sh

FUZZ_SECONDS=${EVENTFSD_FUZZ_SECONDS:-30}
if [ "$FUZZ_SECONDS" != 0 ]; then
    step "fuzz smoke (${FUZZ_SECONDS}s per target)"
    rc=0
    EVENTFSD_FUZZ_SECONDS=$FUZZ_SECONDS scripts/fuzz-smoke.sh || rc=$?
    if [ $rc = 77 ]; then
        skip_step "fuzz smoke (cargo-fuzz unavailable)"
    elif [ $rc != 0 ]; then
        exit $rc
    fi
else
    skip_step "fuzz smoke (EVENTFSD_FUZZ_SECONDS=0)"
fi

# One closing line over every suite. cargo's "test result" lines count skipping tests as
# passed, so the skip log's entries move from passed to skipped; ignored tests and the guest
# suites' skipped checks are skipped too, and so are checks a passing test could not make on
# this machine (SKIPPED-CHECK: they depend on the kernel, no run requires them). Any failure has
# already stopped the script.
sleep 0.2 # let tee write out what came before
skipped_tests=$(grep -c '^SKIPPED ' "$EVENTFSD_SKIP_LOG" || true)
skipped_checks=$(grep -c '^SKIPPED-CHECK ' "$EVENTFSD_SKIP_LOG" || true)
skipped_steps=$(grep -c '^SKIPPED-STEP ' "$EVENTFSD_SKIP_LOG" || true)
if [ -s "$EVENTFSD_SKIP_LOG" ]; then
    echo "skipped:"
    sed 's/^/  /' "$EVENTFSD_SKIP_LOG"
fi
awk -v skipped_tests="$skipped_tests" -v skipped_other="$((skipped_checks + skipped_steps))" '
    /^test result:/ { passed += $4; failed += $6; ignored += $8 }
    /^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$/ { passed += $1; failed += $3; other += $5 }
    END {
        printf "total: %d passed, %d failed, %d skipped\n",
            passed - skipped_tests, failed, ignored + other + skipped_tests + skipped_other
    }
' "$LOG"
if [ "$EVENTFSD_REQUIRE_PREREQS" = 1 ] && [ "$((skipped_tests + skipped_steps))" -gt 0 ]; then
    echo "test.sh: this run requires every test and step (EVENTFSD_REQUIRE_PREREQS=1), and some were skipped"
    exit 1
fi
