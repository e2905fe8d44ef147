# shellcheck shell=sh
# Helpers shared by the eventfsd guest tests (busybox sh). Each NN-*.sh sources this.
# The tests run with the tracefs mount (/sys/kernel/tracing) as the current directory.
# Conventions (like the kernel's ftrace selftests): every assertion prints one line,
#   "  ok: <what>", "  FAIL: <what>: <why>", "  SKIP: <what>: <why>" or
#   "  SKIP-native: <what>" (a daemon-specific check, skipped against the real tracefs),
# and `finish` exits 0 when nothing failed, 1 otherwise.
# EVENTFSD_NATIVE=1 means the tree is the guest kernel's own tracefs.

T_NAME=${T_NAME:-$(basename "$0" .sh)}
T_OK=0
T_FAIL=0
T_SKIP=0
TMPD=/tmp/$T_NAME.$$
mkdir -p "$TMPD"

desc() { echo "# $T_NAME: $*"; }
ok() { T_OK=$((T_OK + 1)); echo "  ok: $*"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "  FAIL: $*"; }
skip() { T_SKIP=$((T_SKIP + 1)); echo "  SKIP: $*"; }
is_native() { [ "${EVENTFSD_NATIVE:-0}" = 1 ]; }
# `if skip_native "what"; then :; else <check>; fi` - prints SKIP-native in native mode
skip_native() {
    if is_native; then
        T_SKIP=$((T_SKIP + 1))
        echo "  SKIP-native: $*"
        return 0
    fi
    return 1
}

# read_uncached FILE BS: FILE's content read BS bytes at a time by the file system itself:
# against eventfsd the guest's page cache is dropped and the reads use O_DIRECT, so every
# chunk is a READ the daemon answers at its offset (tracefs has no page cache to bypass,
# and refuses O_DIRECT).
read_uncached() {
    if is_native; then
        dd if="$1" bs="$2" 2>/dev/null
    else
        sync
        echo 3 >/proc/sys/vm/drop_caches
        dd if="$1" bs="$2" iflag=direct 2>/dev/null
    fi
}

# one line, printable, shortened: for showing values in messages
show() { printf '%s' "$1" | tr '\n\t' '|>' | cut -c1-200; }

expect_eq() { # what expected actual
    if [ "$2" = "$3" ]; then
        ok "$1"
    else
        fail "$1: expected '$(show "$2")', got '$(show "$3")'"
    fi
}

expect_exists() { # path [what]
    if [ -e "$1" ]; then ok "${2:-$1 exists}"; else fail "${2:-$1 exists}: missing"; fi
}

expect_absent() { # path [what]
    if [ -e "$1" ]; then fail "${2:-$1 absent}: it exists"; else ok "${2:-$1 absent}"; fi
}

expect_mode() { # path octal
    _m=$(stat -c %a "$1" 2>&1)
    expect_eq "mode of $1 is $2" "$2" "$_m"
}

# expect_refused CMD FILE ERRNO-TEXT [ENTRY CARET]: appending CMD to FILE fails with that
# error text; with ENTRY (`subsystem: error: message`), error_log holds that one entry, its
# caret under column CARET of the command.
expect_refused() {
    echo >error_log
    W_ERR=$( { echo "$1" >>"$2"; } 2>&1)
    expect_eq "'$1' is refused" "sh: write error: $3" "$W_ERR"
    if [ -n "${4:-}" ]; then
        expect_eq "'$1' is logged" "$4" "$(sed -n 's/^\[ *[0-9.]*\] //p' error_log)"
        _caret=$(sed -n '3p' error_log | awk '{ print index($0, "^") - 12 }')
        expect_eq "'$1' has its caret at $5" "$5" "$_caret"
    fi
}

# write with a shell `echo` (one write(2), O_TRUNC), report success and the error text
# usage: try_write VALUE FILE ; then $W_RC and $W_ERR are set
try_write() {
    W_ERR=$( { echo "$1" >"$2"; } 2>&1)
    W_RC=$?
}

expect_write_ok() { # value file
    try_write "$1" "$2"
    if [ "$W_RC" -eq 0 ]; then
        ok "echo '$1' > $2 succeeds"
    else
        fail "echo '$1' > $2 succeeds: exit status $W_RC, error '$(show "$W_ERR")'"
    fi
}

# need_files WHAT PATH...: the test is skipped (exit 77) unless this kernel has every PATH
need_files() {
    _what=$1
    shift
    for _path in "$@"; do
        if [ ! -e "$_path" ]; then
            echo "  SKIP: no $_what in this kernel"
            exit 77
        fi
    done
}

# expect_synth_records EVENT BODY-RE WHAT: synthetic EVENT, enabled for half a second, leaves
# records in trace whose bodies all match BODY-RE (WHAT describes it); $n holds their number.
expect_synth_records() {
    echo 1 >"events/synthetic/$1/enable"
    sleep 0.5
    echo 0 >"events/synthetic/$1/enable"
    grep " $1: " trace >"$TMPD/synth"
    n=$(wc -l <"$TMPD/synth")
    if [ "$n" -gt 0 ]; then ok "$1 records ($n)"; else fail "$1 records: none in $(show "$(tail -3 trace)")"; fi
    _bad=$(grep -Ev " $1: $2\$" "$TMPD/synth" | head -1)
    expect_eq "each reads $3" "" "$_bad"
}

# need_command NAME: the guest image must have NAME (a FAIL, and the end of the test, if not)
need_command() {
    command -v "$1" >/dev/null && return 0
    fail "$1 is in the guest image"
    finish
}

# stack_for_libtracefs: libtracefs (trace-cmd) accepts only a tracefs line in /proc/mounts, so
# against eventfsd stack the tree over the guest's own tracefs at $T with eventfsd-mount (the
# test runs inside the plain mount, which is replaced lazily), then work in a scratch dir.
stack_for_libtracefs() {
    cd /
    if ! is_native; then
        eventfsd-mount tracefs $T 2>"$TMPD/mount.err"
        expect_eq "eventfsd-mount over the busy plain mount exits 0" "0 " "$? $(cat "$TMPD/mount.err")"
        expect_eq "tracefs then virtiofs at $T" "tracefs virtiofs " \
            "$(awk -v d=$T '$2 == d { printf "%s ", $3 }' /proc/mounts)"
    fi
    W=/tmp/$T_NAME.work.$$
    mkdir -p "$W"
    cd "$W" || exit 1
}

# unstack_for_libtracefs: back to the plain virtio-fs mount the other tests expect.
unstack_for_libtracefs() {
    cd /
    rm -rf "$W"
    if ! is_native; then
        eventfsd-mount -u $T
        mount -t virtiofs tracefs $T
        expect_eq "plain virtio-fs mount at $T again" "virtiofs " \
            "$(awk -v d=$T '$2 == d { printf "%s ", $3 }' /proc/mounts)"
    fi
}

finish() {
    rm -rf "$TMPD"
    echo "# $T_NAME: $T_OK ok, $T_FAIL failed, $T_SKIP skipped"
    [ "$T_FAIL" -eq 0 ] && exit 0
    exit 1
}
