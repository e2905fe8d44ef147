# shellcheck shell=bash
# Helpers shared by the host-side scripts (sourced, not run).

# stop_pid PID [NAME]: SIGTERM, wait up to 5 s, then SIGKILL, and reap it. Every process a
# script starts is stopped this way, by its pid (never by name).
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill "$pid" 2>/dev/null
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "${0##*/}: ${2:-pid $pid} did not stop on SIGTERM; killing it" >&2
        kill -9 "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}
