#!/usr/bin/env bash
# native-check.sh - runs guest test scripts against the guest kernel's own tracefs
# (scripts/run-guest.sh --mode native), to prove that they test real behaviour: a script that
# passes over eventfsd but fails over the real kernel would test eventfsd's idea of ftrace.
#
# Usage: scripts/native-check.sh TESTS   (test numbers as run-guest.sh --tests takes them: 51,52)
# Prepares the guest image first (scripts/prepare-guest.sh: cached). Prints each named script's result, then
# "N passed, M failed"; the exit status is 0 only if every named script passed.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESTS=${1:?usage: native-check.sh TESTS}
LOG=$(mktemp "${TMPDIR:-/tmp}/eventfsd-native.XXXXXX")
trap 'rm -f "$LOG"' EXIT

"$REPO/scripts/prepare-guest.sh" --quiet >/dev/null || exit 1
"$REPO/scripts/run-guest.sh" --mode native --no-reboot-test --tests "$TESTS" --log "$LOG" \
    >/dev/null 2>&1
rc=$?
passed=0
failed=0
for n in ${TESTS//,/ }; do
    result=$(grep -oE "@@EVENTFSD RESULT (PASS|FAIL) $n-[a-z0-9-]+@@" "$LOG" | head -1)
    case "$result" in
        *PASS*) passed=$((passed + 1)); echo "native: ${result//@@/}" ;;
        *FAIL*)
            failed=$((failed + 1))
            echo "native: ${result//@@/}"
            grep -E '^  (FAIL|SKIP)' "$LOG" | sed 's/^/native:   /'
            ;;
        *) failed=$((failed + 1)); echo "native: no result for test $n (run-guest exit status $rc)" ;;
    esac
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
