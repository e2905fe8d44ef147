#!/bin/sh
# description: hist triggers aggregate an event's occurrences into the kernel's hist text
# Needs a kernel with histograms (events have a `hist` file): the guest kernel natively, or
# eventfsd serving the guest kernel's catalog (crates/eventfs-core/catalog/debian-6.1.evcat).
# Checks: a hist trigger soft-enables its event and lists as the kernel prints it; the hist
# file's header, entry lines (keys, values, modifiers, widths, stack keys) and totals;
# sorting; pause; a named histogram shared by two events; disable_hist/enable_hist; errors in
# error_log with their carets; removal. Where 6.1 differs from later kernels (it never finds
# the histogram :cont and :clear name, removing a missing one succeeds, no .percent), the
# checks assert what 6.1 does: the oracle is the guest's 6.1 kernel.
. /guest-tests/_lib.sh
desc "hist triggers"
fork=events/sched/sched_process_fork
exec_=events/sched/sched_process_exec
# The embedded 6.18 catalog has no histograms (scripts/test.sh runs this script over the 6.1
# catalog too); a kernel without them is a skip, not a pass.
if [ ! -e $fork/hist ]; then
    echo "  SKIP: $fork/hist does not exist: the kernel has no CONFIG_HIST_TRIGGERS"
    exit 77
fi
# Occurrences: forks and execs by this shell (natively), or the simulation's (eventfsd: its
# rate profile has sched_process_* at 2/s).
work() {
    for _ in 1 2 3 4 5 6; do /bin/true; done
    sleep 0.3
    is_native || sleep 1.5
}
# The hist file is read once per check (events keep coming while the script runs).
snap() { cat "$1/hist" >"$TMPD/hist"; }
entries() { grep '^{' "$TMPD/hist"; }
total() { sed -n "s/^    $1: //p" "$TMPD/hist"; }
hitsum() { entries | sed 's/.* hitcount: *\([0-9]*\).*/\1/' | awk '{ s += $1 } END { print s + 0 }'; }
caret() { printf '%*s^' $((11 + $1)) ''; }
# a %10llu number: right-aligned in 10 columns (wider only past 10 digits)
N10='( {9}[0-9]| {8}[0-9]{2}| {7}[0-9]{3}| {6}[0-9]{4}| {5}[0-9]{5}| {4}[0-9]{6}| {3}[0-9]{7}| {2}[0-9]{8}| [0-9]{9}|[0-9]{10,})'
# a line-by-line regex check of every entry line of a fresh read of DIR/hist
all_match() { # what dir regex
    snap "$2"
    _n=$(entries | wc -l)
    _bad=$(entries | grep -Ev "$3" | head -1)
    if [ "$_n" -gt 0 ] && [ -z "$_bad" ]; then ok "$1 ($_n entries)"; else fail "$1: $_n entries, first mismatch '$(show "$_bad")'"; fi
}

expect_eq "no histogram: hist is empty" "" "$(cat $fork/hist)"
expect_write_ok 'hist:keys=common_pid' $fork/trigger
expect_eq "listed as the kernel prints it" \
    "hist:keys=common_pid:vals=hitcount:sort=hitcount:size=2048 [active]" "$(grep -v '^#' $fork/trigger)"
expect_eq "the histogram soft-enables its event" "0*" "$(cat $fork/enable)"
work
snap $fork
expect_eq "header" "# event histogram|#|# trigger info: hist:keys=common_pid:vals=hitcount:sort=hitcount:size=2048 [active]|#||" \
    "$(head -5 "$TMPD/hist" | tr '\n' '|')"
expect_eq "Totals: Hits is the sum of the hitcounts" "$(hitsum)" "$(total Hits)"
expect_eq "Totals: Entries counts the lines" "$(entries | wc -l)" "$(total Entries)"
expect_eq "Totals: nothing dropped" "0" "$(total Dropped)"
expect_eq "a blank line, then the totals close the text" "|Totals:|" "$(tail -5 "$TMPD/hist" | head -2 | tr '\n' '|')"
sorted=$(entries | sed 's/.* hitcount: *//')
expect_eq "sorted by hitcount, ascending" "$(echo "$sorted" | sort -n)" "$sorted"
all_match "entry lines: { common_pid: %10llu } hitcount: %10llu" $fork "^[{] common_pid: $N10 [}] hitcount: $N10\$"

