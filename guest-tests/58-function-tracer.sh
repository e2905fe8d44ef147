#!/bin/sh
# description: the function tracer over available_filter_functions, with its filters
# Needs a kernel whose function list is readable: the guest kernel natively, or eventfsd
# serving its catalog (crates/eventfs-core/catalog/debian-6.1.evcat). Checks: the tracer is
# offered; the list's shape; set_ftrace_filter takes names, globs, `>>` appends, `!` removes,
# and refuses what matches nothing; listings follow the list's order; set_ftrace_notrace and
# set_ftrace_pid; with the tracer on, calls of the selected functions from this shell's work
# are recorded as `func <-parent` lines under a `# tracer: function` header; over eventfsd,
# trace-cmd records and reports them.
. /guest-tests/_lib.sh
desc "function tracer"
if ! grep -qw function available_tracers || [ ! -e set_ftrace_filter ]; then
    echo "  SKIP: no function tracer (available_tracers: $(cat available_tracers))"
    exit 77
fi
# Calls: this shell's writes and sleeps (natively), or the simulation's (1000 calls/s).
# (Natively, tracing a function on the read path of `trace` itself, such as vfs_read,
# stalls the guest under TCG: the traced functions are off that path.)
work() {
    for _ in 1 2 3 4 5; do echo x >/dev/null; done
    sleep 0.2
    sleep 0.1
}
body() { grep -v '^#' trace; }
reset() {
    echo nop >current_tracer
    echo >set_ftrace_filter
    echo >set_ftrace_notrace
    echo >set_ftrace_pid
    echo >trace
}
n=$(wc -l <available_filter_functions)
if [ "$n" -gt 10000 ]; then ok "available_filter_functions lists $n functions"; else fail "available_filter_functions lists $n functions"; fi
bad=$(grep -Ev '^[A-Za-z0-9_.$]+( \[[A-Za-z0-9_]+\])?$' available_filter_functions | head -1)
expect_eq "each line is a name, with [module] for a module's" "" "$bad"
expect_eq "set_ftrace_filter empty" "#### all functions enabled ####" "$(cat set_ftrace_filter)"
expect_eq "set_ftrace_notrace empty" "#### no functions disabled ####" "$(cat set_ftrace_notrace)"
expect_eq "set_ftrace_pid empty" "no pid" "$(cat set_ftrace_pid)"
expect_eq "current_tracer" "nop" "$(cat current_tracer)"

expect_write_ok vfs_read set_ftrace_filter
expect_eq "a full name selects that function" "vfs_read" "$(cat set_ftrace_filter)"
expect_write_ok 'vfs_*' set_ftrace_filter
expect_eq "a glob selects as the list orders them" "$(grep '^vfs_' available_filter_functions)" "$(cat set_ftrace_filter)"
echo vfs_read >set_ftrace_filter
echo vfs_write >>set_ftrace_filter
expect_eq ">> appends" "2" "$(grep -cx 'vfs_read\|vfs_write' set_ftrace_filter)"
echo '!vfs_read' >>set_ftrace_filter
expect_eq "! removes" "vfs_write" "$(cat set_ftrace_filter)"
W_ERR=$( { echo no_such_function_58 >>set_ftrace_filter; } 2>&1)
expect_eq "a name that matches nothing is EINVAL" "1 sh: write error: Invalid argument" "$? $W_ERR"
expect_eq "and changes nothing" "vfs_write" "$(cat set_ftrace_filter)"
try_write no_such_function_58 set_ftrace_filter
expect_eq "with > too" "1 sh: write error: Invalid argument" "$W_RC $W_ERR"
expect_eq "but > emptied the filter first" "#### all functions enabled ####" "$(cat set_ftrace_filter)"
expect_write_ok 'vfs_read' set_ftrace_notrace
expect_eq "set_ftrace_notrace lists it" "vfs_read" "$(cat set_ftrace_notrace)"
reset

echo do_nanosleep >set_ftrace_filter
expect_write_ok function current_tracer
expect_eq "current_tracer" "function" "$(cat current_tracer)"
work
expect_eq "the header names the tracer" "# tracer: function" "$(head -1 trace)"
lines=$(body | wc -l)
if [ "$lines" -gt 0 ]; then ok "calls were recorded ($lines)"; else fail "calls were recorded"; fi
expect_eq "every call is of do_nanosleep, with its caller" "" \
    "$(body | grep -Ev '^ *.+-[0-9]+ +\[[0-9]{3}\] .{5} +[0-9]+\.[0-9]{6}: do_nanosleep <-[A-Za-z0-9_.]+( \[[A-Za-z0-9_]+\])?$' | head -1)"
echo do_nanosleep >set_ftrace_notrace
echo >trace
work
expect_eq "a notrace function is not traced" "0" "$(body | wc -l)"
echo >set_ftrace_notrace
echo ksys_write >set_ftrace_filter
echo $$ >set_ftrace_pid
expect_eq "set_ftrace_pid lists the pid" "$$" "$(cat set_ftrace_pid)"
echo >trace
work
lines=$(body | wc -l)
if [ "$lines" -gt 0 ]; then ok "this shell's calls were recorded ($lines)"; else fail "this shell's calls were recorded"; fi
expect_eq "only this shell's" "" "$(body | grep -v -- "-$$ " | head -1)"
expect_write_ok nop current_tracer
expect_eq "back to nop" "nop" "$(cat current_tracer)"
expect_eq "a new tracer starts with an empty buffer" "0" "$(body | wc -l)"
reset

# trace-cmd sets the tracer and the filter through libtracefs, reads the calls from the
# per-CPU trace_pipe_raw pages and puts everything back. (Its report names functions from the
# guest's own /proc/kallsyms: over eventfsd, which simulates the addresses, it shows them in
# hex, always the same one for a one-function filter.)
if skip_native "trace-cmd record -p function (the native guest stalls under it)"; then :; else
    need_command trace-cmd
    T=/sys/kernel/tracing
    stack_for_libtracefs
    if trace-cmd record -p function -l do_nanosleep sleep 1 >record.log 2>&1 &&
        trace-cmd report >report.txt 2>&1; then
        ok "trace-cmd record -p function -l do_nanosleep, and report"
    else
        fail "trace-cmd record -p function: $(show "$(tail -3 record.log)")"
    fi
    n=$(grep -c ' function: ' report.txt)
    if [ "$n" -gt 0 ]; then ok "the report has the calls ($n)"; else fail "the report has the calls: $(show "$(head -5 report.txt)")"; fi
    expect_eq "all of one function" "1" "$(sed -n 's/.* function: *\([^ ]*\).*/\1/p' report.txt | sort -u | wc -l)"
    expect_eq "trace-cmd put the tracer and the filter back" "nop|#### all functions enabled ####|" \
        "$(cat $T/current_tracer $T/set_ftrace_filter | tr '\n' '|')"
    unstack_for_libtracefs
fi
finish
