#!/bin/sh
# description: find over the whole events/ tree
# Checks: `find /sys/kernel/tracing/events` exits 0 and prints NOTHING on stderr (no "File
# system loop detected"); no path twice; its entry count equals what `ls -RA` reports; and it
# equals EXPECTED_EVENTS_ENTRIES from /guest-tests/expected.env, which the host computed from an
# oracle that is not the daemon (the catalog image, or a private instance of the host tracefs);
# a missing oracle is a failure.
. /guest-tests/_lib.sh
desc "find events: no stderr, no duplicates, expected entry count"
t0=$(cut -d' ' -f1 /proc/uptime)
find /sys/kernel/tracing/events >"$TMPD/out" 2>"$TMPD/err"
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
n=$(wc -l <"$TMPD/out")
echo "  note: find events: $n entries in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s"
expect_eq "find exit status" 0 "$rc"
expect_eq "find stderr is empty" "" "$(head -n5 "$TMPD/err")"
expect_eq "find lists no path twice" "" "$(sort "$TMPD/out" | uniq -d | head -n5)"
# Every event directory holds files, and every entry that is not a directory is a regular file.
nd=$(find /sys/kernel/tracing/events -type d 2>/dev/null | wc -l)
nf=$(find /sys/kernel/tracing/events -type f 2>/dev/null | wc -l)
expect_eq "directories + regular files = all entries" "$n" "$((nd + nf))"
ne=$(find /sys/kernel/tracing/events -mindepth 2 -maxdepth 2 -type d | wc -l)
nfmt=$(find /sys/kernel/tracing/events -mindepth 3 -maxdepth 3 -name format | wc -l)
expect_eq "every event directory has a format file" "$ne" "$nfmt"
if [ "$nf" -gt "$((nd * 2))" ]; then ok "more than two files per directory ($nf files, $nd dirs)"; else fail "too few files: $nf for $nd directories"; fi
# every dir's ls -A entries, plus events/ itself
nls=$(ls -RA events 2>/dev/null | grep -v -e ':$' -e '^$' | wc -l)
expect_eq "find count equals the ls -RA count + 1" "$n" "$((nls + 1))"
if [ -r /guest-tests/expected.env ]; then
    . /guest-tests/expected.env
fi
if is_native; then
    skip_native "entry count against the oracle (the daemon's catalog or host instance; $n entries here)"
elif [ -n "${EXPECTED_EVENTS_ENTRIES:-}" ]; then
    expect_eq "find events entry count equals the oracle's" "$EXPECTED_EVENTS_ENTRIES" "$n"
else
    fail "find events entry count: no EXPECTED_EVENTS_ENTRIES in /guest-tests/expected.env (got $n)"
fi
finish