expect_write_ok 'hist:keys=common_pid:pause' $fork/trigger
expect_eq "paused" "hist:keys=common_pid:vals=hitcount:sort=hitcount:size=2048 [paused]" "$(grep -v '^#' $fork/trigger)"
snap $fork
before=$(total Hits)
work
snap $fork
expect_eq "a paused histogram counts nothing" "$before" "$(total Hits)"
echo >error_log
for attr in clear cont; do
    try_write "hist:keys=common_pid:$attr" $fork/trigger
    expect_eq ":$attr finds no histogram (6.1)" "1 sh: write error: No such file or directory" "$W_RC $W_ERR"
done
expect_eq "error_log: the kernel's text for both" \
    "hist:sched:sched_process_fork: error: Can't clear or continue a nonexistent hist trigger|  Command: hist:keys=common_pid:clear|$(caret 0)|hist:sched:sched_process_fork: error: Can't clear or continue a nonexistent hist trigger|  Command: hist:keys=common_pid:cont|$(caret 0)|" \
    "$(sed 's/^\[[ 0-9.]*\] //' error_log | tr '\n' '|')"
echo >error_log
expect_write_ok '!hist:keys=common_pid' $fork/trigger
expect_eq "removed: the help again" "# Available triggers:" "$(head -1 $fork/trigger)"
expect_eq "removed: hist is empty" "" "$(cat $fork/hist)"
expect_write_ok '!hist:keys=common_pid' $fork/trigger

# modifiers and values
expect_write_ok 'hist:keys=common_pid.execname,child_pid.hex:vals=child_pid:sort=child_pid.descending' $fork/trigger
expect_eq "a sort name is a value before it is a key" \
    "hist:keys=common_pid.execname,child_pid.hex:vals=hitcount,child_pid:sort=child_pid.descending:size=2048 [active]" \
    "$(grep -v '^#' $fork/trigger)"
work
all_match "execname and hex keys, a value: { common_pid: %-16s[%10llu], child_pid: %llx } hitcount: %10llu  child_pid: %10llu" $fork \
    "^[{] common_pid: .{16}[[]$N10[]], child_pid: [0-9a-f]+ [}] hitcount: $N10  child_pid: $N10\$"
vals=$(entries | sed 's/.*  child_pid: *//')
expect_eq "sorted by the value, descending" "$(echo "$vals" | sort -rn)" "$vals"
echo '!hist:keys=common_pid.execname,child_pid.hex:vals=child_pid:sort=child_pid.descending' >$fork/trigger
expect_write_ok 'hist:keys=child_pid.log2,parent_pid.buckets=1000' $fork/trigger
work
all_match "log2 and buckets keys: ~ 2^%-2llu, ~ %llu-%llu" $fork \
    "^[{] child_pid: ~ 2\\^[0-9 ]{2}, parent_pid: ~ [0-9]*-[0-9]*999 [}] hitcount: $N10\$"
expect_eq "buckets=N lists as buckets=N" "hist:keys=child_pid.log2,parent_pid.buckets=1000:vals=hitcount:sort=hitcount:size=2048 [active]" \
    "$(grep -v '^#' $fork/trigger)"
echo '!hist:keys=child_pid.log2,parent_pid.buckets=1000' >$fork/trigger
expect_write_ok 'hist:keys=parent_comm:size=256 if child_pid > 0' $fork/trigger
expect_eq "size and a filter" "hist:keys=parent_comm:vals=hitcount:sort=hitcount:size=256 if child_pid > 0 [active]" \
    "$(grep -v '^#' $fork/trigger)"
work
all_match "string keys: %-50s" $fork "^[{] parent_comm: .{50} [}] hitcount: $N10\$"
echo '!hist:keys=parent_comm:size=256 if child_pid > 0' >$fork/trigger
# a stack key prints one frame per line; a timestamp value in microseconds adds the clock
expect_write_ok 'hist:keys=stacktrace,common_cpu:vals=common_timestamp.usecs' $fork/trigger
expect_eq "stack keys list as stacktrace (6.1), timestamps add the clock" \
    "hist:keys=stacktrace,common_cpu:vals=hitcount,common_timestamp.usecs:sort=hitcount:size=2048:clock=global [active]" \
    "$(grep -v '^#' $fork/trigger)"
