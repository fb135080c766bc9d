#!/bin/sh
# reload-daemon.sh PROGRAM PIDFILE...: send SIGHUP (reload) to the daemon of the first PID file whose process is
# alive and runs PROGRAM, and print "reloaded PID". Prints "not running" when no process runs PROGRAM; fails when
# one does under a PID that no given file names (it is not ours to signal). Used where there is no systemd.
set -eu
prog=$(readlink -f "$1")
shift
exe_of() { exe=$(readlink "/proc/$1/exe" 2>/dev/null || true); echo "${exe% (deleted)}"; }
for pidfile in "$@"; do
    [ -s "$pidfile" ] || continue
    pid=$(tr -dc '0-9' <"$pidfile")
    if [ -n "$pid" ] && [ "$(exe_of "$pid")" = "$prog" ]; then
        kill -HUP "$pid"
        echo "reloaded $pid"
        exit 0
    fi
done
for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    if [ "$(exe_of "$pid")" = "$prog" ]; then
        echo "$prog runs as PID $pid, which none of $* names: reload it (SIGHUP) or restart it so that it finds the hook" >&2
        exit 1
    fi
done
echo "not running"
