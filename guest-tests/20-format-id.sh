#!/bin/sh
# description: format and id contents
# Checks: sched_switch/format starts "name: sched_switch", "ID: <content of id>", "format:",
# has the common_type field and a "print fmt: " line; id is decimal; for every sched event
# the format's name/ID lines match the dir name and its id file; sched ids are unique;
# events/header_page and header_event are whole (the page layout raw-buffer readers parse;
# read with one large read, as tools do: the kernel answers only the read at offset 0).
. /guest-tests/_lib.sh
desc "format/id contents (name:, ID:, print fmt:, decimal ids)"

ev=events/sched/sched_switch
id=$(cat $ev/id 2>&1)
case "$id" in
    '' | *[!0-9]*) fail "$ev/id is decimal: got '$(show "$id")'" ;;
    *) ok "$ev/id is decimal ($id)" ;;
esac
expect_eq "$ev/id is one line" 1 "$(wc -l <$ev/id)"
expect_eq "format line 1" "name: sched_switch" "$(sed -n 1p $ev/format 2>&1)"
expect_eq "format line 2" "ID: $id" "$(sed -n 2p $ev/format 2>&1)"
expect_eq "format line 3" "format:" "$(sed -n 3p $ev/format 2>&1)"
if grep -q "$(printf '^\tfield:unsigned short common_type;')" $ev/format; then ok "format has the common_type field"; else fail "format has the common_type field"; fi
if grep -q "$(printf '^\tfield:pid_t prev_pid;')" $ev/format; then ok "format has the prev_pid field"; else fail "format has the prev_pid field"; fi
if grep -q '^print fmt: ' $ev/format; then ok "format has a print fmt: line"; else fail "format has a print fmt: line"; fi
expect_eq "events/ftrace/function/format line 1" "name: function" "$(sed -n 1p events/ftrace/function/format 2>&1)"

n=0
bad=""
: >"$TMPD/ids"
for e in events/sched/*/; do
    e=${e%/}
    name=$(basename "$e")
    i=$(cat "$e/id" 2>/dev/null)
    case "$i" in '' | *[!0-9]*) bad="$bad $name:id='$i'"; continue ;; esac
    echo "$i" >>"$TMPD/ids"
    l1=$(sed -n 1p "$e/format" 2>/dev/null)
    l2=$(sed -n 2p "$e/format" 2>/dev/null)
    [ "$l1" = "name: $name" ] || bad="$bad $name:'$l1'"
    [ "$l2" = "ID: $i" ] || bad="$bad $name:'$l2'!=ID:$i"
    n=$((n + 1))
done
expect_eq "name/ID lines of all $n sched formats match their dir and id file" "" "$bad"
expect_eq "sched event ids are unique" "" "$(sort "$TMPD/ids" | uniq -d | tr '\n' ' ')"
# The ring-buffer page layout, whole: timestamp, commit, overwrite and data fields.
hp=$(dd if=events/header_page bs=65536 2>/dev/null)
for f in 'field: u64 timestamp;' 'field: local_t commit;' 'field: char data;'; do
    case "$hp" in *"$f"*) ok "header_page has '$f'" ;; *) fail "header_page has '$f': got '$(show "$hp")'" ;; esac
done
he=$(dd if=events/header_event bs=65536 2>/dev/null)
for f in 'type_len' 'time_delta' 'array'; do
    case "$he" in *"$f"*) ok "header_event has '$f'" ;; *) fail "header_event has '$f': got '$(show "$he")'" ;; esac
done
finish