work
snap $fork
expect_eq "a stack key opens its entry" "{ stacktrace:" "$(grep '^{' "$TMPD/hist" | head -1)"
frame=$(grep -A1 '^{ stacktrace:' "$TMPD/hist" | sed -n 2p)
case "$frame" in "         "[!\ ]*) ok "frames are indented by 9" ;; *) fail "frames are indented by 9: '$(show "$frame")'" ;; esac
n=$(grep -cE "^, common_cpu: $N10[}] hitcount: $N10  common_timestamp: $N10\$" "$TMPD/hist")
expect_eq "each stack entry closes with ', common_cpu: %10llu}' and its values" "$(grep -c '^{ stacktrace:' "$TMPD/hist")" "$n"
echo '!hist:keys=stacktrace,common_cpu:vals=common_timestamp.usecs' >$fork/trigger

# a named histogram: two events, one table
expect_write_ok 'hist:name=shared56:keys=common_pid' $fork/trigger
expect_write_ok 'hist:name=shared56:keys=common_pid' $exec_/trigger
work
echo '!hist:name=shared56:keys=common_pid' >$exec_/trigger
expect_write_ok 'hist:name=shared56:keys=common_pid:pause' $exec_/trigger
expect_write_ok 'hist:name=shared56:keys=common_pid:pause' $fork/trigger
snap $fork
a=$(entries | sort)
snap $exec_
expect_eq "both events show the one table" "$a" "$(entries | sort)"
if [ "$(total Hits)" -gt 0 ]; then ok "the named table counts"; else fail "the named table counts"; fi
echo >error_log
try_write 'hist:name=shared56:keys=prev_pid' events/sched/sched_switch/trigger
[ "$W_RC" -ne 0 ] && ok "a different shape under the same name fails" || fail "a different shape under the same name fails"
echo '!hist:name=shared56:keys=common_pid' >$fork/trigger
echo '!hist:name=shared56:keys=common_pid' >$exec_/trigger
expect_eq "the named histograms are gone" "$(head -1 $fork/trigger) $(head -1 $exec_/trigger)" \
    "# Available triggers: # Available triggers:"

# disable_hist on one event pauses another event's histogram when it fires
expect_write_ok 'hist:keys=common_pid' $fork/trigger
expect_write_ok 'disable_hist:sched:sched_process_fork' $exec_/trigger
work
expect_eq "disable_hist paused the histogram" "hist:keys=common_pid:vals=hitcount:sort=hitcount:size=2048 [paused]" \
    "$(grep -v '^#' $fork/trigger)"
echo '!disable_hist:sched:sched_process_fork' >$exec_/trigger
expect_write_ok 'enable_hist:sched:sched_process_fork' $exec_/trigger
work
expect_eq "enable_hist ran it again" "hist:keys=common_pid:vals=hitcount:sort=hitcount:size=2048 [active]" \
    "$(grep -v '^#' $fork/trigger)"
echo '!enable_hist:sched:sched_process_fork' >$exec_/trigger
echo '!hist:keys=common_pid' >$fork/trigger
expect_eq "no trigger left: enable is 0" "0" "$(cat $fork/enable)"

# errors go to error_log with the kernel's text and caret
echo >error_log
try_write 'hist:keys=nosuchfield' $fork/trigger
[ "$W_RC" -ne 0 ] && ok "an unknown key fails" || fail "an unknown key fails"
expect_eq "error_log names it, the caret under the field" "hist:sched:sched_process_fork: error: Couldn't find field|  Command: hist:keys=nosuchfield|$(caret 10)|" \
    "$(sed 's/^\[[ 0-9.]*\] //' error_log | tr '\n' '|')"
echo >error_log
try_write 'hist:keys=common_pid:vals=child_pid.percent' $fork/trigger
[ "$W_RC" -ne 0 ] && ok ".percent is refused (6.1)" || fail ".percent is refused (6.1)"
expect_eq "error_log: Invalid field modifier, the caret under it" "hist:sched:sched_process_fork: error: Invalid field modifier|  Command: hist:keys=common_pid:vals=child_pid.percent|$(caret 26)|" \
    "$(sed 's/^\[[ 0-9.]*\] //' error_log | tr '\n' '|')"
echo >error_log
try_write 'hist:keys=common_pid:nohitcount' $fork/trigger
[ "$W_RC" -ne 0 ] && ok "nohitcount is refused (6.1)" || fail "nohitcount is refused (6.1)"
expect_eq "nohitcount: nothing logged (an unknown attribute)" "" "$(cat error_log)"
expect_eq "no trigger left behind" "# Available triggers:" "$(head -1 $fork/trigger)"
finish
