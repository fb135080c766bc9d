#!/bin/sh
# start-daemon.sh PIDFILE PROGRAM [ARGS...]: start a libvirt daemon (which forks itself with -d) unless the
# process in PIDFILE is alive and runs PROGRAM. Prints "running" or "started". Used where there is no systemd.
set -eu
pidfile=$1
prog=$2
shift 2
if [ -s "$pidfile" ]; then
    pid=$(tr -dc '0-9' <"$pidfile")
    if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" = "$(readlink -f "$prog")" ]; then
        echo running
        exit 0
    fi
    rm -f "$pidfile"
fi
mkdir -p "$(dirname "$pidfile")"
"$prog" -d -p "$pidfile" "$@"
echo started
