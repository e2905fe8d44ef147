#!/bin/sh
# description: shape of the events/ tree
# Checks: events/ has enable, header_page, header_event and one dir per system; every
# system dir (except ftrace, which has no files) has enable and filter; an event dir such as
# sched/sched_switch lists enable filter trigger format id (plus only the optional
# hist/hist_debug/inject); ftrace/function has format and id but no enable/filter/trigger.
. /guest-tests/_lib.sh
desc "events/ tree shape (top files, system dirs, event dirs, ftrace special case)"

for f in enable header_page header_event; do
    if [ -f events/$f ]; then ok "events/$f is a file"; else fail "events/$f is a file: missing or not a regular file"; fi
done
if grep 'field:' events/header_page >/dev/null 2>&1; then ok "events/header_page has field: lines"; else fail "events/header_page has field: lines: got '$(show "$(head -c 200 events/header_page 2>&1)")'"; fi
if [ -n "$(cat events/header_event 2>/dev/null)" ]; then ok "events/header_event is not empty"; else fail "events/header_event is not empty"; fi

nsys=0
for d in events/*/; do
    [ -d "$d" ] && nsys=$((nsys + 1))
done
if [ "$nsys" -ge 2 ]; then ok "events/ has $nsys system dirs"; else fail "events/ has system dirs: only $nsys"; fi
for s in sched ftrace; do
    if [ -d events/$s ]; then ok "events/$s is a dir"; else fail "events/$s is a dir: missing"; fi
done

bad=""
for d in events/*/; do
    s=$(basename "$d")
    [ "$s" = ftrace ] && continue
    for f in enable filter; do
        [ -f "$d$f" ] || bad="$bad $s/$f"
    done
done
if [ -z "$bad" ]; then ok "every system dir but ftrace has enable and filter"; else fail "system dirs lack files:$(show "$bad")"; fi

files=$(for e in events/ftrace/*; do [ -d "$e" ] || echo "$e"; done)
expect_eq "events/ftrace has no files (only event dirs)" "" "$files"

ev=events/sched/sched_switch
listing=$(ls $ev 2>&1 | tr '\n' ' ')
missing=""
for f in enable filter trigger format id; do
    case " $listing" in *" $f "*) ;; *) missing="$missing $f" ;; esac
done
extra=""
for f in $listing; do
    case "$f" in enable | filter | trigger | format | id | hist | hist_debug | inject) ;; *) extra="$extra $f" ;; esac
done
expect_eq "ls $ev has enable filter trigger format id (got: $listing)" "" "$missing"
expect_eq "ls $ev has no unexpected entries" "" "$extra"
dups=$(ls $ev | sort | uniq -d)
expect_eq "ls $ev has no duplicates" "" "$dups"

fn=events/ftrace/function
for f in format id; do expect_exists $fn/$f; done
for f in enable filter trigger; do expect_absent $fn/$f "$fn has no $f"; done

# every event dir of sched has format and id
bad=""
for e in events/sched/*/; do
    for f in format id enable; do
        [ -f "$e$f" ] || bad="$bad $(basename "$e")/$f"
    done
done
expect_eq "every sched event dir has enable, format and id" "" "$bad"
finish
