#!/bin/sh
# description: long names
# Checks: looking up a 255-byte name that does not exist gives ENOENT ("No such file"), a
# 256-byte name gives ENAMETOOLONG ("File name too long") - at events/, a system dir and an
# event dir - and neither hangs (eventfs once hung on names longer than 255 bytes).
. /guest-tests/_lib.sh
desc "255-byte names -> ENOENT, 256-byte names -> ENAMETOOLONG, no hang"
n255=$(printf '%0255d' 0 | tr 0 a)
n256=$(printf '%0256d' 0 | tr 0 b)
expect_eq "255-byte name length" 255 "${#n255}"
expect_eq "256-byte name length" 256 "${#n256}"
for d in events events/sched events/sched/sched_switch; do
    e=$(timeout 20 stat "$d/$n255" 2>&1)
    rc=$?
    case "$rc:$e" in
        0:*) fail "$d/<255 bytes>: stat succeeded" ;;
        *"No such file"*) ok "$d/<255 bytes>: No such file or directory" ;;
        *) fail "$d/<255 bytes>: expected 'No such file', got rc=$rc '$(show "$e" | cut -c1-60)...$(show "$e" | tail -c 40)'" ;;
    esac
    e=$(timeout 20 stat "$d/$n256" 2>&1)
    rc=$?
    case "$rc:$e" in
        0:*) fail "$d/<256 bytes>: stat succeeded" ;;
        *"File name too long"*) ok "$d/<256 bytes>: File name too long" ;;
        *) fail "$d/<256 bytes>: expected 'File name too long', got rc=$rc '...$(show "$e" | tail -c 60)'" ;;
    esac
    e=$( { timeout 20 cat "$d/$n256" >/dev/null; } 2>&1)
    case "$e" in
        *"File name too long"*) ok "cat $d/<256 bytes>: File name too long" ;;
        *) fail "cat $d/<256 bytes>: expected 'File name too long', got '...$(show "$e" | tail -c 60)'" ;;
    esac
done
finish
