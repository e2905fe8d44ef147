#!/bin/sh
# description: inode numbers from readdir and stat
# Checks: for events/, a system dir and event dirs, the inode `ls -i` (readdir) shows for
# each entry equals `stat -c %i`; all directory inodes under events/ are unique; a dir's
# inode and link count stay the same after the dentry cache is dropped and it is looked up
# again.
. /guest-tests/_lib.sh
desc "ls -i (readdir) vs stat inode agreement, unique dir inodes, stable inodes"
for d in events events/sched events/sched/sched_switch events/ftrace events/ftrace/function; do
    bad=""
    cnt=0
    ls -i $d >"$TMPD/ls" 2>&1
    while read -r ino name; do
        [ -n "$name" ] || continue
        s=$(stat -c %i "$d/$name" 2>&1)
        [ "$s" = "$ino" ] || bad="$bad $name:ls=$ino,stat=$s"
        cnt=$((cnt + 1))
    done <"$TMPD/ls"
    if [ "$cnt" -gt 0 ] && [ -z "$bad" ]; then
        ok "$d: ls -i equals stat -c %i for all $cnt entries"
    else
        fail "$d: ls -i vs stat -c %i ($cnt entries):$(show "$bad")"
    fi
done
find events -type d 2>/dev/null | xargs stat -c '%i %n' >"$TMPD/dirs" 2>&1
n=$(wc -l <"$TMPD/dirs")
dups=$(cut -d' ' -f1 "$TMPD/dirs" | sort | uniq -d | head -n5 | tr '\n' ' ')
if [ -n "$dups" ]; then
    fail "all $n directory inodes unique: duplicated: $dups ($(grep -E "^($(echo $dups | tr ' ' '|')) " "$TMPD/dirs" | head -n4 | tr '\n' ' '))"
else
    ok "all $n directory inodes unique"
fi
before=$(stat -c '%i/%h' events events/sched events/sched/sched_switch events/sched/sched_switch/format 2>&1 | tr '\n' ' ')
sync
echo 2 >/proc/sys/vm/drop_caches
after=$(stat -c '%i/%h' events events/sched events/sched/sched_switch events/sched/sched_switch/format 2>&1 | tr '\n' ' ')
expect_eq "inode/link counts stable across drop_caches" "$before" "$after"
finish
