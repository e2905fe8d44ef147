#!/bin/sh
# description: reads are never stale, chunked reads agree
# Checks: writing 1 then 0 (three times) to an enable file and cat-ing after each write
# always shows the new value (no stale page cache for size-0 files); the system enable
# follows; `format` has content; reading format/id in 7-byte and 1-byte chunks gives exactly
# what one cat gives, with the page cache dropped and O_DIRECT reads so that every chunk is
# answered by the daemon at its offset (read_uncached).
. /guest-tests/_lib.sh
desc "fresh content after writes, chunked reads"
f=events/sched/sched_switch/enable
for i in 1 2 3; do
    echo 1 >$f
    a=$(cat $f 2>&1)
    s=$(cat events/sched/enable 2>&1)
    echo 0 >$f
    b=$(cat $f 2>&1)
    expect_eq "round $i: $f after 1, system enable, after 0" "1 X 0" "$a $s $b"
done
c=$(cat events/sched/sched_switch/format | wc -c)
if [ "$c" -gt 100 ]; then ok "format has $c bytes (size reported 0)"; else fail "format has content: only $c bytes"; fi
cat events/sched/sched_switch/format >"$TMPD/full" 2>&1
cat events/sched/sched_switch/format >"$TMPD/full2" 2>&1
if cmp -s "$TMPD/full" "$TMPD/full2"; then ok "two cats of format agree"; else fail "two cats of format differ"; fi
read_uncached events/sched/sched_switch/format 7 >"$TMPD/chunk"
if [ -s "$TMPD/chunk" ] && cmp -s "$TMPD/full" "$TMPD/chunk"; then ok "format read in 7-byte chunks equals one cat"; else fail "format read in 7-byte chunks differs ($(wc -c <"$TMPD/chunk") vs $(wc -c <"$TMPD/full") bytes)"; fi
read_uncached events/sched/sched_switch/id 1 >"$TMPD/id1"
cat events/sched/sched_switch/id >"$TMPD/id"
if [ -s "$TMPD/id1" ] && cmp -s "$TMPD/id" "$TMPD/id1"; then ok "id read byte by byte equals one cat"; else fail "id read byte by byte differs: '$(show "$(cat "$TMPD/id1")")' vs '$(show "$(cat "$TMPD/id")")'"; fi
finish
